"""A hint on text: whether a sentence contains one of some given words."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..data import Inputs
from ._base import VIEWS, View, ViewBatch, token_ids

__all__ = ["ContainsWords"]


@VIEWS.register("contains_words", "Whether a sentence contains one of the given words (a hint): a binary target.")
class ContainsWords(View):
    """A hint in the sense of Abu-Mostafa (1990, "Learning from hints in neural networks") and Yu
    & Jiang (2016, sentence-level sentiment with an auxiliary task of whether the sentence holds a
    pivot word): the target is 1 where the sentence contains at least one of ``words`` (or of the
    token ``ids``), else 0; every sentence is labelled and the inputs are unchanged. A sample-level
    binary task reads it (``kind: binary``).

    Args:
        words: The words, looked up in ``vocab`` (an unknown word is an error naming it).
        vocab: The dataset's vocabulary (token id ``i`` is ``vocab[i]``); filled in from the
            dataset (``input_info["vocab"]``) when the config leaves it out.
        ids: Token ids, instead of (or besides) words; neither the padding id nor one past the
            vocabulary (the first is in every sentence but the longest, the second in none).
        pad_index: The padding id; filled in from the dataset.

    Examples:
        >>> view = ContainsWords(words=["not"], vocab=["<pad>", "<unk>", "good", "not"])
        >>> view(torch.tensor([[2, 3, 0], [2, 2, 0]]), generator=torch.Generator()).target.tolist()
        [1.0, 0.0]
    """

    def __init__(self, words: Sequence[str] = (), vocab: Sequence[str] | None = None, ids: Sequence[int] = (),
                 pad_index: int = 0) -> None:
        if words and vocab is None:
            raise ValueError("ContainsWords needs the dataset's vocabulary to look its words up; give 'ids' "
                             "instead, or use a dataset that provides one (conll2000).")
        index = {w: i for i, w in enumerate(vocab or ())}
        unknown = [w for w in words if w not in index]
        if unknown:
            raise ValueError(f"ContainsWords: {unknown[:5]} are not in the dataset's vocabulary "
                             f"({len(index)} words; lookup is case-sensitive).")
        self.ids = sorted({*(index[w] for w in words), *(int(i) for i in ids)})
        if not self.ids:
            raise ValueError("ContainsWords needs at least one word or id.")
        bad = [i for i in self.ids if i == pad_index or i < 0 or (vocab is not None and i >= len(vocab))]
        if bad:  # the padding id is in every sentence shorter than the longest; an id past the vocabulary in none
            known = f" (0..{len(vocab) - 1})" if vocab is not None else ""
            raise ValueError(f"ContainsWords: ids {bad[:5]} are the padding id ({pad_index}) or not token ids of the "
                             f"vocabulary{known}; give real words' ids.")
        self.words = list(words)

    def __call__(self, inputs: Inputs, *, generator: torch.Generator) -> ViewBatch:
        tokens = token_ids(inputs, "ContainsWords")
        found = torch.isin(tokens, torch.tensor(self.ids, device=tokens.device)).any(dim=1)
        return ViewBatch(inputs, found.to(torch.float32), torch.ones(len(tokens), dtype=torch.bool,
                                                                      device=tokens.device))

    def __repr__(self) -> str:
        return f"ContainsWords(words={self.words!r}, ids={self.ids[:8]!r}{'...' if len(self.ids) > 8 else ''})"
