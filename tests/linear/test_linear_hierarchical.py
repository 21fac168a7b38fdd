"""Hierarchical Bayes (Bakker & Heskes 2003): EM never lowers the marginal likelihood, which is
the one written out with scipy; the task posteriors match the Gaussian-process form of Bayesian
linear regression; shrinkage helps small tasks; the batched EM gives the previous release's
per-task values. Task gating: a gate on features equal for all tasks is clustering; its M-step is
scikit-learn's weighted multinomial logistic regression; a planted feature deciding the cluster is
found and predicts new tasks."""

from __future__ import annotations

import numpy as np
import pytest
import sklearn
from scipy.special import softmax
from scipy.stats import multivariate_normal
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, KFold

from manytask.linear import HierarchicalBayesRegressor
from manytask.linear._base import InvalidParameterError
from manytask.linear._hierarchical import TaskGatingRegressor, _fit_gate

# These tests check EM's iterates (monotone, the posterior's form, the previous release's values),
# often over fewer iterations than convergence takes; stopping at max_iter warns, and
# test_linear_convergence.py tests that warning.
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _tasks(seed: int = 0, count: int = 12, rows: int = 8, d: int = 3) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    W = np.array([1.0, -1.0, 0.5]) + 0.2 * rng.normal(size=(count, d))  # every task near one mean
    task = np.repeat(np.arange(count), rows)
    X = rng.normal(size=(len(task), d))
    y = np.einsum("ij,ij->i", X, W[task]) + 0.5 * rng.normal(size=len(task))
    return X, y, task, W


def test_em_never_lowers_the_marginal_likelihood() -> None:
    X, y, task, _ = _tasks()
    for clusters in (1, 2):
        model = HierarchicalBayesRegressor(n_clusters=clusters).fit(X, y, task=task)
        history = np.array(model.log_likelihood_)
        assert np.all(np.diff(history) >= -1e-8 * np.abs(history[:-1]))


def test_the_posterior_is_bayesian_linear_regression_in_its_other_form() -> None:
    """With the fitted prior N(m, S) and noise s2, each task's posterior mean is
    m + S X^T (X S X^T + s2 I)^-1 (z - X m) and its predictive variance at x is
    x^T (S - S X^T (X S X^T + s2 I)^-1 X S) x (rows centred per task), plus the variance s2 / n_t
    of the intercept (the task's mean target under a flat prior)."""
    X, y, task, _ = _tasks(seed=1)
    model = HierarchicalBayesRegressor().fit(X, y, task=task)
    m, S, s2 = model.means_[0], model.covariances_[0], model.noise_
    x_new = np.random.default_rng(2).normal(size=(4, 3))
    for t in range(12):
        rows = task == t
        x, z = X[rows] - X[rows].mean(0), y[rows] - y[rows].mean()
        marginal = x @ S @ x.T + s2 * np.eye(len(z))
        mean = m + S @ x.T @ np.linalg.solve(marginal, z - x @ m)
        cov = S - S @ x.T @ np.linalg.solve(marginal, x @ S)
        np.testing.assert_allclose(model.coef_[t], mean, atol=1e-8)
        _, std = model.predict(x_new, task=np.full(4, t), return_std=True)
        centred = x_new - X[rows].mean(0)
        variance = np.einsum("nd,de,ne->n", centred, cov, centred) + s2 / rows.sum()
        np.testing.assert_allclose(std, np.sqrt(variance), atol=1e-8)


def test_shrinkage_towards_the_shared_prior_helps_small_tasks() -> None:
    """Eight rows per task and weights drawn around one mean: the posterior means are closer to
    the true weights than each task's own least squares."""
    X, y, task, W = _tasks(seed=3)
    model = HierarchicalBayesRegressor().fit(X, y, task=task)
    own = np.stack([np.linalg.lstsq(np.c_[X[task == t], np.ones(8)], y[task == t], rcond=None)[0][:3]
                    for t in range(12)])
    assert np.mean((model.coef_ - W) ** 2) < 0.75 * np.mean((own - W) ** 2)  # 0.039 against 0.072 here


def test_the_batched_em_gives_the_per_task_em_of_the_previous_release() -> None:
    """The EM now runs on each task's sufficient statistics, batched over tasks (the evidence by
    the determinant lemma and Woodbury); the previous release formed each task's n_t x n_t
    marginal covariance. Its values on this problem (50 iterations, two clusters):"""
    X, y, task, _ = _tasks()
    model = HierarchicalBayesRegressor(n_clusters=2, max_iter=50).fit(X, y, task=task)
    np.testing.assert_allclose(model.log_likelihood_[-1], -54.195440197156245, rtol=1e-10)
    np.testing.assert_allclose(model.coef_[0], [1.0200118506646914, -0.9109285076069171, 0.710899946653549],
                               rtol=1e-9)
    np.testing.assert_allclose(model.noise_, 0.11267763445900714, rtol=1e-9)
    np.testing.assert_allclose(model.responsibilities_[:3, 0], [0.3091477156201772, 0.01082885029038146,
                                                                0.9999557279180947], rtol=1e-8)


