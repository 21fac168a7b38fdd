"""MTRL (Zhang & Yeung 2010) against cvxpy at its default settings, and its reported Omega."""

from __future__ import annotations

import numpy as np
import pytest

from manytask.linear import RelationshipMultiTaskClassifier, RelationshipMultiTaskRegressor

cp = pytest.importorskip("cvxpy")


def _audit_problem() -> tuple[np.ndarray, np.ndarray]:
    """The audit's problem: the former alternation between W and Omega stopped 1 % above the
    optimum there at the default tol, coefficients off by 0.12, with no warning."""
    rng = np.random.default_rng(2)
    n, d, T = 60, 6, 3
    X = rng.normal(size=(n, d))
    W0 = rng.normal(size=(T, d))
    W0[:, -2:] = 0
    Y = X @ W0.T + 0.5 * rng.normal(size=(n, T)) + rng.normal(size=T)
    return X, Y


def test_default_settings_reach_the_cvxpy_optimum() -> None:
    """min over Omega of tr(W^T Omega^-1 W) is ||W||_*^2, so the optimum is cvxpy's of
    L(W, b) + alpha/2 ||W||_F^2 + beta/2 ||W||_*^2."""
    X, Y = _audit_problem()
    (n, T), d, alpha, beta = Y.shape, X.shape[1], 0.01, 1.0
    W, b = cp.Variable((T, d)), cp.Variable(T)
    residual = Y - X @ W.T - np.ones((n, 1)) @ cp.reshape(b, (1, T), order="C")
    objective = cp.sum_squares(residual) / (2 * n) + alpha / 2 * cp.sum_squares(W)
    problem = cp.Problem(cp.Minimize(objective + beta / 2 * cp.square(cp.normNuc(W))))
    problem.solve(solver=cp.CLARABEL)
    est = RelationshipMultiTaskRegressor(alpha=alpha, beta=beta).fit(X, Y)
    assert est.objective_ == pytest.approx(problem.value, rel=1e-4)
    np.testing.assert_allclose(est.coef_, W.value, atol=1e-2)
    np.testing.assert_allclose(est.intercept_, b.value, atol=1e-2)


def test_reported_covariance_attains_the_squared_nuclear_norm() -> None:
    """For a full-rank W and a tiny eps, task_covariance_ is the minimiser of tr(W^T Omega^-1 W)
    over tr(Omega) = 1: its value is ||W||_*^2, and Omega is positive definite with trace one."""
    X, Y = _audit_problem()
    est = RelationshipMultiTaskRegressor(alpha=0.01, beta=1e-3, eps=1e-12).fit(X, Y)
    W, omega = est.coef_, est.task_covariance_
    singular = np.linalg.svd(W, compute_uv=False)
    assert singular.min() > 1e-2 * singular.max()  # full rank
    assert np.trace(omega) == pytest.approx(1.0)
    assert np.linalg.eigvalsh(omega).min() > 0
    value = np.trace(W.T @ np.linalg.solve(omega, W))
    assert value == pytest.approx(singular.sum() ** 2, rel=1e-6)


@pytest.mark.parametrize("cls", [RelationshipMultiTaskRegressor, RelationshipMultiTaskClassifier])
def test_zero_weights_give_the_uniform_covariance_and_no_outer_loop(cls: type) -> None:
    """Constant inputs leave W = 0: Omega = (eps I)^{1/2} / tr(.) = I / T. One APG solve, so no
    max_outer_iter parameter."""
    X, Y = _audit_problem()
    est = cls().fit(np.zeros_like(X), Y if cls is RelationshipMultiTaskRegressor else Y > Y.mean(0))
    np.testing.assert_array_equal(est.coef_, 0.0)
    np.testing.assert_allclose(est.task_covariance_, np.eye(3) / 3, atol=1e-12)
    assert "max_outer_iter" not in est.get_params()
