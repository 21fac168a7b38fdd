"""Masked cells of an image grid: hide some cells, predict their pixels."""

from __future__ import annotations

import torch

from ..data import Inputs
from ._base import VIEWS, View, ViewBatch, image_batch

__all__ = ["MaskedCells"]


@VIEWS.register("masked_cells", "Hide a fraction of the cells of an image grid; the target is their pixels.")
class MaskedCells(View):
    r"""Masked image modelling on a grid of cells, after the context encoders of `Pathak et al.
    (2016), "Context Encoders: Feature Learning by Inpainting" <https://arxiv.org/abs/1604.07379>`_
    (random-region masks, Sec. 3.3) and the patch masking of `He et al. (2022), "Masked
    Autoencoders Are Scalable Vision Learners" <https://arxiv.org/abs/2111.06377>`_.

    The image ``[B, C, H, W]`` is cut into a grid of ``cell × cell`` cells (``H`` and ``W`` must
    be multiples of ``cell``); in each image exactly ``round(fraction * cells)`` cells, chosen
    uniformly at random, are set to ``fill``. The target is the original image ``[B, C, H, W]``
    and the mask ``[B, H, W]`` is True on the hidden pixels only, so a pixel-level regression
    task naming this view is scored on what it could not see.

    With ``each_cell``, every image instead yields one corrupted copy per cell, that cell hidden
    (the grid's size sets how many copies an image gives; a batch of ``B`` images becomes
    ``B · cells`` rows, image-major), the scheme Ruder's survey cites for self-supervision on
    images; ``fraction`` is then unused.

    Args:
        cell: Side of a cell in pixels.
        fraction: Fraction of cells hidden in each image, in (0, 1].
        fill: Value written into hidden pixels.
        each_cell: One copy per cell and image, instead of one copy with random cells hidden.

    Examples:
        >>> view = MaskedCells(cell=2, fraction=0.5)
        >>> out = view(torch.ones(1, 1, 4, 4), generator=torch.Generator().manual_seed(0))
        >>> int(out.mask.sum()), float(out.inputs.sum())
        (8, 8.0)
    """

    def __init__(self, cell: int = 7, fraction: float = 0.25, fill: float = 0.0, each_cell: bool = False) -> None:
        if cell < 1:
            raise ValueError(f"The 'cell' parameter of MaskedCells must be >= 1. Got {cell!r} instead.")
        if not 0 < fraction <= 1:
            raise ValueError(f"The 'fraction' parameter of MaskedCells must be in (0, 1]. Got {fraction!r} instead.")
        self.cell = cell
        self.fraction = fraction
        self.fill = fill
        self.each_cell = each_cell

    def __call__(self, inputs: Inputs, *, generator: torch.Generator) -> ViewBatch:
        inputs = image_batch(inputs, "MaskedCells")
        b, _, h, w = inputs.shape
        if h % self.cell or w % self.cell:
            raise ValueError(f"MaskedCells: image size {h}x{w} is not a multiple of cell={self.cell}; "
                             "choose a cell size that divides both.")
        rows, cols = h // self.cell, w // self.cell
        if self.each_cell:  # copy k of every image hides cell k
            cells = torch.eye(rows * cols, dtype=torch.bool).repeat(b, 1)
            inputs = inputs.repeat_interleave(rows * cols, dim=0)
            b = b * rows * cols
        else:
            hidden = max(1, round(self.fraction * rows * cols))
            order = torch.rand(b, rows * cols, generator=generator).argsort(dim=1)
            cells = torch.zeros(b, rows * cols, dtype=torch.bool).scatter_(1, order[:, :hidden], True)
        mask = cells.view(b, rows, 1, cols, 1).expand(b, rows, self.cell, cols, self.cell).reshape(b, h, w)
        mask = mask.to(inputs.device)
        viewed = inputs.masked_fill(mask[:, None], self.fill)
        return ViewBatch(viewed, inputs, mask)
