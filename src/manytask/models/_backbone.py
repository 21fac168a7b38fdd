"""Backbones with stages: ordered modules whose outputs sharing schemes can copy, mix or tap."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from torch import Tensor, nn

from ..data import Inputs

__all__ = ["Backbone", "FeatureInfo", "Layout", "as_backbone", "last_weights", "output_info", "padding_mask",
           "reinitialise", "task_columns"]

Layout = Literal["vector", "sequence", "map"]


@dataclass(frozen=True)
class FeatureInfo:
    """The output of one backbone stage.

    Args:
        dim: Feature size ``D`` (channels ``C`` for maps).
        layout: ``"vector"`` ``[B, D]``, ``"sequence"`` ``[B, L, D]`` or ``"map"`` ``[B, C, H, W]``.
        reduction: How many input pixels (tokens) one output position spans per side
            (maps: input size / map size); pixel heads upsample by it.
    """

    dim: int
    layout: Layout
    reduction: int = 1

    def __post_init__(self) -> None:
        if self.layout not in ("vector", "sequence", "map"):
            raise ValueError(f"FeatureInfo layout must be 'vector', 'sequence' or 'map'. Got {self.layout!r}.")
        if self.dim < 1 or self.reduction < 1:
            raise ValueError(f"FeatureInfo needs dim >= 1 and reduction >= 1. Got {self.dim}, {self.reduction}.")


class Backbone(nn.Module):
    """An ordered list of stages; ``forward`` runs them in turn.

    ``stages[i]`` maps the output of stage ``i - 1`` (stage 0: the inputs) to features laid out
    as ``feature_info[i]`` says. Sharing schemes copy stages (one per task), mix stage outputs
    between tasks (cross-stitch), or tap them (heads at different depths).

    Args:
        stages: The stages, in order.
        feature_info: One :class:`FeatureInfo` per stage.

    Examples:
        >>> import torch
        >>> net = Backbone([nn.Linear(4, 8), nn.Sequential(nn.ReLU(), nn.Linear(8, 3))],
        ...                [FeatureInfo(8, "vector"), FeatureInfo(3, "vector")])
        >>> [tuple(f.shape) for f in net.forward_stages(torch.randn(2, 4))]
        [(2, 8), (2, 3)]
    """

    def __init__(self, stages: Sequence[nn.Module], feature_info: Sequence[FeatureInfo]) -> None:
        super().__init__()
        if not stages:
            raise ValueError("A Backbone needs at least one stage.")
        if len(stages) != len(feature_info):
            raise ValueError(f"A Backbone needs one FeatureInfo per stage: got {len(stages)} stages "
                             f"and {len(feature_info)} FeatureInfo.")
        self.stages = nn.ModuleList(stages)
        self.feature_info = tuple(feature_info)

    @property
    def out_info(self) -> FeatureInfo:
        """The last stage's output."""
        return self.feature_info[-1]

    @property
    def out_features(self) -> int:
        """Feature size of the last stage."""
        return self.out_info.dim

    @property
    def layout(self) -> Layout:
        """Layout of the last stage's output (what heads read)."""
        return self.out_info.layout

    def reset_parameters(self) -> None:
        """Draw fresh weights for every stage, as construction does (see :func:`reinitialise`)."""
        for stage in self.stages:
            reinitialise(stage)

    def forward(self, inputs: Inputs) -> Tensor:
        x = inputs
        for stage in self.stages:
            x = stage(x)
        return x  # type: ignore[return-value]

    def forward_stages(self, inputs: Inputs) -> list[Tensor]:
        """Every stage's output, in order."""
        outputs: list[Tensor] = []
        x = inputs
        for stage in self.stages:
            x = stage(x)
            outputs.append(x)  # type: ignore[arg-type]
        return outputs


def as_backbone(module: nn.Module, info: FeatureInfo | None = None) -> Backbone:
    """``module`` itself if it is a :class:`Backbone`, else a one-stage backbone around it.

    Without ``info`` the module must say its output size in an int attribute ``out_features``
    (a vector layout is assumed; pass ``info`` for sequences and maps).
    """
    if isinstance(module, Backbone):
        if info is not None and info != module.out_info:
            raise ValueError(f"The backbone's last stage is {module.out_info}, not {info}.")
        return module
    return Backbone([module], [info or output_info(module)])


