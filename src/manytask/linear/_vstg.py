r"""VSTG-MTL: variable selection and task grouping by a sparse factorisation ``W = U V``.

Jeong & Jun, "Variable Selection and Task Grouping for Multi-Task Learning", KDD 2018
(arXiv:1802.04676). Each task's weights are a combination of ``K`` latent bases,
:math:`w_t = U v_t`, with ``U`` (``[d, K]``, the variable-latent matrix) and ``V`` (``[K, T]``,
the latent-task matrix), and the objective is (the paper's formulation, as written in the
authors' KDD poster and in the header of their ``VSTG_MTL_regress.m`` / ``VSTG_MTL_logistic.m``;
the paper's own equation and section numbers could not be checked, its text was not reachable)

.. math::

    \min_{U, V, b}\ \sum_t L_t(U v_t, b_t) + \gamma_1 \|U\|_1 + \gamma_2 \|U\|_{1,\infty}
    + \mu \sum_t \big(\|v_t\|^{sp}_k\big)^2,

with :math:`\|U\|_{1,\infty} = \sum_j \max_m |U_{jm}|` (rows of ``U`` are input variables, so
the two penalties drop whole variables and sparsify within the kept ones) and
:math:`\|\cdot\|^{sp}_k` the k-support norm (Argyriou, Foygel & Srebro, "Sparse prediction with
the k-support norm", NeurIPS 2012, Prop. 2.1): each task uses a few latent bases, tasks sharing
bases form overlapping groups, and ``k`` between 1 (:math:`\ell_1`) and ``K`` (:math:`\ell_2`)
sets how many bases a task may combine. ``L_t`` is the task's mean squared error (halved) or
mean logistic loss, as everywhere in :mod:`manytask.linear`.

Fitting (the paper's alternating optimisation, as on the poster): per-task ridge fits, their top-``K`` singular
pairs as the start, then alternate exact minimisations over ``U`` and over ``V`` until the
objective stops decreasing; the objective never increases. Deviations from the paper and its
code, and why:

* The ``U`` step is solved by accelerated proximal gradient with the *exact* prox of
  :math:`\gamma_1 \|\cdot\|_1 + \gamma_2 \|\cdot\|_{1,\infty}` (soft thresholding followed by the
  row-wise :math:`\ell_\infty` prox, :func:`prox_l1_linf`), instead of the paper's three-block
  ADMM stopped early: same minimiser, no penalty parameter ``rho``, and the step cannot raise
  the objective.
* The ``V`` step solves all tasks in one accelerated proximal gradient run (the problem is
  separable over tasks) with the exact prox of the squared k-support norm
  (:func:`prox_squared_ksupport`, derived from its conjugate as in Argyriou et al. 2012,
  Algorithm 1), instead of one FISTA run per task.
* Each task has an unpenalised intercept (rows centred per task for the squared loss) instead
  of a penalised bias column.
* After each alternation the pair is rescaled exactly along the symmetry
  ``(c U, V / c)``: the ``U`` penalties are 1-homogeneous and the ``V`` penalty 2-homogeneous,
  so ``a c + b / c^2`` is minimal at ``c^3 = 2 b / a``. This only speeds the alternation up.
* The ridge start uses strength ``max(mu, 1e-3)`` (the authors' code uses the norm of
  ``(gamma1, gamma2, mu)`` on summed losses).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from manytask.linear._base import (
    Blocks,
    LinearMultiTaskClassifier,
    LinearMultiTaskRegressor,
    TaskData,
)
from manytask.linear._latent_basis import top_factors
from manytask.linear._prox import prox_group_linf, prox_l1

__all__ = [
    "VSTGMultiTaskClassifier",
    "VSTGMultiTaskRegressor",
    "ksupport_norm",
    "prox_l1_linf",
    "prox_squared_ksupport",
]


# --------------------------------------------------------------------------------------------
# the k-support norm and the proximal operators


def ksupport_norm(w: np.ndarray, k: int) -> np.ndarray:
    r"""The k-support norm of each row of ``w`` ``[n, K]`` (Argyriou et al. 2012, Prop. 2.1).

    With :math:`z = |w|` sorted in decreasing order and ``a`` the head size (``0 <= a < k``) with
    :math:`z_{a-1} > \frac{1}{k-a} \sum_{i \ge a} z_i \ge z_a` (0-based, :math:`z_{-1} = \infty`),
    :math:`(\|w\|^{sp}_k)^2 = \sum_{i < a} z_i^2 + \frac{1}{k-a} (\sum_{i \ge a} z_i)^2`.
    ``k = 1`` gives the l1 norm, ``k >= K`` the l2 norm.

    Returns:
        ``[n]`` norms.
    """
    w2 = np.atleast_2d(w)
    d = w2.shape[1]
    if k >= d:
        return np.linalg.norm(w2, axis=1)
    z = -np.sort(-np.abs(w2), axis=1)
    heads = np.arange(k)  # candidate head sizes a
    tail = np.cumsum(z[:, ::-1], axis=1)[:, ::-1][:, heads]  # sum_{i >= a} z_i, [n, k]
    mean = tail / (k - heads)
    above = np.concatenate([np.full((len(z), 1), np.inf), z[:, : k - 1]], axis=1)  # z_{a-1}
    violation = np.maximum(mean - above, 0.0) + np.maximum(z[:, :k] - mean, 0.0)
    a = np.argmin(violation, axis=1)
    rows = np.arange(len(z))
    head_sq = np.concatenate([np.zeros((len(z), 1)), np.cumsum(z * z, axis=1)], axis=1)[rows, a]
    return np.sqrt(head_sq + tail[rows, a] ** 2 / (k - a))


def prox_squared_ksupport(v: np.ndarray, tau: float, k: int) -> np.ndarray:
    r"""Row-wise prox of the squared k-support norm: ``argmin_x tau (||x||_k^sp)^2 + ||x - v||^2 / 2``.

    With :math:`\lambda = 2 \tau` and :math:`z = |v|` sorted decreasingly, the solution keeps a head
    ``i < a`` shrunk as in ridge, :math:`z_i / (1 + \lambda)`, soft-thresholds a band
    ``a <= i <= l`` (``a < k <= l + 1``) by :math:`\theta = \lambda T / (\lambda (l - a + 1) + k - a)`,
    :math:`T = \sum_{i=a}^{l} z_i`, and zeroes the rest. ``(a, l)`` is the pair with
    :math:`z_{a-1} \ge \varphi \ge z_a`, :math:`z_l \ge \theta \ge z_{l+1}`,
    :math:`\varphi = \theta (1 + \lambda) / \lambda` (Moreau's identity with the conjugate
    :math:`\frac{1}{2\lambda} \sum_{i<k} (|u|^\downarrow_i)^2`; Argyriou et al. 2012, Algorithm 1),
    found by checking every pair, vectorised over rows.

    Args:
        v: ``[n, K]`` points (one per row) or ``[K]``.
        tau: threshold (step size times the penalty weight), ``>= 0``.
        k: the k-support parameter (``>= 1``).

    Returns:
        The prox, shaped like ``v``.
    """
    v2 = np.atleast_2d(v).astype(float)
    n, d = v2.shape
    lam = 2.0 * tau
    if lam <= 0:
        return v.copy()
    if k >= d:
        return v / (1.0 + lam)
    order = np.argsort(-np.abs(v2), axis=1)
    rows = np.arange(n)[:, None]
    z = np.abs(v2)[rows, order]
    csum = np.concatenate([np.zeros((n, 1)), np.cumsum(z, axis=1)], axis=1)
    # every candidate pair (a, l): head size a < k, band end l >= k - 1
    a, last = (g.ravel() for g in np.meshgrid(np.arange(k), np.arange(k - 1, d), indexing="ij"))
    total = csum[:, last + 1] - csum[:, a]  # [n, pairs]
    denom = lam * (last - a + 1) + (k - a)
    theta = lam * total / denom
    phi = (1.0 + lam) * total / denom
    above = np.where(a > 0, z[:, np.maximum(a - 1, 0)], np.inf)
    below = np.where(last < d - 1, z[:, np.minimum(last + 1, d - 1)], -np.inf)
    violation = (
        np.maximum(phi - above, 0.0)
        + np.maximum(z[:, a] - phi, 0.0)
        + np.maximum(theta - z[:, last], 0.0)
        + np.maximum(below - theta, 0.0)
    )
    best = np.argmin(violation, axis=1)  # the valid pair (violation 0 up to rounding)
    a_, last_, th = a[best][:, None], last[best][:, None], theta[np.arange(n), best][:, None]
    pos = np.arange(d)[None, :]
    band = np.maximum(z - th, 0.0)
    sorted_x = np.where(pos < a_, z / (1.0 + lam), np.where(pos <= last_, band, 0.0))
    out = np.empty_like(sorted_x)
    out[rows, order] = sorted_x
    return (np.sign(v2) * out).reshape(np.shape(v))


def prox_l1_linf(v: np.ndarray, tau1: float, tau2: float, axis: int) -> np.ndarray:
    r"""Prox of ``tau1 ||x||_1 + tau2 sum_g ||x_g||_inf`` (groups along ``axis``), exact.

    Soft thresholding then the group :math:`\ell_\infty` prox: the :math:`\ell_\infty` prox keeps
    every sign and zero of its input, so the subgradient of the :math:`\ell_1` term at the
    soft-thresholded point stays a subgradient at the result.
    """
    return prox_group_linf(prox_l1(v, tau1), tau2, axis=axis)


# --------------------------------------------------------------------------------------------
# the two alternating steps (penalty hooks for _solve_apg), W = codes @ basis = V^T U^T


class _BasisStep:
    """``min_B loss(A B) + gamma1 ||B||_1 + gamma2 sum_j max_m |B_mj|`` for fixed codes ``A``."""

    def __init__(self, codes: np.ndarray, gamma1: float, gamma2: float) -> None:
        self.codes, self.gamma1, self.gamma2 = codes, gamma1, gamma2

    def _coef(self, blocks: Blocks) -> np.ndarray:
        return self.codes @ blocks[0]

    def _coef_grad(self, blocks: Blocks, gC: np.ndarray) -> Blocks:
        return [self.codes.T @ gC]

    def _smooth_penalty(self, blocks: Blocks) -> tuple[float, Blocks]:
        return 0.0, [np.zeros_like(blocks[0])]

    def _nonsmooth_penalty(self, blocks: Blocks) -> float:
        return _basis_penalty(blocks[0], self.gamma1, self.gamma2)

    def _prox(self, blocks: Blocks, step: float) -> Blocks:
        return [prox_l1_linf(blocks[0], step * self.gamma1, step * self.gamma2, axis=0)]


class _CodesStep:
    """``min_A loss(A B) + mu sum_t (||a_t||_k^sp)^2`` for a fixed basis ``B``."""

    def __init__(self, basis: np.ndarray, mu: float, k: int) -> None:
        self.basis, self.mu, self.k = basis, mu, k

    def _coef(self, blocks: Blocks) -> np.ndarray:
        return blocks[0] @ self.basis

    def _coef_grad(self, blocks: Blocks, gC: np.ndarray) -> Blocks:
        return [gC @ self.basis.T]

    def _smooth_penalty(self, blocks: Blocks) -> tuple[float, Blocks]:
        return 0.0, [np.zeros_like(blocks[0])]

    def _nonsmooth_penalty(self, blocks: Blocks) -> float:
        return self.mu * float(np.sum(ksupport_norm(blocks[0], self.k) ** 2))

    def _prox(self, blocks: Blocks, step: float) -> Blocks:
        return [prox_squared_ksupport(blocks[0], step * self.mu, self.k)]


def _basis_penalty(basis: np.ndarray, gamma1: float, gamma2: float) -> float:
    """``gamma1 ||U||_1 + gamma2 ||U||_{1,inf}`` with ``U = basis.T`` (rows of ``U``: variables)."""
    a = np.abs(basis)
    return gamma1 * float(a.sum()) + gamma2 * float(a.max(axis=0).sum()) if a.size else 0.0


class _VSTG:
    # provided by the estimator base this mixin is combined with
    _solve_apg: Callable[..., Any]
    _stop_reason: Callable[..., str | None]
    _constraints = {
        "gamma1": "nonneg",
        "gamma2": "nonneg",
        "mu": "nonneg",
        "k_support": "posint",
        "n_components": "posint",
        "max_outer_iter": "posint",
    }

    def __init__(
        self,
        gamma1: float = 0.01,
        *,
        gamma2: float = 0.01,
        mu: float = 0.01,
        k_support: int = 2,
        n_components: int = 3,
        max_outer_iter: int = 200,
        fit_intercept: bool = True,
        max_iter: int = 1000,
        tol: float = 1e-5,
    ) -> None:
        self.gamma1 = gamma1
        self.gamma2 = gamma2
        self.mu = mu
        self.k_support = k_support
        self.n_components = n_components
        self.max_outer_iter = max_outer_iter
        self.fit_intercept = fit_intercept
        self.max_iter = max_iter
        self.tol = tol

    def _solve(self, data: TaskData) -> tuple[Blocks, np.ndarray | None, int, str | None]:
        T, d = data.n_tasks, data.n_features
        n_comp = min(self.n_components, T, d)
        k = min(self.k_support, n_comp)
        # start: independent ridge fits (the squared k-support norm with k = d is ||w||^2),
        # then their top singular pairs split evenly between U and V (as in the paper)
        ridge = _CodesStep(np.eye(d), max(self.mu, 1e-3), d)
        (W0,), b, total, inner_converged = self._solve_apg(data, [np.zeros((T, d))], hooks=ridge)
        codes, basis = top_factors(W0, n_comp)
        path = [self._vstg_objective(data, codes, basis, b, k)]
        converged = False
        for _ in range(self.max_outer_iter):
            (basis,), b, n1, ok1 = self._solve_apg(
                data, [basis], b, hooks=_BasisStep(codes, self.gamma1, self.gamma2)
            )
            (codes,), b, n2, ok2 = self._solve_apg(data, [codes], b, hooks=_CodesStep(basis, self.mu, k))
            total, inner_converged = total + n1 + n2, inner_converged and ok1 and ok2
            codes, basis = self._rescale(codes, basis, k)
            path.append(self._vstg_objective(data, codes, basis, b, k))
            if path[-2] - path[-1] <= self.tol * max(abs(path[-1]), np.finfo(float).tiny):
                converged = True
                break
        self.codes_, self.basis_, self.k_support_ = codes, basis, k
        self.objective_path_ = path
        self.n_outer_iter_ = len(path) - 1
        return [codes @ basis], b, total, self._stop_reason(apg=not inner_converged, outer=not converged)

    def _rescale(self, codes: np.ndarray, basis: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact minimisation over ``(c U, V / c)``: ``a c + b / c^2`` is minimal at ``c^3 = 2b/a``."""
        a = _basis_penalty(basis, self.gamma1, self.gamma2)
        b = self.mu * float(np.sum(ksupport_norm(codes, k) ** 2))
        if a <= 0 or b <= 0:
            return codes, basis
        c = float(np.cbrt(2.0 * b / a))
        return codes / c, basis * c

    def _vstg_objective(
        self, data: TaskData, codes: np.ndarray, basis: np.ndarray, b: np.ndarray | None, k: int
    ) -> float:
        pen = _basis_penalty(basis, self.gamma1, self.gamma2)
        pen += self.mu * float(np.sum(ksupport_norm(codes, k) ** 2))
        return data.value(codes @ basis, b) + pen

    def _objective(self, data: TaskData, blocks: Blocks, b: np.ndarray | None) -> float:
        return self._vstg_objective(data, self.codes_, self.basis_, b, self.k_support_)


