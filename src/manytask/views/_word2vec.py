"""CBOW and skip-gram (Mikolov et al. 2013) as views of a sentence: a centre word and its window."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ..data import Inputs
from ._base import VIEWS, View, ViewBatch, token_ids, word_classes

__all__ = ["CBOW", "SkipGram"]


class _Window(View):
    """One centre word per sentence, drawn uniformly among its real words, and its window of
    ``window`` words on each side."""

    def __init__(self, window: int = 2, mask_index: int = 1, pad_index: int = 0, predict: int | None = None) -> None:
        if window < 1 or mask_index == pad_index or (predict is not None and predict < 1):
            raise ValueError(f"{type(self).__name__} needs window >= 1, a mask_index other than the pad_index and "
                             f"predict >= 1 (or None). Got window={window!r}, mask_index={mask_index!r}, "
                             f"pad_index={pad_index!r}, predict={predict!r}.")
        self.window, self.mask_index, self.pad_index, self.predict = window, mask_index, pad_index, predict

    def classes(self, input_info: Mapping[str, Any]) -> int | None:
        return word_classes(self.predict, input_info)

    def _parts(self, inputs: Inputs, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
        """The token ids, the centre ``[B, L]`` and the window around it (centre excluded) ``[B, L]``."""
        tokens = token_ids(inputs, type(self).__name__)
        real = (tokens != self.pad_index).cpu()
        lengths = real.sum(1).clamp_min(1)
        centre = (torch.rand(len(tokens), generator=generator) * lengths).long()  # uniform among the real words
        positions = torch.arange(tokens.shape[1])
        offset = positions[None] - centre[:, None]
        is_centre = (offset == 0) & real
        near = (offset.abs() <= self.window) & (offset != 0) & real
        return tokens, is_centre.to(tokens.device), near.to(tokens.device)

    def _hide(self, inputs: Inputs, tokens: Tensor, hidden: Tensor) -> Inputs:
        viewed = tokens.masked_fill(hidden, self.mask_index)
        if not isinstance(inputs, Mapping):
            return viewed
        out = dict(inputs, tokens=viewed)
        if "chars" in inputs:
            out["chars"] = inputs["chars"].masked_fill(hidden[..., None], 0)
        return out

    def _targets(self, tokens: Tensor, where: Tensor) -> Tensor:
        return where if self.predict is None else where & (tokens < self.predict)


@VIEWS.register("cbow", "Each sentence's centre word hidden and predicted from its window; words outside hidden.")
class CBOW(_Window):
    r"""Continuous bag of words, `Mikolov, Chen, Corrado & Dean (2013), "Efficient Estimation of
    Word Representations in Vector Space" <https://arxiv.org/abs/1301.3781>`_ (Sec. 3.1): the
    centre word is predicted from the ``window`` words on each side of it. In each sentence one
    centre word, drawn uniformly, is hidden (``mask_index``), as is every word outside its window,
    so that the encoder reads the window only; the target is the centre word (mask True there
    alone, and only for ids below ``predict``). Spelling of hidden words (``"chars"``) is blanked.

    Examples:
        >>> out = CBOW(window=1)(torch.tensor([[5, 6, 7, 8, 9]]), generator=torch.Generator().manual_seed(1))
        >>> out.inputs.tolist(), out.mask.int().tolist()  # centre: the fourth word
        ([[1, 1, 7, 1, 9]], [[0, 0, 0, 1, 0]])
    """

    def __call__(self, inputs: Inputs, *, generator: torch.Generator) -> ViewBatch:
        tokens, centre, near = self._parts(inputs, generator)
        real = tokens != self.pad_index
        return ViewBatch(self._hide(inputs, tokens, real & ~near), tokens, self._targets(tokens, centre))


@VIEWS.register("skip_gram", "Each sentence's centre word shown alone; the words of its window are the targets.")
class SkipGram(_Window):
    r"""Skip-gram, `Mikolov et al. (2013) <https://arxiv.org/abs/1301.3781>`_ (Sec. 3.2): the
    words around a centre word are predicted from it. In each sentence one centre word, drawn
    uniformly, stays; every other word is hidden (``mask_index``, spelling blanked), so the
    encoder reads the centre word and the positions only; the targets are the ``window`` words on
    each side (mask True there, for ids below ``predict``).

    Examples:
        >>> out = SkipGram(window=1)(torch.tensor([[5, 6, 7, 8, 9]]), generator=torch.Generator().manual_seed(1))
        >>> out.inputs.tolist(), out.mask.int().tolist()  # centre: the fourth word
        ([[1, 1, 1, 8, 1]], [[0, 0, 1, 0, 1]])
    """

    def __call__(self, inputs: Inputs, *, generator: torch.Generator) -> ViewBatch:
        tokens, centre, near = self._parts(inputs, generator)
        real = tokens != self.pad_index
        return ViewBatch(self._hide(inputs, tokens, real & ~centre), tokens, self._targets(tokens, near))
