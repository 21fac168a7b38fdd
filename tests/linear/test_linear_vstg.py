"""VSTG-MTL (Jeong & Jun, KDD 2018): the k-support norm and the two proximal operators against
cvxpy; the zero-penalty limit against per-task least squares / logistic regression; the fitted
point against cvxpy solutions of both convex sub-problems; the objective against an independent
evaluation; planted irrelevant variables and task groups recovered."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import cvxpy as cp
import numpy as np
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression

from manytask.linear._base import InvalidParameterError
from manytask.linear._vstg import (
    VSTGMultiTaskClassifier,
    VSTGMultiTaskRegressor,
    ksupport_norm,
    prox_l1_linf,
    prox_squared_ksupport,
)

TIGHT = {"tol": 1e-12, "max_iter": 20000, "max_outer_iter": 1000}


def _dual_ksupport(w: np.ndarray, k: int) -> float:
    """The k-support norm as the dual of the top-k l2 norm: max <u, w> s.t. sum of the k largest u_i^2 <= 1."""
    u = cp.Variable(len(w))
    problem = cp.Problem(cp.Maximize(u @ w), [cp.sum_largest(cp.square(u), k) <= 1])
    problem.solve(solver="CLARABEL")
    return float(problem.value)


def _overlap_parts(x_dim: int, k: int, shape: tuple[int, ...] = ()) -> tuple[cp.Expression, cp.Expression]:
    """``x = sum_g P_g z_g`` over all supports g of size k, and ``sum_g ||z_g||``: minimising over
    the z_g turns the second into the k-support norm of x (Argyriou et al. 2012, Def. 2.1)."""
    groups = list(itertools.combinations(range(x_dim), k))
    parts = [cp.Variable(k) for _ in groups]
    x = sum(np.eye(x_dim)[:, list(g)] @ z for g, z in zip(groups, parts))
    return x, sum(cp.norm(z, 2) for z in parts)


# ------------------------------------------------------------------------------------------------
# norm and proximal operators


def test_ksupport_norm_is_l1_at_k_1_and_l2_at_k_K() -> None:
    w = np.random.default_rng(0).normal(size=(7, 5))
    np.testing.assert_allclose(ksupport_norm(w, 1), np.abs(w).sum(1), rtol=1e-12)
    np.testing.assert_allclose(ksupport_norm(w, 5), np.linalg.norm(w, axis=1), rtol=1e-12)
    np.testing.assert_allclose(ksupport_norm(w, 9), np.linalg.norm(w, axis=1), rtol=1e-12)
    # in between: l2 <= norm <= l1 and non-decreasing as k shrinks
    norms = np.stack([ksupport_norm(w, k) for k in range(1, 6)])
    assert np.all(np.diff(norms, axis=0) <= 1e-12)


@pytest.mark.parametrize("d, k", [(5, 2), (5, 3), (6, 4)])
def test_ksupport_norm_equals_its_dual_definition(d: int, k: int) -> None:
    rng = np.random.default_rng(d + k)
    w = rng.normal(size=(4, d)) * np.array([[0.1], [1.0], [3.0], [1.0]])
    w[3, :3] = w[3, 3]  # ties
    ours = ksupport_norm(w, k)
    np.testing.assert_allclose(ours, [_dual_ksupport(row, k) for row in w], rtol=1e-6)


@pytest.mark.parametrize("d, k, tau", [(5, 1, 0.3), (5, 2, 0.05), (5, 2, 2.0), (5, 3, 0.3), (6, 4, 1.0), (4, 4, 0.5)])
def test_prox_squared_ksupport_matches_cvxpy(d: int, k: int, tau: float) -> None:
    rng = np.random.default_rng(10 * d + k)
    v = rng.normal(size=(3, d)) * np.array([[0.2], [1.0], [3.0]])
    v[2, 1:3] = v[2, 0]  # ties
    ours = prox_squared_ksupport(v, tau, k)
    for row, got in zip(v, ours):
        x, norm = _overlap_parts(d, k)
        problem = cp.Problem(cp.Minimize(tau * cp.square(norm) + 0.5 * cp.sum_squares(x - row)))
        problem.solve(solver="CLARABEL")
        # the prox objective is 1-strongly convex: a value within eps of the minimum puts the
        # point within sqrt(2 eps) of the minimiser, so this pins ours down to ~5e-5 (the norm
        # itself is checked against its dual definition above)
        value = tau * ksupport_norm(got, k)[0] ** 2 + 0.5 * np.sum((got - row) ** 2)
        assert value <= problem.value + 1e-9
        np.testing.assert_allclose(got, x.value, atol=2e-4)  # cvxpy's own point is less accurate


def test_prox_squared_ksupport_closed_forms() -> None:
    v = np.random.default_rng(1).normal(size=(5, 4))
    np.testing.assert_allclose(prox_squared_ksupport(v, 0.7, 4), v / 2.4)  # k = K: ridge
    np.testing.assert_array_equal(prox_squared_ksupport(v, 0.0, 2), v)
    # one row, k = 1: the prox of tau ||x||_1^2 is soft thresholding at 2 tau ||x||_1
    x = prox_squared_ksupport(v[0], 0.3, 1)
    np.testing.assert_allclose(x, np.sign(v[0]) * np.maximum(np.abs(v[0]) - 0.6 * np.abs(x).sum(), 0), atol=1e-12)


def test_prox_l1_linf_matches_cvxpy() -> None:
    v = np.random.default_rng(2).normal(size=(4, 6)) * 2
    for tau1, tau2 in [(0.2, 0.5), (0.0, 1.0), (0.5, 0.0), (0.1, 5.0)]:
        x = cp.Variable((4, 6))
        linf = sum(cp.norm(x[:, j], "inf") for j in range(6))
        objective = tau1 * cp.sum(cp.abs(x)) + tau2 * linf + 0.5 * cp.sum_squares(x - v)
        problem = cp.Problem(cp.Minimize(objective))
        problem.solve(solver="CLARABEL")
        ours = prox_l1_linf(v, tau1, tau2, axis=0)
        np.testing.assert_allclose(ours, x.value, atol=1e-5)
        value = tau1 * np.abs(ours).sum() + tau2 * np.abs(ours).max(0).sum() + 0.5 * np.sum((ours - v) ** 2)
        assert value <= problem.value + 1e-9  # strongly convex: within ~5e-5 of the minimiser


# ------------------------------------------------------------------------------------------------
# estimators


def test_zero_penalties_and_as_many_bases_as_tasks_is_least_squares_per_task(problem: Callable) -> None:
    p = problem(n=60, d=4, n_tasks=3)
    est = VSTGMultiTaskRegressor(0.0, gamma2=0.0, mu=0.0, n_components=5, **TIGHT).fit(p.X, p.y, task=p.task)
    refs = [LinearRegression().fit(p.X[p.task == t], p.y[p.task == t]) for t in range(3)]
    np.testing.assert_allclose(est.coef_, [r.coef_ for r in refs], atol=1e-6)
    np.testing.assert_allclose(est.intercept_, [r.intercept_ for r in refs], atol=1e-6)


def test_classifier_zero_penalties_is_logistic_regression_per_task(problem: Callable) -> None:
    p = problem(n=90, d=4, n_tasks=3, logistic=True, seed=2)
    est = VSTGMultiTaskClassifier(0.0, gamma2=0.0, mu=0.0, n_components=3, **TIGHT).fit(p.X, p.y, task=p.task)
    refs = [LogisticRegression(C=np.inf, tol=1e-12, max_iter=10000).fit(p.X[p.task == t], p.y[p.task == t])
            for t in range(3)]
    np.testing.assert_allclose(est.coef_, [r.coef_[0] for r in refs], atol=2e-4)
    np.testing.assert_allclose(est.intercept_, [r.intercept_[0] for r in refs], atol=2e-4)


def _grouped(seed: int = 0, rows: int = 40, noise: float = 0.3) -> tuple[np.ndarray, ...]:
    """Six tasks in two groups: group 1 uses variables 0-2, group 2 variables 3-5; 6-9 are noise."""
    rng = np.random.default_rng(seed)
    bases = np.zeros((2, 10))
    bases[0, :3], bases[1, 3:6] = [1.0, -1.0, 0.5], [0.5, 1.0, -1.0]
    scales = 1.0 + 0.3 * rng.random(6)
    W = np.r_[scales[:3, None] * bases[0], scales[3:, None] * bases[1]]
    task = np.repeat(np.arange(6), rows)
    X = rng.normal(size=(len(task), 10))
    y = np.einsum("ij,ij->i", X, W[task]) + noise * rng.normal(size=len(task)) + task
    return X, y, task, W


def test_fitted_point_minimises_both_convex_subproblems() -> None:
    """Fixing V (resp. U), the problem is convex: cvxpy's minimum over U (resp. V) equals ours."""
    X, y, task, _ = _grouped(seed=1, rows=25)
    gamma1, gamma2, mu, k = 0.02, 0.05, 0.05, 2
    est = VSTGMultiTaskRegressor(gamma1, gamma2=gamma2, mu=mu, k_support=k, n_components=3, **TIGHT)
    est.fit(X, y, task=task)
    codes, basis = est.codes_, est.basis_
    centred = [(X[task == t] - X[task == t].mean(0), y[task == t] - y[task == t].mean()) for t in range(6)]

    def loss(w_of: Callable[[int], cp.Expression]) -> cp.Expression:
        return sum(cp.sum_squares(z - x @ w_of(t)) / (2 * len(z)) for t, (x, z) in enumerate(centred))

    B = cp.Variable(basis.shape)
    u_penalty = gamma1 * cp.sum(cp.abs(B)) + gamma2 * sum(cp.norm(B[:, j], "inf") for j in range(10))
    v_penalty = mu * np.sum(ksupport_norm(codes, k) ** 2)
    over_u = cp.Problem(cp.Minimize(loss(lambda t: B.T @ codes[t]) + u_penalty + v_penalty))
    over_u.solve(solver="CLARABEL")
    rows = [_overlap_parts(3, k) for _ in range(6)]
    u_value = gamma1 * np.abs(basis).sum() + gamma2 * np.abs(basis).max(0).sum()
    over_v = cp.Problem(cp.Minimize(loss(lambda t: basis.T @ rows[t][0]) + u_value
                                    + mu * sum(cp.square(norm) for _, norm in rows)))
    over_v.solve(solver="CLARABEL")
    assert est.objective_ == pytest.approx(over_u.value, rel=1e-6)
    assert est.objective_ == pytest.approx(over_v.value, rel=1e-6)
    # and along the scale symmetry (c U, V / c): u_value c + v_value / c^2 is stationary at c = 1
    assert u_value == pytest.approx(2 * v_penalty, rel=1e-4)