class VSTGMultiTaskRegressor(_VSTG, LinearMultiTaskRegressor):
    r"""VSTG-MTL least squares: variable selection and task grouping (Jeong & Jun 2018).

    VSTG-MTL least squares (Jeong & Jun, KDD 2018): ``W = U V`` with variable selection
    on ``U`` (l1 + l1,inf) and task grouping through the squared k-support norm of each ``v_t``.

    .. math:: \min_{U, V, b} \sum_t \frac{1}{2 n_t} \|y_t - X_t U v_t - b_t\|^2
              + \gamma_1 \|U\|_1 + \gamma_2 \|U\|_{1,\infty} + \mu \sum_t (\|v_t\|^{sp}_k)^2

    Non-convex (bi-convex); solved by alternating exact minimisation over ``U`` and ``V``
    (see :mod:`manytask.linear._vstg` for the algorithm and the deviations from the paper);
    the result is a local minimum.

    Args:
        gamma1: l1 strength on ``U`` (``>= 0``), :math:`\gamma_1`.
        gamma2: l1,inf strength on ``U`` (``>= 0``, drops whole variables), :math:`\gamma_2`.
        mu: squared k-support strength on each task's code :math:`v_t` (``>= 0``).
            Keep ``mu`` and one of the ``gamma`` positive: with one side zero the scale
            symmetry ``(c U, V / c)`` lets the other penalty vanish.
        k_support: ``k`` of the k-support norm (1: l1, ``>= n_components``: l2).
        n_components: number of latent bases ``K`` (capped at ``min(T, d)``).
        max_outer_iter: maximum number of alternations.
        fit_intercept: fit an unpenalised intercept per task.
        max_iter: maximum number of APG iterations per step.
        tol: relative tolerance of the inner and outer stopping rules.

    Attributes:
        coef_: ``[T, d]`` task weights :math:`W^\top = V^\top U^\top`; ``intercept_``: ``[T]``.
        basis_: ``[K, d]`` latent bases, the paper's :math:`U^\top` (zero columns: dropped
            variables). codes_: ``[T, K]`` task codes, the paper's :math:`V^\top` (tasks
            sharing non-zero entries form a group).
        objective_path_: the objective at the start and after each alternation (non-increasing);
        n_outer_iter_: alternations run; k_support_: the ``k`` used (capped at ``K``).

    Examples:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0); X = rng.normal(size=(200, 6)); task = np.arange(200) % 4
        >>> W = np.array([[1.0, 1, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0], [0, 0, 1, 1, 0, 0], [0, 0, 1, 1, 0, 0]])
        >>> y = np.einsum("ij,ij->i", X, W[task]) + 0.1 * rng.normal(size=200)
        >>> model = VSTGMultiTaskRegressor(0.05, gamma2=0.05, mu=0.05, n_components=2, k_support=1)
        >>> model = model.fit(X, y, task=task)
        >>> bool(np.all(model.coef_[:, 4:] == 0)), (model.codes_ != 0).sum(axis=1).tolist()
        (True, [1, 1, 1, 1])

    References:
        Jeong & Jun, "Variable selection and task grouping for multi-task learning", KDD 2018
        (arXiv:1802.04676). Argyriou, Foygel & Srebro, "Sparse prediction with the k-support
        norm", NeurIPS 2012.
    """


