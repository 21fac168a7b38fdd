"""ConFIG from the Gramian against an independent numpy computation on the explicit Jacobian
(Liu, Chu & Thuerey 2024, Eq. 2: d_u = normalised pinv(U) 1, update (Σ g_iᵀd_u) d_u), its equal
cosines, and torchjd's Jacobian ConFIG."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchjd.aggregation import ConFIG as TorchJDConFIG

from manytask.balancing import ConFIG
from manytask.tasks import Regression

from .jacobian_cases import full_rank_cases, rank_deficient_cases, weights_of


def tasks(t: int) -> list[Regression]:
    return [Regression(f"t{i}") for i in range(t)]


def jacobian_reference(jacobian: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(jacobian, axis=1, keepdims=True)
    units = np.divide(jacobian, norms, out=np.zeros_like(jacobian), where=norms > 0)
    direction = np.linalg.pinv(units, rcond=1e-10) @ np.ones(len(jacobian))
    direction /= np.linalg.norm(direction)
    return (jacobian @ direction).sum() * direction


CASES = full_rank_cases() + rank_deficient_cases()


@pytest.mark.parametrize("jacobian", [j for _, j in CASES], ids=[n for n, _ in CASES])
def test_update_equals_the_jacobian_computation(jacobian: np.ndarray) -> None:
    update = jacobian.T @ weights_of(ConFIG(tasks(len(jacobian))), jacobian)
    reference = jacobian_reference(jacobian)
    # The Gramian squares the condition number (1e10 for singular values down to 1e-5): ~1e-6 relative.
    np.testing.assert_allclose(update, reference, rtol=1e-6, atol=1e-6 * np.linalg.norm(reference))


FULL = full_rank_cases()


@pytest.mark.parametrize("jacobian", [j for _, j in FULL], ids=[n for n, _ in FULL])
def test_equal_positive_cosines_with_independent_gradients(jacobian: np.ndarray) -> None:
    update = jacobian.T @ weights_of(ConFIG(tasks(len(jacobian))), jacobian)
    cosines = jacobian @ update / (np.linalg.norm(jacobian, axis=1) * np.linalg.norm(update))
    assert (cosines > 0).all()
    np.testing.assert_allclose(cosines, cosines[0], rtol=1e-6)


def test_scaling_a_task_keeps_the_direction() -> None:
    jacobian = np.random.default_rng(1).normal(size=(4, 7))
    update = jacobian.T @ weights_of(ConFIG(tasks(4)), jacobian)
    scaled = jacobian * np.array([[1.0], [1e3], [1.0], [1e-2]])
    other = scaled.T @ weights_of(ConFIG(tasks(4)), scaled)
    assert other @ update / (np.linalg.norm(other) * np.linalg.norm(update)) == pytest.approx(1.0, abs=1e-10)


def test_agrees_with_torchjd_jacobian_config() -> None:
    jacobian = np.random.default_rng(2).normal(size=(3, 8))
    theirs = TorchJDConFIG()(torch.tensor(jacobian)).numpy()
    np.testing.assert_allclose(jacobian.T @ weights_of(ConFIG(tasks(3)), jacobian), theirs, rtol=1e-8)


def test_zero_gradients_and_options() -> None:
    weights = weights_of(ConFIG(tasks(3)), np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 2.0]]))
    assert weights[1] == 0.0
    np.testing.assert_array_equal(weights_of(ConFIG(tasks(2)), np.zeros((2, 3))), [0.0, 0.0])
    weights_of(ConFIG(tasks(3)), np.random.default_rng(0).normal(size=(3, 4)), dtype=torch.float32)
    with pytest.raises(ValueError, match="'level' parameter of ConFIG"):
        ConFIG(tasks(2), level="bad")  # type: ignore[arg-type]
