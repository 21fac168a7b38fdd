"""The min-norm point of a convex hull from its Gramian: MGDA's subproblem, solved exactly."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = ["min_norm_weights"]


def min_norm_weights(gramian: Tensor, *, tol: float = 1e-9, max_iter: int = 1000) -> Tensor:
    r"""Weights :math:`\alpha \in \Delta^T` minimising :math:`\alpha^\top G \alpha`.

    This is the min-norm point of the convex hull of the gradients whose Gramian is :math:`G`
    (Désidéri 2012; `Sener & Koltun (2018), "Multi-Task Learning as Multi-Objective
    Optimization" <https://arxiv.org/abs/1810.04650>`_, Eq. 3), found by Wolfe's (1976)
    min-norm-point algorithm, which needs only inner products and ends in finitely many steps:
    a major cycle adds the vertex :math:`j = \arg\min_j (G\alpha)_j` while
    :math:`\alpha^\top G \alpha - (G\alpha)_j > \mathrm{tol} \cdot \max_i G_{ii}`; minor cycles
    move to the affine minimiser of the current corral (solving
    :math:`[G_{SS}\; 1; 1^\top\; 0]`) and drop vertices whose weight reaches 0. On return the
    optimality condition of the simplex QP holds to that tolerance:
    :math:`(G\alpha)_i \ge \alpha^\top G \alpha - \mathrm{tol} \max_i G_{ii}` for every :math:`i`.
    Computed in float64 on the CPU; returned in the Gramian's dtype and device.

    Args:
        gramian: Symmetric positive semi-definite ``[T, T]``.
        tol: Relative tolerance of the optimality condition.
        max_iter: Cap on the total number of cycles (a warning-free error if reached).

    Returns:
        ``[T]`` non-negative weights summing to 1. With :math:`G = 0` every point is optimal
        and the weights are uniform.

    Examples:
        >>> min_norm_weights(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
        tensor([0.5000, 0.5000])
    """
    if gramian.ndim != 2 or gramian.shape[0] != gramian.shape[1] or gramian.shape[0] == 0:
        raise ValueError(f"min_norm_weights expects a square Gramian [T, T] with T >= 1, got shape "
                         f"{list(gramian.shape)}.")
    g = gramian.detach().cpu().double().numpy()
    if not np.isfinite(g).all():
        raise ValueError("min_norm_weights got a Gramian with NaN or infinite entries; the per-task "
                         "gradients are not finite.")
    scale = float(np.abs(np.diag(g)).max())
    if not np.allclose(g, g.T, rtol=1e-6, atol=1e-9 * max(scale, 1e-300)):
        raise ValueError("min_norm_weights expects a symmetric Gramian [T, T] (G = J Jᵀ); got a "
                         "non-symmetric matrix.")
    t = g.shape[0]
    if scale == 0.0:
        return torch.full((t,), 1.0 / t, dtype=gramian.dtype, device=gramian.device)
    g = (g + g.T) / (2 * scale)  # symmetric, unit scale
    start = int(np.argmin(np.diag(g)))
    weights = np.zeros(t)
    weights[start] = 1.0
    corral = [start]
    for _ in range(max_iter):
        gx = g @ weights
        j = int(np.argmin(gx))
        if weights @ gx - gx[j] <= tol or j in corral:
            break
        corral.append(j)
        while True:  # minor cycles: the affine minimiser of the corral, kept inside the simplex
            s = np.array(corral)
            k = len(s)
            kkt = np.block([[g[np.ix_(s, s)], np.ones((k, 1))], [np.ones((1, k)), np.zeros((1, 1))]])
            rhs = np.zeros(k + 1)
            rhs[-1] = 1.0
            mu = np.linalg.lstsq(kkt, rhs, rcond=None)[0][:k]
            if (mu > tol).all():
                weights = np.zeros(t)
                weights[s] = mu
                break
            current = weights[s]
            falling = mu < current
            steps = np.where(falling, current / np.where(falling, current - mu, 1.0), np.inf)
            theta = min(1.0, float(steps.min()))
            new = current + theta * (mu - current)
            new[new <= tol] = 0.0
            weights = np.zeros(t)
            weights[s] = new
            corral = [int(i) for i in s[new > 0]]
    else:
        raise RuntimeError(f"min_norm_weights did not converge in {max_iter} cycles (T={t}).")
    weights = np.clip(weights, 0.0, None)
    weights /= weights.sum()
    return torch.from_numpy(weights).to(dtype=gramian.dtype, device=gramian.device)
