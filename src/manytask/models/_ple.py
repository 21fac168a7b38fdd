"""Progressive Layered Extraction and its one-level form, Customized Gate Control (Tang et al.,
2020): shared and task-specific experts, mixed by per-task gates, level by level."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import cast

import torch
from torch import Tensor, nn

from ..data import Inputs
from ..tasks import Task
from ._backbone import FeatureInfo, as_backbone, last_weights, output_info, task_columns
from ._base import MultiTaskModel
from ._heads import _Pool, make_head
from ._mmoe import gate_summary

__all__ = ["PLE"]


def _gate(info: FeatureInfo, width: int) -> nn.Module:
    """A gate on the features of a level below: pooled to ``[B, D]`` if needed, then linear."""
    linear = nn.Linear(info.dim, width)
    return linear if info.layout == "vector" else nn.Sequential(_Pool(info.layout), linear)


def _mix(gate_logits: Tensor, experts: list[Tensor]) -> Tensor:
    """``sum_e softmax(logits)_e * expert_e`` per sample, for experts of any layout ``[B, ...]``."""
    weights = torch.softmax(gate_logits, dim=-1, dtype=torch.promote_types(gate_logits.dtype, torch.float32))
    return torch.einsum("be,eb...->b...", weights.to(experts[0].dtype), torch.stack(experts))


class PLE(MultiTaskModel):
    r"""Progressive Layered Extraction (Tang, Liu, Zhao & Gong, 2020, "Progressive Layered
    Extraction (PLE): A Novel Multi-Task Learning (MTL) Model for Personalized Recommendations").

    Each extraction level has ``shared_experts`` experts for all tasks and ``task_experts`` of
    each task's own. Task ``t``'s gate mixes its own and the shared experts (Eqs. 2–4,
    :math:`g^t(x) = w^t(x) S^t(x)`, :math:`w^t(x) = \operatorname{softmax}(W^t x)`); below the
    last level a shared gate mixes every expert into the shared experts' next input (the paper's
    extraction network). The next level's experts and gates read those outputs; the task towers (heads) read the last
    level's. Here the levels are the backbone's stages (each expert at level ``l`` is a copy of
    stage ``l``); with ``levels="one"`` the whole backbone is one level: **CGC**, the paper's
    single-level model (Eqs. 2–4). CGC with no task experts is :class:`MMoE`.

    Gates at the first level read the inputs as MMoE's do (:func:`gate_summary`); later gates read
    the level's input, pooled to a vector for sequences and maps. Parameters that can reach
    another task's output (through a shared gate) are shared; task ``t``'s own are its last-level
    experts and gate, its gate one level below, and its head.

    Args:
        encoder: The backbone (a plain module is one stage).
        tasks: The tasks.
        feature_dim: ``D`` of a plain encoder without ``out_features``.
        shared_experts: Shared experts per level (at least 1: without one nothing is shared).
        task_experts: Experts of each task's own per level.
        levels: ``"stages"`` (PLE, a level per backbone stage) or ``"one"`` (CGC).
        gate_in: Input size of the first gates, for encoders that do not say it.

    Examples:
        >>> from manytask.models import MLP
        >>> from manytask.tasks import Regression
        >>> model = PLE(MLP(4, (8, 6)), [Regression("a"), Regression("b")])
        >>> {k: tuple(v.shape) for k, v in model(torch.randn(5, 4)).items()}
        {'a': (5, 1), 'b': (5, 1)}
    """

    def __init__(self, encoder: nn.Module, tasks: Sequence[Task], feature_dim: int | None = None,
                 shared_experts: int = 1, task_experts: int = 1, levels: str = "stages",
                 gate_in: int | None = None) -> None:
        super().__init__()
        self._heads_at_the_top(tasks, encoder)
        if not tasks:
            raise ValueError("PLE needs at least one task.")
        if shared_experts < 1 or task_experts < 0:
            raise ValueError(f"PLE needs shared_experts >= 1 and task_experts >= 0. Got {shared_experts} and "
                             f"{task_experts}. Without a shared expert nothing is shared (every expert serves one "
                             "task and the shared gates would be dead): use model.name 'independent'.")
        if levels not in ("stages", "one"):
            raise ValueError(f"PLE levels must be 'stages' (PLE) or 'one' (CGC). Got {levels!r}.")
        backbone = as_backbone(encoder, output_info(encoder, feature_dim))
        stages = list(backbone.stages) if levels == "stages" else [backbone]
        infos = list(backbone.feature_info) if levels == "stages" else [backbone.out_info]
        self.task_names = tuple(t.name for t in tasks)
        count, own = shared_experts, task_experts
        self.shared = nn.ModuleList()
        self.own = nn.ModuleList()
        self.gates = nn.ModuleList()
        self.shared_gates = nn.ModuleList()
        for level, stage in enumerate(stages):
            copies = list(task_columns(stage, [f"e{i}" for i in range(count + own * len(tasks))]).values())
            self.shared.append(nn.ModuleList(copies[:count]))
            self.own.append(nn.ModuleDict({t: nn.ModuleList(copies[count + own * i: count + own * (i + 1)])
                                           for i, t in enumerate(self.task_names)}))

            def gate(width: int, level: int = level) -> nn.Module:
                return gate_summary(encoder, width, gate_in) if level == 0 else _gate(infos[level - 1], width)

            self.gates.append(nn.ModuleDict({t: gate(own + count) for t in self.task_names}))
            if level < len(stages) - 1:
                self.shared_gates.append(gate(own * len(tasks) + count))
        self.heads = nn.ModuleDict({t.name: make_head(t, infos[-1]) for t in tasks})

    def _experts(self, level: int, task: str | None = None) -> nn.ModuleList:
        """The shared experts of ``level``, or ``task``'s own."""
        return cast(nn.ModuleList, self.shared[level] if task is None else cast(nn.ModuleDict, self.own[level])[task])

    def _gate_of(self, level: int, task: str) -> nn.Module:
        return cast(nn.ModuleDict, self.gates[level])[task]

    def forward(self, inputs: Inputs, tasks: Sequence[str] | None = None) -> dict[str, Tensor]:
        tasks = self._check_tasks(tasks)
        last = len(self.gates) - 1
        shared_in: Inputs = inputs
        task_in: dict[str, Inputs] = dict.fromkeys(self.task_names, inputs)
        for level in range(last + 1):
            needed = tasks if level == last else self.task_names  # the shared gate reads every expert
            shared_out = [expert(shared_in) for expert in self._experts(level)]
            own_out = {t: [expert(task_in[t]) for expert in self._experts(level, t)] for t in needed}
            task_out = {t: _mix(self._gate_of(level, t)(task_in[t]), own_out[t] + shared_out) for t in needed}
            if level < last:
                every = [out for t in self.task_names for out in own_out[t]] + shared_out
                shared_in = _mix(self.shared_gates[level](shared_in), every)
            task_in = dict(task_out)
        return {t: self.heads[t](task_in[t]) for t in tasks}

    def _own(self, name: str) -> list[nn.Module]:
        """Task ``name``'s modules: its last-level experts and gate, its gate one level below, its head."""
        last = len(self.gates) - 1
        own: list[nn.Module] = [self._experts(last, name), self._gate_of(last, name), self.heads[name]]
        if last >= 1:
            own.append(self._gate_of(last - 1, name))
        return own

    def last_shared_parameters(self) -> list[nn.Parameter]:
        """The weight matrices of the last level's shared experts (their last layer, :func:`last_weights`)."""
        return [p for expert in self._experts(len(self.gates) - 1) for p in last_weights(expert)]

    def shared_modules(self) -> list[nn.Module]:
        mine = {id(m) for t in self.task_names for m in self._own(t)}
        last = len(self.gates) - 1
        modules: list[nn.Module] = [self.shared, self.shared_gates]
        for level in range(last + 1):
            modules += [m for t in self.task_names for m in (self._experts(level, t), self._gate_of(level, t))
                        if id(m) not in mine]
        return [m for m in modules if any(True for _ in m.parameters())]

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        for module in self.shared_modules():
            yield from module.parameters()

    def task_parameters(self, name: str) -> Iterator[nn.Parameter]:
        for module in self._own(self._check_tasks([name])[0]):
            yield from module.parameters()
