"""Exact proximal operators and projections used by the linear MTL solvers.

Every function takes the point ``v`` and the threshold ``tau`` (step size times the penalty
weight) and returns ``argmin_x tau * h(x) + 0.5 * ||x - v||^2`` for its penalty ``h``. Matrices use
the estimators' layout: one row per task, one column per feature, i.e. ``[T, d]``.
"""

from __future__ import annotations

import numpy as np


def prox_l1(v: np.ndarray, tau: float) -> np.ndarray:
    """Soft thresholding, the prox of ``tau * ||x||_1``."""
    return np.sign(v) * np.maximum(np.abs(v) - tau, 0.0)


def prox_group_l2(v: np.ndarray, tau: float, axis: int) -> np.ndarray:
    """Group soft thresholding: prox of ``tau * sum_g ||x_g||_2`` with groups along ``axis``.

    ``axis=0`` groups each column (a feature across tasks: the L2,1 norm of joint feature
    selection); ``axis=1`` groups each row (a task's weight vector, as in robust MTL).
    """
    norms = np.linalg.norm(v, axis=axis, keepdims=True)
    scale = np.maximum(1.0 - tau / np.maximum(norms, np.finfo(float).tiny), 0.0)
    return v * scale


def project_l1_ball(v: np.ndarray, radius: float) -> np.ndarray:
    """Euclidean projection of each row of ``v`` onto the l1 ball of ``radius``.

    Sort-based algorithm of Duchi et al. (2008), exact.
    """
    v2 = np.atleast_2d(v)
    out = v2.copy()
    a = np.abs(v2)
    inside = a.sum(axis=1) <= radius
    if np.all(inside):
        return out.reshape(v.shape)
    mu = -np.sort(-a[~inside], axis=1)
    cumsum = np.cumsum(mu, axis=1) - radius
    k = np.arange(1, mu.shape[1] + 1)
    cond = mu - cumsum / k > 0
    rho = cond.shape[1] - 1 - np.argmax(cond[:, ::-1], axis=1)
    theta = cumsum[np.arange(len(rho)), rho] / (rho + 1)
    out[~inside] = np.sign(v2[~inside]) * np.maximum(a[~inside] - theta[:, None], 0.0)
    return out.reshape(v.shape)


def prox_group_linf(v: np.ndarray, tau: float, axis: int) -> np.ndarray:
    """Prox of ``tau * sum_g ||x_g||_inf`` with groups along ``axis`` (Moreau decomposition).

    ``prox_{tau ||.||_inf}(u) = u - P_{||.||_1 <= tau}(u)``.
    """
    if tau <= 0:
        return v.copy()
    groups = v.T if axis == 0 else v
    out = groups - project_l1_ball(groups, tau)
    return out.T if axis == 0 else out


def prox_trace(v: np.ndarray, tau: float) -> np.ndarray:
    """Singular value thresholding, the prox of ``tau * ||x||_*`` (trace / nuclear norm)."""
    u, s, vt = np.linalg.svd(v, full_matrices=False)
    s = np.maximum(s - tau, 0.0)
    keep = s > 0
    return (u[:, keep] * s[keep]) @ vt[keep]


def prox_squared_l1(v: np.ndarray, tau: float) -> np.ndarray:
    """Prox of ``tau/2 * (sum_i |x_i|)^2``, the squared l1 norm (exact, sort-based).

    From the optimality conditions, ``x_i = max(|v_i| - tau * S, 0) sign(v_i)`` with ``S =
    sum_i |x_i|``. With ``s`` the ``|v_i|`` sorted descending and ``m_k = (s_1 + ... + s_k) / (1
    + tau k)``, the support is the ``k`` largest entries for the largest ``k`` with ``s_k > tau
    m_k``, and ``S = m_k`` (the rule of Kowalski, "Sparse regression using mixed norms", Appl.
    Comput. Harmon. Anal. 27(3), 2009, for the squared l1 norm).
    """
    s = -np.sort(-np.abs(v).ravel())
    m = np.cumsum(s) / (1.0 + tau * np.arange(1, s.size + 1))
    support = np.flatnonzero(s > tau * m)
    if support.size == 0:  # v = 0
        return np.zeros_like(v)
    return np.sign(v) * np.maximum(np.abs(v) - tau * m[support[-1]], 0.0)


def prox_squared_trace(v: np.ndarray, tau: float) -> np.ndarray:
    """Prox of ``tau/2 * ||x||_*^2``: :func:`prox_squared_l1` on the singular values.

    The penalty depends on the singular values only, so its prox keeps the singular vectors
    (Lewis, "The convex analysis of unitarily invariant matrix functions", J. Convex Anal. 2(1),
    1995; Parikh & Boyd, "Proximal algorithms", 2014, Sec. 6.7). MTRL's penalty
    ``tr(W^T Omega^{-1} W)`` minimised over ``Omega`` is ``||W||_*^2`` (Zhang & Yeung 2010).
    """
    u, s, vt = np.linalg.svd(v, full_matrices=False)
    s = prox_squared_l1(s, tau)
    keep = s > 0
    return (u[:, keep] * s[keep]) @ vt[keep]


def project_capped_simplex(values: np.ndarray, total: float) -> np.ndarray:
    """Projection of ``values`` onto ``{x : 0 <= x_i <= 1, sum_i x_i = total}`` (exact).

    Solves ``sum_i clip(values_i - theta, 0, 1) = total`` for ``theta``; the left side is
    piecewise linear and non-increasing in ``theta`` with breakpoints ``values`` and
    ``values - 1``, so the root is found exactly on the right segment.
    """
    if not 0 <= total <= values.size:
        raise ValueError(f"total must be in [0, {values.size}]; got {total}.")

    def s(theta: float) -> float:
        return float(np.clip(values - theta, 0.0, 1.0).sum())

    points = np.unique(np.concatenate([values, values - 1.0]))
    sums = np.array([s(p) for p in points])  # non-increasing
    # find consecutive breakpoints with sums[i] >= total >= sums[i+1]
    idx = np.searchsorted(-sums, -total, side="left")
    if idx == 0:
        theta = points[0]
    elif idx >= len(points):
        theta = points[-1]
    else:
        lo, hi = points[idx - 1], points[idx]
        s_lo, s_hi = sums[idx - 1], sums[idx]
        theta = hi if s_lo == s_hi else lo + (s_lo - total) * (hi - lo) / (s_lo - s_hi)
    return np.clip(values - theta, 0.0, 1.0)


def project_cmtl_set(m: np.ndarray, k: float) -> np.ndarray:
    """Projection of a symmetric matrix onto ``{M : 0 <= M <= I, tr(M) = k}`` (spectral)."""
    sym = 0.5 * (m + m.T)
    eigval, eigvec = np.linalg.eigh(sym)
    return (eigvec * project_capped_simplex(eigval, k)) @ eigvec.T
