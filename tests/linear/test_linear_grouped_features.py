"""Learning with whom to share (Kang, Grauman & Sha 2011) against values derived independently:
one group is the squared-trace-norm MTFL problem (cvxpy; the trace-norm estimator at the matched
strength), one group per task is ridge / logistic ridge per task, the assignment is the best
partition for the fitted weights, the prox against a generic solver, planted groups found."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.optimize import minimize
from sklearn.linear_model import LogisticRegression, Ridge

from manytask.linear._base import InvalidParameterError
from manytask.linear._feature_selection import TraceNormMultiTaskRegressor
from manytask.linear._grouped_features import (
    GroupedFeatureMultiTaskClassifier,
    GroupedFeatureMultiTaskRegressor,
    prox_squared_l1,
)


def _shared(seed: int, n: int = 40, d: int = 5, tasks: int = 4) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    W = np.outer(rng.normal(size=tasks), rng.normal(size=d)) + 0.5 * rng.normal(size=(tasks, d))
    return X, X @ W.T + 0.3 * rng.normal(size=(n, tasks))


def _planted(seed: int, logistic: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Three groups of five tasks; group g's weights lie in the span of features 2g, 2g + 1."""
    rng = np.random.default_rng(seed)
    groups = np.arange(15) % 3
    coef = rng.normal(size=(15, 2))
    coef *= (3.0 + rng.uniform(size=(15, 1))) / np.linalg.norm(coef, axis=1, keepdims=True)
    W = np.einsum("tk,tkd->td", coef, np.eye(8)[:6].reshape(3, 2, 8)[groups])
    rows = 100 if logistic else 30  # recovered for each of seeds 0..19 (60 rows, norm 2-3: 15/20)
    task = np.repeat(np.arange(15), rows)
    X = rng.normal(size=(len(task), 8))
    z = np.einsum("ij,ij->i", X, W[task])
    y = (z + rng.logistic(size=len(z)) > 0).astype(int) if logistic else z + 0.3 * rng.normal(size=len(z))
    return X, y, task, groups


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.array_equal(a[:, None] == a[None, :], b[:, None] == b[None, :]))


def _penalty(W: np.ndarray, groups: np.ndarray) -> float:
    return float(sum(np.linalg.norm(W[groups == g], "nuc") ** 2 for g in np.unique(groups)))


@pytest.mark.parametrize("tau", [0.01, 0.2, 3.0])
def test_prox_of_the_squared_l1_norm_matches_a_generic_solver(tau: float) -> None:
    v = np.sort(np.random.default_rng(0).exponential(size=6))[::-1]
    ref = minimize(lambda x: tau * x.sum() ** 2 + 0.5 * np.sum((x - v) ** 2), v,
                   jac=lambda x: 2 * tau * x.sum() + x - v, bounds=[(0, None)] * 6, method="L-BFGS-B",
                   options={"ftol": 1e-15, "gtol": 1e-12})
    np.testing.assert_allclose(prox_squared_l1(v, tau), ref.x, atol=1e-7)
    assert np.all(prox_squared_l1(np.zeros(3), tau) == 0)


def test_one_group_is_squared_trace_norm_mtfl() -> None:
    """G = 1: min sum_t mean loss + alpha ||W||_*^2, a convex problem (Argyriou et al. 2008), by cvxpy."""
    cp = pytest.importorskip("cvxpy")
    rng = np.random.default_rng(0)
    X, task = rng.normal(size=(90, 4)), np.repeat(np.arange(3), 30)
    y = np.einsum("ij,ij->i", X, rng.normal(size=(3, 4))[task]) + task + 0.5 * rng.normal(size=90)
    ours = GroupedFeatureMultiTaskRegressor(alpha=0.05, n_groups=1, tol=1e-10, max_iter=20000).fit(X, y, task=task)
    W, b = cp.Variable((3, 4)), cp.Variable(3)
    loss = sum(cp.sum_squares(X[task == t] @ W[t] + b[t] - y[task == t]) / 60 for t in range(3))
    problem = cp.Problem(cp.Minimize(loss + 0.05 * cp.square(cp.normNuc(W))))
    problem.solve(solver="CLARABEL")
    assert ours.objective_ == pytest.approx(problem.value, rel=1e-7)
    np.testing.assert_allclose(ours.coef_, W.value, atol=1e-4)
    np.testing.assert_allclose(ours.intercept_, b.value, atol=1e-4)
    assert np.linalg.matrix_rank(ours.coef_, tol=1e-6) == 2  # the squared trace norm cut a direction


def test_one_group_logistic_matches_cvxpy() -> None:
    cp = pytest.importorskip("cvxpy")
    rng = np.random.default_rng(3)
    X = rng.normal(size=(50, 4))
    labels = (X @ rng.normal(size=(3, 4)).T + rng.logistic(size=(50, 3)) > 0).astype(int)
    ours = GroupedFeatureMultiTaskClassifier(alpha=0.02, n_groups=1, tol=1e-10, max_iter=20000).fit(X, labels)
    sign = 2.0 * labels - 1
    W, b = cp.Variable((3, 4)), cp.Variable(3)
    loss = sum(cp.sum(cp.logistic(-cp.multiply(sign[:, t], X @ W[t] + b[t]))) / 50 for t in range(3))
    problem = cp.Problem(cp.Minimize(loss + 0.02 * cp.square(cp.normNuc(W))))
    problem.solve(solver="CLARABEL")
    assert ours.objective_ == pytest.approx(problem.value, rel=1e-7)
    np.testing.assert_allclose(ours.coef_, W.value, atol=1e-4)
    np.testing.assert_allclose(ours.intercept_, b.value, atol=1e-4)