class VSTGMultiTaskClassifier(_VSTG, LinearMultiTaskClassifier):
    r"""VSTG-MTL logistic regression: variable selection and task grouping (Jeong & Jun 2018).

    VSTG-MTL logistic regression (Jeong & Jun, KDD 2018): ``W = U V`` with variable
    selection on ``U`` and task grouping through the squared k-support norm of each ``v_t``.

    .. math:: \min_{U, V, b} \sum_t \frac{1}{n_t} \sum_{i \in t} \log(1 + e^{-y_i
              (x_i^\top U v_t + b_t)}) + \gamma_1 \|U\|_1 + \gamma_2 \|U\|_{1,\infty}
              + \mu \sum_t (\|v_t\|^{sp}_k)^2

    Args:
        gamma1: l1 strength on ``U`` (``>= 0``), :math:`\gamma_1`.
        gamma2: l1,inf strength on ``U`` (``>= 0``, drops whole variables), :math:`\gamma_2`.
        mu: squared k-support strength on each task's code :math:`v_t` (``>= 0``).
            Keep ``mu`` and one of the ``gamma`` positive: with one side zero the scale
            symmetry ``(c U, V / c)`` lets the other penalty vanish.
        k_support: ``k`` of the k-support norm (1: l1, ``>= n_components``: l2).
        n_components: number of latent bases ``K`` (capped at ``min(T, d)``).
        max_outer_iter: maximum number of alternations.
        fit_intercept: fit an unpenalised intercept per task.
        max_iter: maximum number of APG iterations per step.
        tol: relative tolerance of the inner and outer stopping rules.

    Attributes:
        coef_: ``[T, d]`` task weights :math:`W^\top = V^\top U^\top`; ``intercept_``: ``[T]``.
        basis_: ``[K, d]`` latent bases, the paper's :math:`U^\top` (zero columns: dropped
            variables). codes_: ``[T, K]`` task codes, the paper's :math:`V^\top` (tasks
            sharing non-zero entries form a group).
        objective_path_: the objective at the start and after each alternation (non-increasing);
        n_outer_iter_: alternations run; k_support_: the ``k`` used (capped at ``K``).

    Examples:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0); X = rng.normal(size=(300, 5))
        >>> Y = np.c_[X[:, 0] > 0, X[:, 0] + X[:, 1] > 0, X[:, 1] > 0].astype(int)
        >>> model = VSTGMultiTaskClassifier(0.01, gamma2=0.05, n_components=2).fit(X, Y)
        >>> model.score(X, Y) > 0.9, bool(np.all(model.coef_[:, 2:] == 0))
        (True, True)

    References:
        Jeong & Jun, "Variable selection and task grouping for multi-task learning", KDD 2018
        (arXiv:1802.04676).
    """
