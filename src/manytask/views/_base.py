"""The view contract and its registry."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
from torch import Tensor

from .._registry import Registry
from ..data import Inputs

__all__ = ["VIEWS", "View", "ViewBatch", "create_view"]


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

    def __repr__(self) -> str:
        options = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({options})"


VIEWS: Registry[View] = Registry("view")


def create_view(name: str, **options: object) -> View:
    """Build a registered view by name."""
    return VIEWS.create(name, **options)
