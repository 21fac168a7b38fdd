"""DualProj (Quinton & Rey, 2024)."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from torch import Tensor

from ._aggregation import _LEVELS
from ._base import GramianBalancer
from ._factory import BalancerInfo, register_balancer
from ._gramian_linalg import dual_cone_weights, gramian_array, to_weights

__all__ = ["DualProj"]


@register_balancer("dualproj", "DualProj: the mean gradient projected onto the dual cone of the gradients.",
                   BalancerInfo("Quinton & Rey 2024, arXiv 2406.16232 Sec. 3 (DualProj), Prop. 1", "gramian",
                                _LEVELS))
class DualProj(GramianBalancer):
    r"""Dual projection of `Quinton & Rey (2024), "Jacobian Descent for Multi-Objective
    Optimization" <https://arxiv.org/abs/2406.16232>`_ (Sec. 3; GEM's Eq. 11 of Lopez-Paz &
    Ranzato, 2017, applied to the mean gradient).

    The mean gradient is projected onto the dual cone of the rows of :math:`J`:

    .. math::
        \mathcal{A}_{\text{DualProj}}(J) = \pi_J\Big(\frac{1}{T} J^\top 1\Big) = J^\top v, \qquad
        v = \arg\min_{v \ge \frac{1}{T} 1} v^\top G v \quad (\text{Prop. 1}),

    solved exactly on the Gramian :math:`G` (non-negative least squares, see
    :func:`~manytask.balancing._gramian_linalg.dual_cone_weights`). The update conflicts with no
    task (:math:`G v \ge 0`) and is the mean gradient when that conflicts with none. Not
    invariant to a task's loss scale (the mean it projects is not).

    torchjd's ``DualProjWeighting`` solves the same problem with quadprog on a regularised
    :math:`G / \mathrm{tr}\,G + 10^{-4} I` (approximate; quadprog is not installed here), so
    manytask solves it itself.

    The paper takes :math:`J` over all shared parameters (``level="exact"``);
    ``level="representation"`` uses the gradients w.r.t. the shared features. Stateless: an
    absent task is not part of :math:`J` (weight 0) and the mean is over the present tasks.

    Args:
        tasks: The run's tasks.
        level: ``"exact"`` (all shared parameters) or ``"representation"``.

    Examples:
        >>> import torch
        >>> from manytask.tasks import Regression
        >>> dualproj = DualProj([Regression("a"), Regression("b")])
        >>> gramian = torch.tensor([[9.0, -3.0], [-3.0, 2.0]], dtype=torch.float64)  # g = (3, 0), (-1, 1)
        >>> dualproj.gramian_weights(gramian, torch.ones(2), torch.tensor([True, True]), step=0)
        tensor([0.5000, 0.7500], dtype=torch.float64)
    """

    stateful: ClassVar[bool] = False

    def gramian_weights(self, gramian: Tensor, losses: Tensor, present: Tensor, *, step: int) -> Tensor:
        g = gramian_array(gramian, "DualProj")
        t = g.shape[0]
        return to_weights(dual_cone_weights(g, np.full((1, t), 1.0 / t), "DualProj", step)[0], gramian)
