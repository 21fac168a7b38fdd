"""Task heads built from the task's level and the layout of the features they read."""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, autograd, nn

from ..tasks import Task
from ..tasks._crf import crf_potentials
from ._backbone import FeatureInfo, padding_mask

__all__ = ["CRFHead", "GradientReversal", "make_head"]


class _Reverse(autograd.Function):
    @staticmethod
    def forward(ctx: autograd.function.FunctionCtx, x: Tensor, scale: float) -> Tensor:  # type: ignore[override]
        ctx.scale = scale  # type: ignore[attr-defined]
        return x.view_as(x)

    @staticmethod
    def backward(ctx: autograd.function.FunctionCtx, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        return -ctx.scale * grad, None  # type: ignore[attr-defined]


class GradientReversal(nn.Module):
    r"""Identity forward, :math:`-\lambda` times the gradient backward (Ganin & Lempitsky 2015,
    "Unsupervised Domain Adaptation by Backpropagation", Eq. 13): the head learns its task while
    the layers below it learn to defeat it (adversarial tasks).

    :math:`\lambda` is ``scale`` (``schedule="constant"``), or follows the paper's schedule
    (Sec. 5, "ganin"), rising from 0 to ``scale`` as training progresses so that the early, noisy
    domain classifier does not disturb the features:
    :math:`\lambda_p = \text{scale} \cdot (2 / (1 + e^{-10 p}) - 1)`, ``p`` the fraction of
    training done, which the trainer sets in ``progress`` before every step (1 outside training).
    """

    def __init__(self, scale: float = 1.0, schedule: Literal["constant", "ganin"] = "constant") -> None:
        super().__init__()
        if schedule not in ("constant", "ganin"):
            raise ValueError(f"GradientReversal schedule must be 'constant' or 'ganin'. Got {schedule!r}.")
        self.scale = scale
        self.schedule = schedule
        self.progress = 1.0

    @property
    def strength(self) -> float:
        r""":math:`\lambda` at the current ``progress``."""
        if self.schedule == "constant":
            return self.scale
        return self.scale * (2.0 / (1.0 + math.exp(-10.0 * self.progress)) - 1.0)

    def forward(self, x: Tensor) -> Tensor:
        return _Reverse.apply(x, self.strength)  # type: ignore[no-any-return]

    def extra_repr(self) -> str:
        return f"scale={self.scale}" + (f", schedule={self.schedule}" if self.schedule != "constant" else "")


class _Pool(nn.Module):
    """Mean over the positions of a map ``[B, C, H, W]`` (over each cell of a ``grid × grid``
    partition, flattened to ``[B, C·grid²]``), or over the non-padding positions of a sequence
    ``[B, L, D]`` (padding rows are all-zero, see ``manytask.models.padding_mask``)."""

    def __init__(self, layout: str, grid: int = 1) -> None:
        super().__init__()
        self.layout, self.grid = layout, grid

    def forward(self, x: Tensor) -> Tensor:
        if self.layout == "map":
            return x.mean(dim=(2, 3)) if self.grid == 1 else F.adaptive_avg_pool2d(x, self.grid).flatten(1)
        real = (~padding_mask(x)).to(x.dtype)  # [B, L]
        return (x * real[..., None]).sum(1) / real.sum(1, keepdim=True).clamp(min=1)


class _Half(nn.Module):
    """The first (forward) or second (backward) half of a bidirectional encoder's features."""

    def __init__(self, which: str, dim: int) -> None:
        super().__init__()
        self.which, self.split = which, dim // 2

    def forward(self, x: Tensor) -> Tensor:
        return x[..., : self.split] if self.which == "forward" else x[..., self.split:]

    def extra_repr(self) -> str:
        return self.which


class _Upsample(nn.Module):
    def __init__(self, factor: int) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x: Tensor) -> Tensor:
        return F.interpolate(x, scale_factor=self.factor, mode="bilinear", align_corners=False)


