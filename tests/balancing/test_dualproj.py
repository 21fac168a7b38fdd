"""DualProj against an independent cvxpy projection of the mean gradient onto the dual cone
{x : Jx >= 0}, the one-constraint closed form, and J d >= 0."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from manytask.balancing import DualProj
from manytask.tasks import Regression

from .jacobian_cases import full_rank_cases, rank_deficient_cases, weights_of
from .test_upgrad import cvxpy_projection

CASES = full_rank_cases() + rank_deficient_cases()


def tasks(t: int) -> list[Regression]:
    return [Regression(f"t{i}") for i in range(t)]


@pytest.mark.parametrize("jacobian", [j for _, j in CASES], ids=[n for n, _ in CASES])
def test_update_is_the_cvxpy_projection_of_the_mean(jacobian: np.ndarray) -> None:
    update = jacobian.T @ weights_of(DualProj(tasks(len(jacobian))), jacobian)
    reference = cvxpy_projection(jacobian, jacobian.mean(axis=0))
    norms = np.linalg.norm(jacobian, axis=1)
    np.testing.assert_allclose(update, reference, atol=1e-6 * norms.mean())
    assert (jacobian @ update >= -1e-10 * norms * (np.linalg.norm(update) + 1e-3 * norms.max())).all()


def test_one_conflict_closed_form() -> None:
    """When the mean conflicts with one task only and the projection onto that task's half-space
    conflicts with no other, π(g0) = g0 - (g0·g_k / ||g_k||²) g_k."""
    g = np.array([[3.0, 0.0, 0.0], [-1.0, 1.0, 0.0], [1.0, 0.0, 1.0]])
    g0 = g.mean(axis=0)
    assert g @ g0 @ np.eye(3)[1] < 0 and (np.delete(g @ g0, 1) > 0).all()
    expected = g0 - (g0 @ g[1]) / (g[1] @ g[1]) * g[1]
    assert (g @ expected >= -1e-12).all()
    np.testing.assert_allclose(g.T @ weights_of(DualProj(tasks(3)), g), expected, rtol=1e-12, atol=1e-14)


def test_no_conflict_with_the_mean_gives_the_mean() -> None:
    jacobian = np.array([[1.0, 0.0], [-0.5, 1.0], [0.2, 0.3]])  # tasks 0 and 1 conflict, the mean with none
    assert (jacobian @ jacobian.mean(axis=0) > 0).all()
    np.testing.assert_allclose(weights_of(DualProj(tasks(3)), jacobian), np.full(3, 1 / 3), rtol=0, atol=1e-15)


def test_zero_gradients_and_options() -> None:
    np.testing.assert_array_equal(weights_of(DualProj(tasks(2)), np.zeros((2, 3))), [0.5, 0.5])
    weights_of(DualProj(tasks(3)), np.random.default_rng(0).normal(size=(3, 4)), dtype=torch.float32)
    with pytest.raises(ValueError, match="'level' parameter of DualProj"):
        DualProj(tasks(2), level="bad")  # type: ignore[arg-type]
