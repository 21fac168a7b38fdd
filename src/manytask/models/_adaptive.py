"""Fully-adaptive feature sharing (Lu et al., 2017): start with every stage shared and widen the
network from the top down, splitting each junction into groups of tasks whose errors agree."""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import squareform
from torch import Tensor, nn

from ..data import Inputs, Source
from ..tasks import Task
from ._backbone import as_backbone, last_weights, output_info
from ._base import MultiTaskModel
from ._heads import make_head

if TYPE_CHECKING:
    from ..training import Trainer

__all__ = ["AdaptiveSharing", "AdaptiveWidening", "branch_affinity", "group_branches", "per_example_errors",
           "task_affinity"]

log = logging.getLogger(__name__)


def task_affinity(errors: Tensor, labelled: Tensor) -> Tensor:
    r"""Affinity ``[T, T]`` of the tasks: how often two tasks find the same examples hard or easy.

    Lu et al. (2017), Sec. 3.3: with :math:`s^n_i = 1[e^n_i \ge \mathbb{E}_n e^n_i]` (example
    ``n`` is hard for task ``i``),

    .. math:: A(i, j) = P(s_i = 1, s_j = 1) + P(s_i = 0, s_j = 0),

    estimated over the examples labelled for both tasks (the mean of :math:`e_i` over those
    labelled for ``i``). A pair that no example labels for both gets 0.5, the value of
    independent tasks that are hard half the time.

    Args:
        errors: Per-example errors ``[N, T]`` (any value where unlabelled).
        labelled: ``[N, T]`` booleans, True where example ``n`` has a label for task ``t``.
    """
    mask = labelled.to(errors.dtype)
    mean = (errors * mask).sum(0) / mask.sum(0).clamp_min(1)
    hard = (errors >= mean).to(errors.dtype) * mask
    easy = mask - hard
    agree = hard.T @ hard + easy.T @ easy
    both = mask.T @ mask
    return torch.where(both > 0, agree / both.clamp_min(1), torch.full_like(agree, 0.5))


def branch_affinity(affinity: Tensor, branches: Sequence[Sequence[int]]) -> Tensor:
    r"""Affinity ``[m, m]`` of branches (each a list of task indices); Lu et al. (2017), Sec. 3.4.

    .. math:: \tilde A_b(k, l) = \operatorname{mean}_{i \in k} \min_{j \in l} A(i, j), \qquad
              A_b(k, l) = \tfrac12\bigl(\tilde A_b(k, l) + \tilde A_b(l, k)\bigr).
    """
    m = len(branches)
    one_way = torch.empty(m, m, dtype=affinity.dtype)
    for k, tasks_k in enumerate(branches):
        for other, tasks_l in enumerate(branches):
            one_way[k, other] = affinity[tasks_k][:, tasks_l].min(1).values.mean()
    return (one_way + one_way.T) / 2


def group_branches(affinity: Tensor, cost: float) -> list[list[int]]:
    r"""Branches grouped to minimise Lu et al.'s (2017, Sec. 3.4) loss over the number of groups ``d``.

    .. math:: L(d) = (d - 1)\,\text{cost} + \frac1d \sum_{k=1}^{d} \max_{a, b \in g_k} \bigl(1 - A_b(a, b)\bigr),

    a price per new branch against the largest dissimilarity kept inside each group. The
    grouping for each ``d`` is complete-linkage clustering of the distances ``1 - A_b`` (which
    minimises exactly that within-group maximum, greedily); ties go to fewer groups.

    Args:
        affinity: Branch affinity ``[m, m]`` (:func:`branch_affinity`).
        cost: Price of one more branch at this stage (Lu et al.'s :math:`L_0 2^{p_l}`).

    Returns:
        Groups of branch indices, each sorted, ordered by their first branch.
    """
    m = affinity.shape[0]
    if m < 2:
        return [list(range(m))]
    distance = (1 - affinity.double()).clamp_min(0).numpy()
    np.fill_diagonal(distance, 0)
    tree = linkage(squareform((distance + distance.T) / 2, checks=False), method="complete")
    best: tuple[float, list[list[int]]] | None = None
    for d in range(1, m + 1):
        labels = fcluster(tree, d, criterion="maxclust")
        groups = sorted(([i for i in range(m) if labels[i] == c] for c in set(labels.tolist())), key=min)
        spread = sum(float(distance[np.ix_(g, g)].max()) for g in groups) / len(groups)
        loss = (len(groups) - 1) * cost + spread
        if best is None or loss < best[0] - 1e-12:
            best = (loss, groups)
    return cast(tuple[float, list[list[int]]], best)[1]


