"""CAGrad (Liu, Liu, Jin, Stone & Liu, 2021)."""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
from torch import Tensor

from ..tasks import Task
from ._aggregation import _LEVELS
from ._base import GramianBalancer, Level
from ._factory import BalancerInfo, register_balancer
from ._gramian_linalg import gradient_norms, gramian_array, psd_root, to_weights

__all__ = ["CAGrad"]

#: Tolerance of the KKT checks of the polished point, relative to the unit-trace Gramian.
_KKT_TOL = 1e-9
#: Normalised slack below which the interior-point solution counts a task as active (its accuracy).
_ACTIVE_TOL = 1e-6


def _polish(g: np.ndarray, w: np.ndarray, radius: float) -> np.ndarray | None:
    r"""The exact maximiser, from the interior-point dual solution ``w`` of the unit-trace ``g``.

    On the set :math:`S` of tasks with :math:`g_i^\top d = t` (the minimum), the optimum is
    :math:`d = g_0 + r u` with :math:`u = \sum_{k \in S} \beta_k g_k` a unit vector and
    :math:`G_{SS}\beta = (t 1 - b_S)/r` (:math:`b = G\,1/T`); :math:`\beta^\top G_{SS} \beta = 1`
    is then a quadratic in :math:`t` (largest root). Candidate sets :math:`S`: the tasks in
    increasing order of their normalised slack :math:`(g_i^\top d - \min_k g_k^\top d)/\|g_i\|` at
    the interior-point solution, each prefix in turn, starting from the prefix of the tasks whose
    slack is below the interior point's accuracy and moving outwards. The first :math:`\beta` (zero off :math:`S`;
    the weights are :math:`1/T + r\beta`) that satisfies the KKT conditions of the primal problem —
    :math:`\beta \ge 0`, :math:`\|u\| = 1`, :math:`g_i^\top d \ge t` for every task with equality
    on :math:`S` — is returned: they certify the optimum. None if no prefix passes (then the
    interior-point solution is used as it is).
    """
    t_all = g.shape[0]
    norms = gradient_norms(g)
    b = g @ np.full(t_all, 1.0 / t_all)
    gw_norm = float(np.sqrt(max(w @ g @ w, 0.0)))
    if not gw_norm > 0:
        return None
    slack = b + radius * (g @ w) / gw_norm
    normalised = (slack - slack.min()) / np.where(norms > 0, norms, 1.0)
    order = np.argsort(normalised, kind="stable")
    guess = int((normalised <= _ACTIVE_TOL).sum())  # the active set the interior-point solution shows
    for k in sorted(range(1, t_all + 1), key=lambda k: (abs(k - guess), k)):  # nearest to it first
        support = np.zeros(t_all, dtype=bool)
        support[order[:k]] = True
        beta = _beta_on(g, b, support, radius)
        if beta is not None:
            return beta
    return None


def _beta_on(g: np.ndarray, b: np.ndarray, support: np.ndarray, radius: float) -> np.ndarray | None:
    gs = g[np.ix_(support, support)]
    lam, v = np.linalg.eigh(gs)
    keep = lam > len(lam) * 1e-13 * max(lam.max(), 0.0)
    if not keep.any():
        return None
    inverse = (v[:, keep] / lam[keep]) @ v[:, keep].T
    p, q = inverse.sum(axis=1), inverse @ b[support]
    a, bq, cq = p.sum(), q.sum(), b[support] @ q
    disc = bq**2 - a * (cq - radius**2)
    if not (a > 0 and disc >= 0):
        return None
    t = (bq + np.sqrt(disc)) / a
    beta = np.zeros(g.shape[0])
    beta[support] = (t * p - q) / radius
    projections = b + radius * (g @ beta)  # g_i . d
    if (beta < -_KKT_TOL).any() or abs(beta @ g @ beta - 1.0) > 1e-8:
        return None
    if (projections < t - _KKT_TOL).any() or np.abs(projections[support] - t).max() > _KKT_TOL:
        return None
    return np.clip(beta, 0.0, None)


