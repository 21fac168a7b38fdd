"""Lower resolution: show a blurred, downsampled copy, predict the full-resolution image."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..data import Inputs
from ._base import VIEWS, View, ViewBatch, image_batch

__all__ = ["LowResolution"]


@VIEWS.register("low_resolution", "Downsample each image by a factor and scale it back up; the target is the original.")
class LowResolution(View):
    r"""Super-resolution as a self-supervised task, after `Dong, Loy, He & Tang (2014), "Learning
    a Deep Convolutional Network for Image Super-Resolution" (SRCNN)
    <https://arxiv.org/abs/1501.00092>`_ (Sec. 3.1: the low-resolution image is upscaled to the
    target size by bicubic interpolation before the network, which restores the detail).

    An image ``[B, C, H, W]`` (``H`` and ``W`` multiples of ``factor``) is averaged over
    ``factor × factor`` blocks, then scaled back to ``H × W`` (``mode``: ``"bicubic"`` as in the
    paper, or ``"nearest"``/``"bilinear"``); the target is the original image, every pixel
    labelled, for a pixel-level regression task.

    Args:
        factor: Downsampling factor (>= 2).
        mode: Interpolation back to the full size.

    Examples:
        >>> image = torch.tensor([[1.0, 3.0], [5.0, 7.0]]).view(1, 1, 2, 2)
        >>> LowResolution(2, "nearest")(image, generator=torch.Generator()).inputs.flatten().tolist()
        [4.0, 4.0, 4.0, 4.0]
    """

    def __init__(self, factor: int = 2, mode: str = "bicubic") -> None:
        if factor < 2 or mode not in ("bicubic", "bilinear", "nearest"):
            raise ValueError(f"LowResolution needs factor >= 2 and mode 'bicubic', 'bilinear' or 'nearest'. Got "
                             f"factor={factor!r}, mode={mode!r}.")
        self.factor, self.mode = factor, mode

    def __call__(self, inputs: Inputs, *, generator: torch.Generator) -> ViewBatch:
        del generator  # deterministic
        inputs = image_batch(inputs, "LowResolution")
        b, _, h, w = inputs.shape
        if h % self.factor or w % self.factor:
            raise ValueError(f"LowResolution: image size {h}x{w} is not a multiple of factor={self.factor}; choose "
                             "a factor that divides both.")
        small = F.avg_pool2d(inputs, self.factor)
        options = {} if self.mode == "nearest" else {"align_corners": False}
        blurred = F.interpolate(small, size=(h, w), mode=self.mode, **options)
        return ViewBatch(blurred, inputs, torch.ones(b, h, w, dtype=torch.bool, device=inputs.device))
