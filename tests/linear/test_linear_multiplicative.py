"""MMTFL (Wang et al. 2014/2016) against values derived independently: the first alternation
from c = 1 is per-task lasso/ridge/logistic (scikit-learn), (p, k) = (2, 2) is MultiTaskLasso
(and a cvxpy L2,1 logistic fit), the shared scale is the scalar minimiser found by scipy, the
non-convex pairs end at a stationary point of the equivalent joint penalty on W, the objective
never increases over alternations, and a planted shared support is recovered."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import pytest
from scipy.optimize import approx_fprime, minimize_scalar
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import Lasso, LogisticRegression, MultiTaskLasso, Ridge

from manytask.linear._base import InvalidParameterError, TaskData
from manytask.linear._multiplicative import (
    MultiplicativeMultiTaskClassifier,
    MultiplicativeMultiTaskRegressor,
    _ScaledStep,
)

TIGHT = {"tol": 1e-12, "max_iter": 50000}
PAIRS = [(1, 1), (1, 2), (2, 1), (2, 2)]


def _lam(g1: float, g2: float, p: int, k: int) -> float:
    """Weight of sum_j ||w^j||_p^(pk/(p+k)) after minimising the penalty over c (by hand)."""
    return (p + k) * p ** (-p / (p + k)) * k ** (-k / (p + k)) * g1 ** (k / (p + k)) * g2 ** (p / (p + k))


def _centred(X: np.ndarray, y: np.ndarray, task: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(X[task == t] - X[task == t].mean(0), y[task == t] - y[task == t].mean()) for t in np.unique(task)]


def _quiet_fit(est, *args, **kw):  # noqa: ANN001, ANN002, ANN003, ANN202
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # max_outer_iter reached on purpose
        return est.fit(*args, **kw)


@pytest.mark.parametrize("p", [1, 2])
def test_first_alternation_from_unit_scale_is_per_task_lasso_or_ridge(p: int, problem: Callable) -> None:
    """c starts at 1 and the c step leaves W unchanged, so one alternation is an independent fit."""
    pr = problem(n=60, d=5, n_tasks=3)
    est = _quiet_fit(MultiplicativeMultiTaskRegressor(0.08, gamma2=0.3, p=p, max_outer_iter=1, **TIGHT),
                     pr.X, pr.y, task=pr.task)
    for t in range(3):
        rows = pr.task == t
        ref = (Lasso(alpha=0.08, tol=1e-12, max_iter=100000) if p == 1 else Ridge(alpha=2 * 0.08 * rows.sum()))
        ref.fit(pr.X[rows], pr.y[rows])
        np.testing.assert_allclose(est.coef_[t], ref.coef_, atol=2e-6)
        np.testing.assert_allclose(est.intercept_[t], ref.intercept_, atol=2e-6)


@pytest.mark.parametrize("p", [1, 2])
def test_beta_step_at_a_fixed_scale_is_lasso_or_ridge_on_rescaled_features(p: int, problem: Callable) -> None:
    pr = problem(n=60, d=5, n_tasks=3, seed=4)
    scale = np.array([0.5, 2.0, 0.0, 1.3, 0.9])  # a dropped feature included
    data = TaskData(pr.X, pr.y, pr.task, 3, logistic=False, fit_intercept=True)
    est = MultiplicativeMultiTaskRegressor(**TIGHT)
    (beta,), _, _, _ = est._solve_apg(data, [np.zeros((3, 5))], hooks=_ScaledStep(scale, 0.05, p))
    for t in range(3):
        rows = pr.task == t
        ref = (Lasso(alpha=0.05, tol=1e-12, max_iter=100000) if p == 1 else Ridge(alpha=2 * 0.05 * rows.sum()))
        ref.fit(pr.X[rows] * scale, pr.y[rows])
        np.testing.assert_allclose(beta[t], ref.coef_, atol=2e-6)


def test_first_alternation_of_the_classifier_is_per_task_logistic(problem: Callable) -> None:
    pr = problem(n=60, d=4, n_tasks=3, logistic=True, seed=2)
    est = _quiet_fit(MultiplicativeMultiTaskClassifier(0.05, p=2, max_outer_iter=1, **TIGHT), pr.X, pr.y, task=pr.task)
    for t in range(3):
        rows = pr.task == t
        ref = LogisticRegression(C=1 / (2 * 0.05 * rows.sum()), tol=1e-12, max_iter=10000).fit(pr.X[rows], pr.y[rows])
        np.testing.assert_allclose(est.coef_[t], ref.coef_.ravel(), atol=2e-5)
        np.testing.assert_allclose(est.intercept_[t], ref.intercept_[0], atol=2e-5)


@pytest.mark.parametrize("gammas", [(0.1, 0.1), (0.4, 0.025)], ids=["equal", "same_product"])
def test_p2_k2_is_multitask_lasso_with_alpha_2_sqrt_gamma1_gamma2(gammas: tuple[float, float]) -> None:
    """The (2, 2) penalty is 2 sqrt(g1 g2) ||W||_{2,1}: only the product of the two weights counts."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 8))
    Y = X[:, :3] @ rng.normal(size=(3, 4)) + 0.3 * rng.normal(size=(40, 4)) + 2.0
    g1, g2 = gammas
    ours = MultiplicativeMultiTaskRegressor(g1, gamma2=g2, p=2, k=2, max_outer_iter=5000, tol=1e-10,
                                            max_iter=20000).fit(X, Y)
    ref = MultiTaskLasso(alpha=0.2, tol=1e-14, max_iter=100000).fit(X, Y)
    np.testing.assert_allclose(ours.coef_, ref.coef_, atol=5e-6)
    np.testing.assert_allclose(ours.intercept_, ref.intercept_, atol=5e-6)
    assert 0 < np.sum(np.linalg.norm(ref.coef_, axis=0) > 0) < X.shape[1]


