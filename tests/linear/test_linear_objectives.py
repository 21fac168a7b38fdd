"""Objective values of the convex estimators against an independent solver (cvxpy)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from manytask import linear as lin
from manytask.linear._catalog import CLASSIFIERS, REGRESSORS

cp = pytest.importorskip("cvxpy")


def _data_term(p: Any, W: cp.Variable, b: cp.Variable, logistic: bool) -> cp.Expression:
    terms = []
    for t in range(p.n_tasks):
        rows = p.task == t
        z = p.X[rows] @ W[t, :] + b[t]
        if logistic:
            terms.append(cp.sum(cp.logistic(-cp.multiply(p.y[rows], z))) / rows.sum())
        else:
            terms.append(cp.sum_squares(p.y[rows] - z) / (2 * rows.sum()))
    return cp.sum(cp.hstack(terms))


def _col_norms(W: cp.Expression, T: int, d: int) -> cp.Expression:
    return cp.sum(cp.hstack([cp.norm(W[:, j], 2) for j in range(d)]))


def _row_norms(W: cp.Expression, T: int, d: int) -> cp.Expression:
    return cp.sum(cp.hstack([cp.norm(W[t, :], 2) for t in range(T)]))


def _col_max(W: cp.Expression, T: int, d: int) -> cp.Expression:
    return cp.sum(cp.hstack([cp.norm(W[:, j], "inf") for j in range(d)]))


GRAPH = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 2.0], [0.0, 2.0, 0.0]])

# name -> (estimator params, cvxpy builder(W parts) -> (coef expression, penalty, constraints))
Builder = Callable[[int, int], tuple[list[cp.Variable], cp.Expression, cp.Expression, list]]


def _single(pen: Callable[[cp.Variable, int, int], cp.Expression]) -> Builder:
    def build(T: int, d: int) -> tuple:
        W = cp.Variable((T, d))
        return [W], W, pen(W, T, d), []

    return build


def _pair(pen: Callable[[cp.Variable, cp.Variable, int, int], cp.Expression]) -> Builder:
    def build(T: int, d: int) -> tuple:
        P, Q = cp.Variable((T, d)), cp.Variable((T, d))
        return [P, Q], P + Q, pen(P, Q, T, d), []

    return build


def _cmtl(alpha: float, beta: float, k: int) -> Builder:
    def build(T: int, d: int) -> tuple:
        W, M = cp.Variable((T, d)), cp.Variable((T, T), symmetric=True)
        eta = beta / alpha
        pen = alpha * eta * (1 + eta) * cp.matrix_frac(W, eta * np.eye(T) + M)
        cons = [M >> 0, np.eye(T) - M >> 0, cp.trace(M) == k]
        return [W, M], W, pen, cons

    return build


def _mtrl(alpha: float, beta: float) -> Builder:
    """Zhang & Yeung's penalty with Omega minimised out: tr(W^T Omega^-1 W) -> ||W||_*^2."""

    def build(T: int, d: int) -> tuple:
        W = cp.Variable((T, d))
        pen = alpha / 2 * cp.sum_squares(W) + beta / 2 * cp.square(cp.normNuc(W))
        return [W], W, pen, []

    return build


def _graph_term(W: cp.Expression, A: np.ndarray) -> cp.Expression:
    T = A.shape[0]
    pairs = [(s, t) for s in range(T) for t in range(s + 1, T) if A[s, t] > 0]
    return cp.sum(cp.hstack([A[s, t] * cp.sum_squares(W[s, :] - W[t, :]) for s, t in pairs]))