@pytest.mark.parametrize("logistic", [False, True])
def test_objective_never_increases_and_equals_an_independent_evaluation(logistic: bool) -> None:
    X, y, task, _ = _grouped(seed=2, rows=30)
    if logistic:
        y = np.where(y - task > 0, 1, -1)
        est = VSTGMultiTaskClassifier(0.01, gamma2=0.02, mu=0.02, k_support=2, n_components=3, max_outer_iter=1000)
    else:
        est = VSTGMultiTaskRegressor(0.01, gamma2=0.02, mu=0.02, k_support=2, n_components=3, max_outer_iter=1000)
    est.fit(X, y, task=task)
    path = np.array(est.objective_path_)
    assert len(path) > 2 and np.all(np.diff(path) <= 1e-12 * np.abs(path[:-1]))
    z = est.decision_function(X, task=task) if logistic else est.predict(X, task=task)
    per_row = np.logaddexp(0, -y * z) if logistic else 0.5 * (y - z) ** 2
    data = sum(per_row[task == t].mean() for t in range(6))
    U = est.basis_.T  # the paper's variable-latent matrix
    penalty = 0.01 * np.abs(U).sum() + 0.02 * np.abs(U).max(1).sum()
    penalty += 0.02 * sum(_dual_ksupport(v, 2) ** 2 for v in est.codes_)
    assert est.objective_ == pytest.approx(data + penalty, rel=1e-6)
    assert path[-1] == pytest.approx(est.objective_, rel=1e-12)
    np.testing.assert_allclose(est.coef_, est.codes_ @ est.basis_, atol=1e-12)


