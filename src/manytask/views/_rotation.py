"""Rotation: turn each image by a multiple of 90 degrees, predict which."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from ..data import Inputs
from ._base import VIEWS, View, ViewBatch, image_batch

__all__ = ["Rotation"]


@VIEWS.register("rotation", "Turn each image by 0, 90, 180 or 270 degrees; the target is which (4 classes).")
class Rotation(View):
    r"""Rotation prediction, `Gidaris, Singh & Komodakis (2018), "Unsupervised Representation
    Learning by Predicting Image Rotations" <https://arxiv.org/abs/1803.07728>`_ (Eq. 1-3, the
    four rotations of Sec. 2.2).

    Each square image ``[C, S, S]`` of the batch is turned counter-clockwise by ``k · 90``
    degrees, ``k`` drawn uniformly from ``{0, 1, 2, 3}``; the target is ``k`` ``[B]`` and every
    image is labelled, so a sample-level classification task with 4 classes names this view.
    (The paper feeds all four rotations of every image; one drawn rotation per image per step
    is its stochastic form.)

    Examples:
        >>> out = Rotation()(torch.arange(4.0).view(1, 1, 2, 2), generator=torch.Generator().manual_seed(1))
        >>> out.target.tolist(), out.inputs.flatten().tolist()  # [[0, 1], [2, 3]] a quarter turn left
        ([1], [1.0, 3.0, 0.0, 2.0])
    """

    def classes(self, input_info: Mapping[str, Any]) -> int | None:
        return 4

    def __call__(self, inputs: Inputs, *, generator: torch.Generator) -> ViewBatch:
        inputs = image_batch(inputs, "Rotation", "square image inputs [B, C, S, S]",
                             lambda images: images.shape[-1] == images.shape[-2])
        turns = torch.randint(0, 4, (inputs.shape[0],), generator=generator).to(inputs.device)
        rotated = torch.stack([inputs.rot90(k, dims=(2, 3)) for k in range(4)])  # [4, B, C, S, S]
        viewed = rotated[turns, torch.arange(inputs.shape[0], device=inputs.device)]
        return ViewBatch(viewed, turns, torch.ones_like(turns, dtype=torch.bool))
