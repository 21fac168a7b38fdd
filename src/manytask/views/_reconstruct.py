"""Reconstruction: an autoencoder task on the shared representation (optionally denoising)."""

from __future__ import annotations

import torch
from torch import Tensor

from ..data import Inputs
from ._base import VIEWS, View, ViewBatch

__all__ = ["Reconstruct"]


@VIEWS.register("reconstruct", "The inputs themselves as the target (an autoencoder); noise: a denoising one.")
class Reconstruct(View):
    r"""Reconstruction of the inputs from the shared representation: an autoencoder task
    (representation learning as an auxiliary task, Ruder 2017, Sec. 9.2; Rumelhart, Hinton &
    Williams 1986), or with ``noise > 0`` the denoising autoencoder of `Vincent, Larochelle,
    Bengio & Manzagol (2008) <https://doi.org/10.1145/1390156.1390294>`_ (Sec. 2.3; additive
    Gaussian corruption, Sec. 3.1 of their 2010 paper): the inputs plus :math:`\mathcal{N}(0,
    \text{noise}^2)` noise go in, the clean inputs are the target.

    Float inputs only: ``[B, D]`` (a sample-level regression task with ``D`` outputs) or images
    ``[B, C, H, W]`` (a pixel-level regression task with ``C`` outputs); every entry labelled.

    Args:
        noise: Standard deviation of the Gaussian corruption (0: a plain autoencoder).

    Examples:
        >>> out = Reconstruct()(torch.ones(2, 3), generator=torch.Generator())
        >>> out.target.tolist(), out.mask.tolist()
        ([[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]], [True, True])
    """

    def __init__(self, noise: float = 0.0) -> None:
        if noise < 0:
            raise ValueError(f"The 'noise' parameter of Reconstruct must be >= 0. Got {noise!r} instead.")
        self.noise = noise

    def __call__(self, inputs: Inputs, *, generator: torch.Generator) -> ViewBatch:
        if not isinstance(inputs, Tensor) or not inputs.is_floating_point() or inputs.ndim not in (2, 4):
            got = f"a {inputs.dtype} tensor of shape {tuple(inputs.shape)}" if isinstance(inputs, Tensor) \
                else "a dict of inputs"
            raise ValueError(f"Reconstruct needs float inputs [B, D] or images [B, C, H, W]; got {got}.")
        viewed = inputs
        if self.noise:
            draw = torch.randn(inputs.shape, generator=generator, dtype=inputs.dtype)
            viewed = inputs + self.noise * draw.to(inputs.device)
        entries = (inputs.shape[0],) if inputs.ndim == 2 else (inputs.shape[0], *inputs.shape[2:])
        return ViewBatch(viewed, inputs, torch.ones(entries, dtype=torch.bool, device=inputs.device))
