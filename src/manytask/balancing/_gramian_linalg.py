r"""Linear algebra on a Gramian :math:`G = J J^\top` shared by the Gramian aggregators
(UPGrad, DualProj, CAGrad, IMTL-G, Aligned-MTL, ConFIG).

Everything runs in float64 on the CPU (the Gramians are ``[T', T']`` with a few tasks). Working on
the Gramian instead of the Jacobian squares the condition number: an eigenvalue of :math:`G`
below :func:`rank_tolerance` (``T' · eps(dtype) · λ_max``, the rule of numpy's ``matrix_rank``
and of Aligned-MTL's official code) is indistinguishable from rounding and counts as zero, i.e.
singular values of :math:`J` below about :math:`\sqrt{T' \epsilon}\,\sigma_{\max}` are lost.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import nnls
from torch import Tensor

__all__ = ["dual_cone_weights", "gramian_array", "nonnegative_qp", "psd_pinv", "psd_root", "rank_tolerance",
           "to_weights"]


def gramian_array(gramian: Tensor, owner: str) -> np.ndarray:
    """``gramian`` ``[T', T']`` as a symmetric float64 array; ``ValueError`` naming ``owner`` if it
    is not square or not finite."""
    if gramian.ndim != 2 or gramian.shape[0] != gramian.shape[1] or gramian.shape[0] == 0:
        raise ValueError(f"{owner} expects a square Gramian [T', T'] with T' >= 1, got shape {list(gramian.shape)}.")
    g = gramian.detach().cpu().double().numpy()
    if not np.isfinite(g).all():
        raise ValueError(f"{owner} got a Gramian with NaN or infinite entries; the per-task gradients are not finite.")
    return (g + g.T) / 2


def to_weights(weights: np.ndarray, like: Tensor) -> Tensor:
    """``weights`` in the dtype and on the device of ``like``."""
    return torch.from_numpy(np.ascontiguousarray(weights)).to(dtype=like.dtype, device=like.device)


def gradient_norms(g: np.ndarray) -> np.ndarray:
    """``[T]`` norms of the gradients whose Gramian is ``g`` (negative rounding on the diagonal: 0)."""
    return np.sqrt(np.clip(np.diag(g), 0.0, None))


def rank_tolerance(eigenvalues: np.ndarray, dtype: torch.dtype) -> float:
    """Eigenvalues at or below this are zero: ``T' · eps(dtype) · λ_max`` (``dtype``: the Gramian's)."""
    return float(max(eigenvalues.max(initial=0.0), 0.0)) * len(eigenvalues) * torch.finfo(dtype).eps


def psd_root(g: np.ndarray) -> np.ndarray:
    r""":math:`R` ``[T, T]`` with :math:`R^\top R = G` (negative rounding eigenvalues clipped to 0):
    column :math:`i` of :math:`R` is :math:`g_i` in an orthonormal basis of the gradients' span."""
    lam, v = np.linalg.eigh(g)
    return np.sqrt(np.clip(lam, 0.0, None))[:, None] * v.T


def psd_pinv(g: np.ndarray, dtype: torch.dtype) -> np.ndarray:
    """Moore–Penrose pseudo-inverse of the PSD ``g``, eigenvalues below :func:`rank_tolerance` dropped."""
    lam, v = np.linalg.eigh(g)
    keep = lam > rank_tolerance(lam, dtype)
    return (v[:, keep] / lam[keep]) @ v[:, keep].T


def dual_cone_weights(g: np.ndarray, targets: np.ndarray, owner: str, step: int) -> np.ndarray:
    r"""Weights of the projections of :math:`J^\top u` onto the dual cone :math:`\{x : Jx \ge 0\}`,
    one per row :math:`u` of ``targets`` ``[K, T]``.

    By Proposition 1 of Quinton & Rey (2024), :math:`\pi_J(J^\top u) = J^\top v` with

    .. math::
        v = \arg\min_{v \ge u} v^\top G v .

    The dual cone depends only on the gradients' directions, so the problem is solved on the
    unit-diagonal :math:`\hat G = D^{-1} G D^{-1}` (:math:`D = \mathrm{diag}(\|g_i\|)`; a zero
    gradient keeps scale 1) for :math:`\hat v = D v \ge D u`, which keeps tasks whose gradient
    norms differ by orders of magnitude at full relative precision. With
    :math:`\hat v = D u + x`, :math:`x \ge 0`, it is the non-negative quadratic program
    :math:`\min_{x \ge 0} x^\top \hat G x + 2 (\hat G D u)^\top x`, solved for all ``K`` rows at
    once by :func:`nonnegative_qp`. Raises ``RuntimeError`` naming ``owner`` and ``step`` if it
    does not terminate.
    """
    norms = gradient_norms(g)
    if not norms.any():  # every gradient is 0: every v >= u is optimal, and J^T u = 0 anyway
        return targets.copy()
    scale = np.where(norms > 0, norms, 1.0)
    unit = g / scale[:, None] / scale[None, :]
    u = targets * scale
    try:
        x = nonnegative_qp(unit, u)
    except RuntimeError as error:
        raise RuntimeError(f"{owner}: the projection onto the dual cone (non-negative least squares) did "
                           f"not converge at step {step} ({error}).") from None
    return (u + x) / scale


