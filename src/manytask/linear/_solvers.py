"""Accelerated proximal gradient (FISTA) with backtracking and adaptive restart.

Solves ``min_x f(x) + g(x)`` with ``f`` smooth (gradient available) and ``g`` simple (exact
proximal operator available). References: Beck & Teboulle, "A fast iterative
shrinkage-thresholding algorithm for linear inverse problems", SIAM J. Imaging Sci. 2009
(FISTA with backtracking, Sec. 4); O'Donoghue & Candes, "Adaptive restart for accelerated
gradient schemes", Found. Comput. Math. 2015 (function-value restart, which also keeps the
objective monotone).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["APGResult", "accelerated_proximal_gradient"]


@dataclass(frozen=True)
class APGResult:
    """Outcome of :func:`accelerated_proximal_gradient`.

    Attributes:
        x: the final iterate.
        objective: ``f(x) + g(x)`` at ``x``.
        n_iter: number of accepted proximal-gradient steps.
        converged: whether the stopping criterion was met before ``max_iter``.
        lipschitz: the final backtracking estimate of the Lipschitz constant of ``grad f``.
    """

    x: np.ndarray
    objective: float
    n_iter: int
    converged: bool
    lipschitz: float


def accelerated_proximal_gradient(
    f: Callable[[np.ndarray], float],
    f_grad: Callable[[np.ndarray], tuple[float, np.ndarray]],
    g: Callable[[np.ndarray], float],
    prox: Callable[[np.ndarray, float], np.ndarray],
    x0: np.ndarray,
    *,
    max_iter: int = 1000,
    tol: float = 1e-6,
    lipschitz: float | None = None,
) -> APGResult:
    """Minimise ``f(x) + g(x)`` by FISTA with backtracking and function-value restart.

    Args:
        f: smooth part, value only (``inf`` outside its domain).
        f_grad: smooth part, value and gradient.
        g: non-smooth part, value.
        prox: ``prox(v, step)`` returns ``argmin_x step * g(x) + 0.5 * ||x - v||^2``.
        x0: starting point (must be in the domain of ``f`` and ``g``).
        max_iter: maximum number of accepted steps.
        tol: stop when the relative decrease of the objective,
            ``(F_{k-1} - F_k) / F_k``, stays below ``tol`` for three consecutive steps. With
            the restart the objective decreases monotonically, so a stall means convergence
            (decomposition models ``W = P + Q`` can keep drifting along directions that leave
            the objective unchanged, so the iterates themselves are not tested).
        lipschitz: initial Lipschitz estimate; by default estimated from two gradients.

    Returns:
        An :class:`APGResult`.
    """
    x = np.array(x0, dtype=float, copy=True)
    fx, gx = f_grad(x)
    obj = fx + g(x)
    if lipschitz is None:
        delta = 1e-4 * max(1.0, float(np.linalg.norm(x))) * np.ones_like(x) / np.sqrt(x.size)
        _, g2 = f_grad(x + delta)
        lipschitz = float(np.linalg.norm(g2 - gx) / np.linalg.norm(delta))
    lip = max(lipschitz, 1e-12)
    y, fy, gy = x, fx, gx
    at_x = True  # whether y == x (no momentum)
    t = 1.0
    small_steps = 0
    n_iter = 0
    converged = False
    while n_iter < max_iter:
        while True:
            step = 1.0 / lip
            z = prox(y - step * gy, step)
            d = z - y
            fz = f(z)
            bound = fy + float(np.vdot(gy, d)) + 0.5 * lip * float(np.vdot(d, d))
            if fz <= bound + 1e-12 * abs(fy):
                break
            lip *= 2.0
            if lip > 1e300:
                raise FloatingPointError(
                    "accelerated_proximal_gradient: backtracking failed (the objective is NaN "
                    "or its gradient is not Lipschitz near the iterate); check the inputs."
                )
        obj_z = fz + g(z)
        if obj_z > obj and not at_x:
            # Function-value restart: drop the momentum and take a plain step from x.
            t = 1.0
            fy, gy = f_grad(x)
            y, at_x = x, True
            continue
        n_iter += 1
        rel_dec = (obj - obj_z) / max(abs(obj_z), np.finfo(float).tiny)
        small_steps = small_steps + 1 if rel_dec <= tol else 0
        t_next = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * t * t))
        y_next = z + ((t - 1.0) / t_next) * (z - x)
        x, obj, t = z, obj_z, t_next
        if small_steps >= 3 or obj == 0.0:
            converged = True
            break
        fy, gy = f_grad(y_next)
        if np.isfinite(fy):
            y, at_x = y_next, False
        else:  # the extrapolated point left the domain of f: restart from x
            t = 1.0
            fy, gy = f_grad(x)
            y, at_x = x, True
    return APGResult(x=x, objective=float(obj), n_iter=n_iter, converged=converged, lipschitz=lip)