def test_one_group_is_the_trace_norm_solution_at_the_matched_strength() -> None:
    """The optimality conditions of alpha ||W||_*^2 at W* are those of (2 alpha ||W*||_*) ||W||_*:
    the subgradient of the square is 2 ||W||_* times that of the norm."""
    X, Y = _shared(2)
    ours = GroupedFeatureMultiTaskRegressor(alpha=0.05, n_groups=1, tol=1e-12, max_iter=50000).fit(X, Y)
    strength = 2 * 0.05 * np.linalg.norm(ours.coef_, "nuc")
    trace = TraceNormMultiTaskRegressor(alpha=strength, tol=1e-12, max_iter=50000).fit(X, Y)
    np.testing.assert_allclose(ours.coef_, trace.coef_, atol=1e-5)


def test_one_group_per_task_is_ridge_per_task() -> None:
    """G = T: ||w_t||_*^2 = ||w_t||^2, so task t solves mean loss + alpha ||w_t||^2, i.e.
    scikit-learn's Ridge(alpha = 2 n alpha) and LogisticRegression(C = 1 / (2 n alpha))."""
    X, Y = _shared(4)
    ours = GroupedFeatureMultiTaskRegressor(alpha=0.05, n_groups=4, tol=1e-12, max_iter=50000).fit(X, Y)
    assert sorted(ours.assignment_) == [0, 1, 2, 3]
    for t in range(4):
        ridge = Ridge(alpha=2 * 40 * 0.05).fit(X, Y[:, t])
        np.testing.assert_allclose(ours.coef_[t], ridge.coef_, atol=1e-5)
        np.testing.assert_allclose(ours.intercept_[t], ridge.intercept_, atol=1e-5)
    labels = (Y > 0).astype(int)  # correlated tasks: the one-group start is nearly rank one
    ours = GroupedFeatureMultiTaskClassifier(alpha=0.05, n_groups=4, tol=1e-12, max_iter=50000).fit(X, labels)
    assert sorted(ours.assignment_) == [0, 1, 2, 3]
    for t in range(4):
        logistic = LogisticRegression(C=1 / (2 * 40 * 0.05), tol=1e-12, max_iter=10000).fit(X, labels[:, t])
        np.testing.assert_allclose(ours.coef_[t], logistic.coef_[0], atol=1e-5)
        np.testing.assert_allclose(ours.intercept_[t], logistic.intercept_[0], atol=1e-5)


@pytest.mark.parametrize("logistic", [False, True])
def test_planted_groups_with_disjoint_subspaces_are_found(logistic: bool) -> None:
    X, y, task, groups = _planted(5, logistic)
    cls = GroupedFeatureMultiTaskClassifier if logistic else GroupedFeatureMultiTaskRegressor
    model = cls(alpha=0.01, n_groups=3).fit(X, y, task=task)
    assert _same_partition(model.assignment_, groups)
    for g in range(3):  # each group's feature covariance lives on its own two features
        omega = model.group_covariances_[model.assignment_[groups == g][0]]
        assert np.trace(omega) == pytest.approx(1.0)
        assert np.trace(omega[2 * g : 2 * g + 2, 2 * g : 2 * g + 2]) > 0.9


def test_the_fitted_partition_is_the_best_one_for_the_fitted_weights() -> None:
    """For fixed W only the penalty depends on the partition: none of the 2^6 partitions of six
    tasks into two groups has a lower sum_g ||W_g||_*^2 than the one returned."""
    X, Y = _shared(6, d=4, tasks=6)
    Y[:, 3:] = X[:, ::-1] @ np.random.default_rng(7).normal(size=(4, 3))  # two kinds of tasks
    model = GroupedFeatureMultiTaskRegressor(alpha=0.05, n_groups=2).fit(X, Y)
    best = min(_penalty(model.coef_, np.array(p)) for p in itertools.product([0, 1], repeat=6))
    assert _penalty(model.coef_, model.assignment_) <= best * (1 + 1e-9)


@pytest.mark.parametrize("logistic", [False, True])
def test_objective_never_increases_and_is_what_was_minimised(logistic: bool) -> None:
    X, y, task, _ = _planted(8, logistic)
    cls = GroupedFeatureMultiTaskClassifier if logistic else GroupedFeatureMultiTaskRegressor
    model = cls(alpha=0.01, n_groups=3, n_init=2).fit(X, y, task=task)
    path = np.array(model.objective_path_)
    assert np.all(np.diff(path) <= 1e-12 * np.abs(path[:-1]))
    z = np.einsum("ij,ij->i", X, model.coef_[task]) + model.intercept_[task]
    per_row = np.logaddexp(0, -(2.0 * y - 1) * z) if logistic else 0.5 * (y - z) ** 2
    loss = sum(per_row[task == t].mean() for t in range(15))
    assert model.objective_ == pytest.approx(loss + 0.01 * _penalty(model.coef_, model.assignment_), rel=1e-10)
    assert model.objective_ == pytest.approx(path[-1], rel=1e-12)


@pytest.mark.parametrize("params, match", [
    ({"n_groups": 0}, "'n_groups' parameter"),
    ({"alpha": -1.0}, "'alpha' parameter"),
    ({"n_init": 1.5}, "'n_init' parameter"),
])
def test_bad_hyperparameters_are_refused(params: dict, match: str) -> None:
    X, Y = _shared(9)
    with pytest.raises(InvalidParameterError, match=match):
        GroupedFeatureMultiTaskRegressor(**params).fit(X, Y)
