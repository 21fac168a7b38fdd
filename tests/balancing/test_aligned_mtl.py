"""Aligned-MTL against an independent numpy SVD of the Jacobian (Senushkin et al. 2023, Alg. 1:
the aligned system σ_R U Vᵀ for Jᵀ = U Σ Vᵀ, summed), rank-deficient Jacobians included."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchjd.aggregation import AlignedMTLWeighting

from manytask.balancing import AlignedMTL
from manytask.tasks import Regression

from .jacobian_cases import full_rank_cases, rank_deficient_cases, weights_of

CASES = full_rank_cases() + rank_deficient_cases()


def tasks(t: int) -> list[Regression]:
    return [Regression(f"t{i}") for i in range(t)]


def svd_reference(jacobian: np.ndarray, mode: str = "min") -> np.ndarray:
    """The sum of the aligned gradients σ U Vᵀ 1 from the SVD of Jᵀ (non-zero singular values)."""
    u, sigma, vt = np.linalg.svd(jacobian.T, full_matrices=False)
    keep = sigma > 1e-7 * sigma.max()
    u, sigma, vt = u[:, keep], sigma[keep], vt[keep]
    lower_median = np.sort(sigma**2)[(len(sigma) - 1) // 2]  # torch.median's, as the official code takes it
    scale = {"min": sigma.min(), "median": np.sqrt(lower_median), "rmse": np.sqrt(np.mean(sigma**2))}[mode]
    return scale * u @ vt @ np.ones(jacobian.shape[0])


@pytest.mark.parametrize("jacobian", [j for _, j in CASES], ids=[n for n, _ in CASES])
def test_update_is_the_sum_of_the_aligned_gradients(jacobian: np.ndarray) -> None:
    update = jacobian.T @ weights_of(AlignedMTL(tasks(len(jacobian))), jacobian)
    reference = svd_reference(jacobian)
    np.testing.assert_allclose(update, reference, rtol=1e-6, atol=1e-9 * np.abs(reference).max())


@pytest.mark.parametrize("t", [2, 4, 5])
@pytest.mark.parametrize("mode", ["median", "rmse"])
def test_scale_modes(mode: str, t: int) -> None:
    """With an even number of eigenvalues the median is the lower middle one (torch.median in the
    official code), not numpy's mean of the two."""
    jacobian = np.random.default_rng(5).normal(size=(t, 8))
    update = jacobian.T @ weights_of(AlignedMTL(tasks(t), scale_mode=mode), jacobian)  # type: ignore[arg-type]
    np.testing.assert_allclose(update, svd_reference(jacobian, mode), rtol=1e-9)


def test_update_norm_is_sigma_min_times_sqrt_t() -> None:
    """With T independent gradients the aligned system σ_min U Vᵀ has T orthogonal columns of norm
    σ_min, so their sum has norm σ_min √T, whatever the spread of the gradient norms."""
    jacobian = np.random.default_rng(6).normal(size=(4, 9)) * np.array([[0.1], [1.0], [10.0], [1.0]])
    update = jacobian.T @ weights_of(AlignedMTL(tasks(4)), jacobian)
    sigma_min = np.linalg.svd(jacobian, compute_uv=False).min()
    assert np.linalg.norm(update) == pytest.approx(2.0 * sigma_min, rel=1e-9)


def test_orthogonal_gradients_and_zeros() -> None:
    jacobian = np.diag([2.0, 1.0, 4.0])  # σ_min = 1: the update is Σ u_i
    np.testing.assert_allclose(weights_of(AlignedMTL(tasks(3)), jacobian), [0.5, 1.0, 0.25], rtol=1e-14)
    np.testing.assert_array_equal(weights_of(AlignedMTL(tasks(2)), np.zeros((2, 3))), [1.0, 1.0])


def test_agrees_with_torchjd_given_a_unit_preference() -> None:
    """torchjd's default preference is 1/T (a T times smaller step); with ones it is the same."""
    jacobian = np.random.default_rng(7).normal(size=(4, 6))
    gramian = torch.tensor(jacobian @ jacobian.T)
    theirs = AlignedMTLWeighting(pref_vector=torch.ones(4, dtype=torch.float64))(gramian).numpy()
    np.testing.assert_allclose(weights_of(AlignedMTL(tasks(4)), jacobian), theirs, rtol=1e-10)
    np.testing.assert_allclose(AlignedMTLWeighting()(gramian).numpy(), theirs / 4, rtol=1e-12)


def test_options_and_dtype() -> None:
    weights_of(AlignedMTL(tasks(3)), np.random.default_rng(0).normal(size=(3, 4)), dtype=torch.float32)
    with pytest.raises(ValueError, match="'scale_mode' parameter of AlignedMTL"):
        AlignedMTL(tasks(2), scale_mode="max")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'level' parameter of AlignedMTL"):
        AlignedMTL(tasks(2), level="bad")  # type: ignore[arg-type]
