"""Next-sentence prediction: is the second sentence of a pair the one that followed the first?"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from ..data import Inputs
from ._base import VIEWS, View, ViewBatch

__all__ = ["NextSentence"]


@VIEWS.register("next_sentence", "A sentence, a separator and its successor or a random one; the target is which.")
class NextSentence(View):
    r"""Next-sentence prediction, `Devlin et al. (2019), "BERT" <https://arxiv.org/abs/1810.04805>`_
    (Sec. 3.1, "Task #2"): half the time the second sentence of a pair is the one that followed
    the first in the text, otherwise the successor of another sentence of the batch (a random
    negative). Inputs are a dict with ``"tokens"`` and ``"next_tokens"`` ``[B, L]`` (e.g.
    ``conll2000`` with ``next_sentence: true``), and with ``"chars"`` also ``"next_chars"``. The
    pair is packed as ``first, separator, second`` into ``[B, 2L + 1]``, right-padded; the target
    ``[B]`` is 1 for a true successor, every pair labelled (a sample-level binary task). A row is
    its own negative only in a batch of one.

    Args:
        separator_index: The id between the two sentences (default 1, ``<unk>`` in manytask's text
            datasets, which have no separator token).
        pad_index: The padding id.

    Examples:
        >>> inputs = {"tokens": torch.tensor([[5, 6, 0], [7, 0, 0]]),
        ...           "next_tokens": torch.tensor([[8, 0, 0], [9, 9, 0]])}
        >>> out = NextSentence()(inputs, generator=torch.Generator().manual_seed(0))
        >>> out.target.tolist(), out.inputs["tokens"].tolist()
        ([1.0, 0.0], [[5, 6, 1, 8, 0, 0, 0], [7, 1, 8, 0, 0, 0, 0]])
    """

    def __init__(self, separator_index: int = 1, pad_index: int = 0) -> None:
        if separator_index == pad_index:
            raise ValueError(f"NextSentence needs a separator_index other than the pad_index. Got {separator_index!r}.")
        self.separator_index, self.pad_index = separator_index, pad_index

    def __call__(self, inputs: Inputs, *, generator: torch.Generator) -> ViewBatch:
        if not isinstance(inputs, Mapping) or "tokens" not in inputs or "next_tokens" not in inputs:
            raise ValueError("NextSentence needs dict inputs with 'tokens' and 'next_tokens' (each sentence's "
                             "successor; conll2000: next_sentence: true).")
        tokens = inputs["tokens"]
        b = tokens.shape[0]
        true_next = torch.rand(b, generator=generator) < 0.5
        other = (torch.arange(b) + torch.randint(1, max(b, 2), (b,), generator=generator)) % b  # another row
        source = torch.where(true_next, torch.arange(b), other).to(tokens.device)
        first_length = (tokens != self.pad_index).sum(1)
        second = inputs["next_tokens"][source]
        packed = {"tokens": self._pack(tokens, second, first_length, self.separator_index, self.pad_index)}
        if "chars" in inputs:
            if "next_chars" not in inputs:
                raise ValueError("NextSentence: inputs have 'chars' but no 'next_chars'; load both (conll2000: "
                                 "characters and next_sentence).")
            packed["chars"] = self._pack(inputs["chars"], inputs["next_chars"][source], first_length, 0, 0)
        target = true_next.to(torch.float32).to(tokens.device)
        return ViewBatch(packed, target, torch.ones(b, dtype=torch.bool, device=tokens.device))

    @staticmethod
    def _pack(first: Tensor, second: Tensor, first_length: Tensor, separator: int, pad: int) -> Tensor:
        """``[B, 2L + 1, ...]``: each row's first ``first_length`` entries, the separator, then
        ``second``'s row (whose padding stays at the end)."""
        b, length = first.shape[:2]
        position = torch.arange(2 * length + 1, device=first.device)[None].expand(b, -1)
        start = first_length[:, None]
        extra = first.shape[2:]
        index = torch.where(position < start, position, position - start - 1).clamp(0, length - 1)
        index = index.view(b, -1, *[1] * len(extra)).expand(b, -1, *extra)
        from_first = first.gather(1, index)
        from_second = second.gather(1, index)
        packed = torch.where((position < start).view(b, -1, *[1] * len(extra)), from_first, from_second)
        beyond = (position > start + length).view(b, -1, *[1] * len(extra))
        packed = packed.masked_fill(beyond, pad)
        return packed.masked_fill((position == start).view(b, -1, *[1] * len(extra)), separator)
