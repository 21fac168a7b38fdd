"""Closed forms and reductions: zero coupling, scikit-learn equivalents, duality gaps."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from sklearn.linear_model import Lasso, LogisticRegression, MultiTaskLasso, Ridge

from manytask import linear as lin

TIGHT = {"tol": 1e-12, "max_iter": 50000}


def _per_task(p, fit: Callable) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001
    coefs, icepts = [], []
    for t in range(p.n_tasks):
        rows = p.task == t
        m = fit(rows).fit(p.X[rows], p.y[rows])
        coefs.append(m.coef_.ravel())
        icepts.append(float(np.ravel(m.intercept_)[0]))
    return np.array(coefs), np.array(icepts)


@pytest.mark.parametrize(
    "estimator",
    [
        lin.MeanRegularizedMultiTaskRegressor(alpha=0.0, beta=0.3, **TIGHT),
        lin.IndependentRidgeRegressor(alpha=0.3, **TIGHT),
        lin.RelationshipMultiTaskRegressor(alpha=0.3, beta=0.0, **TIGHT),
        lin.GraphRegularizedMultiTaskRegressor(alpha=0.0, gamma=0.3, **TIGHT),
        lin.ClusteredMultiTaskRegressor(alpha=1.0, beta=0.15, n_clusters=3, **TIGHT),
    ],
    ids=["mean_reg_zero_coupling", "ridge", "mtrl_beta0", "srmtl_alpha0", "cmtl_k_eq_T"],
)
def test_zero_coupling_equals_per_task_ridge(estimator, problem: Callable) -> None:  # noqa: ANN001
    p = problem(n=60, d=4, n_tasks=3)
    est = estimator.fit(p.X, p.y, task=p.task)
    n_t = np.bincount(p.task)
    coef, icept = _per_task(p, lambda rows: Ridge(alpha=0.3 * rows.sum()))
    assert n_t.min() > 0
    np.testing.assert_allclose(est.coef_, coef, atol=2e-5)
    np.testing.assert_allclose(est.intercept_, icept, atol=2e-5)


def test_independent_lasso_equals_sklearn_lasso(problem: Callable) -> None:
    p = problem(n=60, d=6, n_tasks=3)
    est = lin.IndependentLassoRegressor(alpha=0.1, **TIGHT).fit(p.X, p.y, task=p.task)
    coef, icept = _per_task(p, lambda rows: Lasso(alpha=0.1, tol=1e-12, max_iter=100000))
    np.testing.assert_allclose(est.coef_, coef, atol=2e-5)
    np.testing.assert_allclose(est.intercept_, icept, atol=2e-5)


def test_independent_logistic_equals_sklearn(problem: Callable) -> None:
    p = problem(n=60, d=4, n_tasks=3, logistic=True, seed=2)
    est = lin.IndependentRidgeClassifier(alpha=0.05, **TIGHT).fit(p.X, p.y, task=p.task)
    coef, icept = _per_task(
        p, lambda rows: LogisticRegression(C=1 / (0.05 * rows.sum()), tol=1e-12, max_iter=10000)
    )
    np.testing.assert_allclose(est.coef_, coef, atol=2e-5)
    np.testing.assert_allclose(est.intercept_, icept, atol=2e-5)


def test_l21_shared_inputs_equals_multitask_lasso() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 8))
    Y = X[:, :3] @ rng.normal(size=(3, 4)) + 0.3 * rng.normal(size=(40, 4)) + 2.0
    ours = lin.L21MultiTaskRegressor(alpha=0.2, **TIGHT).fit(X, Y)
    ref = MultiTaskLasso(alpha=0.2, tol=1e-14, max_iter=100000).fit(X, Y)
    np.testing.assert_allclose(ours.coef_, ref.coef_, atol=2e-5)
    np.testing.assert_allclose(ours.intercept_, ref.intercept_, atol=2e-5)
    assert 0 < np.sum(np.linalg.norm(ours.coef_, axis=0) > 0) < X.shape[1]


def _l21_duality_gap(X: np.ndarray, Y: np.ndarray, W: np.ndarray, alpha: float) -> float:
    """Primal minus dual value (scaled by n) of the centred L2,1 least-squares problem.

    The dual point is the residual scaled into the dual feasible set, so the gap is first
    order in the coefficient error; the solver's objective-based rule gives coefficients
    accurate to about ``sqrt(tol)``.
    """
    n = X.shape[0]
    R = Y - X @ W.T
    primal = 0.5 * np.sum(R * R) + n * alpha * np.linalg.norm(W, axis=0).sum()
    dual_norm = np.linalg.norm(X.T @ R, axis=1).max()
    u = R * min(1.0, n * alpha / dual_norm)
    dual = np.sum(Y * u) - 0.5 * np.sum(u * u)
    return float(primal - dual)


@pytest.mark.parametrize("tol, bound", [(1e-12, 1e-5), (1e-5, 1e-2)])
def test_l21_duality_gap_vanishes(tol: float, bound: float) -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(50, 10))
    Y = X[:, :4] @ rng.normal(size=(4, 5)) + 0.5 * rng.normal(size=(50, 5))
    X, Y = X - X.mean(0), Y - Y.mean(0)
    est = lin.L21MultiTaskRegressor(alpha=0.1, tol=tol, max_iter=50000).fit(X, Y)
    gap = _l21_duality_gap(X, Y, est.coef_, 0.1)
    assert -1e-9 <= gap <= bound * est.objective_ * X.shape[0]


def test_shared_form_equals_stacked_multi_input_form() -> None:
    rng = np.random.default_rng(2)
    X = rng.normal(size=(30, 5))
    Y = rng.normal(size=(30, 3))
    shared = lin.TraceNormMultiTaskRegressor(alpha=0.2, **TIGHT).fit(X, Y)
    stacked = lin.TraceNormMultiTaskRegressor(alpha=0.2, **TIGHT).fit(
        np.tile(X, (3, 1)), Y.T.ravel(), task=np.repeat(np.arange(3), 30)
    )
    np.testing.assert_allclose(shared.coef_, stacked.coef_, atol=2e-5)
    pred_t1 = stacked.predict(X, task=np.ones(30, dtype=int))
    np.testing.assert_allclose(shared.predict(X)[:, 1], pred_t1, atol=2e-5)


def test_srmtl_complete_graph_equals_mean_regularized(problem: Callable) -> None:
    p = problem()
    graph = lin.GraphRegularizedMultiTaskRegressor(alpha=0.4, gamma=0.1, **TIGHT)
    mean = lin.MeanRegularizedMultiTaskRegressor(alpha=0.4, beta=0.1, **TIGHT)
    graph.fit(p.X, p.y, task=p.task)
    mean.fit(p.X, p.y, task=p.task)
    np.testing.assert_allclose(graph.coef_, mean.coef_, atol=2e-5)


def test_dirty_model_limits(problem: Callable) -> None:
    p = problem(d=6)
    # a huge block penalty leaves only the sparse part: the lasso
    dirty = lin.DirtyMultiTaskRegressor(alpha=0.05, beta=1e3, **TIGHT).fit(p.X, p.y, task=p.task)
    lasso = lin.IndependentLassoRegressor(alpha=0.05, **TIGHT).fit(p.X, p.y, task=p.task)
    np.testing.assert_allclose(dirty.coef_, lasso.coef_, atol=2e-5)
    assert np.all(dirty.block_coef_ == 0)
    np.testing.assert_allclose(dirty.sparse_coef_ + dirty.block_coef_, dirty.coef_)


def test_mean_regularisation_shrinks_tasks_together(problem: Callable) -> None:
    p = problem()
    spread = []
    for alpha in (0.0, 1.0, 100.0):
        W = (
            lin.MeanRegularizedMultiTaskRegressor(alpha=alpha, beta=0.01)
            .fit(p.X, p.y, task=p.task)
            .coef_
        )
        spread.append(np.linalg.norm(W - W.mean(0)))
    assert spread[0] > spread[1] > spread[2] and spread[2] < 0.05 * spread[0]


def test_trace_norm_lowers_rank() -> None:
    rng = np.random.default_rng(3)
    X = rng.normal(size=(80, 10))
    Y = X @ (rng.normal(size=(10, 1)) @ rng.normal(size=(1, 6))) + 0.1 * rng.normal(size=(80, 6))
    W = lin.TraceNormMultiTaskRegressor(alpha=0.5).fit(X, Y).coef_
    s = np.linalg.svd(W, compute_uv=False)
    assert np.sum(s > 1e-8 * s[0]) == 1


def test_cmtl_recovers_task_clusters() -> None:
    rng = np.random.default_rng(4)
    X = rng.normal(size=(60, 5))
    centres = rng.normal(size=(2, 5)) * 3
    W = centres[[0, 0, 0, 1, 1, 1]] + 0.05 * rng.normal(size=(6, 5))
    Y = X @ W.T + 0.1 * rng.normal(size=(60, 6))
    est = lin.ClusteredMultiTaskRegressor(alpha=1.0, beta=0.01, n_clusters=2).fit(X, Y)
    M = est.cluster_matrix_
    assert np.trace(M) == pytest.approx(2.0)
    assert np.linalg.eigvalsh(M).min() >= -1e-9 and np.linalg.eigvalsh(M).max() <= 1 + 1e-9
    within = M[:3, :3].mean() + M[3:, 3:].mean()
    between = M[:3, 3:].mean()
    assert within / 2 > between + 0.2


def test_mtrl_learns_negative_correlation() -> None:
    rng = np.random.default_rng(5)
    X = rng.normal(size=(50, 4))
    w = rng.normal(size=4)
    Y = np.column_stack([X @ w, -(X @ w), X @ rng.normal(size=4)]) + 0.1 * rng.normal(size=(50, 3))
    est = lin.RelationshipMultiTaskRegressor(alpha=0.01, beta=0.1).fit(X, Y)
    omega = est.task_covariance_
    assert np.trace(omega) == pytest.approx(1.0)
    corr = omega[0, 1] / np.sqrt(omega[0, 0] * omega[1, 1])
    assert corr < -0.9


def test_gomtl_factorisation_and_descent(problem: Callable) -> None:
    p = problem(n=90, d=6, n_tasks=5)
    one = lin.LatentBasisMultiTaskRegressor(alpha=0.01, beta=0.01, n_components=2, max_outer_iter=1)
    full = lin.LatentBasisMultiTaskRegressor(alpha=0.01, beta=0.01, n_components=2)
    with pytest.warns(Warning):
        one.fit(p.X, p.y, task=p.task)
    full.fit(p.X, p.y, task=p.task)
    assert full.codes_.shape == (5, 2) and full.basis_.shape == (2, 6)
    np.testing.assert_allclose(full.coef_, full.codes_ @ full.basis_)
    assert full.objective_ <= one.objective_ + 1e-12
    sparse = lin.LatentBasisMultiTaskRegressor(alpha=1.0, beta=0.01, n_components=2)
    assert np.mean(sparse.fit(p.X, p.y, task=p.task).codes_ == 0) > np.mean(full.codes_ == 0)


def test_solver_on_a_quadratic_and_on_a_nan_objective() -> None:
    from manytask.linear import accelerated_proximal_gradient

    A = np.diag([1.0, 10.0, 100.0])
    target = np.array([1.0, -2.0, 3.0])

    def f(x: np.ndarray) -> float:
        return 0.5 * float((x - target) @ A @ (x - target))

    def f_grad(x: np.ndarray) -> tuple[float, np.ndarray]:
        return f(x), A @ (x - target)

    res = accelerated_proximal_gradient(
        f, f_grad, lambda x: 0.0, lambda v, s: v, np.zeros(3), tol=1e-14, max_iter=5000
    )
    assert res.converged and np.allclose(res.x, target, atol=1e-6)
    with pytest.raises(FloatingPointError, match="backtracking failed"):
        accelerated_proximal_gradient(
            lambda x: float("nan"),
            lambda x: (float("nan"), x),
            lambda x: 0.0,
            lambda v, s: v,
            np.ones(2),
        )
