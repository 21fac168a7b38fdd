"""Cross-stitch networks (Misra et al., 2016): one column per task, their stage outputs mixed by
learned linear units."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import Tensor, nn

from ..data import Inputs
from ..tasks import Task
from ._backbone import Backbone, as_backbone, last_weights, output_info, task_columns
from ._base import MultiTaskModel
from ._heads import make_head

__all__ = ["CrossStitch", "CrossStitchUnit", "mixing_init"]


def mixing_init(units: int, same: float, other: float) -> Tensor:
    """``[units, units]``: ``same`` on the diagonal, ``other`` spread evenly over the rest of each row
    (Misra et al.'s ``(alpha_S, alpha_D)`` for two units)."""
    alpha = torch.full((units, units), other / max(1, units - 1))
    return alpha.fill_diagonal_(same)


class CrossStitchUnit(nn.Module):
    r"""Misra et al. (2016), Eq. 1 for T tasks: :math:`\tilde x_t = \sum_s \alpha_{ts} x_s`.

    Args:
        num_tasks: ``T``.
        same: Initial :math:`\alpha_{tt}` (the paper's :math:`\alpha_S`).
        other: Initial total weight on the other tasks (the paper's :math:`\alpha_D` for two
            tasks), split evenly over the ``T - 1`` others.

    The input is the tasks' activations stacked ``[T, B, ...]`` (any layout); the output has the
    same shape.
    """

    def __init__(self, num_tasks: int, same: float = 0.9, other: float = 0.1) -> None:
        super().__init__()
        self.alpha = nn.Parameter(mixing_init(num_tasks, same, other))

    def forward(self, stacked: Tensor) -> Tensor:
        return (self.alpha.to(stacked.dtype) @ stacked.flatten(1)).view_as(stacked)


class CrossStitch(MultiTaskModel):
    r"""Cross-stitch networks (Misra, Shrivastava, Gupta & Hebert, 2016, "Cross-stitch Networks
    for Multi-task Learning", Eq. 1): one column per task, a copy of the backbone, and after
    every stage a :class:`CrossStitchUnit` that replaces each task's activation by a learned
    linear combination of all tasks' activations; each head reads its own column.

    The paper stitches two AlexNets after every pooling and fully connected layer; here a unit
    follows every stage of any :class:`Backbone` (a plain module is one stage). With identity
    units (``init=(1, 0)``, frozen) the model is :class:`Independent` columns. The columns and
    the units between stages serve every task, so they are shared parameters; the last unit's
    row ``t`` feeds head ``t`` alone, so each row is its task's own (:attr:`rows`, one parameter
    per task: a gradient method gives it the task's own gradient, as it gives the head). There
    is no single shared representation (representation-level balancing raises, exact mode
    works).

    Args:
        encoder: The backbone each column copies (the first column keeps its weights, the
            others are drawn afresh).
        tasks: The tasks; one head each, on its column's last stage.
        feature_dim: ``D`` of a plain encoder without ``out_features``.
        init: ``(alpha_same, alpha_other)``: the units' initial weights (the paper compares
            several convex combinations).
        alpha_lr_scale: Learning-rate multiplier of the units' parameters (the paper raises the
            units' rate over the network's under SGD; with Adam, 1 is the safe default).

    Examples:
        >>> from manytask.models import MLP
        >>> from manytask.tasks import Regression
        >>> model = CrossStitch(MLP(4, (8, 6)), [Regression("a"), Regression("b")])
        >>> {k: tuple(v.shape) for k, v in model(torch.randn(5, 4)).items()}
        {'a': (5, 1), 'b': (5, 1)}
        >>> model.units[0].alpha  # after the first stage
        Parameter containing:
        tensor([[0.9000, 0.1000],
                [0.1000, 0.9000]], requires_grad=True)
        >>> model.rows["a"]  # after the last: what task a's head reads
        Parameter containing:
        tensor([0.9000, 0.1000], requires_grad=True)
    """

    def __init__(self, encoder: nn.Module, tasks: Sequence[Task], feature_dim: int | None = None,
                 init: Sequence[float] = (0.9, 0.1), alpha_lr_scale: float = 1.0) -> None:
        super().__init__()
        if not tasks:
            raise ValueError("CrossStitch needs at least one task.")
        if len(init) != 2:
            raise ValueError(f"CrossStitch init must be (alpha_same, alpha_other). Got {list(init)}.")
        if alpha_lr_scale <= 0:
            raise ValueError(f"CrossStitch alpha_lr_scale must be > 0. Got {alpha_lr_scale}.")
        self._heads_at_the_top(tasks, encoder)
        self.task_names = tuple(t.name for t in tasks)
        backbone = as_backbone(encoder, output_info(encoder, feature_dim))
        self.columns = task_columns(backbone, self.task_names)
        # a unit after every stage but the last; after the last, row t of the unit is task t's own
        self.units = nn.ModuleList(CrossStitchUnit(len(tasks), *init) for _ in backbone.stages[1:])
        last = mixing_init(len(tasks), *init)
        self.rows = nn.ParameterDict({t: nn.Parameter(row.clone()) for t, row in zip(self.task_names, last)})
        self.heads = nn.ModuleDict({t.name: make_head(t, backbone.out_info) for t in tasks})
        self.alpha_lr_scale = float(alpha_lr_scale)

    def forward(self, inputs: Inputs, tasks: Sequence[str] | None = None) -> dict[str, Tensor]:
        tasks = self._check_tasks(tasks)
        columns: list[Backbone] = list(self.columns.values())  # type: ignore[arg-type]
        xs: list[Tensor] = [inputs] * len(columns)  # type: ignore[list-item]
        for i, unit in enumerate(self.units):
            xs = list(unit(torch.stack([column.stages[i](x) for column, x in zip(columns, xs)])).unbind(0))
        last = len(self.units)
        stacked = torch.stack([column.stages[last](x) for column, x in zip(columns, xs)])  # [T, B, ...]
        rows = torch.stack([self.rows[name] for name in tasks]).to(stacked.dtype)  # [T', T]
        mixed = (rows @ stacked.flatten(1)).view(len(tasks), *stacked.shape[1:])
        return {name: self.heads[name](x) for name, x in zip(tasks, mixed.unbind(0))}

    def _load_from_state_dict(self, state_dict: dict[str, Tensor], prefix: str, *args: object) -> None:
        """Checkpoints written before the last unit's rows became the tasks' own (one
        ``units.<last>.alpha``) load into :attr:`rows`."""
        old = f"{prefix}units.{len(self.units)}.alpha"
        if old in state_dict:
            for name, row in zip(self.task_names, state_dict.pop(old)):
                state_dict[f"{prefix}rows.{name}"] = row
        super()._load_from_state_dict(state_dict, prefix, *args)  # type: ignore[arg-type]

    def last_shared_parameters(self) -> list[nn.Parameter]:
        """The weight matrices of every column's last layer, :func:`last_weights` (all columns are
        shared: the units mix them)."""
        return [p for column in self.columns.values() for p in last_weights(column)]

    def shared_modules(self) -> list[nn.Module]:
        return [self.columns, self.units]

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        yield from self.columns.parameters()
        yield from self.units.parameters()

    def task_parameters(self, name: str) -> Iterator[nn.Parameter]:
        name = self._check_tasks([name])[0]
        yield self.rows[name]
        yield from self.heads[name].parameters()

    def scaled_parameters(self) -> list[tuple[str, list[nn.Parameter], float]]:
        return [("cross-stitch units", [*self.units.parameters(), *self.rows.values()], self.alpha_lr_scale)]

    def diagnostics(self) -> dict[str, float]:
        """The units' weights, ``stage<l>/<task>/<from task>`` (up to 64 numbers), logged at every
        evaluation: how much each task's column reads from the others as training goes."""
        mixing = self.mixing()
        if mixing.numel() > 64:
            return {}
        return {f"stage{k + 1}/{t}/{s}": float(mixing[k, i, j]) for k in range(mixing.shape[0])
                for i, t in enumerate(self.task_names) for j, s in enumerate(self.task_names)}

    def mixing(self) -> Tensor:
        """The units' weights ``[stages, T, T]`` (row ``t``: what task ``t``'s column reads), the
        last unit's from :attr:`rows`."""
        units: list[CrossStitchUnit] = list(self.units)  # type: ignore[arg-type]
        last = torch.stack([self.rows[name].detach() for name in self.task_names])
        return torch.stack([*(unit.alpha.detach() for unit in units), last])
