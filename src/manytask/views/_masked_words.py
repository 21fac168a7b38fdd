"""Masked words: hide some words of each sentence, predict them from the rest."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ..data import Inputs
from ._base import VIEWS, View, ViewBatch, token_ids, word_classes

__all__ = ["MaskedWords"]


@VIEWS.register("masked_words", "Hide words (or spans of words) of each sentence; the target is their ids.")
class MaskedWords(View):
    r"""Masked-word prediction, the masked language model of `Devlin et al. (2019), "BERT"
    <https://arxiv.org/abs/1810.04805>`_ (Sec. 3.1, "Task #1"), with the contiguous spans of
    `Joshi et al. (2020), "SpanBERT" <https://arxiv.org/abs/1907.10529>`_ (Sec. 3.1).

    Inputs are right-padded token ids ``[B, L]`` (or a dict with ``"tokens"``, and optionally
    ``"chars"`` ``[B, L, W]``, whose spelling of a hidden word is blanked so that it cannot
    leak). In each sentence ``ceil(round(fraction * length) / span)`` spans of ``span``
    consecutive words (``span = 1``: single words, non-contiguous) start at positions drawn
    uniformly without replacement; they hide at most ``round(fraction * length)`` words (at least
    one; fewer where spans overlap), and a hidden word becomes ``mask_index``. The target is the
    original ids ``[B, L]``; the mask ``[B, L]`` is True on the hidden words whose id is below
    ``predict`` (None: all), so a token-level classification task over ``predict`` classes
    learns to restore them. (BERT also keeps 10 % of the chosen words and swaps 10 %; here every
    chosen word is hidden.)

    Args:
        fraction: Fraction of each sentence's words hidden, in (0, 1].
        span: Length of each hidden span.
        mask_index: The id written in place of a hidden word (default 1, ``<unk>`` in manytask's
            text datasets).
        pad_index: The padding id (never hidden).
        predict: Only words with smaller ids are targets (a frequency-sorted vocabulary's most
            common words); None: every word.

    Examples:
        >>> view = MaskedWords(fraction=0.5)
        >>> out = view(torch.tensor([[5, 6, 7, 8, 0, 0]]), generator=torch.Generator().manual_seed(0))
        >>> out.mask.sum().item(), (out.inputs == 1).sum().item(), out.target.tolist()
        (2, 2, [[5, 6, 7, 8, 0, 0]])
    """

    def __init__(self, fraction: float = 0.15, span: int = 1, mask_index: int = 1, pad_index: int = 0,
                 predict: int | None = None) -> None:
        if not 0 < fraction <= 1:
            raise ValueError(f"The 'fraction' parameter of MaskedWords must be in (0, 1]. Got {fraction!r} instead.")
        if span < 1 or (predict is not None and predict < 1) or mask_index == pad_index:
            raise ValueError(f"MaskedWords needs span >= 1, predict >= 1 (or None) and a mask_index other than the "
                             f"pad_index. Got span={span!r}, predict={predict!r}, mask_index={mask_index!r}, "
                             f"pad_index={pad_index!r}.")
        self.fraction, self.span, self.predict = fraction, span, predict
        self.mask_index, self.pad_index = mask_index, pad_index

    def classes(self, input_info: Mapping[str, Any]) -> int | None:
        return word_classes(self.predict, input_info)

    def __call__(self, inputs: Inputs, *, generator: torch.Generator) -> ViewBatch:
        tokens = token_ids(inputs, "MaskedWords")
        real = tokens != self.pad_index
        hidden = self._choose(real.cpu(), generator).to(tokens.device)
        viewed_tokens = tokens.masked_fill(hidden, self.mask_index)
        viewed: Inputs = viewed_tokens
        if isinstance(inputs, Mapping):
            viewed = dict(inputs, tokens=viewed_tokens)
            if "chars" in inputs:
                viewed["chars"] = inputs["chars"].masked_fill(hidden[..., None], 0)
        mask = hidden if self.predict is None else hidden & (tokens < self.predict)
        return ViewBatch(viewed, tokens, mask)

    def _choose(self, real: Tensor, generator: torch.Generator) -> Tensor:
        """``[B, L]``: the hidden words, ``round(fraction * length)`` per sentence in spans."""
        b, width = real.shape
        lengths = real.sum(1)
        count = (lengths.double() * self.fraction).round().clamp_min(1).long().clamp_max(lengths)
        spans = (count + self.span - 1) // self.span  # spans per sentence
        starts = lengths - self.span + 1  # the possible starts of a whole span
        scores = torch.rand(b, width, generator=generator)
        scores = scores.masked_fill(torch.arange(width) >= starts.clamp_min(1)[:, None], 2.0)  # not a start
        ranked = scores.argsort(1)
        chosen = torch.arange(width) < spans[:, None]
        start_mask = torch.zeros(b, width, dtype=torch.bool).scatter_(1, ranked, chosen)
        hidden = start_mask.clone()
        for shift in range(1, self.span):  # each span covers its start and the words after it
            hidden[:, shift:] |= start_mask[:, :-shift]
        hidden &= real
        # a sentence shorter than a span, or overlapping spans, may hide fewer words: never more than asked
        excess = hidden.cumsum(1) > count[:, None]
        return hidden & ~excess