class AdaptiveSharing(MultiTaskModel):
    r"""Fully-adaptive feature sharing: a thin shared network widened from the top down.

    Lu, Kumar, Zhai, Cheng, Javidi & Feris (2017), "Fully-adaptive Feature Sharing in Multi-Task
    Networks with Applications in Person Attribute Classification" (CVPR). Training starts with
    every backbone stage shared by all tasks (one node per stage). Each widening round works on
    the *active* stage, starting with the last one: every node there whose output feeds several
    branches (tasks, or the nodes above it) is split into groups of branches that find the same
    examples hard (:func:`task_affinity`, :func:`branch_affinity`), as many groups as minimise
    :func:`group_branches`'s loss; each new group gets a copy of the node (weights, buffers and
    the optimizer's state), and the active stage moves one down. Rounds stop at the first stage,
    or when a round splits nothing.

    Lu et al. start from a thin network selected from a pretrained one (SOMP); here the thin
    network is the given backbone. Their branch price :math:`L_0 2^{p_l}` grows with the number
    :math:`p_l` of pooling layers above stage ``l``; here it is ``branch_cost * stage_costs[l]``,
    with ``stage_costs`` by default :math:`2^{\text{stages above } l}` (every stage halving the
    resolution, as VGG blocks do).

    A :class:`AdaptiveWidening` callback (from :meth:`callbacks`, added by the trainer) measures
    the affinity on the validation data every ``widen_every`` steps and widens. Every stage keeps
    ``T`` copies allocated from the start (a fixed parameter set, so checkpoints and the optimizer
    never change shape); copies no task reads yet are :meth:`spare_parameters`. A node read by two
    or more tasks is shared, a node read by one is that task's own: the partition changes as the
    network widens, so gradient methods work at the exact level (the Gramian engine covers the
    shared nodes, and is set up anew after each widening) and the representation level raises.
    :meth:`structure_report` prints the tree (a run saves it as ``structure.txt``).

    Args:
        encoder: The backbone (a plain module is one stage).
        tasks: The tasks.
        feature_dim: ``D`` of a plain encoder without ``out_features``.
        branch_cost: Price of one new branch at the last stage (:math:`L_0`); larger: fewer splits.
        stage_costs: Multiplier of the price per stage (default :math:`2^{S-1-l}`).
        widen_every: Steps between widening rounds (default: the run's steps / (stages + 1), so
            that the final tree trains as long as each round).
        affinity_examples: Validation examples the affinity is measured on (the first ones).

    Examples:
        >>> from manytask.models import MLP
        >>> from manytask.tasks import Regression
        >>> model = AdaptiveSharing(MLP(4, (8, 6)), [Regression("a"), Regression("b"), Regression("c")])
        >>> model.widen(torch.tensor([[1.0, 0.9, 0.2], [0.9, 1.0, 0.3], [0.2, 0.3, 1.0]]))
        True
        >>> print(model.structure_report())
        stage 1: n0 [a, b, c]
        stage 2: n0 [a, b] <- n0, n1 [c] <- n0
    """

    assign: Tensor
    rounds: Tensor
    finished: Tensor

    def __init__(self, encoder: nn.Module, tasks: Sequence[Task], feature_dim: int | None = None,
                 branch_cost: float = 0.1, stage_costs: Sequence[float] | None = None,
                 widen_every: int | None = None, affinity_examples: int = 2000) -> None:
        super().__init__()
        self._heads_at_the_top(tasks, encoder)
        if not tasks:
            raise ValueError("AdaptiveSharing needs at least one task.")
        backbone = as_backbone(encoder, output_info(encoder, feature_dim))
        stages, count = len(backbone.stages), len(tasks)
        costs = list(stage_costs) if stage_costs is not None else [2.0 ** (stages - 1 - s) for s in range(stages)]
        if len(costs) != stages or min(costs) < 0 or branch_cost < 0:
            raise ValueError(f"AdaptiveSharing needs branch_cost >= 0 and one stage cost >= 0 for each of the "
                             f"{stages} stage(s). Got branch_cost={branch_cost}, stage_costs={costs}.")
        if (widen_every is not None and widen_every < 1) or affinity_examples < 2:
            raise ValueError(f"AdaptiveSharing needs widen_every >= 1 and affinity_examples >= 2. Got "
                             f"{widen_every} and {affinity_examples}.")
        self.task_names = tuple(t.name for t in tasks)
        self.branch_cost, self.stage_costs = float(branch_cost), costs
        self.widen_every, self.affinity_examples = widen_every, affinity_examples
        self.nodes = nn.ModuleList(
            nn.ModuleList([stage, *(copy.deepcopy(stage) for _ in range(count - 1))]) for stage in backbone.stages)
        self.heads = nn.ModuleDict({t.name: make_head(t, backbone.out_info) for t in tasks})
        # assign[s, t]: the node of stage s that task t reads; rounds: stages widened so far
        self.register_buffer("assign", torch.zeros(stages, count, dtype=torch.long))
        self.register_buffer("rounds", torch.zeros((), dtype=torch.long))
        self.register_buffer("finished", torch.zeros((), dtype=torch.bool))
        # read from `assign` on first use, and again after it changes (a widening, a loaded state)
        self._routes: dict[tuple[str, ...], list[list[tuple[int, int]]]] = {}
        self._owners: dict[int, dict[int, list[int]]] = {}
        self.register_load_state_dict_post_hook(lambda module, keys: module._forget_structure())

    def _forget_structure(self) -> None:
        self._routes.clear()
        self._owners.clear()

    # ---- structure -----------------------------------------------------------------------
    def _stage(self, level: int) -> nn.ModuleList:
        return cast(nn.ModuleList, self.nodes[level])

    def _route(self, tasks: Sequence[str]) -> list[list[tuple[int, int]]]:
        """Per stage, the ``(node, parent node)`` pairs ``tasks`` need (parent -1: the inputs)."""
        key = tuple(tasks)
        if key not in self._routes:
            if len(self._routes) >= 128:  # partly labelled tasks: a new set nearly every batch (School)
                self._routes.clear()
            assign = self.assign.tolist()
            columns = [self.task_names.index(t) for t in tasks]
            self._routes[key] = [
                sorted({(assign[s][t], assign[s - 1][t] if s else -1) for t in columns}) for s in range(len(assign))]
        return self._routes[key]

    def owners(self, level: int) -> dict[int, list[int]]:
        """The nodes of stage ``level`` that tasks read, each with its tasks' indices."""
        if level not in self._owners:
            owners: dict[int, list[int]] = {}
            for task, node in enumerate(self.assign[level].tolist()):
                owners.setdefault(node, []).append(task)
            self._owners[level] = owners
        return self._owners[level]

    def structure_report(self) -> str:
        """The tree, one line per stage: each node in use, its tasks, the node below it that it reads."""
        lines = []
        for level in range(len(self.nodes)):
            below = self.assign[level - 1].tolist() if level else None
            parts = []
            for node, tasks in sorted(self.owners(level).items()):
                names = ", ".join(self.task_names[t] for t in tasks)
                parts.append(f"n{node} [{names}]" + (f" <- n{below[tasks[0]]}" if below else ""))
            lines.append(f"stage {level + 1}: " + ", ".join(parts))
        return "\n".join(lines)

    def diagnostics(self) -> dict[str, float]:
        """``branches/stage<s>``: the nodes in use at each stage."""
        return {f"branches/stage{s + 1}": float(len(self.owners(s))) for s in range(len(self.nodes))}

    # ---- forward ---------------------------------------------------------------------------
    def forward(self, inputs: Inputs, tasks: Sequence[str] | None = None) -> dict[str, Tensor]:
        tasks = self._check_tasks(tasks)
        outs: dict[int, Tensor] = {}
        for level, pairs in enumerate(self._route(tasks)):
            stage = self._stage(level)
            outs = {node: stage[node](inputs if parent < 0 else outs[parent]) for node, parent in pairs}
        top = self.assign[-1].tolist()
        return {t: self.heads[t](outs[top[self.task_names.index(t)]]) for t in tasks}

    # ---- widening --------------------------------------------------------------------------
    def widen(self, affinity: Tensor, optimizer: torch.optim.Optimizer | None = None) -> bool:
        """One widening round at the active stage from the task affinity ``[T, T]``; returns
        whether a node was split. New nodes copy their node's weights and buffers, and its
        state in ``optimizer``."""
        level = len(self.nodes) - 1 - int(self.rounds)
        if bool(self.finished) or level < 0:
            return False
        if affinity.shape != (len(self.task_names),) * 2:
            raise ValueError(f"widen needs a [T, T] affinity for the {len(self.task_names)} tasks. "
                             f"Got shape {tuple(affinity.shape)}.")
        affinity = affinity.detach().double().cpu()
        assign = self.assign.tolist()
        free = sorted(set(range(len(self.task_names))) - set(assign[level]))
        split = False
        for node, tasks in sorted(self.owners(level).items()):
            if level == len(self.nodes) - 1:
                branches = [[t] for t in tasks]
            else:  # the nodes above that read this one
                above: dict[int, list[int]] = {}
                for t in tasks:
                    above.setdefault(assign[level + 1][t], []).append(t)
                branches = list(above.values())
            if len(branches) < 2:
                continue
            groups = group_branches(branch_affinity(affinity, branches), self.branch_cost * self.stage_costs[level])
            for group in groups[1:]:
                new = free.pop(0)
                self._copy_node(level, node, new, optimizer)
                for branch in group:
                    for t in branches[branch]:
                        self.assign[level, t] = new
                split = True
        self.rounds += 1
        self.finished.fill_(not split or level == 0)
        self._forget_structure()
        return split

    @torch.no_grad()
    def _copy_node(self, level: int, source: int, target: int, optimizer: torch.optim.Optimizer | None) -> None:
        old, new = self._stage(level)[source], self._stage(level)[target]
        new.load_state_dict(old.state_dict())
        for p, q in zip(old.parameters(), new.parameters()):  # a frozen node (freeze: shared) stays frozen
            q.requires_grad_(p.requires_grad)
        if optimizer is None:
            return
        for p, q in zip(old.parameters(), new.parameters()):
            if p in optimizer.state:
                optimizer.state[q] = {k: v.clone() if isinstance(v, Tensor) else copy.deepcopy(v)
                                      for k, v in optimizer.state[p].items()}

    def callbacks(self) -> list[Any]:
        return [AdaptiveWidening(self)]

    # ---- the parameter partition (it changes as the network widens) ------------------------
    def _nodes_read_by(self, count: int | None) -> Iterator[tuple[int, int, list[int]]]:
        """``(stage, node, tasks)`` for the nodes read by ``count`` tasks (None: two or more)."""
        for level in range(len(self.nodes)):
            for node, tasks in sorted(self.owners(level).items()):
                if (len(tasks) >= 2) if count is None else len(tasks) == count:
                    yield level, node, tasks

    def shared_modules(self) -> list[nn.Module]:
        """The nodes read by two or more tasks; the backward engine hooks them anew whenever they
        change (a widening, a loaded tree)."""
        return [self._stage(level)[node] for level, node, _ in self._nodes_read_by(None)]

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        for level, node, _ in self._nodes_read_by(None):
            yield from self._stage(level)[node].parameters()

    def task_parameters(self, name: str) -> Iterator[nn.Parameter]:
        column = self.task_names.index(self._check_tasks([name])[0])
        for level, node, tasks in self._nodes_read_by(1):
            if tasks == [column]:
                yield from self._stage(level)[node].parameters()
        yield from self.heads[name].parameters()

    def spare_parameters(self) -> Iterator[nn.Parameter]:
        for level in range(len(self.nodes)):
            used = set(self.assign[level].tolist())
            for node, module in enumerate(self._stage(level)):
                if node not in used:
                    yield from module.parameters()

    def last_shared_parameters(self) -> list[nn.Parameter]:
        """The weight matrices of the shared nodes at the highest stage that has any."""
        shared = list(self._nodes_read_by(None))
        if not shared:
            raise ValueError("AdaptiveSharing has split every stage: no layer is shared for GradNorm to measure at.")
        top = max(level for level, _, _ in shared)
        return [p for level, node, _ in shared if level == top for p in last_weights(self._stage(level)[node])]


