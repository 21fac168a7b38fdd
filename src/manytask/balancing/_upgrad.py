"""UPGrad (Quinton & Rey, 2024)."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from torch import Tensor

from ._aggregation import _LEVELS
from ._base import GramianBalancer
from ._factory import BalancerInfo, register_balancer
from ._gramian_linalg import dual_cone_weights, gramian_array, to_weights

__all__ = ["UPGrad"]


@register_balancer("upgrad", "UPGrad: each gradient projected onto the dual cone of all of them, averaged.",
                   BalancerInfo("Quinton & Rey 2024, arXiv 2406.16232 Sec. 3 (UPGrad), Eq. 3, Prop. 1", "gramian",
                                _LEVELS))
class UPGrad(GramianBalancer):
    r"""Unconflicting projection of gradients of `Quinton & Rey (2024), "Jacobian Descent for
    Multi-Objective Optimization" <https://arxiv.org/abs/2406.16232>`_, Sec. 3.

    Each task gradient :math:`g_i` is projected onto the dual cone of the rows of :math:`J`,
    :math:`\pi_J(x) = \arg\min_{y:\, J y \ge 0} \|y - x\|^2` (Eq. 3), and the projections are averaged:

    .. math::
        \mathcal{A}_{\text{UPGrad}}(J) = \frac{1}{T} \sum_{i=1}^{T} \pi_J(g_i)
        = J^\top \frac{1}{T} \sum_i v_i, \qquad
        v_i = \arg\min_{v \ge e_i} v^\top G v \quad (\text{Prop. 1}),

    solved exactly on the Gramian :math:`G` (non-negative least squares, see
    :func:`~manytask.balancing._gramian_linalg.dual_cone_weights`). The update is in the dual
    cone — it conflicts with no task (:math:`G w \ge 0`) — and equals the mean gradient when no
    two gradients conflict. It is permutation-equivariant but not invariant to a task's loss
    scale (the paper's "linear under scaling": scaling :math:`g_i` by :math:`c` moves the update
    linearly in :math:`c`, so its direction changes).

    torchjd's ``UPGradWeighting`` solves the same problem with quadprog on :math:`G / \mathrm{tr}\,G
    + 10^{-4} I` (a regularised, hence approximate, projection; quadprog is not installed here), so
    manytask solves it itself.

    The paper takes :math:`J` over all shared parameters (``level="exact"``);
    ``level="representation"`` uses the gradients w.r.t. the shared features. Stateless: an
    absent task is simply not part of :math:`J` (weight 0).

    Args:
        tasks: The run's tasks.
        level: ``"exact"`` (all shared parameters) or ``"representation"``.

    Examples:
        >>> import torch
        >>> from manytask.tasks import Regression
        >>> upgrad = UPGrad([Regression("a"), Regression("b")])
        >>> gramian = torch.tensor([[1.0, -0.5], [-0.5, 1.0]], dtype=torch.float64)  # 120 degrees apart
        >>> upgrad.gramian_weights(gramian, torch.ones(2), torch.tensor([True, True]), step=0)
        tensor([0.7500, 0.7500], dtype=torch.float64)
    """

    stateful: ClassVar[bool] = False

    def gramian_weights(self, gramian: Tensor, losses: Tensor, present: Tensor, *, step: int) -> Tensor:
        g = gramian_array(gramian, "UPGrad")
        t = g.shape[0]
        projected = dual_cone_weights(g, np.eye(t), "UPGrad", step)  # row i: v_i
        return to_weights(projected.mean(axis=0), gramian)