CASES: dict[str, tuple[str, dict, Builder]] = {
    "ridge": ("ridge", {"alpha": 0.3}, _single(lambda W, T, d: 0.15 * cp.sum_squares(W))),
    "lasso": ("lasso", {"alpha": 0.1}, _single(lambda W, T, d: 0.1 * cp.sum(cp.abs(W)))),
    "mean_regularized": (
        "mean_regularized",
        {"alpha": 0.5, "beta": 0.1},
        _single(
            lambda W, T, d: (
                0.25 * cp.sum_squares(W - np.ones((T, 1)) @ cp.sum(W, 0, keepdims=True) / T)
                + 0.05 * cp.sum_squares(W)
            )
        ),
    ),
    "l21": ("l21", {"alpha": 0.2}, _single(lambda W, T, d: 0.2 * _col_norms(W, T, d))),
    "l1inf": (
        "l1lq",
        {"alpha": 0.2, "q": np.inf},
        _single(lambda W, T, d: 0.2 * _col_max(W, T, d)),
    ),
    "trace": ("trace", {"alpha": 0.3}, _single(lambda W, T, d: 0.3 * cp.normNuc(W))),
    "dirty": (
        "dirty",
        {"alpha": 0.1, "beta": 0.2},
        _pair(lambda P, Q, T, d: 0.1 * cp.sum(cp.abs(P)) + 0.2 * _col_max(Q, T, d)),
    ),
    "sparse_low_rank": (
        "sparse_low_rank",
        {"alpha": 0.1, "beta": 0.3},
        _pair(lambda P, Q, T, d: 0.1 * cp.sum(cp.abs(P)) + 0.3 * cp.normNuc(Q)),
    ),
    "rmtl": (
        "rmtl",
        {"alpha": 0.3, "beta": 0.2},
        _pair(lambda P, Q, T, d: 0.3 * cp.normNuc(P) + 0.2 * _row_norms(Q, T, d)),
    ),
    "rmtfl": (
        "rmtfl",
        {"alpha": 0.2, "beta": 0.3},
        _pair(lambda P, Q, T, d: 0.2 * _col_norms(P, T, d) + 0.3 * _row_norms(Q, T, d)),
    ),
    "srmtl": (
        "srmtl",
        {"alpha": 0.5, "graph": GRAPH, "beta": 0.05, "gamma": 0.01},
        _single(
            lambda W, T, d: (
                0.25 * _graph_term(W, GRAPH) + 0.05 * cp.sum(cp.abs(W)) + 0.005 * cp.sum_squares(W)
            )
        ),
    ),
    "cmtl": ("cmtl", {"alpha": 0.5, "beta": 0.2, "n_clusters": 2}, _cmtl(0.5, 0.2, 2)),
    "mtrl": (
        "mtrl",
        {"alpha": 0.1, "beta": 0.5},
        _mtrl(0.1, 0.5),
    ),
}


def _reference(p: Any, build: Builder, logistic: bool) -> float:
    T, d = p.n_tasks, p.X.shape[1]
    _, W, pen, cons = build(T, d)
    b = cp.Variable(T)
    prob = cp.Problem(cp.Minimize(_data_term(p, W, b, logistic) + pen), cons)
    prob.solve(solver=cp.CLARABEL)
    return float(prob.value)


@pytest.mark.parametrize("logistic", [False, True], ids=["squared", "logistic"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_objective_matches_cvxpy(case: str, logistic: bool, problem: Callable) -> None:
    name, params, build = CASES[case]
    p = problem(logistic=logistic, seed=3)
    registry = CLASSIFIERS if logistic else REGRESSORS
    est = registry.create(name, **params, tol=1e-10, max_iter=20000).fit(p.X, p.y, task=p.task)
    ref = _reference(p, build, logistic)
    assert est.objective_ == pytest.approx(ref, rel=1e-5, abs=1e-7)
    # the reported objective is the objective at the returned coefficients
    assert np.isfinite(est.coef_).all() and est.coef_.shape == (p.n_tasks, p.X.shape[1])


def test_default_tolerance_is_close_to_optimum(problem: Callable) -> None:
    p = problem(seed=4)
    ref = lin.L21MultiTaskRegressor(alpha=0.2, tol=1e-12, max_iter=50000).fit(p.X, p.y, task=p.task)
    default = lin.L21MultiTaskRegressor(alpha=0.2).fit(p.X, p.y, task=p.task)
    assert default.objective_ == pytest.approx(ref.objective_, rel=1e-4)
