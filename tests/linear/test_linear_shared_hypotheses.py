"""Shared hypotheses (Crammer & Mansour 2012) against its limits — one hypothesis is a pooled
ridge, one per task is per-task ridge — and the grouping it recovers."""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import Ridge

from manytask.linear import SharedHypothesesRegressor


def _data(seed: int, groups: list[int], noise: float = 0.1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    per_task = 40
    task = np.repeat(np.arange(len(groups)), per_task)
    X = rng.normal(size=(len(task), 3))
    centres = rng.normal(size=(max(groups) + 1, 3)) * 2
    y = np.einsum("ij,ij->i", X, centres[np.array(groups)][task]) + task + noise * rng.normal(size=len(task))
    return X, y, task


def test_one_hypothesis_is_a_pooled_ridge_with_an_intercept_per_task() -> None:
    """k = 1: scikit-learn's Ridge on each task's centred rows, every row weighted 1 / n_t."""
    X, y, task = _data(0, [0, 1, 2])
    ours = SharedHypothesesRegressor(n_hypotheses=1, alpha=0.5).fit(X, y, task=task)
    centred_x = X - np.stack([X[task == t].mean(0) for t in range(3)])[task]
    centred_y = y - np.array([y[task == t].mean() for t in range(3)])[task]
    theirs = Ridge(alpha=0.5, fit_intercept=False).fit(centred_x, centred_y, sample_weight=1 / 40 * np.ones(len(y)))
    np.testing.assert_allclose(ours.hypotheses_[0], theirs.coef_, atol=1e-10)


def test_one_hypothesis_per_distinct_task_is_ridge_per_task() -> None:
    X, y, task = _data(1, [0, 1, 2], noise=0.0)
    ours = SharedHypothesesRegressor(n_hypotheses=3, alpha=0.2).fit(X, y, task=task)
    assert sorted(ours.assignment_) == [0, 1, 2]
    for t in range(3):
        ridge = Ridge(alpha=0.2 * 40).fit(X[task == t], y[task == t])
        np.testing.assert_allclose(ours.coef_[t], ridge.coef_, atol=1e-10)
        np.testing.assert_allclose(ours.intercept_[t], ridge.intercept_, atol=1e-10)


def test_the_groups_the_tasks_were_drawn_from_are_found() -> None:
    groups = [0, 1, 0, 2, 1, 2, 0]
    X, y, task = _data(2, groups)
    model = SharedHypothesesRegressor(n_hypotheses=3, alpha=1e-3).fit(X, y, task=task)
    found = {}
    for drawn, assigned in zip(groups, model.assignment_):
        assert found.setdefault(drawn, assigned) == assigned  # one hypothesis per drawn group
    assert len(set(found.values())) == 3