class CRFHead(nn.Module):
    """Per-token emissions (linear, or one hidden layer) plus learned transition and start scores,
    as CRF potentials ``[B, L, C, C]``; zero on padding (the all-zero rows of the features)."""

    def __init__(self, in_features: int, hidden: int, tags: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.emissions = nn.Sequential(*_mlp(nn.Linear, in_features, hidden, tags, dropout))
        self.transitions = nn.Parameter(torch.zeros(tags, tags))
        self.start = nn.Parameter(torch.zeros(tags))

    def forward(self, x: Tensor) -> Tensor:
        padding = padding_mask(x)
        return crf_potentials(self.emissions(x), self.transitions, self.start, padding)


def _mlp(layer: type[nn.Linear] | type[nn.Conv2d], in_features: int, hidden: int, out: int,
         dropout: float = 0.0) -> list[nn.Module]:
    def make(i: int, o: int) -> nn.Module:
        return nn.Conv2d(i, o, 1) if layer is nn.Conv2d else nn.Linear(i, o)

    if hidden:
        return [make(in_features, hidden), nn.ReLU(), *([nn.Dropout(dropout)] if dropout else []), make(hidden, out)]
    return [make(in_features, out)]


def make_head(task: Task, info: FeatureInfo) -> nn.Module:
    """A fresh head for ``task`` reading features laid out as ``info``.

    ======== ======================= ================================================
    level    layout                  head
    ======== ======================= ================================================
    sample   vector                  linear (or one hidden layer, ``head_hidden``, with
                                     ``head_dropout`` after it)
    sample   sequence / map          mean over positions (a map: over each cell of a
                                     ``head_grid`` grid), then linear
    token    sequence                linear on every token (``crf=True``: emissions plus
                                     transitions, CRF potentials ``[B, L, C, C]``)
    pixel    map                     1×1 convolution, then bilinear upsampling by
                                     ``info.reduction`` to the input resolution
    ======== ======================= ================================================

    An adversarial task's head reads the features through :class:`GradientReversal`. A pair not
    in the table (a token-level task on vectors or maps, a pixel-level task on vectors or
    sequences) raises a ``ValueError`` naming the layout the task needs.

    Examples:
        >>> import torch
        >>> from manytask.tasks import Classification, Regression
        >>> depth = make_head(Regression("depth", level="pixel"), FeatureInfo(16, "map", reduction=4))
        >>> tuple(depth(torch.randn(2, 16, 8, 8)).shape)
        (2, 1, 32, 32)
        >>> scene = make_head(Classification("scene", num_classes=5), FeatureInfo(16, "map", reduction=4))
        >>> tuple(scene(torch.randn(2, 16, 8, 8)).shape)
        (2, 5)
    """
    level, layout = task.level, info.layout
    layers: list[nn.Module] = [GradientReversal(task.reversal, task.reversal_schedule)] if task.role == "adversarial" \
        else []
    if task.reads != "all":  # one direction of a bidirectional encoder
        if layout != "sequence" or info.dim % 2:
            raise ValueError(f"Task {task.name!r} reads the {task.reads} half of the features, which needs a "
                             f"bidirectional sequence encoder (even width); got a {layout} of width {info.dim}.")
        layers.append(_Half(task.reads, info.dim))
        info = FeatureInfo(info.dim // 2, layout, info.reduction)
    if task.head_grid > 1 and not (level == "sample" and layout == "map"):
        raise ValueError(f"Task {task.name!r}: head_grid applies to a sample-level head on a map; this one is "
                         f"{level}-level on a {layout}.")
    if level == "sample":
        if layout != "vector":
            layers.append(_Pool(layout, task.head_grid))
        layers += _mlp(nn.Linear, info.dim * task.head_grid**2, task.head_hidden, task.out_features,
                       task.head_dropout)
    elif level == "token" and layout == "sequence" and getattr(task, "crf", False):
        layers.append(CRFHead(info.dim, task.head_hidden, task.out_features, task.head_dropout))
    elif level == "token" and layout == "sequence":
        layers += _mlp(nn.Linear, info.dim, task.head_hidden, task.out_features, task.head_dropout)
    elif level == "pixel" and layout == "map":
        layers += _mlp(nn.Conv2d, info.dim, task.head_hidden, task.out_features, task.head_dropout)
        if info.reduction > 1:
            layers.append(_Upsample(info.reduction))
    else:
        need = {"token": "a sequence [B, L, D]", "pixel": "a map [B, C, H, W]"}[str(level)]
        raise ValueError(f"Task {task.name!r} is {level}-level and needs features laid out as {need}, "
                         f"but the backbone's features are a {layout}. Use a backbone whose last stage "
                         "keeps that layout (e.g. 'bilstm'/'transformer' for tokens, 'cnn' for pixels).")
    return layers[0] if len(layers) == 1 else nn.Sequential(*layers)