def test_p2_k2_classifier_matches_a_cvxpy_l21_logistic_fit(problem: Callable) -> None:
    cp = pytest.importorskip("cvxpy")
    pr = problem(n=90, d=5, n_tasks=3, logistic=True, seed=1)
    g1 = g2 = 0.03
    ours = MultiplicativeMultiTaskClassifier(g1, gamma2=g2, p=2, k=2, max_outer_iter=5000, tol=1e-12,
                                             max_iter=20000).fit(pr.X, pr.y, task=pr.task)
    W, b = cp.Variable((3, 5)), cp.Variable(3)
    loss = sum(cp.sum(cp.logistic(cp.multiply(-pr.y[pr.task == t], pr.X[pr.task == t] @ W[t] + b[t])))
               / np.sum(pr.task == t) for t in range(3))
    problem_ = cp.Problem(cp.Minimize(loss + 2 * np.sqrt(g1 * g2) * cp.sum(cp.norm(W, 2, axis=0))))
    problem_.solve()
    np.testing.assert_allclose(ours.objective_, problem_.value, rtol=1e-8)
    np.testing.assert_allclose(ours.coef_, W.value, atol=1e-4)
    np.testing.assert_allclose(ours.intercept_, b.value, atol=1e-4)


@pytest.mark.parametrize("p, k", PAIRS)
def test_scale_is_the_minimiser_over_c_and_the_objective_its_joint_penalty_form(p: int, k: int,
                                                                                 problem: Callable) -> None:
    """At the fit, each c_j minimises g1 sum_t |w_tj / c|^p + g2 c^k (scipy, W fixed), and the
    factored objective equals the W-form objective with penalty lambda ||w^j||_p^(pk/(p+k))."""
    pr = problem(n=60, d=5, n_tasks=3, seed=5)
    g1, g2 = 0.04, 0.2
    est = MultiplicativeMultiTaskRegressor(g1, gamma2=g2, p=p, k=k).fit(pr.X, pr.y, task=pr.task)
    W = est.coef_
    penalty = 0.0
    for j in range(5):
        strength = np.sum(np.abs(W[:, j]) ** p)
        if strength == 0:
            assert est.feature_scale_[j] == 0
            continue
        res = minimize_scalar(lambda c, s=strength: g1 * s / c**p + g2 * c**k, bounds=(1e-6, 1e3), method="bounded",
                              options={"xatol": 1e-12})
        np.testing.assert_allclose(est.feature_scale_[j], res.x, rtol=1e-5)
        np.testing.assert_allclose(res.fun, _lam(g1, g2, p, k) * strength ** (k / (p + k)), rtol=1e-8)
        penalty += res.fun
    loss = sum(0.5 * np.mean((x @ W[t] - y) ** 2) for t, (x, y) in enumerate(_centred(pr.X, pr.y, pr.task)))
    np.testing.assert_allclose(est.objective_, loss + penalty, rtol=1e-8)


