"""The min-norm point of a convex hull from its Gramian: MGDA's subproblem, solved exactly."""

from __future__ import annotations

import numpy as np
import torch
from scipy.linalg.lapack import dpotrs
from scipy.optimize import nnls
from torch import Tensor

from ._gramian_linalg import psd_root

__all__ = ["min_norm_weights"]


def min_norm_weights(gramian: Tensor, *, tol: float = 1e-9, max_iter: int = 1000) -> Tensor:
    r"""Weights :math:`\alpha \in \Delta^T` minimising :math:`\alpha^\top G \alpha`.

    This is the min-norm point of the convex hull of the gradients whose Gramian is :math:`G`
    (Désidéri 2012; `Sener & Koltun (2018), "Multi-Task Learning as Multi-Objective
    Optimization" <https://arxiv.org/abs/1810.04650>`_, Eq. 3):

    .. math::
        \min_\alpha \alpha^\top G \alpha \quad \text{s.t.} \quad \alpha \ge 0,\ 1^\top \alpha = 1,

    a convex QP whose KKT conditions are :math:`(G\alpha)_i = \alpha^\top G \alpha` where
    :math:`\alpha_i > 0` and :math:`(G\alpha)_i \ge \alpha^\top G \alpha` for every :math:`i`.
    Solved by Wolfe's (1976) min-norm-point algorithm, an active-set method that needs only
    :math:`G` and ends in finitely many steps. A major cycle adds the vertex
    :math:`j = \arg\min_j (G\alpha)_j` to the support ("corral") :math:`S`; minor cycles move
    towards the affine minimiser of :math:`S`, from
    :math:`[G_{SS}\; 1; 1^\top\; 0][\mu; \lambda] = [0; 1]` (least squares, so a singular
    :math:`G_{SS}` is fine), as far as :math:`\alpha \ge 0` allows, dropping the vertices whose
    weight reaches 0. Stopping rule: the KKT conditions hold to ``tol`` relative to the scale
    :math:`s = \max_i G_{ii}`, i.e. :math:`(G\alpha)_i \ge \alpha^\top G \alpha - \mathrm{tol}\, s`
    for every :math:`i`; or float64 rounding stops the objective from decreasing (only when
    ``tol`` is below ~1e-11 and :math:`G` ill-conditioned), and the best point is returned.
    Computed in float64 on the CPU; returned in the Gramian's dtype and device. Two distinct
    gradients take the closed form of Sener & Koltun's Algorithm 1,
    :math:`\alpha_1 = \mathrm{clip}_{[0,1]}\,(G_{22} - G_{12}) / (G_{11} + G_{22} - 2 G_{12})` (90 -> 19 µs).
    More tasks are first tried as one non-negative least-squares problem (compiled, about 10x
    faster than the Python corral loop at T = 8 to 128): with :math:`G = R^\top R`,
    :math:`\beta^* = \arg\min_{\beta \ge 0} \|R\beta\|^2 + (1 - 1^\top\beta)^2` is
    :math:`\alpha^* / (1 + \alpha^{*\top} G \alpha^*)` (for a fixed :math:`s = 1^\top\beta` the
    best direction is :math:`\alpha^*`, and :math:`s^2 m + (1 - s)^2` is least at
    :math:`s = 1/(1 + m)`), so :math:`\alpha^* = \beta^* / 1^\top\beta^*` (Lawson & Hanson's
    reduction of least-distance programming to NNLS, 1974, ch. 23). Before it, where :math:`G` is
    positive definite and :math:`G^{-1}1 > 0`, :math:`\alpha^* = G^{-1}1 / 1^\top G^{-1}1` (every
    task in the support: :math:`G\alpha^*` is constant, so the KKT conditions hold with equality),
    from the same Cholesky factor (110 -> 30 µs at T = 32). Either answer is kept only if it
    passes the stopping rule above; otherwise Wolfe's algorithm solves the problem.

    Args:
        gramian: Symmetric positive semi-definite ``[T, T]`` floating-point tensor.
        tol: Tolerance of the KKT conditions, relative to :math:`\max_i G_{ii}`.
        max_iter: Cap on the number of major cycles (each adds one vertex); ``RuntimeError``
            if reached.

    Returns:
        ``[T]`` non-negative weights summing to 1. With :math:`G = 0` every point is optimal
        and the weights are uniform; with a singular :math:`G` several points may be optimal
        and one of them is returned.

    Examples:
        >>> min_norm_weights(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
        tensor([0.5000, 0.5000])
    """
    if gramian.ndim != 2 or gramian.shape[0] != gramian.shape[1] or gramian.shape[0] == 0:
        raise ValueError(f"min_norm_weights expects a square Gramian [T, T] with T >= 1, got "
                         f"shape {list(gramian.shape)}.")
    if not gramian.is_floating_point():
        raise TypeError(f"min_norm_weights expects a floating-point Gramian, got {gramian.dtype}.")
    g = gramian.detach().cpu().double().numpy()
    if not np.isfinite(g).all():
        raise ValueError("min_norm_weights got a Gramian with NaN or infinite entries; the "
                         "per-task gradients are not finite.")
    t = g.shape[0]
    scale = float(np.abs(g).max())  # = max_i G_ii for a PSD matrix
    asymmetry = float(np.abs(g - g.T).max())
    if asymmetry > max(1e-6, float(np.sqrt(torch.finfo(gramian.dtype).eps))) * scale:  # rounding
        raise ValueError(f"min_norm_weights expects a symmetric Gramian [T, T] (G = J Jᵀ); got "
                         f"a non-symmetric {list(gramian.shape)} matrix (max |G - Gᵀ| = "
                         f"{asymmetry:.3g}).")
    if scale == 0.0:
        return torch.full((t,), 1.0 / t, dtype=gramian.dtype, device=gramian.device)
    g = (g + g.T) / (2 * scale)  # symmetric, unit scale
    curvature = g[0, 0] + g[1, 1] - 2 * g[0, 1] if t == 2 else 0.0
    if curvature > tol:  # two distinct gradients: Sener & Koltun's Algorithm 1 in closed form
        alpha = min(max((g[1, 1] - g[0, 1]) / curvature, 0.0), 1.0)
        return torch.tensor([alpha, 1.0 - alpha], dtype=gramian.dtype, device=gramian.device)
    by_nnls = _by_nnls(g, tol)
    if by_nnls is not None:
        return torch.from_numpy(by_nnls).to(dtype=gramian.dtype, device=gramian.device)
    start = int(np.argmin(np.diag(g)))
    weights = np.zeros(t)
    weights[start] = 1.0
    corral = [start]
    value = float(g[start, start])
    for _ in range(max_iter):
        gx = g @ weights
        j = int(np.argmin(gx))
        if value - gx[j] <= tol or j in corral:  # KKT holds (j in corral: only by rounding)
            break
        best, best_corral = weights, corral
        corral = corral + [j]
        while True:  # minor cycles: the affine minimiser of the corral, kept inside the simplex
            s = np.array(corral)
            k = len(s)
            ones = np.ones((k, 1))
            kkt = np.block([[g[np.ix_(s, s)], ones], [ones.T, np.zeros((1, 1))]])
            rhs = np.zeros(k + 1)
            rhs[-1] = 1.0
            mu = _affine_minimiser(kkt, rhs)[:k]
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
            if theta < 1.0:
                new[int(np.argmin(steps))] = 0.0  # the blocking vertex leaves despite rounding
            weights = np.zeros(t)
            weights[s] = new
            corral = [int(i) for i in s[new > 0]]
        new_value = float(weights @ g @ weights)
        if not new_value < value:  # no decrease left in float64: keep the best point
            weights, corral = best, best_corral
            break
        value = new_value
    else:
        raise RuntimeError(f"min_norm_weights did not converge in {max_iter} major cycles "
                           f"(T={t}).")
    weights = np.clip(weights, 0.0, None)
    weights /= weights.sum()
    return torch.from_numpy(weights).to(dtype=gramian.dtype, device=gramian.device)