def test_planted_irrelevant_variables_dropped_and_task_groups_found() -> None:
    X, y, task, W = _grouped(seed=3, rows=50, noise=0.1)
    est = VSTGMultiTaskRegressor(0.1, gamma2=0.2, mu=0.02, k_support=1, n_components=2).fit(X, y, task=task)
    kept = np.abs(est.basis_).sum(0) > 0
    np.testing.assert_array_equal(kept, np.arange(10) < 6)  # variables 6-9 dropped, 0-5 kept
    support = est.codes_ != 0
    assert np.all(support[:3] == support[0]) and np.all(support[3:] == support[3])  # one pattern per group
    assert not np.any(support[0] & support[3])  # disjoint groups: no shared latent basis
    assert np.abs(est.coef_ - W).max() < 0.15  # close to the truth (|w| up to 1.3)


def test_classifier_drops_planted_irrelevant_variables() -> None:
    X, y, task, _ = _grouped(seed=3, rows=80)
    y = np.where(y - task > 0, 1, -1)
    est = VSTGMultiTaskClassifier(0.02, gamma2=0.15, mu=0.02, k_support=1, n_components=2).fit(X, y, task=task)
    np.testing.assert_array_equal(np.abs(est.basis_).sum(0) > 0, np.arange(10) < 6)
    assert est.score(X, y, task=task) > 0.85


@pytest.mark.parametrize(
    "params, match",
    [
        ({"mu": -1.0}, r"The 'mu' parameter of VSTGMultiTaskRegressor must be a float in the range \[0, inf\)"),
        ({"gamma2": "a"}, r"The 'gamma2' parameter"),
        ({"k_support": 0}, r"The 'k_support' parameter .* must be an int in the range \[1, inf\)"),
        ({"n_components": 2.5}, r"The 'n_components' parameter"),
    ],
)
def test_invalid_hyperparameters(params: dict, match: str) -> None:
    X, Y = np.ones((6, 2)), np.arange(12.0).reshape(6, 2)
    with pytest.raises(InvalidParameterError, match=match):
        VSTGMultiTaskRegressor(**params).fit(X, Y)
