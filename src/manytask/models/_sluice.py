"""Sluice networks (Ruder, Bingel, Augenstein & Søgaard, 2019): task columns whose stage outputs
are split into subspaces, mixed by learned α units, read by the heads through learned β mixtures
of the stages."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import Tensor, nn

from ..data import Inputs
from ..tasks import Task
from ._backbone import Backbone, as_backbone, last_weights, output_info, task_columns
from ._base import MultiTaskModel, own_parameters
from ._cross_stitch import mixing_init
from ._heads import make_head

__all__ = ["Sluice"]


class Sluice(MultiTaskModel):
    r"""Sluice networks: columns mixed per subspace by α, stages mixed per task by β.

    Ruder, Bingel, Augenstein & Søgaard (2019), "Latent Multi-task Architecture Learning" (AAAI):
    one column per task; after every stage each task's output is split along its features into
    ``subspaces`` equal parts :math:`G_{t,1} … G_{t,M}`, and an α unit mixes all ``T × M`` of
    them, :math:`\tilde G_{t,m} = \sum_{s,n} \alpha_{(t,m),(s,n)} G_{s,n}` (their α layer); each
    head then reads :math:`\sum_\ell \beta_{t,\ell}\, h_{t,\ell}` over the stages whose output has
    the last stage's size (their β layer; the embedding of a BiLSTM, for one, does not take part).
    :meth:`penalty` is their subspace orthogonality constraint,
    :math:`\lambda \sum_{t,\ell} \sum_{m<n} \|G_{t,\ell,m}^\top G_{t,\ell,n}\|_F^2` over this
    step's activations (every forward of the step: the batch's inputs and each view's; the
    positions of a batch as rows), which pushes the subspaces of a layer to hold different
    features.

    With one subspace, β on the last stage (the start here) and frozen, the model is
    :class:`CrossStitch`; with identity α it is independent columns. The α units start like a
    cross-stitch unit's (``init``: weight on the same task's same subspace, the rest spread
    evenly), β on the last stage. The last α unit's rows of task ``t``'s subspaces feed head ``t``
    alone, so they are task ``t``'s own parameter (:attr:`rows`, ``[M, T·M]`` per task); the
    columns and the units between stages are shared.

    Args:
        encoder: The backbone each column copies.
        tasks: The tasks.
        feature_dim: ``D`` of a plain encoder without ``out_features``.
        subspaces: ``M``; every stage's feature size must be divisible by it.
        init: ``(alpha_same, alpha_other)``.
        orthogonality: :math:`\lambda` (0: no constraint).

    Examples:
        >>> from manytask.models import MLP
        >>> from manytask.tasks import Regression
        >>> model = Sluice(MLP(4, (8, 8)), [Regression("a"), Regression("b")])
        >>> tuple(model(torch.randn(5, 4))["a"].shape)
        (5, 1)
        >>> tuple(model.alphas[0].shape), tuple(model.betas["a"].shape)
        ((4, 4), (2,))
    """

    hookable = False  # the α units mix the columns in forward, outside any module: autogram misses them

    def __init__(self, encoder: nn.Module, tasks: Sequence[Task], feature_dim: int | None = None,
                 subspaces: int = 2, init: Sequence[float] = (0.9, 0.1), orthogonality: float = 0.0) -> None:
        super().__init__()
        self._heads_at_the_top(tasks, encoder)
        if not tasks:
            raise ValueError("Sluice needs at least one task.")
        backbone = as_backbone(encoder, output_info(encoder, feature_dim))
        infos = backbone.feature_info
        odd = [i.dim for i in infos if i.dim % subspaces]
        if subspaces < 1 or odd:
            raise ValueError(f"Sluice splits every stage's features into {subspaces} subspaces, but stage sizes "
                             f"{odd} are not divisible by it; choose subspaces dividing {[i.dim for i in infos]}.")
        if len(init) != 2 or orthogonality < 0:
            raise ValueError(f"Sluice needs init=(alpha_same, alpha_other) and orthogonality >= 0. Got {list(init)}, "
                             f"{orthogonality}.")
        self.task_names = tuple(t.name for t in tasks)
        self.subspaces, self.orthogonality = subspaces, float(orthogonality)
        self.columns = task_columns(backbone, self.task_names)
        units = len(tasks) * subspaces
        # an α unit after every stage but the last; after the last, the rows of task t's subspaces
        # feed head t alone (through β_t): they are task t's own parameter
        self.alphas = nn.ParameterList(nn.Parameter(mixing_init(units, *init)) for _ in infos[1:])
        last = mixing_init(units, *init).split(subspaces)
        self.rows = nn.ParameterDict({t: nn.Parameter(block.clone()) for t, block in zip(self.task_names, last)})
        self._mixed = [i for i, info in enumerate(infos) if info == infos[-1]]  # the stages β mixes
        beta = torch.zeros(len(self._mixed))
        beta[-1] = 1.0
        self.betas = nn.ParameterDict({t: nn.Parameter(beta.clone()) for t in self.task_names})
        self.heads = nn.ModuleDict({t.name: make_head(t, infos[-1]) for t in tasks})
        self._overlaps: dict[tuple[str, ...], Tensor] = {}  # the constraint per input group since penalty()

    def _split(self, stacked: Tensor, channel: int) -> Tensor:
        """``[T, B, ..., D, ...]`` -> ``[T * M, B, ..., D / M, ...]`` (subspaces of the feature axis)."""
        parts = stacked.chunk(self.subspaces, dim=channel)
        return torch.stack(parts, dim=1).flatten(0, 1)

    def forward(self, inputs: Inputs, tasks: Sequence[str] | None = None) -> dict[str, Tensor]:
        tasks = self._check_tasks(tasks)
        columns: list[Backbone] = list(self.columns.values())  # type: ignore[arg-type]
        infos = columns[0].feature_info
        count = len(columns)
        xs: list[Tensor] = [inputs] * count  # type: ignore[list-item]
        kept: list[Tensor] = []  # [T, B, ...] per stage that β mixes
        orthogonality: Tensor | None = None
        for i, alpha in enumerate(self.mixing(tasks)):
            outs = torch.stack([column.stages[i](x) for column, x in zip(columns, xs)])  # [T, B, ...]
            channel = 2 if infos[i].layout == "map" else outs.ndim - 1  # the feature axis of [T, B, ...]
            parts = self._split(outs, channel)  # [T*M, B, ..., D/M, ...]
            if self.orthogonality and self.training and torch.is_grad_enabled():  # not a no-grad recompute
                term = self._subspace_overlap(parts, channel)
                orthogonality = term if orthogonality is None else orthogonality + term
            mixed = (alpha.to(parts.dtype) @ parts.flatten(1)).view_as(parts)
            xs = list(torch.cat(mixed.unflatten(0, (count, self.subspaces)).unbind(1), dim=channel).unbind(0))
            if i in self._mixed:
                kept.append(torch.stack(xs))
        if orthogonality is not None:  # a step runs one forward per input group (the batch's, each view's)
            self._overlaps[tuple(tasks)] = orthogonality
        stages = torch.stack(kept)  # [L', T, B, ...]
        out = {}
        for t in tasks:
            index = self.task_names.index(t)
            beta = self.betas[t].to(stages.dtype)
            out[t] = self.heads[t]((beta.view(-1, *[1] * (stages.ndim - 2)) * stages[:, index]).sum(0))
        return out

    def mixing(self, tasks: Sequence[str] | None = None) -> list[Tensor]:
        """The α units, one ``[T·M, T·M]`` matrix per stage (row ``t·M + m``: what subspace ``m`` of
        task ``t`` reads); the last one assembled from :attr:`rows`, those of tasks not in ``tasks``
        detached (a task absent from the step gets no gradient, not a zero one that a momentum
        optimizer would still step on)."""
        return [*self.alphas, torch.cat(own_parameters(self.rows, self.task_names, tasks))]

    def _load_from_state_dict(self, state_dict: dict[str, Tensor], prefix: str, *args: object) -> None:
        """Checkpoints written before the last α unit's rows became the tasks' own (one
        ``alphas.<last>``) load into :attr:`rows`."""
        old = f"{prefix}alphas.{len(self.alphas)}"
        if old in state_dict:
            for name, block in zip(self.task_names, state_dict.pop(old).split(self.subspaces)):
                state_dict[f"{prefix}rows.{name}"] = block
        super()._load_from_state_dict(state_dict, prefix, *args)  # type: ignore[arg-type]

    def _subspace_overlap(self, parts: Tensor, channel: int) -> Tensor:
        """``Σ_t Σ_{m<n} ‖G_mᵀ G_n‖²`` for one stage, the positions of the batch as rows."""
        grouped = parts.unflatten(0, (-1, self.subspaces)).movedim(channel + 1, -1)  # [T, M, B, ..., D/M]
        rows = grouped.flatten(2, -2)  # [T, M, N, D/M]
        total = parts.new_zeros(())
        for m in range(self.subspaces):
            for n in range(m + 1, self.subspaces):
                total = total + (rows[:, m].transpose(1, 2) @ rows[:, n]).pow(2).sum()
        return total

    def penalty(self) -> Tensor | None:
        """The subspace orthogonality constraint of the training forwards since the last call,
        summed over their input groups (None when off); a group forwarded again before the call
        replaces its own term."""
        terms, self._overlaps = list(self._overlaps.values()), {}
        return self.orthogonality * torch.stack(terms).sum() if terms else None

    def shared_modules(self) -> list[nn.Module]:
        return [self.columns, self.alphas]

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        yield from self.columns.parameters()
        yield from self.alphas.parameters()

    def task_parameters(self, name: str) -> Iterator[nn.Parameter]:
        name = self._check_tasks([name])[0]
        yield self.rows[name]
        yield self.betas[name]
        yield from self.heads[name].parameters()

    def last_shared_parameters(self) -> list[nn.Parameter]:
        """The weight matrices of every column's last layer (:func:`last_weights`)."""
        return [p for column in self.columns.values() for p in last_weights(column)]
