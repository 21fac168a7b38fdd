"""The multi-task GP against independent GPs (scikit-learn's) when the task covariance is the
identity, and the transfer a learned task covariance gives."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF

from manytask.linear import MultiTaskGaussianProcess


def test_an_identity_task_covariance_is_independent_gps() -> None:
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 4, size=(40, 2))
    task = np.tile([0, 1], 20)
    y = np.sin(X[:, 0]) + task * X[:, 1] + 0.05 * rng.normal(size=40)
    ours = MultiTaskGaussianProcess(length_scale=0.8, noise=0.01, task_covariance=np.eye(2), optimize=False)
    ours.fit(X, y, task=task)
    X_new = rng.uniform(0, 4, size=(7, 2))
    for t in range(2):
        rows = task == t
        theirs = GaussianProcessRegressor(RBF(0.8, length_scale_bounds="fixed"), alpha=0.01 + 1e-6, optimizer=None)
        theirs.fit(X[rows], y[rows] - y[rows].mean())
        mean, std = theirs.predict(X_new, return_std=True)
        our_mean, our_std = ours.predict(X_new, task=np.full(7, t), return_std=True)
        np.testing.assert_allclose(our_mean, mean + y[rows].mean(), atol=1e-6)
        np.testing.assert_allclose(our_std, std, atol=1e-6)


def test_a_learned_task_covariance_transfers_to_the_unobserved_half() -> None:
    """Task 1 is twice task 0 and observed only on x < 2: the learned covariance correlates them
    (> 0.9) and predicts task 1 on x > 2 far better than task 1 alone does."""
    rng = np.random.default_rng(1)
    x0 = np.linspace(0, 4, 30)
    x1 = np.linspace(0, 2, 15)
    X = np.concatenate([x0, x1])[:, None]
    task = np.concatenate([np.zeros(30, int), np.ones(15, int)])
    y = np.sin(1.5 * X[:, 0]) * np.where(task == 0, 1.0, 2.0) + 0.02 * rng.normal(size=45)
    joint = MultiTaskGaussianProcess().fit(X, y, task=task)
    cov = joint.task_covariance_
    assert cov[0, 1] / np.sqrt(cov[0, 0] * cov[1, 1]) > 0.9
    X_far = np.linspace(2.5, 4, 10)[:, None]
    truth = 2 * np.sin(1.5 * X_far[:, 0])
    alone = MultiTaskGaussianProcess().fit(X[task == 1], y[task == 1])
    joint_error = np.sqrt(np.mean((joint.predict(X_far, task=np.ones(10, int)) - truth) ** 2))
    alone_error = np.sqrt(np.mean((alone.predict(X_far) - truth) ** 2))
    assert joint_error < 0.5 * alone_error
    start = MultiTaskGaussianProcess(optimize=False).fit(X, y, task=task)
    assert joint.log_marginal_likelihood_ > start.log_marginal_likelihood_


def test_a_fit_stopped_by_max_iter_warns() -> None:
    """L-BFGS stopping on max_iter returned silently (n_iter_ = 2 at max_iter=3)."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    rng = np.random.default_rng(0)
    X, task = rng.normal(size=(60, 2)), np.arange(60) % 3
    y = X[:, 0] + task + 0.1 * rng.normal(size=60)
    with pytest.warns(ConvergenceWarning, match="L-BFGS stopped on its limit \\(max_iter=3"):
        MultiTaskGaussianProcess(max_iter=3).fit(X, y, task=task)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        MultiTaskGaussianProcess(max_iter=100).fit(X, y, task=task)
