"""Learning to branch (Guo, Lee & Ulbricht, 2020): a tree of stage copies whose branching is
learned with Gumbel-softmax parent choices."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data import Inputs
from ..tasks import Task
from ._backbone import as_backbone, last_weights, output_info, task_columns
from ._base import MultiTaskModel, own_parameters
from ._heads import make_head

__all__ = ["LearnedBranching"]


class LearnedBranching(MultiTaskModel):
    r"""Learning to branch: a tree of stage copies whose parent choices are learned.

    Guo, Lee & Ulbricht (2020), "Learning to Branch for Multi-Task Learning" (ICML): stage ``l``
    of the backbone has ``branches[l]`` copies (nodes); every node
    above the first stage reads one parent node of the stage below, chosen by learned logits
    :math:`\theta` through a Gumbel-softmax relaxation during training,

    .. math::
        x_{\text{node}} = \sum_p g_p\, y_p, \qquad g = \operatorname{GumbelSoftmax}(\theta_{\text{node}}, \tau),

    and the last stage has one node per task, read by that task's head. In evaluation every node
    reads its most likely parent (the tree the logits encode), which :meth:`structure` returns and
    :meth:`structure_report` prints (a run saves it as ``structure.txt``). The paper then retrains
    the found tree; here it is the trained model itself. The default tree starts from one shared
    first stage and gives every later stage one node per task, so the learning decides where
    tasks split (nodes that no child picks are unused).

    The nodes below the last stage and the branching logits below the leaves are shared; a task
    owns its leaf, the logits of its leaf's parent choice (:attr:`leaf_parents`) and its head. No
    single shared representation: representation-level balancing raises.

    Args:
        encoder: The backbone (a plain module is one stage: independent leaves).
        tasks: The tasks.
        feature_dim: ``D`` of a plain encoder without ``out_features``.
        branches: Nodes per stage (the last must be the number of tasks); default ``[1, T, …, T]``.
        temperature: Gumbel-softmax temperature :math:`\tau`.

    Examples:
        >>> from manytask.models import MLP
        >>> from manytask.tasks import Regression
        >>> model = LearnedBranching(MLP(4, (8, 6)), [Regression("a"), Regression("b")]).eval()
        >>> {k: tuple(v.shape) for k, v in model(torch.randn(5, 4)).items()}
        {'a': (5, 1), 'b': (5, 1)}
        >>> model.structure()  # each stage-2 node's parent among the stage-1 nodes
        [[0, 0]]
    """

    def __init__(self, encoder: nn.Module, tasks: Sequence[Task], feature_dim: int | None = None,
                 branches: Sequence[int] | None = None, temperature: float = 1.0) -> None:
        super().__init__()
        self._heads_at_the_top(tasks, encoder)
        if not tasks:
            raise ValueError("LearnedBranching needs at least one task.")
        backbone = as_backbone(encoder, output_info(encoder, feature_dim))
        stages, count = len(backbone.stages), len(tasks)
        widths = list(branches) if branches is not None else [1] * (stages > 1) + [count] * (stages - 1 or 1)
        if len(widths) != stages or widths[-1] != count or min(widths) < 1:
            raise ValueError(f"LearnedBranching branches must give a node count >= 1 for each of the {stages} "
                             f"stage(s), the last equal to the {count} tasks. Got {widths}.")
        if temperature <= 0:
            raise ValueError(f"LearnedBranching temperature must be > 0. Got {temperature}.")
        self.task_names = tuple(t.name for t in tasks)
        self.temperature = float(temperature)
        self.nodes = nn.ModuleList(
            nn.ModuleList(task_columns(stage, [f"n{i}" for i in range(width)]).values())
            for stage, width in zip(backbone.stages, widths))
        self.parents = nn.ParameterList(nn.Parameter(torch.zeros(widths[level], widths[level - 1]))
                                        for level in range(1, stages - 1))
        # the leaves' parent logits: row t chooses what task t's leaf reads, task t's own parameter
        self.leaf_parents = nn.ParameterDict(
            {t: nn.Parameter(torch.zeros(widths[-2])) for t in self.task_names} if stages > 1 else {})
        self.heads = nn.ModuleDict({t.name: make_head(t, backbone.out_info) for t in tasks})

    def _stage(self, level: int) -> nn.ModuleList:
        return cast(nn.ModuleList, self.nodes[level])

    def _choices(self, level: int, tasks: Sequence[str] | None = None) -> Tensor:
        """``[K_l, K_{l-1}]``: the weights each node of stage ``level`` puts on its parents (at the
        leaves, those of tasks not in ``tasks`` out of the graph)."""
        logits = self._logits(level, tasks)
        if self.training:
            return F.gumbel_softmax(logits, tau=self.temperature, dim=-1)
        return F.one_hot(logits.argmax(-1), logits.shape[-1]).to(logits.dtype)

    def _logits(self, level: int, tasks: Sequence[str] | None = None) -> Tensor:
        """``[K_l, K_{l-1}]``: the parent logits of stage ``level``'s nodes. At the leaves, the rows
        of tasks not in ``tasks`` are detached: a task not asked for (absent from the step) gets no
        gradient, not a zero one that a momentum optimizer would still step on."""
        if level < len(self.nodes) - 1:
            return self.parents[level - 1]
        return torch.stack(own_parameters(self.leaf_parents, self.task_names, tasks))

    def _load_from_state_dict(self, state_dict: dict[str, Tensor], prefix: str, *args: object) -> None:
        """Checkpoints written before the leaves' logits became the tasks' own (one
        ``parents.<last>``) load into :attr:`leaf_parents`."""
        old = f"{prefix}parents.{len(self.parents)}"
        if old in state_dict:
            for name, row in zip(self.task_names, state_dict.pop(old)):
                state_dict[f"{prefix}leaf_parents.{name}"] = row
        super()._load_from_state_dict(state_dict, prefix, *args)  # type: ignore[arg-type]

    def forward(self, inputs: Inputs, tasks: Sequence[str] | None = None) -> dict[str, Tensor]:
        tasks = self._check_tasks(tasks)
        outs = [node(inputs) for node in self._stage(0)]
        for level in range(1, len(self.nodes)):
            stacked = torch.stack(outs)  # [K_{l-1}, B, ...]
            mixed = (self._choices(level, tasks).to(stacked.dtype) @ stacked.flatten(1)).view(-1, *stacked.shape[1:])
            outs = [node(mixed[i]) for i, node in enumerate(self._stage(level))]
        leaves = dict(zip(self.task_names, outs))
        return {t: self.heads[t](leaves[t]) for t in tasks}

    def structure(self) -> list[list[int]]:
        """Per stage above the first, each node's most likely parent in the stage below."""
        return [self._logits(level).argmax(-1).tolist() for level in range(1, len(self.nodes))]

    def structure_report(self) -> str:
        """The learned tree, one line per stage: which node each node reads, the tasks at the leaves."""
        lines = [f"stage 1: {len(self._stage(0))} node(s) reading the inputs"]
        for level, parents in enumerate(self.structure(), start=2):
            names = self.task_names if level == len(self.nodes) else [f"n{i}" for i in range(len(parents))]
            lines.append(f"stage {level}: " + ", ".join(f"{n} <- n{p}" for n, p in zip(names, parents)))
        return "\n".join(lines)

    def last_shared_parameters(self) -> list[nn.Parameter]:
        """The weight matrices of the nodes just below the leaves (their last layer, :func:`last_weights`)."""
        if len(self.nodes) < 2:
            raise ValueError("LearnedBranching on a one-stage backbone shares no layer; use a loss weighting other "
                             "than GradNorm.")
        return [p for node in self._stage(len(self.nodes) - 2) for p in last_weights(node)]

    def shared_modules(self) -> list[nn.Module]:
        return [*self.nodes[:-1], self.parents]

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        for module in self.shared_modules():
            yield from module.parameters()

    def task_parameters(self, name: str) -> Iterator[nn.Parameter]:
        name = self._check_tasks([name])[0]
        yield from self._stage(len(self.nodes) - 1)[self.task_names.index(name)].parameters()
        if name in self.leaf_parents:
            yield self.leaf_parents[name]
        yield from self.heads[name].parameters()