def output_info(module: nn.Module, dim: int | None = None) -> FeatureInfo:
    """What ``module`` outputs: its last stage's :class:`FeatureInfo` for a :class:`Backbone`;
    otherwise ``dim`` (or the module's int attribute ``out_features``) with the module's
    ``layout`` attribute (default ``"vector"``)."""
    if isinstance(module, Backbone):
        return module.out_info if dim is None else FeatureInfo(dim, module.out_info.layout, module.out_info.reduction)
    dim = dim if dim is not None else getattr(module, "out_features", None)
    if not isinstance(dim, int):
        raise ValueError(
            f"Cannot tell the feature size of encoder {type(module).__name__}: pass "
            "feature_dim=..., or give the encoder an int attribute `out_features`."
        )
    return FeatureInfo(dim, getattr(module, "layout", "vector"), getattr(module, "reduction", 1))


def padding_mask(features: Tensor) -> Tensor:
    """``[B, L]`` True at the padding positions of sequence features ``[B, L, D]`` (all-zero rows).

    Examples:
        >>> import torch
        >>> padding_mask(torch.tensor([[[1.0, 0.0], [0.0, 0.0]]]))
        tensor([[False,  True]])
    """
    return features.detach().eq(0).all(dim=-1)


def last_weights(module: nn.Module) -> list[nn.Parameter]:
    """The weight matrices (not the biases, nor a normalisation's gains) of ``module``'s last layer:
    where GradNorm measures the tasks' gradient norms (Chen et al. 2018, "the last shared layer").

    The last layer is the last submodule, in registration order, with a parameter of two or more
    dimensions (a transformer layer's second feed-forward matrix, not the LayerNorm after it), or
    the last one that defines ``layer_weights()`` for a layer made of several modules (both
    directions of a BiLSTM layer). Without any matrix: every parameter of the last submodule
    that has one.
    """
    layers: list[list[nn.Parameter]] = []
    covered: set[int] = set()
    for sub in module.modules():
        if id(sub) in covered:
            continue
        layer_weights = getattr(sub, "layer_weights", None)
        if callable(layer_weights):
            layers.append(list(layer_weights()))
            covered.update(id(m) for m in sub.modules())
        elif matrices := [p for p in sub.parameters(recurse=False) if p.ndim >= 2]:
            layers.append(matrices)
    if layers:
        return layers[-1]
    last = [m for m in module.modules() if any(True for _ in m.parameters(recurse=False))]
    if not last:
        raise ValueError("The encoder has no parameters.")
    return list(last[-1].parameters(recurse=False))


def task_columns(encoder: nn.Module, names: Sequence[str]) -> nn.ModuleDict:
    """One copy of ``encoder`` per name (a column per task, or an expert): the first keeps the
    template's weights, every other copy's are drawn afresh as construction draws them
    (:func:`reinitialise`)."""
    columns = nn.ModuleDict()
    for index, name in enumerate(names):
        copied = copy.deepcopy(encoder)
        if index:
            reinitialise(copied)
        columns[name] = copied
    return columns


def reinitialise(module: nn.Module) -> None:
    """Draw fresh weights for ``module`` the way construction drew them.

    Walks the module tree from ``module`` down; on each branch the first module that defines
    ``reset_parameters`` re-initialises itself and its children (so a stage with its own
    initialisation, e.g. scaled embeddings, keeps it). ``nn.MultiheadAttention``, whose reset is
    private, is handled too. With the same seed, a reinitialised copy of a registered encoder has
    the weights of a freshly built one.
    """
    if isinstance(module, nn.MultiheadAttention):
        module.out_proj.reset_parameters()  # the order construction uses
        module._reset_parameters()
        return
    reset = getattr(module, "reset_parameters", None)
    if callable(reset):
        reset()
        return
    for child in module.children():
        reinitialise(child)
