r"""The weights of Nash-MTL and FairGrad: :math:`G w = w^{-1/\alpha}`, solved by damped Newton.

Both methods combine the task gradients with weights :math:`w > 0` solving
:math:`(G w)_i = w_i^{-1/\alpha}` (:math:`\alpha = 1`: Nash-MTL's :math:`G w = 1/w`). This is the
stationarity condition of the strictly convex problem

.. math::
    \min_{w > 0}\ \tfrac12 w^\top G w - \sum_i h_\alpha(w_i), \qquad
    h_\alpha'(w) = w^{-1/\alpha}, \quad
    h_\alpha(w) = \begin{cases} \log w & \alpha = 1 \\ \frac{w^{1-1/\alpha}}{1-1/\alpha} & \alpha \ne 1,
    \end{cases}

(:math:`h_\alpha` is concave, so the objective is strictly convex on :math:`w > 0` for any PSD
:math:`G`), solved here by Newton's method with backtracking in float64.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["check_solver_options", "fair_weights"]

_EPS64 = torch.finfo(torch.float64).eps
#: Where float64 rounding of the terms stops the progress, the Newton decrement below which the
#: point is accepted (diverging iterates, e.g. opposite gradients with eps=0, keep a decrement near 1).
_ROUNDING_DECREMENT = 1e-4


def check_solver_options(owner: str, eps: float, tol: float, max_iter: int, max_norm: float) -> None:
    """``ValueError`` naming the option of ``owner`` that is out of range."""
    checks = (("eps", eps, math.isfinite(eps) and eps >= 0, "a finite number >= 0"),
              ("tol", tol, math.isfinite(tol) and tol > 0, "a finite number > 0"),
              ("max_iter", max_iter, isinstance(max_iter, int) and max_iter >= 1, "an integer >= 1"),
              ("max_norm", max_norm, math.isfinite(max_norm) and max_norm >= 0, "a finite number >= 0 (0: off)"))
    for name, value, ok, need in checks:
        if not ok:
            raise ValueError(f"The {name!r} parameter of {owner} must be {need}. Got {value!r} instead.")


def _check_gramian(gramian: Tensor, owner: str) -> Tensor:
    if gramian.ndim != 2 or gramian.shape[0] != gramian.shape[1] or gramian.shape[0] == 0:
        raise ValueError(f"{owner} expects a square Gramian [T, T] with T >= 1, got shape {list(gramian.shape)}.")
    if not gramian.is_floating_point():
        raise TypeError(f"{owner} expects a floating-point Gramian, got {gramian.dtype}.")
    g = gramian.detach().to("cpu", torch.float64)
    if not bool(torch.isfinite(g).all()):
        raise ValueError(f"{owner} got a Gramian with NaN or infinite entries; the per-task gradients are not finite.")
    scale = float(g.abs().max())
    asymmetry = float((g - g.T).abs().max())
    if asymmetry > max(1e-6, math.sqrt(torch.finfo(gramian.dtype).eps)) * scale:
        raise ValueError(f"{owner} expects a symmetric Gramian [T, T] (G = J Jᵀ); got a non-symmetric "
                         f"{list(gramian.shape)} matrix (max |G - Gᵀ| = {asymmetry:.3g}).")
    return (g + g.T) / 2


def _utility(v: Tensor, r: Tensor, alpha: float) -> Tensor:
    """``sum_i r_i h_alpha(v_i)``."""
    if alpha == 1.0:
        return (r * v.log()).sum()
    p = 1.0 - 1.0 / alpha
    return (r * v.pow(p)).sum() / p


def fair_weights(gramian: Tensor, alpha: float, *, init: Tensor | None = None, eps: float = 1e-6,
                 tol: float = 1e-9, max_iter: int = 100, owner: str = "FairGrad", step: int = 0) -> Tensor:
    r"""Weights :math:`w` ``[T]`` with :math:`(G + \epsilon\,\mathrm{diag}\,G)\, w = w^{-1/\alpha}`.

    **Normalisation.** With :math:`d_i = \sqrt{G_{ii}}`, :math:`D = \mathrm{diag}(d)`,
    :math:`C = D^{-1} G D^{-1}` (unit diagonal) and :math:`v = D w`, the equation becomes
    :math:`(C + \epsilon I) v = r \odot v^{-1/\alpha}` with :math:`r_i = d_i^{1/\alpha - 1}`, the
    stationarity condition of :math:`\tfrac12 v^\top (C + \epsilon I) v - \sum_i r_i h_\alpha(v_i)`,
    which is what Newton's method minimises. For :math:`\alpha = 1`, :math:`r = 1`: the problem
    depends on :math:`C` only, so scaling one task's gradient by :math:`c` divides its weight by
    :math:`c` and leaves :math:`\sum_i w_i g_i` unchanged (up to rounding).

    **Singular Gramians.** The regulariser :math:`\epsilon\,\mathrm{diag}(G)` (Tikhonov, relative
    to each task's own squared norm, so the scale property above holds exactly) keeps the
    problem bounded when some non-negative combination of the gradients vanishes (e.g. two
    exactly opposite gradients), where :math:`G w = w^{-1/\alpha}` has no solution: the weights
    are then of order :math:`\epsilon^{-1/2}` and the update is close to 0, the limit of nearly
    opposite gradients. A singular Gramian without such a combination (e.g. :math:`g_3 = g_1 + g_2`)
    has an exact solution, which :math:`\epsilon = 0` finds. A task whose gradient is zero
    (:math:`G_{ii}` below the smallest normal number of the Gramian's dtype) gets weight 0 — any
    weight gives the same update — and is left out of the problem.

    **Newton's method.** Each step solves the Newton system by Cholesky, keeps :math:`v > 0`
    (at most 0.99 of the way to the boundary), and halves the step until the objective decreases
    (Armijo, slope 1/4; a full step is taken once the Newton decrement is below 1e-3, where
    rounding can hide the decrease). It stops when every equation holds to relative accuracy
    ``tol``, :math:`|((C + \epsilon I) v)_i - r_i v_i^{-1/\alpha}| \le \mathrm{tol}\; r_i v_i^{-1/\alpha}`
    (for the weights: :math:`|(G w)_i\, w_i^{1/\alpha} - 1| \le \mathrm{tol}`, up to
    :math:`\epsilon`), or, where float64 cannot verify that (the rounding of the terms of
    :math:`(Cv)_i` exceeds it: an ill-conditioned :math:`C`, or a right-hand side that is tiny
    for small :math:`\alpha`), when every residual is within 4 times that rounding and the
    Newton decrement :math:`(\nabla f^\top \nabla^2 f^{-1} \nabla f)^{1/2}` is below 1e-4
    (iterates that diverge keep a decrement near 1). The decrement alone is not the test: it can
    be tiny with a tiny weight (1e-27) still far off. It starts from
    ``init`` (mapped to :math:`v`) when that is positive and finite, else from
    :math:`v_i \propto r_i^{\alpha/(\alpha+1)}` (the solution for :math:`C = I`) scaled to the best
    multiple. ``RuntimeError`` if it has not converged after ``max_iter`` steps; ``ValueError``
    if the Newton matrix is not positive definite (the Gramian has a negative eigenvalue beyond
    :math:`\epsilon`, or :math:`\epsilon = 0` and the weights diverge). Both name ``owner`` and
    ``step`` and suggest the fix; nothing is returned silently.

    Args:
        gramian: Symmetric PSD ``[T, T]``.
        alpha: :math:`\alpha > 0` (1: Nash-MTL).
        init: Starting weights ``[T]`` (e.g. the previous step's), or None.
        eps: :math:`\epsilon \ge 0`.
        tol: Relative tolerance on each equation (see above).
        max_iter: Maximum number of Newton steps.
        owner: The method's name, for error messages.
        step: The training step, for error messages.

    Returns:
        ``[T]`` weights in the Gramian's dtype and device: positive, 0 for zero gradients.
    """
    if not (math.isfinite(alpha) and alpha > 0):
        raise ValueError(f"fair_weights needs alpha > 0 (finite). Got {alpha!r} instead.")
    g = _check_gramian(gramian, owner)
    t = g.shape[0]
    weights = torch.zeros(t, dtype=torch.float64)
    active = g.diagonal() > torch.finfo(gramian.dtype).tiny
    index = active.nonzero().flatten()
    if index.numel() > 0:
        ga = g[index][:, index]
        d = ga.diagonal().sqrt()
        c = ga / d[:, None] / d[None, :]
        c = c + eps * torch.eye(index.numel(), dtype=torch.float64)
        r = d.pow(1.0 / alpha - 1.0)
        start = None
        if init is not None:
            previous = init.detach().to("cpu", torch.float64)[index]
            if bool((torch.isfinite(previous) & (previous > 0)).all()):
                start = d * previous
        v = _newton(c, r, alpha, start, tol, max_iter, owner, step)
        weights[index] = v / d
    return weights.to(dtype=gramian.dtype, device=gramian.device)


def _newton(c: Tensor, r: Tensor, alpha: float, start: Tensor | None, tol: float, max_iter: int, owner: str,
            step: int) -> Tensor:
    """Minimise ``½ vᵀ c v - sum_i r_i h_alpha(v_i)`` over ``v > 0``."""
    if start is None:
        v = r.pow(alpha / (alpha + 1.0))
        # the best multiple s v: s^(1 + 1/alpha) = sum_i r_i v_i^(1 - 1/alpha) / vᵀ c v
        s = ((r * v.pow(1.0 - 1.0 / alpha)).sum() / (v @ c @ v)).pow(alpha / (alpha + 1.0))
        v = v * s if bool(torch.isfinite(s) & (s > 0)) else v
    else:
        v = start.clone()

    def objective(x: Tensor) -> float:
        return float(0.5 * x @ c @ x - _utility(x, r, alpha))

    decrement = residual = math.inf
    for _ in range(max_iter):
        power = v.pow(-1.0 / alpha)
        grad = c @ v - r * power
        hessian = c + torch.diag(r * power / (alpha * v))
        factor, info = torch.linalg.cholesky_ex(hessian)
        if int(info) != 0:
            smallest = float(torch.linalg.eigvalsh(c).min())
            raise ValueError(f"{owner} at step {step}: the Newton matrix is not positive definite. Either the "
                             f"Gramian is not positive semi-definite (smallest eigenvalue of its normalised form "
                             f"plus eps: {smallest:.3g}), or eps=0 and the weights grew without bound because a "
                             "non-negative combination of the gradients vanishes. Set or raise 'eps'.")
        newton = -torch.cholesky_solve(grad[:, None], factor).flatten()
        decrement = math.sqrt(max(float(-(grad @ newton)), 0.0))
        target = r * power  # each equation's right-hand side, > 0
        residual = float((grad.abs() / target).max())
        rounding = bool((grad.abs() <= 4 * _EPS64 * (c.abs() @ v + target)).all())  # float64 can do no better
        if residual <= tol or (rounding and decrement <= _ROUNDING_DECREMENT):
            return v
        falling = newton < 0
        room = float((-v[falling] / newton[falling]).min()) if bool(falling.any()) else math.inf
        t = min(1.0, 0.99 * room)
        if decrement > 1e-3:
            current = objective(v)
            while objective(v + t * newton) > current - 0.25 * t * decrement**2:
                t *= 0.5
                if t < 1e-20:
                    break
        v = v + t * newton
    raise RuntimeError(f"{owner} at step {step}: Newton's method did not converge in {max_iter} iterations "
                       f"(relative residual {residual:.3g} > tol {tol:g}). With eps=0 the problem is unbounded "
                       "when a non-negative combination of the gradients vanishes (e.g. two opposite gradients): "
                       "set eps > 0; otherwise raise 'max_iter'.")
