"""Every fit that stops on an iteration limit says so with a ConvergenceWarning naming the limit it
reached: ``max_outer_iter`` for an alternation, ``max_iter`` for an (inner) APG solve or EM; and a
fit that meets its stopping rule does not warn."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from manytask import linear as lin


def _problem() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A small problem in the shared and multi-input forms."""
    rng = np.random.default_rng(0)
    n, d, T = 60, 5, 3
    X = rng.normal(size=(n, d))
    Y = X @ rng.normal(size=(T, d)).T + 0.3 * rng.normal(size=(n, T))
    task = np.arange(n) % T
    return X, Y, Y[np.arange(n), task], task


def _messages(estimator: object, *args: np.ndarray, **kwargs: np.ndarray) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        estimator.fit(*args, **kwargs)  # type: ignore[attr-defined]
    return [str(w.message) for w in caught if issubclass(w.category, ConvergenceWarning)]


ALTERNATING = [
    lin.MultiplicativeMultiTaskRegressor,
    lin.LatentBasisMultiTaskRegressor,
    lin.VSTGMultiTaskRegressor,
    lin.MultiplicativeMultiTaskClassifier,
]


@pytest.mark.parametrize("cls", ALTERNATING, ids=lambda c: c.__name__)
def test_an_outer_limit_is_named_max_outer_iter(cls: type) -> None:
    X, Y, _, _ = _problem()
    messages = _messages(cls(max_outer_iter=1), X, Y if "Regressor" in cls.__name__ else Y > 0)
    assert len(messages) == 1, messages
    assert f"{cls.__name__} did not converge" in messages[0]
    assert "max_outer_iter=1" in messages[0] and "max_iter=" not in messages[0]


@pytest.mark.parametrize("cls", ALTERNATING, ids=lambda c: c.__name__)
def test_an_inner_apg_limit_is_named_max_iter(cls: type) -> None:
    X, Y, _, _ = _problem()
    messages = _messages(cls(max_iter=2, max_outer_iter=1000), X, Y if "Regressor" in cls.__name__ else Y > 0)
    assert len(messages) == 1, messages
    assert "an inner APG solve reached max_iter=2" in messages[0]


@pytest.mark.parametrize(
    "cls", [lin.GroupedFeatureMultiTaskRegressor, lin.GroupedFeatureMultiTaskClassifier], ids=lambda c: c.__name__
)
def test_grouped_features_warn_when_an_inner_solve_hits_max_iter(cls: type) -> None:
    """Before the fix the inner solves' flag was dropped: max_iter=2 gave no warning."""
    X, Y, _, _ = _problem()
    labels = Y if "Regressor" in cls.__name__ else Y > 0
    messages = _messages(cls(alpha=0.05, max_iter=2), X, labels)
    assert any("max_iter=2" in m for m in messages), messages
    assert _messages(cls(alpha=0.05, tol=1e-8, max_iter=20000), X, labels) == []


@pytest.mark.parametrize("cls", [lin.HierarchicalBayesRegressor, lin.TaskGatingRegressor], ids=lambda c: c.__name__)
def test_em_warns_when_it_stops_at_max_iter(cls: type) -> None:
    """The audit's fit: the log-likelihood still rose by 2.0 at the third and last EM step."""
    X, _, y, task = _problem()
    messages = _messages(cls(n_clusters=2, max_iter=3), X, y, task=task)
    assert len(messages) == 1, messages
    assert f"{cls.__name__} did not converge" in messages[0]
    assert "max_iter=3" in messages[0] and "tol=1e-06" in messages[0]
    assert _messages(cls(n_clusters=2, max_iter=500), X, y, task=task) == []