def _free_set_solves(g: np.ndarray, b: np.ndarray, free: np.ndarray) -> np.ndarray:
    """``[K, T]``: row ``k`` solves :math:`G_{FF} x_F = -b_F` on its free set ``F = free[k]``, 0 elsewhere.

    The ``K`` systems are gathered to the size ``m`` of the largest free set (each padded with
    identity rows) and solved in one batched call: ``K m³`` instead of ``K T³`` when few tasks are
    free (UPGrad at T = 128 with 80 free: 4x less)."""
    k, t = b.shape
    size = max(int(free.sum(axis=1).max()), 1)
    index = np.argsort(~free, axis=1, kind="stable")[:, :size]  # each row's free tasks first
    valid = np.take_along_axis(free, index, axis=1)  # [K, m]
    gathered = np.where(valid[:, :, None] & valid[:, None, :], g[index[:, :, None], index[:, None, :]], 0.0)
    system = gathered + (np.eye(size, dtype=bool) & ~valid[:, :, None])
    rhs = np.where(valid, np.take_along_axis(b, index, axis=1), 0.0)
    solved = -np.linalg.solve(system, rhs[:, :, None])[:, :, 0]
    xs = np.zeros((k, t))
    np.put_along_axis(xs, index, np.where(valid, solved, 0.0), axis=1)
    return xs


def nonnegative_qp(g: np.ndarray, u: np.ndarray, max_rounds: int = 10) -> np.ndarray:
    r"""``[K, T]``: row :math:`k` is :math:`\arg\min_{x \ge 0} (x + u_k)^\top G (x + u_k)` (``G`` PSD
    ``[T, T]``, ``u`` ``[K, T]``), i.e. :math:`\min_{x \ge 0} x^\top G x + 2 b_k^\top x` with :math:`b_k = G u_k`.

    All ``K`` problems share ``G``, so they are solved together by the primal–dual active-set
    method of Hintermüller, Ito & Kunisch (2002, SIAM J. Optim. 13(3), Alg. 1, :math:`c = 1`): on
    the free set :math:`F_k` solve :math:`G_{FF} x_F = -b_F` (``x = 0`` elsewhere; the ``K``
    systems in one batched solve, :func:`_free_set_solves`), take the multipliers :math:`\lambda = G x + b`, and move
    to :math:`F' = \{j : x_j > 0\} \cup \{j : \lambda_j < 0\}` until the KKT conditions
    :math:`x \ge 0,\ \lambda \ge 0,\ \lambda_F = 0` hold (to :math:`\sqrt{\epsilon}` relative).
    The first free set is :math:`\{j : b_j < 0\}` (the tasks :math:`u` conflicts with), and on
    well-conditioned Gramians two to four rounds suffice. PDAS is finite for M-matrices only, and a
    singular :math:`G_{FF}` has no unique solve: problems not settled after ``max_rounds`` are
    solved one by one, exactly, by Lawson & Hanson's NNLS (``scipy.optimize.nnls``):
    :math:`\min_{x \ge 0} \|R x + R u_k\|^2` with :math:`G = R^\top R`.
    """
    b = u @ g
    k, t = b.shape
    eigenvalues = np.clip(np.linalg.eigvalsh(g), 0.0, None)  # ascending (negative rounding: 0)
    x = np.zeros((k, t))
    todo = np.arange(k)
    if eigenvalues[0] > rank_tolerance(eigenvalues, torch.float64):  # full rank; a singular G: NNLS only
        free = b < 0
        tol = np.sqrt(np.finfo(np.float64).eps)
        for _ in range(max_rounds):
            f = free[todo]
            try:
                xs = _free_set_solves(g, b[todo], f)
            except np.linalg.LinAlgError:  # a numerically singular G_FF: these go to NNLS
                break
            lam = xs @ g + b[todo]
            bound = (tol * (1.0 + np.abs(xs).max(axis=1)) * (1.0 + np.abs(b[todo]).max(axis=1)))[:, None]
            done = ((xs >= -bound) & (lam >= -bound) & (~f | (np.abs(lam) <= bound))).all(axis=1)
            x[todo] = np.clip(xs, 0.0, None)
            free[todo] = (xs > 0) | (lam < -bound)
            todo = todo[~done]
            if not len(todo):
                return x
    if len(todo):  # what the active set left: NNLS on R with R^T R = G
        root = psd_root(g)
        for row in todo:
            x[row] = nnls(root, -root @ u[row], maxiter=50 * t)[0]
    return x
