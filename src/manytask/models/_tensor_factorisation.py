"""Deep multi-task representation learning by tensor factorisation (Yang & Hospedales, 2017):
every weight of every task's network from one factorised tensor."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import cast

import torch
from torch import Tensor, nn
from torch.func import functional_call

from ..data import Inputs
from ..tasks import Task
from ._backbone import as_backbone, output_info, task_columns
from ._base import MultiTaskModel
from ._heads import make_head

__all__ = ["TensorFactorised", "tensor_train", "tucker"]


def _leading(matrix: Tensor, rank: int) -> Tensor:
    """The ``rank`` leading left singular vectors of ``matrix``."""
    return torch.linalg.svd(matrix, full_matrices=False)[0][:, :rank]


def tucker(stacked: Tensor, ranks: Sequence[int]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    r"""Truncated higher-order SVD of ``stacked`` ``[a, b, T]``: ``(core [r1, r2, r3], U1 [a, r1],
    U2 [b, r2], U3 [T, r3])`` with :math:`X \approx S \times_1 U_1 \times_2 U_2 \times_3 U_3`
    (De Lathauwer et al. 2000; exact at full ranks). Each factor is the leading left singular
    vectors of the tensor unfolded along its mode; the core is ``X`` times their transposes.
    """
    a, b, t = stacked.shape
    u1 = _leading(stacked.reshape(a, b * t), ranks[0])
    u2 = _leading(stacked.permute(1, 0, 2).reshape(b, a * t), ranks[1])
    u3 = _leading(stacked.permute(2, 0, 1).reshape(t, a * b), ranks[2])
    core = torch.einsum("abt,ai,bj,tk->ijk", stacked, u1, u2, u3)
    return core, u1, u2, u3


def tensor_train(stacked: Tensor, ranks: Sequence[int]) -> tuple[Tensor, Tensor, Tensor]:
    r"""Tensor-train SVD of ``stacked`` ``[a, b, T]`` (Oseledets 2011, Algorithm 1): ``(G1 [a, r1],
    G2 [r1, b, r2], G3 [r2, T])`` with :math:`X_{abt} pprox \sum_{ij} G_1[a, i]\, G_2[i, b, j]\,
    G_3[j, t]`; exact at full ranks. Each core is the leading singular vectors of what is left,
    unfolded; the last holds the remainder.
    """
    a, b, t = stacked.shape
    u, s, vh = torch.linalg.svd(stacked.reshape(a, b * t), full_matrices=False)
    r1 = min(ranks[0], s.numel())
    g1, rest = u[:, :r1], s[:r1, None] * vh[:r1]  # [a, r1], [r1, b * T]
    u, s, vh = torch.linalg.svd(rest.reshape(r1 * b, t), full_matrices=False)
    r2 = min(ranks[1], s.numel())
    return g1, u[:, :r2].reshape(r1, b, r2), s[:r2, None] * vh[:r2]


class TensorFactorised(MultiTaskModel):
    r"""Tensor-factorised networks: every task's weights from one Tucker-factorised tensor.

    Yang & Hospedales (2017), "Deep Multi-task Representation Learning: A Tensor Factorisation
    Approach" (ICLR), Tucker form. Each task has its own network (a copy of the backbone), and
    every weight ``W`` of shape ``[a, ...]`` (flattened to ``[a, b]``) is one slice of a tensor
    ``[a, b, T]`` factorised as

    .. math::
        W_t = \sum_{ijk} S_{ijk}\, U_1[:, i]\, U_2[:, j]^\top\, U_3[t, k],

    with the core :math:`S`, :math:`U_1` and :math:`U_2` shared by the tasks and the row
    :math:`U_3[t]` task ``t``'s own; biases and other 1-d parameters stay per task. The paper's
    tensor-train form (``form="tt"``) is :math:`W_t = G_1\, (G_2 \times_3 G_3[:, t])`, with
    :math:`G_1`, :math:`G_2` shared and the column :math:`G_3[:, t]` the task's own
    (:func:`tensor_train`). As in the paper
    the factors start from a decomposition of per-task weights (theirs: single-task networks
    trained first; here the copies' initial draws, or any columns a caller loads) by truncated
    higher-order SVD (:func:`tucker`); at full ranks the model starts as exactly those independent
    networks, and lower ranks tie the tasks more. The task's network runs with its reconstructed
    weights (``torch.func.functional_call``), so any backbone works.

    Shared: the cores, :math:`U_1`, :math:`U_2`; task ``t``'s own: its :math:`U_3` rows, its 1-d
    parameters and its head. No single shared representation: representation-level balancing
    raises, exact mode works.

    Args:
        encoder: The backbone each task's network copies (the first keeps its weights).
        tasks: The tasks.
        feature_dim: ``D`` of a plain encoder without ``out_features``.
        ranks: Tucker ranks ``(r1, r2, r3)``, or tensor-train ranks ``(r1, r2)``, of every weight,
            each capped at what the tensor allows (default: full, the independent networks at
            the start).
        form: ``"tucker"`` or ``"tt"``.

    Examples:
        >>> from manytask.models import MLP
        >>> from manytask.tasks import Regression
        >>> model = TensorFactorised(MLP(4, (8,)), [Regression("a"), Regression("b")], ranks=(3, 2, 1))
        >>> tuple(model(torch.randn(5, 4))["b"].shape)
        (5, 1)
    """

    hookable = False  # the weights are built from the factors outside any module's forward

    def __init__(self, encoder: nn.Module, tasks: Sequence[Task], feature_dim: int | None = None,
                 ranks: Sequence[int] | None = None, form: str = "tucker") -> None:
        super().__init__()
        self._heads_at_the_top(tasks, encoder)
        if form not in ("tucker", "tt"):
            raise ValueError(f"TensorFactorised form must be 'tucker' or 'tt'. Got {form!r}.")
        count = 3 if form == "tucker" else 2
        if ranks is not None and (len(ranks) != count or min(ranks) < 1):
            raise ValueError(f"TensorFactorised {form} ranks must be {count} positive ints. Got {ranks}.")
        self.form = form
        backbone = as_backbone(encoder, output_info(encoder, feature_dim))
        buffers = [n for n, _ in backbone.named_buffers()]
        if buffers:
            raise ValueError(f"TensorFactorised rebuilds every task's weights from factors and cannot keep per-task "
                             f"buffers; the backbone has {buffers[:3]} (BatchNorm statistics?). Use a backbone "
                             "without buffers (LayerNorm instead of BatchNorm).")
        self.task_names = tuple(t.name for t in tasks)
        columns = list(task_columns(backbone, self.task_names).values())
        # the module the tasks' weights run through; kept out of the module tree (its own tensors
        # are never used: every parameter is passed to functional_call)
        self._template: list[nn.Module] = [columns[0].requires_grad_(False)]
        names = [n for n, _ in backbone.named_parameters()]
        self._factorised = [n for n, p in backbone.named_parameters() if p.ndim >= 2]
        self.cores = nn.ParameterDict()
        self.u1 = nn.ParameterDict()
        self.u2 = nn.ParameterDict()
        self.u3 = nn.ModuleDict({t: nn.ParameterDict() for t in self.task_names})
        self.own = nn.ModuleDict({t: nn.ParameterDict() for t in self.task_names})
        for name in names:
            key = name.replace(".", "_")
            values = [dict(c.named_parameters())[name].detach() for c in columns]
            if name not in self._factorised:
                for task, value in zip(self.task_names, values):
                    self._own_of(task)[key] = nn.Parameter(value.clone())
                continue
            stacked = torch.stack([v.reshape(v.shape[0], -1) for v in values], dim=-1)  # [a, b, T]
            big = max(stacked.shape)
            dtype = values[0].dtype
            # contiguous: SVD factors are strided views (fused optimizers prefer contiguous state)
            if form == "tucker":
                r = [min(k, d) for k, d in zip(ranks or stacked.shape, stacked.shape)]
                core, u1, u2, rows = tucker(stacked.double(), r)
                self.u2[key] = nn.Parameter(u2.to(dtype).contiguous())
            else:
                u1, core, g3 = tensor_train(stacked.double(), ranks or (big, big))
                rows = g3.T  # [T, r2]: task t's column of G3
            self.cores[key] = nn.Parameter(core.to(dtype).contiguous())
            self.u1[key] = nn.Parameter(u1.to(dtype).contiguous())
            for task, row in zip(self.task_names, rows):
                self._rows_of(task)[key] = nn.Parameter(row.to(dtype).contiguous())
        self._shapes = {n: p.shape for n, p in backbone.named_parameters()}
        self.heads = nn.ModuleDict({t.name: make_head(t, backbone.out_info) for t in tasks})

    def _apply(self, fn, recurse=True):  # type: ignore[no-untyped-def]
        """``to``/``double``/``cuda`` reach the template network too (not a registered submodule)."""
        self._template[0]._apply(fn)
        return super()._apply(fn, recurse)

    def train(self, mode: bool = True) -> TensorFactorised:
        """Also switches the template network (dropout), which is not a registered submodule."""
        self._template[0].train(mode)
        return super().train(mode)

    def weights(self, task: str) -> dict[str, Tensor]:
        """Task ``task``'s network parameters, by name: reconstructed weights and its own 1-d ones."""
        own, rows = self._own_of(task), self._rows_of(task)
        out = {}
        for name, shape in self._shapes.items():
            key = name.replace(".", "_")
            # the task's row first (a [r1, r2] or [r1, b] matrix), then the shared factors: two
            # matmuls, not a contraction of the whole core with U1 per task
            if name in self._factorised and self.form == "tucker":
                core = self.cores[key] @ rows[key]  # S x3 U3[t]: [r1, r2]
                out[name] = (self.u1[key] @ core @ self.u2[key].T).reshape(shape)
            elif name in self._factorised:  # tensor train: G1 (G2 x3 g3_t)
                out[name] = (self.u1[key] @ (self.cores[key] @ rows[key])).reshape(shape)
            else:
                out[name] = own[key]
        return out

    def _own_of(self, task: str) -> nn.ParameterDict:
        return cast(nn.ParameterDict, self.own[task])

    def _rows_of(self, task: str) -> nn.ParameterDict:
        return cast(nn.ParameterDict, self.u3[task])

    def forward(self, inputs: Inputs, tasks: Sequence[str] | None = None) -> dict[str, Tensor]:
        return {t: self.heads[t](functional_call(self._template[0], self.weights(t), (inputs,)))
                for t in self._check_tasks(tasks)}

    def last_shared_parameters(self) -> list[nn.Parameter]:
        """The shared factors of the backbone's last factorised weight (its core and mode factors)."""
        key = self._factorised[-1].replace(".", "_")
        return [d[key] for d in (self.cores, self.u1, self.u2) if key in d]

    def shared_modules(self) -> list[nn.Module]:
        return [self.cores, self.u1, self.u2]

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        for module in self.shared_modules():
            yield from module.parameters()

    def task_parameters(self, name: str) -> Iterator[nn.Parameter]:
        name = self._check_tasks([name])[0]
        yield from self.u3[name].parameters()
        yield from self.own[name].parameters()
        yield from self.heads[name].parameters()

    def parameter_count(self) -> dict[str, int]:
        """Trainable numbers in the factors, and in T independent networks (for the ratio)."""
        factors = sum(p.numel() for p in self.parameters() if p.requires_grad) - sum(
            p.numel() for h in self.heads.values() for p in h.parameters())
        independent = len(self.task_names) * sum(math.prod(s) for s in self._shapes.values())
        return {"factors": factors, "independent": independent}
