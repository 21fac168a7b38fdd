"""Focusing attention: an auxiliary task on one region of the image."""

from __future__ import annotations

import torch

from ..data import Inputs
from ._base import VIEWS, View, ViewBatch, image_batch

__all__ = ["Region"]


@VIEWS.register("region", "The image as it is; the target is the pixels of one region (focusing attention).")
class Region(View):
    r"""Focusing attention (Ruder 2017, "An Overview of Multi-Task Learning in Deep Neural
    Networks", Sec. 9.2, after Caruana 1997's lane-marking example): an auxiliary task on a part
    of the input the main task may ignore, so that the shared representation keeps it. The image
    ``[B, C, H, W]`` goes in unchanged; the target is the image and the mask ``[B, H, W]`` is True
    on the ``height × width`` region at ``(top, left)`` only, so a pixel-level regression task
    naming this view reproduces that region from the shared features.

    Args:
        top: First row of the region.
        left: First column of the region.
        height: Rows of the region.
        width: Columns of the region.

    Examples:
        >>> out = Region(top=1, left=0, height=1, width=2)(torch.zeros(1, 1, 3, 3), generator=torch.Generator())
        >>> out.mask[0].int().tolist()
        [[0, 0, 0], [1, 1, 0], [0, 0, 0]]
    """

    def __init__(self, top: int = 0, left: int = 0, height: int = 1, width: int = 1) -> None:
        if min(top, left) < 0 or min(height, width) < 1:
            raise ValueError(f"Region needs top, left >= 0 and height, width >= 1. Got top={top}, left={left}, "
                             f"height={height}, width={width}.")
        self.top, self.left, self.height, self.width = top, left, height, width

    def __call__(self, inputs: Inputs, *, generator: torch.Generator) -> ViewBatch:
        del generator  # deterministic
        inputs = image_batch(inputs, "Region")
        b, _, h, w = inputs.shape
        if self.top + self.height > h or self.left + self.width > w:
            raise ValueError(f"Region: rows {self.top}..{self.top + self.height - 1} and columns {self.left}.."
                             f"{self.left + self.width - 1} do not fit a {h}x{w} image.")
        mask = torch.zeros(b, h, w, dtype=torch.bool, device=inputs.device)
        mask[:, self.top:self.top + self.height, self.left:self.left + self.width] = True
        return ViewBatch(inputs, inputs, mask)