@functools.lru_cache(maxsize=8)
def _dual_problem(t: int) -> tuple[Any, Any, Any, Any]:
    r"""The dual over the simplex for ``t`` tasks, :math:`\min_{w \in \Delta} a^\top w + \|R w\|`,
    with ``a`` and ``R`` as cvxpy parameters: built and compiled once per ``t``, so a step only
    sets the two and solves (2 ms instead of 6 at ``t = 32``). Returns (problem, w, a, R)."""
    cp = _cvxpy()
    w, linear, scaled_root = cp.Variable(t), cp.Parameter(t), cp.Parameter((t, t))
    problem = cp.Problem(cp.Minimize(linear @ w + cp.norm(scaled_root @ w, 2)), [w >= 0, cp.sum(w) == 1])
    return problem, w, linear, scaled_root


def _cvxpy() -> Any:
    try:
        import cvxpy
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError('CAGrad solves its dual problem with cvxpy, which is not installed. Install it with: '
                          'pip install "manytask[cvxpy]" (or pip install cvxpy).') from None
    return cvxpy


@register_balancer("cagrad", "CAGrad: the best worst-task improvement within a ball around the mean gradient.",
                   BalancerInfo("Liu et al. 2021, NeurIPS (CAGrad) Eq. 3, Alg. 1", "gramian", _LEVELS, extra="cvxpy",
                                example={"c": 0.4}))
