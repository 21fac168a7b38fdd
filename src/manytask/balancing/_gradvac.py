"""Gradient Vaccine (Wang, Tsvetkov, Firat & Cao, 2021)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from ..tasks import Task
from ._aggregation import _LEVELS
from ._base import GramianBalancer, Level
from ._factory import BalancerInfo, register_balancer
from ._gramian_linalg import gramian_array, to_weights

__all__ = ["GradVac"]


@register_balancer("gradvac", "GradVac: raise each pair's gradient cosine to an EMA target by adding the other.",
                   BalancerInfo("Wang et al. 2021, ICLR (Gradient Vaccine) Alg. 1", "gramian", _LEVELS, stateful=True,
                                random=True))
class GradVac(GramianBalancer):
    r"""Gradient Vaccine of `Wang, Tsvetkov, Firat & Cao (2021), "Gradient Vaccine: Investigating
    and Improving Multi-task Optimization in Massively Multilingual Models"
    <https://arxiv.org/abs/2010.05874>`_ (ICLR), Algorithm 1.

    For each task :math:`i`, the other tasks :math:`j` are visited in a random order; with
    :math:`g_i'` the (already corrected) gradient of :math:`i` and
    :math:`\phi_{ij} = \cos(g_i', g_j)`, if :math:`\phi_{ij} < \hat\phi_{ij}` then

    .. math::
        g_i' \leftarrow g_i' + \frac{\|g_i'\| \big(\hat\phi_{ij} \sqrt{1-\phi_{ij}^2}
        - \phi_{ij} \sqrt{1-\hat\phi_{ij}^2}\big)}{\|g_j\| \sqrt{1-\hat\phi_{ij}^2}}\; g_j ,

    which makes :math:`\cos(g_i', g_j) = \hat\phi_{ij}` exactly; and in every case the target
    follows the exponential moving average
    :math:`\hat\phi_{ij} \leftarrow (1-\beta)\hat\phi_{ij} + \beta\,\phi_{ij}` (targets start at 0,
    which makes the first steps PCGrad). The update is :math:`\sum_i g_i'`. With
    :math:`g_i' = \sum_k C_{ik} g_k` every quantity is read off the Gramian
    (:math:`g_i'^\top g_j = (C G)_{ij}`, :math:`\|g_i'\|^2 = (C G C^\top)_{ii}`), and the weights are
    :math:`1^\top C`. The tasks :math:`i` are independent of each other, so the :math:`T'-1`
    rounds run batched over all :math:`i` (round :math:`r` visits the :math:`r`-th task of each
    :math:`i`'s order); the orders come from one ``torch.rand`` draw of the global RNG (restored
    by the trainer's checkpoints) per step. Computed in float64, in NumPy (the rounds are small operations).

    The paper applies the rule per layer or parameter group of a large translation model; this is
    the whole-model variant on the Gramian of all shared parameters (``level="exact"``) or of the
    shared features (``level="representation"``). LibMTL and the SamsungLabs code update the
    target only when a correction was made; this follows the paper and torchjd and updates it on
    every visit. A zero gradient has :math:`\phi = 0` and is never corrected nor used to correct;
    :math:`\sqrt{1-\hat\phi^2}` is kept above :math:`10^{-12}` (a target of exactly 1 cannot be
    reached by a finite correction).

    State and absent tasks: the targets :math:`\hat\phi` are one ``[T, T]`` buffer over all tasks;
    a step reads and writes only the pairs of two present tasks, so an absent task's rows and
    columns are untouched. torchjd's ``GradVacWeighting`` keeps a ``[T', T']`` state over the
    present tasks only, re-created whenever their number changes, so it cannot be masked.

    The update conflicts with no task when no two gradients conflict (every correction adds a
    non-negative multiple of another gradient); it is not invariant to a task's loss scale.

    .. warning:: Stateful: ``reset()`` sets every target back to 0.

    Args:
        tasks: The run's tasks.
        level: ``"exact"`` (all shared parameters) or ``"representation"``.
        beta: EMA rate :math:`\beta \in [0, 1]` of the targets (LibMTL's and torchjd's default, 0.5).

    Examples:
        >>> import torch
        >>> from manytask.tasks import Regression
        >>> vac = GradVac([Regression("a"), Regression("b")])
        >>> gramian = torch.tensor([[1.0, -0.5], [-0.5, 1.0]], dtype=torch.float64)  # cosine -1/2
        >>> vac.gramian_weights(gramian, torch.ones(2), torch.tensor([True, True]), step=0)  # target 0: PCGrad
        tensor([1.5000, 1.5000], dtype=torch.float64)
        >>> vac.targets
        tensor([[ 0.0000, -0.2500],
                [-0.2500,  0.0000]])
    """

    stateful: ClassVar[bool] = True
    targets: Tensor

    def __init__(self, tasks: Sequence[Task], level: Level = "exact", beta: float = 0.5) -> None:
        super().__init__(tasks, level)
        if not (isinstance(beta, (int, float)) and math.isfinite(beta) and 0.0 <= beta <= 1.0):
            raise ValueError(f"The 'beta' parameter of GradVac must be in [0, 1]. Got {beta!r} instead.")
        self.beta = float(beta)
        self.register_buffer("targets", torch.zeros(self.num_tasks, self.num_tasks))

    def reset(self) -> None:
        self.targets.zero_()

    def gramian_weights(self, gramian: Tensor, losses: Tensor, present: Tensor, *, step: int) -> Tensor:
        g = gramian_array(gramian, "GradVac")  # float64 NumPy: T' - 1 rounds of small operations
        t = g.shape[0]
        index = present.nonzero().flatten().to(self.targets.device)
        if index.numel() != t:
            raise ValueError(f"GradVac: the Gramian has {t} tasks but {index.numel()} are present.")
        rows = index[:, None]
        phi_hat = self.targets[rows, index].detach().cpu().double().numpy()  # [T', T'], pairs of present tasks
        norms = np.sqrt(np.maximum(np.diagonal(g), 0.0))
        coefficients = np.eye(t)
        products = g.copy()  # C G, kept up to date: row i holds <g_i', g_k> for every k
        squares = np.diagonal(g).copy()  # ||g_i'||², kept up to date
        # order[i, r]: the r-th other task visited by i (self last, dropped)
        keys = torch.rand(t, t, dtype=torch.float64)
        keys.fill_diagonal_(2.0)
        order = keys.argsort(dim=1)[:, : t - 1].numpy()
        arange = np.arange(t)
        # T' - 1 rounds of array operations on the rows that changed: C G and ||g_i'||² are updated,
        # not recomputed (a T'^3 product a round: T' = 106 14.8 -> 7.5 ms); np.maximum/minimum, not
        # np.clip (5 us of Python wrappers a call)
        for r in range(t - 1):  # rounds; all tasks i at once
            j = order[:, r]
            dots = products[arange, j]  # g_i' . g_j
            target = phi_hat[arange, j]
            denominator = np.sqrt(np.maximum(squares, 0.0)) * norms[j]  # ||g_i'|| ||g_j||
            valid = denominator > 0
            phi = np.divide(dots, denominator, out=np.zeros(t), where=valid)  # cos(g_i', g_j); 0 if undefined
            np.minimum(np.maximum(phi, -1.0, out=phi), 1.0, out=phi)
            moved = np.flatnonzero(valid & (phi < target))  # below the target similarity: moved towards g_j
            if len(moved):
                met, aim, now = j[moved], target[moved], phi[moved]
                sin_target = np.maximum(np.sqrt(np.maximum(1 - aim**2, 0.0)), 1e-12)
                sin_phi = np.sqrt(np.maximum(1 - now**2, 0.0))
                change = np.sqrt(squares[moved]) * (aim * sin_phi - now * sin_target) / (norms[met] * sin_target)
                coefficients[moved, met] += change
                products[moved] += change[:, None] * g.take(met, axis=0)  # (C + c e_j) G = C G + c G[j]
                squares[moved] += change * (2 * dots[moved] + change * g[met, met])  # ||g_i' + c g_j||²
            phi_hat[arange, j] = (1 - self.beta) * target + self.beta * phi
        self.targets[rows, index] = torch.from_numpy(phi_hat).to(self.targets)
        return to_weights(coefficients.sum(axis=0), gramian)

    def extra_repr(self) -> str:
        return f"level={self.level!r}, beta={self.beta}"