@pytest.mark.parametrize("shrink", [False, True])
def test_the_log_likelihood_is_the_marginal_likelihood_of_the_fitted_prior(shrink: bool) -> None:
    """sum_t log sum_k pi_k N(z_t; X_t m_k, X_t S_k X_t^T + s2 I), written out with scipy on each
    task's rows (centred, or with a column of ones when the intercept is under the prior)."""
    X, y, task, _ = _tasks(seed=4)
    model = HierarchicalBayesRegressor(n_clusters=2, tol=1e-4, shrink_intercept=shrink).fit(X, y, task=task)
    assert model.n_iter_ < model.max_iter  # stopped after an E-step: the fitted prior is the last one scored
    total = 0.0
    for t in range(12):
        x, z = X[task == t], y[task == t]
        x, z = (np.c_[x, np.ones(len(z))], z) if shrink else (x - x.mean(0), z - z.mean())
        per = [np.log(p) + multivariate_normal(x @ m, x @ S @ x.T + model.noise_ * np.eye(len(z))).logpdf(z)
               for p, m, S in zip(model.weights_, model.means_, model.covariances_)]
        total += np.logaddexp(*per)
    np.testing.assert_allclose(model.log_likelihood_[-1], total, rtol=1e-10)


# ---------------------------------------------------------------------------------------------
# task gating


def _gated(seed: int, count: int, rows: int = 6) -> tuple[np.ndarray, ...]:
    """Two clusters of tasks, weights (2, 0) + 1 intercept or (0, 2) - 1; a task feature in
    [-1, 1] decides the cluster (its sign). Column 2 of X holds the feature."""
    rng = np.random.default_rng(seed)
    feature = rng.uniform(-1, 1, size=count)
    cluster = (feature > 0).astype(int)
    W = np.array([[2.0, 0.0, 1.0], [0.0, 2.0, -1.0]])[cluster] + 0.1 * rng.normal(size=(count, 3))
    task = np.repeat(np.arange(count), rows)
    inputs = rng.normal(size=(len(task), 2))
    y = np.einsum("ij,ij->i", inputs, W[task, :2]) + W[task, 2] + 0.5 * rng.normal(size=len(task))
    return np.c_[inputs, feature[task]], y, task, cluster


def test_with_features_equal_for_all_tasks_gating_is_clustering() -> None:
    """A gate on a feature equal for every task can only learn the mixture weights: the same EM
    as clustering from the same start (the gate's Newton M-step reaching the mean responsibilities)."""
    X, y, task, _ = _tasks(seed=5)
    for shrink in (False, True):
        clustering = HierarchicalBayesRegressor(n_clusters=2, max_iter=60, shrink_intercept=shrink)
        clustering.fit(X, y, task=task)
        for columns, data in (([3], np.c_[X, np.full(len(y), 7.0)]), (None, X)):
            gating = TaskGatingRegressor(columns, n_clusters=2, max_iter=60, shrink_intercept=shrink)
            gating.fit(data, y, task=task)
            np.testing.assert_allclose(gating.log_likelihood_, clustering.log_likelihood_, rtol=1e-9)
            np.testing.assert_allclose(gating.coef_[:, :3], clustering.coef_, rtol=1e-7, atol=1e-9)
            np.testing.assert_allclose(gating.intercept_, clustering.intercept_, rtol=1e-7, atol=1e-9)
            np.testing.assert_allclose(gating.responsibilities_, clustering.responsibilities_, atol=1e-8)
            np.testing.assert_allclose(gating.weights_, np.tile(clustering.weights_, (12, 1)), rtol=1e-8)


@pytest.mark.parametrize("alpha", [0.0, 0.5])
def test_the_gate_m_step_is_sklearns_weighted_multinomial_logistic_regression(alpha: float) -> None:
    """Each task once per cluster, weighted by its responsibility: scikit-learn's multinomial
    LogisticRegression with C = 1 / alpha (no penalty for alpha = 0) maximises the same thing."""
    rng = np.random.default_rng(6)
    features, resp = rng.normal(size=(30, 2)), rng.dirichlet(np.ones(3), size=30)
    ours = _fit_gate(np.c_[np.ones(30), features], resp, alpha, np.zeros((3, 3)))
    theirs = LogisticRegression(C=1 / alpha if alpha else np.inf, tol=1e-12, max_iter=10_000).fit(
        np.repeat(features, 3, axis=0), np.tile(np.arange(3), 30), sample_weight=resp.ravel())
    np.testing.assert_allclose(softmax(ours[:, 0] + features @ ours[:, 1:].T, axis=1),
                               theirs.predict_proba(features), atol=1e-7)
    if alpha:  # unique weights (and biases up to a common shift)
        np.testing.assert_allclose(ours[:, 1:], theirs.coef_, atol=1e-6)
        np.testing.assert_allclose(ours[:, 0] - ours[:, 0].mean(), theirs.intercept_ - theirs.intercept_.mean(),
                                   atol=1e-6)


