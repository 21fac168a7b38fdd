"""IMTL-G (Liu, Li, Kuang, Xue, Chen, Yang, Liao & Zhang, 2021)."""

from __future__ import annotations

import warnings
from typing import ClassVar

import numpy as np
from torch import Tensor

from ._aggregation import _LEVELS
from ._base import GramianBalancer
from ._factory import BalancerInfo, register_balancer
from ._gramian_linalg import gradient_norms, gramian_array, psd_pinv, to_weights

__all__ = ["IMTLG"]


@register_balancer("imtl-g", "IMTL-G: the combination with equal projections on every task's unit gradient.",
                   BalancerInfo("Liu et al. 2021, ICLR (IMTL) Sec. 3.2 (IMTL-G closed form)", "gramian", _LEVELS))
class IMTLG(GramianBalancer):
    r"""Impartial gradient balancing (IMTL-G) of `Liu et al. (2021), "Towards Impartial
    Multi-task Learning" <https://openreview.net/forum?id=IMPnRXEWpvr>`_ (ICLR), Sec. 3.2.

    The update :math:`g = \sum_i \alpha_i g_i` with :math:`\sum_i \alpha_i = 1` has equal
    projections on every unit gradient :math:`u_i = g_i / \|g_i\|`:
    :math:`g^\top u_1 = g^\top u_i` for all :math:`i`. The paper's closed form (Sec. 3.2), with rows
    :math:`D_i = g_1 - g_{i+1}` and :math:`U_i = u_1 - u_{i+1}`, is

    .. math::
        \alpha_{2:T} = g_1^\top U^\top (D U^\top)^{-1}, \qquad \alpha_1 = 1 - \textstyle\sum_{i \ge 2} \alpha_i .

    On the Gramian the conditions read :math:`G\alpha = \lambda\,\delta` with
    :math:`\delta_i = \|g_i\| = \sqrt{G_{ii}}`; with :math:`D = \mathrm{diag}(\delta)` and the unit
    gradients' Gramian :math:`\hat G = D^{-1} G D^{-1}` (unit diagonal) they read
    :math:`\hat G (D\alpha) = \lambda 1`, so

    .. math::
        \alpha = \frac{D^{-1} \hat G^{+} 1}{1^\top D^{-1} \hat G^{+} 1},

    the paper's solution whenever :math:`G` is invertible (then it equals
    :math:`G^{-1}\delta / 1^\top G^{-1}\delta`). Solving on :math:`\hat G` keeps gradients whose norms
    differ by orders of magnitude at full relative precision: the pseudo-inverse of the raw
    :math:`G` drops its small eigenvalues as rounding once the norms differ by about
    :math:`1/\sqrt{T' \epsilon}` (:math:`10^{3.5}` in float32), and the projections came out
    unequal by orders of magnitude. Linearly dependent directions (a singular :math:`\hat G`,
    where the paper's :math:`D U^\top` may be singular too): the pseudo-inverse, eigenvalues below
    ``T' · eps(dtype)`` (:math:`\hat G`'s largest is at least 1) taken as zero — Quinton & Rey's
    (2024, App.) generalisation, here on the unit gradients (torchjd's ``IMTLGWeighting`` takes
    :math:`G^{+}\delta`: the same when :math:`G` is invertible). The projections are then equal only
    if :math:`1` lies in the range of :math:`\hat G`; otherwise :math:`\hat G^{+} 1` is the
    least-squares compromise. A zero gradient gets weight 0. All gradients zero: uniform weights
    (the update is 0).

    .. warning:: The normalisation :math:`\sum_i \alpha_i = 1` fixes the sign of the update by the
        sign of :math:`1^\top G^{-1}\delta`, which is negative for some strongly conflicting
        gradients (about 9 % of random Gaussian Jacobians with three to five tasks and row
        norms spread over :math:`e^{\pm 4}`). The paper's update then has equal *negative*
        projections: it increases every loss to first order. manytask computes the paper's
        method as published and does not flip the sign. The same effect makes the direction
        depend on a task's loss scale (:math:`1^\top G^{-1}\delta` changes sign), so no scale
        claim is made. When :math:`1^\top G^{+}\delta = 0` the method has no solution: the weights
        are 0 (no update of the shared parameters) and a ``RuntimeWarning`` names the step.

    The closed form is written on the gradients of the shared parameters (``level="exact"``, the default);
    ``level="representation"`` takes them w.r.t. the shared features, the cheaper MGDA-UB-style
    variant (which of the two the paper's experiments used could not be checked here).
    Stateless: an absent task is not part of :math:`J` (weight 0). (IMTL-L, the loss-scale half of
    the paper, is the separate ``imtl-l`` balancer.)

    Args:
        tasks: The run's tasks.
        level: ``"exact"`` (all shared parameters) or ``"representation"``.

    Examples:
        >>> import torch
        >>> from manytask.tasks import Regression
        >>> imtl = IMTLG([Regression("a"), Regression("b")])
        >>> gramian = torch.tensor([[4.0, 0.0], [0.0, 1.0]], dtype=torch.float64)  # orthogonal, norms 2, 1
        >>> imtl.gramian_weights(gramian, torch.ones(2), torch.tensor([True, True]), step=0)
        tensor([0.3333, 0.6667], dtype=torch.float64)
    """

    stateful: ClassVar[bool] = False

    def gramian_weights(self, gramian: Tensor, losses: Tensor, present: Tensor, *, step: int) -> Tensor:
        g = gramian_array(gramian, "IMTL-G")
        t = g.shape[0]
        norms = gradient_norms(g)
        if not norms.any():
            return to_weights(np.full(t, 1.0 / t), gramian)
        nonzero = norms > 0
        scale = norms[nonzero]
        unit = g[np.ix_(nonzero, nonzero)] / np.outer(scale, scale)  # the unit gradients' Gramian
        beta = np.zeros(t)
        beta[nonzero] = psd_pinv(unit, gramian.dtype).sum(axis=1) / scale  # D⁻¹ Ĝ⁺ 1
        total = float(beta.sum())
        if not abs(total) > 1e-12 * float(np.abs(beta).sum()):
            warnings.warn(f"IMTL-G at step {step}: no combination with weights summing to 1 has equal projections "
                          "on the unit gradients (1ᵀ G⁺ δ = 0); the shared parameters get no update.",
                          RuntimeWarning, stacklevel=2)
            return to_weights(np.zeros(t), gramian)
        return to_weights(beta / total, gramian)
