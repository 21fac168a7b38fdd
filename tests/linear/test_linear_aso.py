"""ASO against its limits (independent ridge, least squares), its monotone objective, the
subspace it recovers, and what unlabelled inputs add (semi-supervised ASO)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression, Ridge

from manytask.linear import AlternatingStructureRegressor


def _tasks(seed: int = 0, per_task: int = 30, d: int = 6, tasks: int = 4) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(per_task * tasks, d))
    task = np.repeat(np.arange(tasks), per_task)
    basis = np.linalg.qr(rng.normal(size=(d, 2)))[0].T  # a 2-D subspace every task's weights lie in
    W = rng.normal(size=(tasks, 2)) @ basis
    y = np.einsum("ij,ij->i", X, W[task]) + task + 0.05 * rng.normal(size=len(X))
    return X, y, task, basis


def test_no_shared_subspace_is_ridge_per_task() -> None:
    """h = 0: mean squared error + alpha ||w||^2 per task = scikit-learn's Ridge(alpha * n_t)."""
    X, y, task, _ = _tasks()
    model = AlternatingStructureRegressor(alpha=0.3, n_components=0).fit(X, y, task=task)
    for t in range(4):
        ridge = Ridge(alpha=0.3 * 30).fit(X[task == t], y[task == t])
        np.testing.assert_allclose(model.coef_[t], ridge.coef_, atol=1e-10)
        np.testing.assert_allclose(model.intercept_[t], ridge.intercept_, atol=1e-10)


def test_a_subspace_of_every_feature_is_least_squares_per_task() -> None:
    X, y, task, _ = _tasks(seed=1)
    model = AlternatingStructureRegressor(alpha=5.0, n_components=6).fit(X, y, task=task)
    for t in range(4):
        np.testing.assert_allclose(model.coef_[t], LinearRegression().fit(X[task == t], y[task == t]).coef_,
                                   atol=1e-8)


def test_the_objective_never_increases_and_the_subspace_is_found() -> None:
    """Weights drawn from a 2-D subspace: the learned Theta spans it (cosines of the principal
    angles near 1)."""
    X, y, task, basis = _tasks(seed=2)
    model = AlternatingStructureRegressor(alpha=0.5, n_components=2, max_iter=30).fit(X, y, task=task)
    assert all(b <= a + 1e-12 for a, b in zip(model.objective_, model.objective_[1:]))
    np.testing.assert_allclose(model.components_ @ model.components_.T, np.eye(2), atol=1e-10)
    cosines = np.linalg.svd(model.components_ @ basis.T, compute_uv=False)
    assert cosines.min() > 0.99


def test_unlabelled_inputs_help_when_the_labels_are_few() -> None:
    """Six labels per task, inputs with a 2-D latent structure the tasks depend on; auxiliary
    problems built from 3000 unlabelled rows (predict a column from the others) lower the test
    error on average over five draws."""
    errors = {0: [], 10: []}
    for seed in range(5):
        rng = np.random.default_rng(seed)
        mix = rng.normal(size=(2, 30))

        def draw(n: int, rng: np.random.Generator = rng, mix: np.ndarray = mix) -> tuple[np.ndarray, np.ndarray]:
            z = rng.normal(size=(n, 2))
            return z @ mix + 0.3 * rng.normal(size=(n, 30)), z

        coefficients = rng.normal(size=(6, 2))
        x, z = draw(36)
        task = np.repeat(np.arange(6), 6)
        y = np.einsum("ij,ij->i", z, coefficients[task]) + 0.1 * rng.normal(size=36)
        unlabelled, _ = draw(3000)
        x_test, z_test = draw(1200)
        task_test = np.repeat(np.arange(6), 200)
        y_test = np.einsum("ij,ij->i", z_test, coefficients[task_test])
        for auxiliary in errors:
            model = AlternatingStructureRegressor(alpha=1.0, n_components=2, auxiliary=auxiliary)
            model.fit(x, y, task=task, X_unlabelled=unlabelled if auxiliary else None)
            errors[auxiliary].append(np.sqrt(np.mean((model.predict(x_test, task=task_test) - y_test) ** 2)))
    assert np.mean(errors[10]) < 0.9 * np.mean(errors[0])


def test_bad_settings_are_named() -> None:
    X, y, task, _ = _tasks()
    with pytest.raises(ValueError, match="pass X_unlabelled"):
        AlternatingStructureRegressor(auxiliary=3).fit(X, y, task=task)
    with pytest.raises(ValueError, match="cannot exceed the number of features"):
        AlternatingStructureRegressor(n_components=7).fit(X, y, task=task)


def test_a_task_index_without_rows_gets_zero_weights() -> None:
    """Tasks 0 and 2 only (the audit's case: LinAlgError before the fix). Task 1 gets zero weights
    and intercept, as the APG estimators give it; the other tasks are unaffected: with h = 0 they
    are scikit-learn's Ridge, with h = 1 the fit without the empty index."""
    X, y, task, _ = _tasks(seed=3, tasks=3)
    gap = np.where(task == 1, 2, task)  # no rows for task 1
    for h in (0, 1):
        model = AlternatingStructureRegressor(alpha=0.3, n_components=h).fit(X, y, task=gap)
        assert model.coef_.shape == (3, 6)
        np.testing.assert_array_equal(model.coef_[1], 0.0)
        assert model.intercept_[1] == 0.0
        if h == 0:
            for t in (0, 2):
                ridge = Ridge(alpha=0.3 * np.sum(gap == t)).fit(X[gap == t], y[gap == t])
                np.testing.assert_allclose(model.coef_[t], ridge.coef_, atol=1e-10)
                np.testing.assert_allclose(model.intercept_[t], ridge.intercept_, atol=1e-10)
        else:
            packed = AlternatingStructureRegressor(alpha=0.3, n_components=h).fit(X, y, task=gap // 2)
            np.testing.assert_allclose(model.coef_[[0, 2]], packed.coef_, atol=1e-10)
            np.testing.assert_allclose(model.intercept_[[0, 2]], packed.intercept_, atol=1e-10)


def test_auxiliary_must_be_a_count() -> None:
    """auxiliary=-1 built d-1 problems silently, 2.5 crashed with a slice TypeError."""
    from manytask.linear._base import InvalidParameterError

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(20, 3)), rng.normal(size=(20, 2))
    for bad in (-1, 2.5, True):
        with pytest.raises(InvalidParameterError, match="'auxiliary' parameter.*an int in the range \\[0, inf\\)"):
            AlternatingStructureRegressor(auxiliary=bad).fit(X, y, X_unlabelled=X)