class AdaptiveWidening:
    """The trainer callback that runs :class:`AdaptiveSharing`'s widening rounds: every
    ``widen_every`` steps, per-example errors on the first ``affinity_examples`` validation
    examples (:func:`per_example_errors`), their :func:`task_affinity`, one
    :meth:`AdaptiveSharing.widen`."""

    def __init__(self, model: AdaptiveSharing) -> None:
        self.model = model
        self.every = model.widen_every

    def on_train_start(self, trainer: Trainer) -> None:
        if trainer.val is None:
            raise ValueError("Model 'adaptive' measures task affinity on validation data, and the trainer has none: "
                             "give it an Evaluation source (a dataset with a validation split).")
        if self.every is None:
            self.every = max(1, trainer.steps // (len(self.model.nodes) + 1))

    def on_step_end(self, trainer: Trainer, step: int, losses: dict[str, Any]) -> None:
        del losses
        if bool(self.model.finished) or step % cast(int, self.every):
            return
        source = cast(Source, trainer.val)
        tasks = [trainer.tasks[name] for name in self.model.task_names]
        errors, labelled = per_example_errors(self.model, tasks, source, trainer.evaluation.batch_size,
                                              trainer.device, self.model.affinity_examples)
        level = len(self.model.nodes) - int(self.model.rounds)
        if self.model.widen(task_affinity(errors, labelled), trainer.optimizer):
            log.info("manytask: adaptive sharing widened stage %d at step %d:\n%s", level, step,
                     self.model.structure_report())
            forget = getattr(trainer.balancer, "forget_tracked", None)
            if callable(forget):  # MoCo, DB-MTL: vectors over the shared parameters, which just changed
                forget()
                log.info("manytask: %s's tracked gradients restart: the shared parameters changed.", trainer.balancer)

    def state_dict(self) -> dict[str, Any]:
        return {"every": self.every}  # a resumed run keeps the schedule it started with

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.every = state["every"]


@torch.no_grad()
def per_example_errors(model: MultiTaskModel, tasks: Sequence[Task], source: Source, batch_size: int = 256,
                       device: torch.device | str = "cpu", limit: int | None = None) -> tuple[Tensor, Tensor]:
    """Each example's mean loss per task over its labelled entries, ``[N, T]``, and which
    examples have a label for each task (tasks the source does not hold: none), in eval mode.

    Args:
        model: The model.
        tasks: The tasks, in the order of the columns.
        source: The examples.
        batch_size: Examples per forward.
        device: Where the model is.
        limit: Use only the first ``limit`` examples.
    """
    count = min(len(source), limit) if limit is not None else len(source)
    errors = torch.zeros(count, len(tasks), dtype=torch.float64)
    labelled = torch.zeros(count, len(tasks), dtype=torch.bool)
    names = [t.name for t in tasks if t.name in source.tasks]
    was_training = model.training
    model.eval()
    try:
        for start in range(0, count, batch_size):
            rows = torch.arange(start, min(start + batch_size, count))
            batch = source.batch(rows).to(device)
            outputs = model(batch.inputs, names) if names else {}
            for column, task in enumerate(tasks):
                if task.name not in outputs:
                    continue
                mask = batch.masks[task.name]
                output, target = task.select(outputs[task.name], batch.targets[task.name], mask)
                if output.shape[0] == 0:
                    continue
                entry = task.loss_function(output, task.loss_target(target)).reshape(output.shape[0], -1).mean(1)
                example = mask.nonzero()[:, 0].cpu()
                sums = torch.zeros(len(rows), dtype=torch.float64).index_add_(0, example, entry.double().cpu())
                seen = torch.zeros(len(rows)).index_add_(0, example, torch.ones(len(example)))
                errors[rows, column] = sums / seen.clamp_min(1)
                labelled[rows, column] = seen > 0
    finally:
        model.train(was_training)
    return errors, labelled
