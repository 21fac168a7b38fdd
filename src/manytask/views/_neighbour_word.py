"""The next (or previous) word: language modelling as an auxiliary task on sequence labelling."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import torch

from ..data import Inputs
from ._base import VIEWS, View, ViewBatch, token_ids, word_classes

__all__ = ["NeighbourWord", "PreviousWord"]


@VIEWS.register("next_word", "The sentence as it is; the target at each word is the next word (Rei 2017).")
class NeighbourWord(View):
    r"""Language modelling beside sequence labelling, `Rei (2017), "Semi-supervised Multitask
    Learning for Sequence Labeling" <https://arxiv.org/abs/1704.07156>`_ (Sec. 3, Eqs. 7-10): the
    target at word ``i`` is word ``i + 1`` (``direction="next"``) or ``i - 1`` (``"previous"``).

    The inputs are unchanged, so the task must read features that have not seen its target: Rei
    predicts the next word from the forward LSTM's states and the previous word from the backward
    LSTM's (``tasks.<name>.reads: forward`` / ``backward``), of a one-layer BiLSTM (with more
    layers, attach the task to the first one, ``attach_at: 2``: a second layer's forward half has
    read the first layer's backward states, which saw the next word). The mask is True where the
    neighbour is a real word with an id below ``predict`` (None: every id).

    Args:
        direction: ``"next"`` or ``"previous"``.
        predict: Only neighbours with smaller ids are targets (None: all).
        pad_index: The padding id.

    Examples:
        >>> out = NeighbourWord()(torch.tensor([[5, 6, 7, 0]]), generator=torch.Generator())
        >>> out.target.tolist(), out.mask.tolist()
        ([[6, 7, 0, 0]], [[True, True, False, False]])
    """

    def __init__(self, direction: Literal["next", "previous"] = "next", predict: int | None = None,
                 pad_index: int = 0) -> None:
        if direction not in ("next", "previous") or (predict is not None and predict < 1):
            raise ValueError(f"NeighbourWord needs direction 'next' or 'previous' and predict >= 1 (or None). Got "
                             f"direction={direction!r}, predict={predict!r}.")
        self.direction, self.predict, self.pad_index = direction, predict, pad_index

    def classes(self, input_info: Mapping[str, Any]) -> int | None:
        return word_classes(self.predict, input_info)

    def __call__(self, inputs: Inputs, *, generator: torch.Generator) -> ViewBatch:
        del generator  # deterministic
        tokens = token_ids(inputs, "NeighbourWord")
        padding = torch.full_like(tokens[:, :1], self.pad_index)
        if self.direction == "next":
            target = torch.cat([tokens[:, 1:], padding], dim=1)
        else:
            target = torch.cat([padding, tokens[:, :-1]], dim=1)
        mask = (tokens != self.pad_index) & (target != self.pad_index)
        if self.predict is not None:
            mask &= target < self.predict
        return ViewBatch(inputs, target, mask)


@VIEWS.register("previous_word", "The sentence as it is; the target at each word is the previous word (Rei 2017).")
class PreviousWord(NeighbourWord):
    """:class:`NeighbourWord` towards the start of the sentence: the target at word ``i`` is word
    ``i - 1``, for a task that reads the backward half of a BiLSTM (``reads: backward``)."""

    def __init__(self, predict: int | None = None, pad_index: int = 0) -> None:
        super().__init__("previous", predict, pad_index)
