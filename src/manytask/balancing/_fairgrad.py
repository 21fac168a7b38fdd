"""FairGrad (Ban & Ji, 2024)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import Tensor

from ..tasks import Task
from ._aggregation import _LEVELS
from ._base import GramianBalancer, Level
from ._factory import BalancerInfo, register_balancer
from ._fair_solver import check_solver_options, fair_weights

__all__ = ["FairGrad"]


@register_balancer("fairgrad", "FairGrad: alpha-fair resource allocation, G w = w^(-1/alpha).",
                   BalancerInfo("Ban & Ji 2024, ICML (FairGrad) Eq. 4, Alg. 1", "gramian", _LEVELS))
class FairGrad(GramianBalancer):
    r"""FairGrad of `Ban & Ji (2024), "Fair Resource Allocation in Multi-Task Learning"
    <https://arxiv.org/abs/2402.15638>`_ (ICML), Eq. 4 and Algorithm 1.

    The update :math:`d = \sum_i w_i g_i` maximises the :math:`\alpha`-fair utility
    :math:`\sum_i (g_i^\top d)^{1-\alpha} / (1 - \alpha)` over :math:`\|d\| \le 1` (up to scale);
    its weights :math:`w > 0` solve

    .. math::
        G w = w^{-1/\alpha} \quad (\text{elementwise}), \qquad G = J J^\top,

    so :math:`g_i^\top d = w_i^{-1/\alpha} > 0` for every task. :math:`\alpha = 1` is Nash-MTL
    (proportional fairness), :math:`\alpha \to \infty` approaches max-min fairness (MGDA-like)
    and :math:`\alpha \to 0` the sum of the gradients (:math:`w \to 1`; ``alpha=0`` returns it).
    The paper solves the equation with ``scipy.optimize.least_squares``; here it is the
    stationarity condition of :math:`\tfrac12 w^\top G w - \sum_i h(w_i)`, :math:`h' = w^{-1/\alpha}`
    (strictly convex), minimised by damped Newton in float64 — the solver shared with Nash-MTL,
    :func:`~manytask.balancing.fair_weights`, whose docstring states the tolerance,
    the Tikhonov term :math:`\epsilon\,\mathrm{diag}\,G` added to every Gramian (for singular ones;
    on an ill-conditioned one it moves the solution, see :class:`NashMTL`), the treatment of
    zero gradients (weight 0), and the errors raised when Newton does not converge. For
    :math:`\alpha \ne 1` the update depends on the scale of each loss (no scale claim).

    ``max_norm`` clips the update's norm (read off the Gramian) as the official code clips the
    shared gradient (1.0). The paper takes :math:`G` over all shared parameters
    (``level="exact"``); ``level="representation"`` uses the shared features' gradients.
    Stateless: each step is solved from scratch; absent tasks are left out.

    Args:
        tasks: The run's tasks.
        alpha: :math:`\alpha \ge 0` (the official experiments' scripts use 2.0; 1.0 is Nash-MTL).
        level: ``"exact"`` (all shared parameters) or ``"representation"``.
        max_norm: Maximum norm of the update (0: no clipping).
        eps: Relative Tikhonov term :math:`\epsilon`.
        tol: Relative tolerance on each equation :math:`(G w)_i = w_i^{-1/\alpha}`.
        max_iter: Maximum number of Newton steps.

    Examples:
        >>> from manytask.tasks import Regression
        >>> fair = FairGrad([Regression("a"), Regression("b")], alpha=2.0, max_norm=0.0)
        >>> gramian = torch.tensor([[4.0, 0.0], [0.0, 1.0]])  # orthogonal: 4 w_a = w_a^(-1/2)
        >>> fair.gramian_weights(gramian, torch.ones(2), torch.tensor([True, True]), step=0)
        tensor([0.3968, 1.0000])
    """

    stateful: ClassVar[bool] = False

    def __init__(self, tasks: Sequence[Task], alpha: float = 2.0, level: Level = "exact", max_norm: float = 1.0,
                 eps: float = 1e-6, tol: float = 1e-9, max_iter: int = 100) -> None:
        super().__init__(tasks, level)
        if not (math.isfinite(alpha) and alpha >= 0):
            raise ValueError(f"The 'alpha' parameter of FairGrad must be a finite number >= 0. Got {alpha!r} instead.")
        check_solver_options("FairGrad", eps, tol, max_iter, max_norm)
        self.alpha, self.max_norm = alpha, max_norm
        self.eps, self.tol, self.max_iter = eps, tol, max_iter

    def gramian_weights(self, gramian: Tensor, losses: Tensor, present: Tensor, *, step: int) -> Tensor:
        t = int(present.sum())
        self._check(gramian, "gramian", (t, t))
        if self.alpha == 0:
            weights = torch.ones(t, dtype=gramian.dtype, device=gramian.device)
        else:
            weights = fair_weights(gramian, self.alpha, eps=self.eps, tol=self.tol, max_iter=self.max_iter,
                                   owner="FairGrad", step=step)
        if self.max_norm > 0:
            norm = (weights.double() @ gramian.double() @ weights.double()).clamp(min=0).sqrt()
            weights = weights * (self.max_norm / norm).clamp(max=1.0).to(weights)
        return weights

    def extra_repr(self) -> str:
        return (f"alpha={self.alpha}, level={self.level!r}, max_norm={self.max_norm}, eps={self.eps}, "
                f"tol={self.tol}, max_iter={self.max_iter}")
