"""The view contract and its registry."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .._registry import Registry
from ..data import Inputs

__all__ = ["VIEWS", "View", "ViewBatch", "create_view", "image_batch", "token_ids", "word_classes"]


@dataclass(frozen=True)
class ViewBatch:
    """What a view makes of a batch's inputs: new inputs, a target and its label mask."""

    inputs: Inputs
    target: Tensor
    mask: Tensor


class View(ABC):
    """Maps a batch's inputs to a :class:`ViewBatch`, drawing randomness only from ``generator``."""

    @abstractmethod
    def __call__(self, inputs: Inputs, *, generator: torch.Generator) -> ViewBatch:
        """The view of ``inputs``."""

    def classes(self, input_info: Mapping[str, Any]) -> int | None:
        """How many class ids its targets can take, where that is known before any batch (a
        rotation's 4, a word view's vocabulary), so that a task with fewer classes is refused
        before training; None where the targets are not class ids or the count is not known."""
        return None

    def __repr__(self) -> str:
        options = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({options})"


VIEWS: Registry[View] = Registry("view")


def create_view(name: str, **options: object) -> View:
    """Build a registered view by name."""
    return VIEWS.create(name, **options)


def image_batch(inputs: Inputs, owner: str, need: str = "image inputs [B, C, H, W]",
                fits: Callable[[Tensor], bool] = lambda images: True) -> Tensor:
    """``inputs`` as images ``[B, C, H, W]`` (that ``fits`` accepts), or a ``ValueError``
    saying that ``owner`` needs ``need`` and what it got."""
    if not isinstance(inputs, Tensor) or inputs.ndim != 4 or not fits(inputs):
        got = f"shape {tuple(inputs.shape)}" if isinstance(inputs, Tensor) else "a dict of inputs"
        raise ValueError(f"{owner} needs {need}; got {got}.")
    return inputs


def token_ids(inputs: Inputs, owner: str) -> Tensor:
    """The token ids ``[B, L]`` of ``inputs`` (a tensor, or a dict's ``"tokens"``), or a
    ``ValueError`` saying that ``owner`` needs them."""
    tokens = inputs.get("tokens") if isinstance(inputs, Mapping) else inputs
    if not isinstance(tokens, Tensor) or tokens.ndim != 2 or tokens.is_floating_point():
        got = type(tokens).__name__ if not isinstance(tokens, Tensor) else list(tokens.shape)
        raise ValueError(f"{owner} needs token ids [B, L] (or a dict with 'tokens'); got {got}.")
    return tokens


def word_classes(predict: int | None, input_info: Mapping[str, Any]) -> int | None:
    """The class ids of a view whose targets are word ids: those below ``predict`` (None: every
    id) that the vocabulary has (``input_info["vocab_size"]``, when the dataset gives it)."""
    vocab = input_info.get("vocab_size")
    if predict is None:
        return vocab if isinstance(vocab, int) else None
    return min(predict, vocab) if isinstance(vocab, int) else predict