def _by_nnls(g: np.ndarray, tol: float) -> np.ndarray | None:
    """The min-norm weights from one NNLS (see :func:`min_norm_weights`), or None when the answer
    fails the KKT test to ``tol`` or the NNLS does not terminate. Where ``G`` is positive definite
    and every task is in the support, the affine minimiser ``G⁻¹1 / 1ᵀG⁻¹1`` is the answer (it
    satisfies the KKT conditions with equality), from the Cholesky factor alone."""
    t = g.shape[0]
    try:  # R^T R = G: Cholesky where G is positive definite (6 us against 80 for eigh at T = 32)
        lower = np.linalg.cholesky(g)
    except np.linalg.LinAlgError:  # singular: the PSD square root
        root = psd_root(g)
    else:
        inverse_ones, info = dpotrs(lower, np.ones(t), lower=1)  # G⁻¹1 from the factor (LAPACK)
        if info == 0 and (inverse_ones > 0).all():
            alpha = inverse_ones / inverse_ones.sum()
            gx = g @ alpha
            if bool((gx >= alpha @ gx - tol).all()):
                return alpha
        root = lower.T
    target = np.zeros(t + 1)
    target[-1] = 1.0
    try:
        beta = nnls(np.vstack([root, np.ones((1, t))]), target, maxiter=50 * t)[0]
    except RuntimeError:
        return None
    if not beta.sum() > 0:
        return None
    alpha = beta / beta.sum()
    gx = g @ alpha
    return alpha if bool((gx >= alpha @ gx - tol).all()) else None


def _affine_minimiser(kkt: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """The KKT system's solution: LU where that gives a moderate exact solution (6x faster at
    T = 32), least squares (the minimum-norm solution) where ``G_SS`` is singular or nearly so."""
    try:
        solution = np.linalg.solve(kkt, rhs)
    except np.linalg.LinAlgError:
        return np.linalg.lstsq(kkt, rhs, rcond=None)[0]
    size = float(np.abs(solution).max()) if np.isfinite(solution).all() else np.inf
    if size < 1e6 and np.linalg.norm(kkt @ solution - rhs) <= 1e-10 * (1.0 + size):
        return solution
    return np.linalg.lstsq(kkt, rhs, rcond=None)[0]