def test_the_gate_learns_the_feature_that_decides_the_cluster_and_predicts_new_tasks() -> None:
    """30 tasks of 6 rows; the gate finds that the feature's sign decides the cluster, and new
    tasks predicted from their features alone beat clustering's prior, which can only average
    the clusters."""
    X, y, task, cluster = _gated(seed=7, count=30)
    gating = TaskGatingRegressor([2], n_clusters=2).fit(X, y, task=task)
    found = gating.responsibilities_.argmax(1)
    assert np.mean(found == cluster) in (0.0, 1.0)  # every task in its cluster (up to the labels' order)
    plus = found[cluster == 1][0]
    assert np.all(gating.gate_coef_[plus] > gating.gate_coef_[1 - plus])  # the gate opens with the feature
    X_new, y_new, _, _ = _gated(seed=8, count=40)
    clustering = HierarchicalBayesRegressor(n_clusters=2, shrink_intercept=True).fit(X[:, :2], y, task=task)
    gated_error = np.sqrt(np.mean((gating.predict_new_task(X_new) - y_new) ** 2))
    clustered_error = np.sqrt(np.mean((clustering.predict_new_task(X_new[:, :2]) - y_new) ** 2))
    assert gated_error < 0.5 * clustered_error  # 0.94 against 1.98 here
    mean, std = gating.predict_new_task(X_new, return_std=True)
    assert np.all(std > 0) and mean.shape == std.shape == (240,)


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_gated_em_never_lowers_its_objective(alpha: float) -> None:
    """With gate_alpha = 0 the objective is the log marginal likelihood itself."""
    X, y, task, _ = _gated(seed=9, count=20)
    model = TaskGatingRegressor([2], n_clusters=3, gate_alpha=alpha, max_iter=80).fit(X, y, task=task)
    history = np.array(model.log_likelihood_)
    assert len(history) > 10 and np.all(np.diff(history) >= -1e-9 * np.abs(history[:-1]))


def test_gating_checks_its_task_features_and_works_in_a_grid_search() -> None:
    X, y, task, _ = _gated(seed=10, count=12)
    with pytest.raises(ValueError, match="constant within each task"):
        TaskGatingRegressor([0]).fit(X, y, task=task)
    with pytest.raises(ValueError, match="column indices"):
        TaskGatingRegressor([5]).fit(X, y, task=task)
    with pytest.raises(InvalidParameterError, match="task_feature_columns"):
        TaskGatingRegressor("2").fit(X, y, task=task)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="shrink_intercept=True"):
        HierarchicalBayesRegressor().fit(X, y, task=task).predict_new_task(X)
    with sklearn.config_context(enable_metadata_routing=True):
        model = TaskGatingRegressor([2], max_iter=20).set_fit_request(task=True).set_score_request(task=True)
        search = GridSearchCV(model, {"gate_alpha": [0.1, 10.0]}, cv=KFold(3, shuffle=True, random_state=0))
        search.fit(X, y, task=task)
        assert search.score(X, y, task=task) > 0.5


@pytest.mark.parametrize("shrink", [False, True])
def test_the_intervals_cover_the_task_functions(shrink: bool) -> None:
    """Simulated from the model (60 tasks of 30 rows): the 95 % intervals of predict(return_std)
    must cover the true task function about 95 % of the time. With shrink_intercept=False the
    intercept's uncertainty (σ²/n_t) was left out: coverage 0.87."""
    covered = []
    for seed in range(3):
        rng = np.random.default_rng(seed)
        weights, biases = 1.0 + 0.3 * rng.normal(size=(60, 3)), 0.5 * rng.normal(size=60)
        task = np.repeat(np.arange(60), 30)
        X = rng.normal(size=(1800, 3))
        y = np.einsum("ij,ij->i", X, weights[task]) + biases[task] + 0.3 * rng.normal(size=1800)
        queries, asked = rng.normal(size=(500, 3)), rng.integers(0, 60, 500)
        truth = np.einsum("ij,ij->i", queries, weights[asked]) + biases[asked]
        mean, std = HierarchicalBayesRegressor(shrink_intercept=shrink).fit(X, y, task=task).predict(
            queries, task=asked, return_std=True)
        covered.append(np.mean(np.abs(mean - truth) <= 1.96 * std))
    assert 0.92 <= np.mean(covered) <= 0.98
