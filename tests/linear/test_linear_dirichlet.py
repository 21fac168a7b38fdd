"""Dirichlet-process multi-task classification (Xue et al. 2007): the Jaakkola-Jordan bound, the
evidence lower bound against the exact log evidence (quadrature), the pooled limit against
scikit-learn's LogisticRegression, MacKay's predictive against Monte Carlo, planted task clusters,
and the task forms."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.special import expit, log_expit
from sklearn.linear_model import LogisticRegression

from manytask.linear._base import InvalidParameterError
from manytask.linear._dirichlet import DirichletProcessMultiTaskClassifier, _lambda, _log_sigmoid_bound


def test_the_jaakkola_jordan_bound_is_below_log_sigmoid_and_tight_at_abs_z() -> None:
    z = np.linspace(-12.0, 12.0, 241)
    for xi in (0.0, 1e-6, 0.3, 1.0, 4.0, 12.0):
        assert np.all(_log_sigmoid_bound(z, np.full_like(z, xi)) <= log_expit(z) + 1e-12)
    np.testing.assert_allclose(_log_sigmoid_bound(z, np.abs(z)), log_expit(z), rtol=0, atol=1e-12)
    # lambda(xi) = (sigma(xi) - 1/2) / (2 xi), and 1/8 at 0 (both branches of the implementation)
    xi = np.array([1e-8, 5e-5, 2e-4, 0.1, 1.0, 10.0, 50.0])
    np.testing.assert_allclose(_lambda(xi), (expit(xi) - 0.5) / (2 * xi), rtol=1e-7)
    assert _lambda(np.array([0.0]))[0] == 0.125


def _log_evidence(x: np.ndarray, y: np.ndarray, s2: float) -> float:
    """Log of the integral over w ~ N(0, s2) of prod_i sigma((2 y_i - 1) w x_i) (one weight)."""

    def integrand(w: float) -> float:
        return float(np.exp(log_expit((2 * y - 1) * w * x).sum() - w * w / (2 * s2)) / np.sqrt(2 * np.pi * s2))

    return float(np.log(quad(integrand, -60, 60, points=[0.0], limit=200)[0]))


def test_one_cluster_elbo_is_a_close_lower_bound_on_the_log_evidence() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=12)
    y = (1.5 * x + rng.logistic(size=12) > 0).astype(int)
    for s2 in (1.0, 4.0):
        model = DirichletProcessMultiTaskClassifier(n_components=1, prior_variance=s2, fit_intercept=False,
                                                    tol=1e-12, max_iter=500).fit(x[:, None], y)
        exact = _log_evidence(x, y, s2)
        assert exact - 0.3 < model.elbo_[-1] <= exact  # gaps 0.07 and 0.10 nats here


@pytest.mark.parametrize("w2, alpha", [(2.0, 0.5), (2.0, 2.0), (-2.0, 0.5), (-2.0, 2.0)])
def test_two_task_elbo_is_one_cluster_elbos_plus_the_log_prior_of_the_partition(w2: float, alpha: float) -> None:
    """K = 2 sticks: pi = (V, 1 - V), V ~ Beta(1, alpha). For a (near) hard partition the stick part
    of the bound is exact, so the bound is the one-cluster bounds of the groups plus log p(partition):
    E[V (1 - V)] = alpha / ((1 + alpha)(2 + alpha)) apart, E[V^2] = 2 / ((1 + alpha)(2 + alpha)) or
    E[(1 - V)^2] = alpha / (2 + alpha) together. And it stays below the exact log evidence (by
    quadrature over both partitions)."""
    rng = np.random.default_rng(1 if w2 > 0 else 2)
    x1, x2 = rng.normal(size=40), rng.normal(size=40)
    y1 = (2.0 * x1 + rng.logistic(size=40) > 0).astype(int)
    y2 = (w2 * x2 + rng.logistic(size=40) > 0).astype(int)
    x, y = np.r_[x1, x2], np.r_[y1, y2]
    options = {"prior_variance": 2.0, "fit_intercept": False, "tol": 1e-13, "max_iter": 2000}
    model = DirichletProcessMultiTaskClassifier(n_components=2, alpha=alpha, **options)
    model.fit(x[:, None], y, task=np.repeat([0, 1], 40))
    clusters = model.responsibilities_.argmax(1)
    assert model.responsibilities_.max(1).min() > 1 - 1e-5
    assert (clusters[0] == clusters[1]) == (w2 > 0)

    def alone(x: np.ndarray, y: np.ndarray) -> float:
        return DirichletProcessMultiTaskClassifier(n_components=1, **options).fit(x[:, None], y).elbo_[-1]

    together = [2 / ((1 + alpha) * (2 + alpha)), alpha / (2 + alpha)]
    if w2 > 0:
        expected = alone(x, y) + np.log(together[clusters[0]])
    else:
        expected = alone(x1, y1) + alone(x2, y2) + np.log(alpha / ((1 + alpha) * (2 + alpha)))
    assert abs(model.elbo_[-1] - expected) < 1e-5
    same = together[0] + together[1]
    exact = np.logaddexp(np.log(same) + _log_evidence(x, y, 2.0),
                         np.log(1 - same) + _log_evidence(x1, y1, 2.0) + _log_evidence(x2, y2, 2.0))
    assert model.elbo_[-1] <= exact


def _clustered(seed: int, groups: list[int], rows: int = 40, noise: float = 0.5) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    task = np.repeat(np.arange(len(groups)), rows)
    X = rng.normal(size=(len(task), 3))
    centres = np.array([[3.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, -3.0]])
    y = (np.einsum("ij,ij->i", X, centres[np.array(groups)][task]) + noise * rng.logistic(size=len(task)) > 0)
    return X, y.astype(int), task


def test_the_bound_never_decreases() -> None:
    X, y, task = _clustered(0, [0, 1, 2, 0, 1, 2, 0, 1])
    for components in (8, 3, 1):  # each task alone at first; k-means clusters; one cluster
        model = DirichletProcessMultiTaskClassifier(n_components=components, tol=1e-10).fit(X, y, task=task)
        elbo = np.array(model.elbo_)
        assert len(elbo) > 5
        assert np.all(np.diff(elbo) >= -1e-9 * np.abs(elbo[1:]))


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_planted_task_clusters_are_recovered(seed: int) -> None:
    groups = [0, 1, 2, 0, 1, 2, 0, 1]
    X, y, task = _clustered(seed, groups)
    model = DirichletProcessMultiTaskClassifier(n_components=8).fit(X, y, task=task)
    found = model.responsibilities_.argmax(1)
    pairs = np.equal.outer(groups, groups)
    np.testing.assert_array_equal(np.equal.outer(found, found), pairs)  # the same partition
    assert model.responsibilities_.max(1).min() > 0.99


def test_identical_tasks_merge_into_one_cluster() -> None:
    """Four tasks with one weight vector: the bound prefers one cluster (the merge moves find it from
    four singletons, where one task's own fit differs by sampling noise)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 2))
    task = np.arange(2000) % 4
    y = (rng.random(2000) < expit(X @ [0.8, -0.5] + 0.2)).astype(int)
    model = DirichletProcessMultiTaskClassifier(tol=1e-10).fit(X, y, task=task)
    assert len(set(model.responsibilities_.argmax(1))) == 1
    single = DirichletProcessMultiTaskClassifier(n_components=1, tol=1e-10).fit(X, y, task=task)
    np.testing.assert_allclose(model.coef_, single.coef_, atol=1e-6)


def test_one_cluster_with_a_broad_prior_approaches_pooled_logistic_regression() -> None:
    """K = 1 and s^2 = 1e4: the variational posterior mean tends to the pooled maximum-likelihood fit
    (the gap shrinks like 1/n: 0.009, 0.001 relative at n = 300, 3000 here)."""
    rng = np.random.default_rng(0)
    gaps = []
    for n in (300, 3000):
        X = rng.normal(size=(n, 3))
        y = (X @ [1.0, -2.0, 0.5] + 0.3 + rng.logistic(size=n) > 0).astype(int)
        ours = DirichletProcessMultiTaskClassifier(n_components=1, prior_variance=1e4, tol=1e-10, max_iter=1000)
        ours.fit(X, y, task=np.arange(n) % 3)
        theirs = LogisticRegression(C=1e4, tol=1e-10, max_iter=10_000).fit(X, y)
        for t in range(3):
            np.testing.assert_array_equal(ours.coef_[t], ours.coef_[0])
        gap = np.abs(np.r_[ours.coef_[0] - theirs.coef_[0], ours.intercept_[0] - theirs.intercept_[0]]).max()
        gaps.append(gap / np.abs(theirs.coef_).max())
    assert gaps[1] < 0.003 and gaps[1] < gaps[0] / 3


def test_predictive_probability_matches_monte_carlo_over_the_posterior() -> None:
    """MacKay's probit approximation of E[sigma(w^T x)], w ~ q(W) = N(theta, Gamma): close to a
    Monte Carlo average, and closer than the plug-in sigma(theta^T x)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 2))
    y = (X @ [1.0, 1.0] + rng.logistic(size=30) > 0).astype(int)
    model = DirichletProcessMultiTaskClassifier(n_components=1).fit(X, y)
    mean = np.r_[model.cluster_coef_[0], model.cluster_intercept_[0]]
    draws = rng.multivariate_normal(mean, model.cluster_covariance_[0], size=100_000)
    queries = 2.0 * rng.normal(size=(20, 2))
    monte_carlo = expit(np.c_[queries, np.ones(20)] @ draws.T).mean(1)
    ours = model.predict_proba(queries)[:, 1]
    plug_in = expit(queries @ model.coef_[0] + model.intercept_[0])
    assert np.abs(ours - monte_carlo).max() < 0.015  # 0.007 here
    assert np.abs(plug_in - monte_carlo).max() > 2 * np.abs(ours - monte_carlo).max()


def test_probabilities_are_confident_on_separable_and_calibrated_on_noisy_data() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 2))
    task = np.arange(2000) % 4
    truth = expit(X @ [0.8, -0.5] + 0.2)
    noisy = DirichletProcessMultiTaskClassifier().fit(X, (rng.random(2000) < truth).astype(int), task=task)
    X_new, task_new = rng.normal(size=(500, 2)), np.arange(500) % 4
    prob = noisy.predict_proba(X_new, task=task_new)
    assert np.all((prob > 0) & (prob < 1))
    np.testing.assert_allclose(prob.sum(1), 1.0)
    assert np.abs(prob[:, 1] - expit(X_new @ [0.8, -0.5] + 0.2)).mean() < 0.03  # 0.018 here
    separable = (X @ [3.0, -2.0] > 0).astype(int)
    sure = DirichletProcessMultiTaskClassifier().fit(X, separable, task=task).predict_proba(X, task=task)
    right = sure[np.arange(2000), separable]
    assert right.mean() > 0.9 and np.all(sure > 0)
    assert np.abs(prob[:, 1] - 0.5).mean() < np.abs(right - 0.5).mean()


def test_shared_inputs_are_the_stacked_multi_input_problem() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    Y = (X @ rng.normal(size=(3, 4)) > 0).astype(int)
    shared = DirichletProcessMultiTaskClassifier().fit(X, Y)
    stacked = DirichletProcessMultiTaskClassifier().fit(np.tile(X, (4, 1)), Y.T.ravel(), task=np.repeat(np.arange(4), 60))
    np.testing.assert_allclose(shared.coef_, stacked.coef_, atol=1e-10)
    np.testing.assert_allclose(shared.elbo_, stacked.elbo_, rtol=1e-10)
    proba = shared.predict_proba(X)
    assert proba.shape == (60, 4) and shared.predict(X).shape == (60, 4)
    np.testing.assert_allclose(proba[:, 2], stacked.predict_proba(X, task=np.full(60, 2))[:, 1], atol=1e-12)
    np.testing.assert_array_equal(shared.predict(X), (shared.decision_function(X) > 0).astype(int))


def test_multiclass_labels_are_one_vs_rest_tasks() -> None:
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 4.0], [4.0, 0.0], [-4.0, -4.0]])
    labels = np.repeat(np.array(["a", "b", "c"]), 50)
    X = centres[np.repeat(np.arange(3), 50)] + rng.normal(size=(150, 2))
    model = DirichletProcessMultiTaskClassifier().fit(X, labels)
    assert model.task_form_ == "one_vs_rest" and model.n_tasks_ == 3
    assert len(set(model.responsibilities_.argmax(1))) == 3  # three unlike tasks stay apart
    assert model.score(X, labels) > 0.95
    np.testing.assert_allclose(model.predict_proba(X).sum(1), 1.0)


@pytest.mark.parametrize("params, match", [
    ({"n_components": 0}, "'n_components' parameter"),
    ({"alpha": 0.0}, "'alpha' parameter"),
    ({"prior_variance": -1.0}, "'prior_variance' parameter"),
    ({"tol": 0.0}, "'tol' parameter"),
])
def test_bad_parameters_are_refused(params: dict, match: str) -> None:
    X, y, task = _clustered(0, [0, 1])
    with pytest.raises(InvalidParameterError, match=match):
        DirichletProcessMultiTaskClassifier(**params).fit(X, y, task=task)


def test_input_form_errors() -> None:
    X, y, task = _clustered(0, [0, 1])
    with pytest.raises(ValueError, match="multi-input form"):
        DirichletProcessMultiTaskClassifier().fit(X, task % 3 + y, task=task)  # three classes
    model = DirichletProcessMultiTaskClassifier().fit(X, y, task=task)
    with pytest.raises(ValueError, match="pass the task of each row"):
        model.predict(X)
    with pytest.raises(ValueError, match="out of range"):
        model.predict(X, task=np.full(len(X), 2))
