r"""Learning with whom to share: multi-task feature learning within learned groups of tasks.

Kang, Grauman & Sha (2011), "Learning with whom to share in multi-task feature learning"
(ICML). The tasks are partitioned into ``G`` groups; the tasks of a group share a
low-dimensional feature subspace in the sense of the multi-task feature learning (MTFL) of
Argyriou, Evgeniou & Pontil (2008, Machine Learning 73). With ``Q_g`` the diagonal 0/1 matrix of
the tasks of group ``g`` (``sum_g Q_g = I``) the model is the mixed integer program

.. math:: \min_{W, b, Q} L(W, b) + \alpha \sum_{g=1}^G \|Q_g W\|_*^2

(``L``: the sum over tasks of each task's mean loss, see :mod:`manytask.linear._base`; ``W`` is
``[T, d]``, so ``Q_g W`` keeps the rows of group ``g``; ``||.||_*`` is the trace norm). By
Argyriou et al.'s variational form,
``||W_g||_*^2 = min {tr(W_g^T Omega^{-1} W_g) : Omega >= 0, tr(Omega) <= 1}`` at
``Omega_g = (W_g^T W_g)^{1/2} / tr(.)``, so each group learns its own feature covariance
``Omega_g`` (``group_covariances_``), whose leading eigenvectors are the features the group
shares. ``G = 1`` is MTFL itself (convex); with ``G = T`` the tasks need not share at all.

**Fitting.** Alternating minimisation, as in the paper, from Kang et al.'s start (every task in
one group, i.e. the MTFL fit). For a fixed assignment the problem in ``W`` is convex and
separates over the groups; it is solved by accelerated proximal gradient, whose proximal step is
exact: on each group's singular values, the prox of the squared l1 norm (``x_i = max(s_i -
theta, 0)`` with ``theta = 2 tau sum_i x_i``, found by sorting). For fixed ``W`` only the
penalty depends on the assignment; it is lowered by single-task moves, each priced exactly (the
change of ``sum_g ||W_g||_*^2``) and made best first, re-priced against the groups as they are
by then, until no move gains; this local search runs from the current assignment and from
``n_init`` seeded random partitions, and the lowest penalty wins. No step increases the
objective (``objective_path_``); the fit stops when the assignment no longer changes. The
problem is a mixed integer program, so the result is a local minimum.

**How this relates to the paper.** Kang et al. solve the ``W`` step with Argyriou et al.'s
alternation between per-task generalised ridge fits ``w_t^T Omega_g^{-1} w_t`` and the closed
form ``Omega_g`` above, perturbed by ``eps I`` to stay invertible. That alternation converges
slowly (in our implementation of it, the MNIST one-vs-rest problem had not converged after 100
sweeps, 12 to 28 s on one core) and the perturbation changes the objective; APG solves the same
convex subproblem with no perturbation (about a second on MNIST), so ``G = 1`` is exactly the
squared-trace-norm problem and ``G = T`` exactly ridge per task. For the assignment, Kang et al. relax the
0/1 ``Q_g`` (in the authors' released MATLAB code, ``getFastGroupQ.m``: a softmax
parametrisation on the simplex, from a random start, descended with Armijo steps on
``sum_g tr(W^T Q_g W + eps I)^{1/2}`` squared, i.e. the same function of the assignment); we
search the integer assignments directly: nothing to round, every accepted move lowers the
objective, at the price of one task per move (a relaxation can move several together). The
paper's classifiers use the hinge loss; ours use the logistic loss, as the other estimators here
do. The paper's text was not available to us: the model and algorithm follow its abstract, the
authors' released code and Argyriou et al. (2008); no equation numbers are cited for that reason.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from manytask.linear._base import (
    Blocks,
    LinearMultiTaskClassifier,
    LinearMultiTaskRegressor,
    TaskData,
)

__all__ = ["GroupedFeatureMultiTaskClassifier", "GroupedFeatureMultiTaskRegressor"]


def prox_squared_l1(values: np.ndarray, tau: float) -> np.ndarray:
    """``argmin_x tau (sum_i x_i)^2 + 0.5 ||x - v||^2`` for ``v >= 0`` sorted in decreasing order.

    ``x_i = max(v_i - theta, 0)`` with ``theta = 2 tau sum_i x_i``: over the ``k`` largest
    entries, ``theta_k = 2 tau S_k / (1 + 2 tau k)``; the active set is the longest prefix with
    ``v_k > theta_k``.
    """
    k = np.arange(1, values.size + 1)
    theta = 2.0 * tau * np.cumsum(values) / (1.0 + 2.0 * tau * k)
    active = int(np.sum(values > theta))  # a prefix: v_k falls and theta_k rises with k
    return np.maximum(values - theta[active - 1], 0.0) if active else np.zeros_like(values)


def _trace_norms(W: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """``||W_g||_*`` of every group ``[G]`` (``0`` for an empty group)."""
    return np.array([np.linalg.svd(W[groups == g], compute_uv=False).sum() for g in range(n_groups)])


class _SquaredTraceNorms:
    """APG hooks of ``alpha sum_g ||W_g||_*^2`` for a fixed assignment ``groups``."""

    def __init__(self, groups: np.ndarray, n_groups: int, alpha: float) -> None:
        self.groups, self.n_groups, self.alpha = groups, n_groups, alpha

    def _coef(self, blocks: Blocks) -> np.ndarray:
        return blocks[0]

    def _coef_grad(self, blocks: Blocks, gC: np.ndarray) -> Blocks:
        return [gC]

    def _smooth_penalty(self, blocks: Blocks) -> tuple[float, Blocks]:
        return 0.0, [np.zeros_like(blocks[0])]

    def _nonsmooth_penalty(self, blocks: Blocks) -> float:
        return self.alpha * float(np.sum(_trace_norms(blocks[0], self.groups, self.n_groups) ** 2))

    def _prox(self, blocks: Blocks, step: float) -> Blocks:
        W = blocks[0]
        for g in range(self.n_groups):  # one SVD per group
            rows = self.groups == g
            if rows.any():
                u, s, vt = np.linalg.svd(W[rows], full_matrices=False)
                W[rows] = (u * prox_squared_l1(s, step * self.alpha)) @ vt
        return [W]


def _scatter(W: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """``W_g^T W_g`` of every group, ``[G, d, d]``."""
    d = W.shape[1]
    outer = (W[:, :, None] * W[:, None, :]).reshape(len(W), d * d)
    return (np.eye(n_groups)[groups].T @ outer).reshape(n_groups, d, d)


def _squared_norms(scatter: np.ndarray, floor: float) -> np.ndarray:
    """``(tr S^{1/2})^2`` of stacked ``S = W_g^T W_g``, i.e. ``||W_g||_*^2``; eigenvalues below
    ``floor`` are rounding noise of a rank-deficient ``S`` and count as zero."""
    values = np.linalg.eigvalsh(scatter)
    return np.sqrt(np.where(values > floor, values, 0.0)).sum(axis=-1) ** 2


def _move_costs(
    scatter: np.ndarray, norms2: np.ndarray, W: np.ndarray, groups: np.ndarray, floor: float
) -> np.ndarray:
    """``[T, G]``: the change of ``sum_g ||W_g||_*^2`` if task ``t`` (row ``t`` of ``W``, in group
    ``groups[t]``) moved to group ``g`` (``0`` for its own)."""
    outer = W[:, :, None] * W[:, None, :]
    join = _squared_norms(scatter[None] + outer[:, None], floor) - norms2  # [T, G]
    leave = _squared_norms(scatter[groups] - outer, floor) - norms2[groups]  # [T]
    change = join + leave[:, None]
    change[np.arange(len(W)), groups] = 0.0
    return change


def _reassign(W: np.ndarray, groups: np.ndarray, n_groups: int) -> tuple[np.ndarray, bool]:
    """Single-task moves that lower ``sum_g ||W_g||_*^2``, best first, each re-priced before it
    is made; returns the new assignment and whether any task moved."""
    groups = groups.copy()
    scatter = _scatter(W, groups, n_groups)
    floor = 1e-13 * max(float(np.sum(W * W)), np.finfo(float).tiny)
    norms2 = _squared_norms(scatter, floor)
    gain = _move_costs(scatter, norms2, W, groups, floor).min(axis=1)
    slack = 1e-9 * max(float(norms2.sum()), np.finfo(float).tiny)  # below: rounding, not a gain
    moved = False
    for t in np.argsort(gain)[: int(np.sum(gain < -slack))]:
        change = _move_costs(scatter, norms2, W[t : t + 1], groups[t : t + 1], floor)[0]
        here, best = groups[t], int(np.argmin(change))
        if change[best] < -slack:
            outer = np.outer(W[t], W[t])
            scatter[here] -= outer
            scatter[best] += outer
            norms2[[here, best]] = _squared_norms(scatter[[here, best]], floor)
            groups[t], moved = best, True
    return groups, moved


_MAX_PASSES = 100  # passes of single-task moves per local search (each pass lowers the objective)


class _GroupedFeatures:
    # provided by the estimator base this mixin is combined with
    _solve_apg: Callable[..., Any]
    _stop_reason: Callable[..., str | None]
    _constraints = {
        "alpha": "nonneg",
        "n_groups": "posint",
        "n_init": "posint",
        "max_outer_iter": "posint",
    }

    def __init__(
        self,
        alpha: float = 0.1,
        *,
        n_groups: int = 2,
        n_init: int = 5,
        random_state: int | None = 0,
        max_outer_iter: int = 50,
        fit_intercept: bool = True,
        max_iter: int = 1000,
        tol: float = 1e-5,
    ) -> None:
        self.alpha = alpha
        self.n_groups = n_groups
        self.n_init = n_init
        self.random_state = random_state
        self.max_outer_iter = max_outer_iter
        self.fit_intercept = fit_intercept
        self.max_iter = max_iter
        self.tol = tol

    def _assign(self, W: np.ndarray, groups: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
        """The assignment step for fixed ``W`` (only the penalty depends on it): single-task moves
        until none gains, from the current assignment and from ``n_init`` random partitions;
        the lowest ``sum_g ||W_g||_*^2`` is kept. On a tie the partition with more non-empty
        groups wins (splitting a group never raises the penalty, and frees the next ``W`` step:
        e.g. tasks whose weights are parallel cost the same together or apart), then the
        current one."""
        best, best_key = groups, (np.inf, 0)
        for start in [groups] + [rng.permutation(np.arange(len(W)) % k) for _ in range(self.n_init)]:
            for _ in range(_MAX_PASSES):
                start, moved = _reassign(W, start, k)
                if not moved:
                    break
            key = (float(np.sum(_trace_norms(W, start, k) ** 2)), len(np.unique(start)))
            if key[0] < best_key[0] * (1.0 - 1e-9) or (key[0] <= best_key[0] * (1.0 + 1e-9) and key[1] > best_key[1]):
                best, best_key = start, key
        return best

    def _solve(self, data: TaskData) -> tuple[Blocks, np.ndarray | None, int, str | None]:
        T = data.n_tasks
        k = min(self.n_groups, T)
        rng = np.random.default_rng(self.random_state)
        # start as Kang et al. do: every task in one group (MTFL), then alternate
        groups = np.zeros(T, dtype=int)
        W, b = np.zeros((T, data.n_features)), None
        path: list[float] = []
        inner, moved, inner_converged = 0, True, True
        for _ in range(self.max_outer_iter):
            (W,), b, n_iter, ok = self._solve_apg(data, [W], b, hooks=_SquaredTraceNorms(groups, k, self.alpha))
            inner, inner_converged = inner + n_iter, inner_converged and ok
            new = self._assign(W, groups, k, rng) if k > 1 else groups
            moved = not np.array_equal(new, groups)
            groups = new
            path.append(data.value(W, b) + self.alpha * float(np.sum(_trace_norms(W, groups, k) ** 2)))
            if not moved:  # W is optimal for this assignment, and the assignment for this W
                break
        if moved:  # its own words: the alternation stops on the assignment, not on tol
            warnings.warn(
                f"{type(self).__name__}: tasks still changed groups after max_outer_iter="
                f"{self.max_outer_iter} alternations; increase max_outer_iter.",
                ConvergenceWarning,
                stacklevel=4,
            )
        self.assignment_ = groups
        self._n_groups = k
        values, vectors = np.linalg.eigh(_scatter(W, groups, k))
        root = (vectors * np.sqrt(np.clip(values, 0.0, None))[:, None, :]) @ np.swapaxes(vectors, 1, 2)
        trace = np.trace(root, axis1=1, axis2=2)
        empty = trace <= 0  # no weights to share: the uniform covariance
        root[empty] = np.eye(data.n_features)
        self.group_covariances_ = root / np.where(empty, data.n_features, trace)[:, None, None]
        self.objective_path_ = path
        self.n_inner_iter_ = inner
        return [W], b, len(path), self._stop_reason(apg=not inner_converged)

    def _objective(self, data: TaskData, blocks: Blocks, b: np.ndarray | None) -> float:
        norms = _trace_norms(blocks[0], self.assignment_, self._n_groups)
        return data.value(blocks[0], b) + self.alpha * float(np.sum(norms**2))


class GroupedFeatureMultiTaskRegressor(_GroupedFeatures, LinearMultiTaskRegressor):
    r"""Least squares with learned task groups, each sharing a feature subspace (Kang et al. 2011).

    .. math:: \min_{W, b, Q} \sum_t \frac{1}{2 n_t} \|y_t - X_t w_t - b_t\|^2
              + \alpha \sum_{g=1}^G \|Q_g W\|_*^2

    ``Q`` assigns each task to one of ``G`` groups; within a group the squared trace norm makes
    the tasks share a few directions in feature space (Argyriou et al.'s multi-task feature
    learning, ``G = 1``). Fitted by alternating an APG solve of ``W`` (convex for a fixed
    assignment) with a local search over the assignment by exact single-task moves (module
    docstring); the result is a local minimum.

    Args:
        alpha: strength of the squared trace norms (>= 0), ``gamma`` in the paper.
        n_groups: number of task groups ``G`` (capped at the number of tasks).
        n_init: random partitions from which each assignment step also searches (besides the
            current assignment); the lowest objective is kept.
        random_state: seed of the starting partitions.
        max_outer_iter: maximum number of alternations per start.
        fit_intercept: fit an unpenalised intercept per task.
        max_iter: maximum number of APG iterations per ``W`` step.
        tol: relative tolerance of the APG stopping rule.

    Attributes:
        coef_: ``(T, d)``; ``intercept_``: ``(T,)``; assignment_: ``(T,)`` each task's group;
        group_covariances_: ``(G, d, d)`` each group's ``Omega_g = (W_g^T W_g)^{1/2} / tr(.)``
        (trace one; its leading eigenvectors are the group's shared features);
        objective_path_: the objective after each alternation (never increasing); objective_:
        its last value; n_iter_: the number of alternations; n_inner_iter_: APG iterations.

    Examples:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0); X = rng.normal(size=(240, 4)); task = np.arange(240) % 6
        >>> W = np.zeros((6, 4)); W[:3, 0] = [1.0, 2.0, -1.0]; W[3:, 2] = [1.0, -2.0, 1.5]
        >>> y = np.einsum("ij,ij->i", X, W[task]) + 0.1 * rng.normal(size=240)
        >>> model = GroupedFeatureMultiTaskRegressor(alpha=0.01, n_groups=2).fit(X, y, task=task)
        >>> len(set(model.assignment_[:3])), len(set(model.assignment_[3:])), len(set(model.assignment_))
        (1, 1, 2)

    References:
        Kang, Grauman & Sha, "Learning with whom to share in multi-task feature learning",
        ICML 2011; Argyriou, Evgeniou & Pontil, "Convex multi-task feature learning", Machine
        Learning 73(3), 2008.
    """


class GroupedFeatureMultiTaskClassifier(_GroupedFeatures, LinearMultiTaskClassifier):
    r"""Logistic regression with learned task groups sharing feature subspaces (Kang et al. 2011).

    .. math:: \min_{W, b, Q} \sum_t \frac{1}{n_t} \sum_{i \in t} \log(1 + e^{-y_i
              (x_i^\top w_t + b_t)}) + \alpha \sum_{g=1}^G \|Q_g W\|_*^2

    Fitted like :class:`GroupedFeatureMultiTaskRegressor` (the paper uses the hinge loss).

    Args:
        alpha: strength of the squared trace norms (>= 0).
        n_groups: number of task groups ``G`` (capped at the number of tasks).
        n_init: random partitions from which each assignment step also searches (besides the
            current assignment); the lowest objective is kept.
        random_state: seed of the starting partitions.
        max_outer_iter: maximum number of alternations per start.
        fit_intercept: fit an unpenalised intercept per task.
        max_iter: maximum number of APG iterations per ``W`` step.
        tol: relative tolerance of the APG stopping rule.

    Examples:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0); X = rng.normal(size=(300, 3))
        >>> Y = (X @ np.array([[2.0, 0, 0], [3.0, 0, 0], [0, 0, 2.0]]).T > 0).astype(int)
        >>> model = GroupedFeatureMultiTaskClassifier(alpha=0.01, n_groups=2).fit(X, Y)
        >>> bool(model.assignment_[0] == model.assignment_[1] != model.assignment_[2]), model.score(X, Y) > 0.95
        (True, True)

    References:
        Kang, Grauman & Sha, ICML 2011; Argyriou, Evgeniou & Pontil, Machine Learning 2008.
    """
