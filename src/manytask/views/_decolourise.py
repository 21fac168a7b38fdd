"""Decolourisation: show the grey image, predict its colours."""

from __future__ import annotations

import torch

from ..data import Inputs
from ._base import VIEWS, View, ViewBatch, image_batch

__all__ = ["Decolourise"]

#: ITU-R BT.601 luma weights of R, G and B.
LUMA = (0.299, 0.587, 0.114)


@VIEWS.register("decolourise", "Show each RGB image in grey (luma on every channel); the target is its colours.")
class Decolourise(View):
    r"""Colourisation as a self-supervised task, `Zhang, Isola & Efros (2016), "Colorful Image
    Colorization" <https://arxiv.org/abs/1603.08511>`_ (the regression objective of Eq. 1; the
    paper's own loss classifies quantised colours) and `Larsson, Maire & Shakhnarovich (2016)
    <https://arxiv.org/abs/1603.06668>`_.

    An RGB image ``[B, 3, H, W]`` becomes its luma :math:`Y = 0.299 R + 0.587 G + 0.114 B`
    (ITU-R BT.601) on all three channels, so the backbone reads it as it reads colour images; the
    target is the original image ``[B, 3, H, W]``, every pixel labelled (``[B, H, W]``), for a
    pixel-level regression task with 3 outputs.

    Examples:
        >>> out = Decolourise()(torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1), generator=torch.Generator())
        >>> [round(v, 3) for v in out.inputs.flatten().tolist()]
        [0.299, 0.299, 0.299]
    """

    def __call__(self, inputs: Inputs, *, generator: torch.Generator) -> ViewBatch:
        del generator  # deterministic
        inputs = image_batch(inputs, "Decolourise", "RGB images [B, 3, H, W]", lambda images: images.shape[1] == 3)
        weights = torch.tensor(LUMA, dtype=inputs.dtype, device=inputs.device).view(1, 3, 1, 1)
        grey = (inputs * weights).sum(1, keepdim=True).expand_as(inputs).contiguous()
        mask = torch.ones(inputs.shape[0], *inputs.shape[2:], dtype=torch.bool, device=inputs.device)
        return ViewBatch(grey, inputs, mask)