@pytest.mark.parametrize("p, k", [(1, 1), (1, 2), (2, 1)])
def test_nonconvex_fit_is_stationary_for_the_joint_penalty_on_w(p: int, k: int, problem: Callable) -> None:
    """The non-convex pairs: on the support of W (signs fixed, so the W-form objective is smooth
    there) its finite-difference gradient vanishes, and zero entries of kept features (p = 1)
    satisfy the subgradient condition |dL/dw_tj| <= lambda q ||w^j||_1^(q - 1)."""
    pr = problem(n=90, d=6, n_tasks=3, seed=7)
    g1, g2 = 0.05, 0.05
    est = MultiplicativeMultiTaskRegressor(g1, gamma2=g2, p=p, k=k, max_outer_iter=5000, tol=1e-12,
                                           max_iter=50000).fit(pr.X, pr.y, task=pr.task)
    parts, lam, q = _centred(pr.X, pr.y, pr.task), _lam(g1, g2, p, k), p * k / (p + k)
    # p = 2 never zeroes a feature exactly: one whose scale has collapsed counts as dropped
    kept = est.feature_scale_ > 1e-6 * est.feature_scale_.max()
    support = (est.coef_ != 0) & kept

    def loss(W: np.ndarray) -> float:
        return sum(0.5 * np.mean((x @ W[t] - y) ** 2) for t, (x, y) in enumerate(parts))

    def objective(v: np.ndarray) -> float:
        W = np.zeros_like(est.coef_)
        W[support] = v
        return loss(W) + lam * float(np.sum(np.sum(np.abs(W) ** p, axis=0) ** (q / p)))

    assert support.any() and not support.all()
    grad = approx_fprime(est.coef_[support], objective, 1e-7)
    np.testing.assert_allclose(grad, 0.0, atol=5e-5)
    if p == 1:
        data_grad = np.stack([x.T @ (x @ est.coef_[t] - y) / len(y) for t, (x, y) in enumerate(parts)])
        norms = np.abs(est.coef_).sum(0)
        for t, j in zip(*np.nonzero(~support & kept)):
            assert abs(data_grad[t, j]) <= lam * q * norms[j] ** (q - 1) + 1e-6


@pytest.mark.parametrize("p, k", PAIRS)
@pytest.mark.parametrize("cls", [MultiplicativeMultiTaskRegressor, MultiplicativeMultiTaskClassifier])
def test_objective_never_increases_over_alternations(cls: type, p: int, k: int, problem: Callable) -> None:
    pr = problem(n=90, d=6, n_tasks=3, logistic=cls is MultiplicativeMultiTaskClassifier, seed=3)
    objectives = [_quiet_fit(cls(0.05, gamma2=0.05, p=p, k=k, max_outer_iter=m), pr.X, pr.y, task=pr.task).objective_
                  for m in range(1, 7)]
    assert np.all(np.diff(objectives) <= 1e-12 * abs(objectives[0]))
    assert objectives[-1] < objectives[0]


def _planted(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """5 tasks, 12 features: 0..2 used by every task, 3 by task 0 only, the rest by none."""
    rng = np.random.default_rng(seed)
    T, d, n = 5, 12, 50
    X, task = rng.normal(size=(n * T, d)), np.repeat(np.arange(T), n)
    W = np.zeros((T, d))
    W[:, :3] = rng.choice([-1, 1], size=(T, 3)) * rng.uniform(1, 2, size=(T, 3))
    W[0, 3] = 2.0
    return X, np.einsum("ij,ij->i", X, W[task]) + 0.3 * rng.normal(size=n * T), task, W


@pytest.mark.parametrize("k", [1, 2])
def test_p1_recovers_the_planted_shared_and_task_specific_support(k: int) -> None:
    X, y, task, W = _planted(3)
    est = MultiplicativeMultiTaskRegressor(0.1, gamma2=0.1, p=1, k=k).fit(X, y, task=task)
    np.testing.assert_array_equal(np.flatnonzero(est.feature_scale_), [0, 1, 2, 3])
    np.testing.assert_array_equal(est.coef_ != 0, W != 0)  # feature 3 stays with task 0 only
    assert np.max(np.abs(est.coef_ - W)) < 0.5


def test_p2_shrinks_the_planted_noise_features_towards_zero() -> None:
    """With p = 2 the ridge step never zeroes a feature exactly; unused features shrink instead."""
    X, y, task, _ = _planted(4)
    est = MultiplicativeMultiTaskRegressor(0.1, gamma2=0.1, p=2, k=1, tol=1e-8).fit(X, y, task=task)
    assert est.feature_scale_[4:].max() < 0.01 * est.feature_scale_[:4].min()


@pytest.mark.parametrize("params, match", [
    ({"p": 3}, "'p' parameter .* must be an int among \\{1, 2\\}. Got 3"),
    ({"k": "2"}, "'k' parameter .* Got '2'"),
    ({"p": True}, "'p' parameter"),
    ({"gamma1": 0.0}, "'gamma1' parameter .* range \\(0, inf\\)"),
    ({"gamma2": -1.0}, "'gamma2' parameter"),
    ({"max_outer_iter": 0}, "'max_outer_iter' parameter"),
])
def test_bad_parameters_are_refused(params: dict, match: str, problem: Callable) -> None:
    pr = problem()
    with pytest.raises(InvalidParameterError, match=match):
        MultiplicativeMultiTaskRegressor(**params).fit(pr.X, pr.y, task=pr.task)