class CAGrad(GramianBalancer):
    r"""Conflict-averse gradient descent of `Liu, Liu, Jin, Stone & Liu (2021), "Conflict-Averse
    Gradient Descent for Multi-task Learning" <https://arxiv.org/abs/2110.14048>`_ (NeurIPS),
    Eq. 3 and Algorithm 1.

    The update maximises the worst task's first-order improvement within a ball around the mean
    gradient :math:`g_0 = \frac1T \sum_i g_i`:

    .. math::
        \max_{d}\ \min_i\ g_i^\top d \quad \text{s.t.} \quad \|d - g_0\| \le c\,\|g_0\| ,

    solved through its dual over the simplex (Algorithm 1), with :math:`\phi = c^2 \|g_0\|^2` and
    :math:`g_w = \sum_i w_i g_i`:

    .. math::
        w^\star = \arg\min_{w \in \Delta^T} g_w^\top g_0 + \sqrt{\phi}\, \|g_w\|, \qquad
        d = g_0 + \frac{\sqrt{\phi}}{\|g_{w^\star}\|}\, g_{w^\star},

    i.e. weights :math:`\frac1T + \frac{\sqrt\phi}{\|g_{w^\star}\|} w^\star`. Everything is an inner
    product, so it runs on the Gramian: :math:`G` (normalised to unit trace, which leaves the
    direction unchanged and scales back exactly) is factored as :math:`R^\top R` and the dual, a
    second-order cone program, is solved by cvxpy with the CLARABEL interior-point solver (as in
    torchjd's ``CAGradWeighting``; the official code uses ``scipy.optimize.minimize``/SLSQP). An
    interior-point solution is only accurate to about :math:`10^{-6}` in :math:`d` (much worse
    when the gradient norms differ by orders of magnitude), so it is then made exact on its
    active set by a closed form certified by the KKT conditions of the primal problem (see
    ``_polish``; if no certificate is found the interior-point solution is kept). A solve that
    does not report an optimal status raises ``RuntimeError`` naming the step.

    The paper's Algorithm 1 applies :math:`d` itself (``rescale=False``, the default here). The
    official code's multi-task experiments divide it by :math:`1 + c^2` (``rescale=1`` there;
    ``rescale=True`` here), which only changes the step size. :math:`c = 0` is the mean gradient;
    the paper uses :math:`c = 0.4` on NYUv2 and CityScapes (the default here) and requires
    :math:`c < 1` for its convergence guarantee to the average loss (larger values are allowed).
    When :math:`g_0 = 0`, :math:`d = g_0 = 0`. When the dual's optimum is :math:`g_{w^\star} = 0`
    (0 is in the gradients' convex hull and no :math:`g_w` makes an angle with :math:`g_0` wider
    than :math:`\arccos(-c)`), the dual gives no direction: for :math:`c \ge 1` the ball contains
    :math:`d = 0`, which attains the optimum 0, and the weights are 0; for :math:`c < 1` this needs
    0 on the boundary of the hull, and the mean gradient is used with a ``RuntimeWarning`` naming
    the step.

    The update conflicts with no task when no two gradients conflict (then :math:`d = g_0` is
    feasible with :math:`\min_i g_i^\top g_0 > 0`); it is not invariant to a task's loss scale.
    The paper takes the gradients over all shared parameters (``level="exact"``);
    ``level="representation"`` uses the gradients w.r.t. the shared features. Stateless: an
    absent task is not part of :math:`J` (weight 0) and :math:`g_0` is the present tasks' mean.

    Args:
        tasks: The run's tasks.
        level: ``"exact"`` (all shared parameters) or ``"representation"``.
        c: Radius of the ball relative to :math:`\|g_0\|`, ``>= 0``.
        rescale: Divide the update by :math:`1 + c^2` (official code) instead of the paper's
            Algorithm 1 update.

    Examples:
        >>> import torch
        >>> from manytask.tasks import Regression
        >>> cagrad = CAGrad([Regression("a"), Regression("b")], c=0.0)  # c = 0: the mean gradient
        >>> cagrad.gramian_weights(torch.tensor([[1.0, -0.5], [-0.5, 2.0]]), torch.ones(2),
        ...                        torch.tensor([True, True]), step=0)
        tensor([0.5000, 0.5000])
    """

    stateful: ClassVar[bool] = False

    def __init__(self, tasks: Sequence[Task], level: Level = "exact", c: float = 0.4, rescale: bool = False) -> None:
        super().__init__(tasks, level)
        if not (isinstance(c, (int, float)) and math.isfinite(c) and c >= 0):
            raise ValueError(f"The 'c' parameter of CAGrad must be a finite number >= 0. Got {c!r} instead.")
        if not isinstance(rescale, bool):
            raise ValueError(f"The 'rescale' parameter of CAGrad must be True or False. Got {rescale!r} instead.")
        self.c = float(c)
        self.rescale = rescale
        _cvxpy()  # a missing optional dependency fails here, not at the first step

    def gramian_weights(self, gramian: Tensor, losses: Tensor, present: Tensor, *, step: int) -> Tensor:
        g = gramian_array(gramian, "CAGrad")
        t = g.shape[0]
        mean = np.full(t, 1.0 / t)
        scale = float(np.trace(g))
        if scale <= 0.0 or self.c == 0.0:
            return to_weights(mean, gramian)
        root = psd_root(g / scale)  # column i: g_i / sqrt(tr G) in an orthonormal basis
        g0 = root @ mean
        sqrt_phi = self.c * float(np.linalg.norm(g0))
        if sqrt_phi == 0.0:  # g0 = 0: d = g0 = 0
            return to_weights(mean, gramian)
        w = self._solve(root, g0, sqrt_phi, step)
        polished = _polish(g / scale, w, sqrt_phi)
        if polished is not None:
            weights = mean + sqrt_phi * polished
        else:
            gw_norm = float(np.linalg.norm(root @ w))
            dual_value = float(g0 @ (root @ w)) + sqrt_phi * gw_norm
            if dual_value > -_KKT_TOL:  # min F = 0 at g_w = 0: 0 is in the gradients' convex hull
                if self.c >= 1.0:  # then d = 0 is in the ball and attains the optimum, 0
                    return to_weights(np.zeros(t), gramian)
                warnings.warn(f"CAGrad at step {step}: the dual solution is g_w = 0 (0 is on the boundary of the "
                              "gradients' convex hull), so the dual gives no direction; the mean gradient is used.",
                              RuntimeWarning, stacklevel=2)
                return to_weights(mean, gramian)
            weights = mean + (sqrt_phi / gw_norm) * w
        return to_weights(weights / (1.0 + self.c**2) if self.rescale else weights, gramian)

    def _solve(self, root: np.ndarray, g0: np.ndarray, sqrt_phi: float, step: int) -> np.ndarray:
        cp = _cvxpy()
        problem, w, linear, scaled_root = _dual_problem(root.shape[1])
        linear.value, scaled_root.value = root.T @ g0, sqrt_phi * root
        try:
            problem.solve(solver=cp.CLARABEL)
        except cp.error.SolverError as error:
            raise RuntimeError(f"CAGrad: cvxpy/CLARABEL failed on the dual problem at step {step} ({error}).") from None
        if problem.status != cp.OPTIMAL or w.value is None:
            raise RuntimeError(f"CAGrad: cvxpy/CLARABEL did not solve the dual problem at step {step} "
                               f"(status {problem.status!r}).")
        return np.clip(np.asarray(w.value, dtype=np.float64), 0.0, None)

    def extra_repr(self) -> str:
        return f"level={self.level!r}, c={self.c}, rescale={self.rescale}"
