"""IMTL-G against an independent numpy computation of the paper's closed form on explicit
Jacobians (alpha_{2:T} = g_1 Uᵀ (D Uᵀ)^-1), its equal-projection property, the pseudo-inverse
generalisation on rank-deficient Jacobians, and the sign issue of the Σα = 1 normalisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchjd.aggregation import IMTLGWeighting

from manytask.balancing import IMTLG
from manytask.tasks import Regression

from .jacobian_cases import full_rank_cases, rank_deficient_cases, weights_of


def tasks(t: int) -> list[Regression]:
    return [Regression(f"t{i}") for i in range(t)]


def paper_closed_form(jacobian: np.ndarray) -> np.ndarray:
    """Liu et al. (2021), Sec. 3.2, on the gradients themselves (as LibMTL's IMTL)."""
    units = jacobian / np.linalg.norm(jacobian, axis=1, keepdims=True)
    d = jacobian[0] - jacobian[1:]
    u = units[0] - units[1:]
    rest = jacobian[0] @ u.T @ np.linalg.inv(d @ u.T)
    return np.concatenate([[1 - rest.sum()], rest])


FULL = full_rank_cases()


@pytest.mark.parametrize("jacobian", [j for _, j in FULL], ids=[n for n, _ in FULL])
def test_weights_equal_the_papers_closed_form(jacobian: np.ndarray) -> None:
    ours = weights_of(IMTLG(tasks(len(jacobian))), jacobian)
    expected = paper_closed_form(jacobian)
    np.testing.assert_allclose(jacobian.T @ ours, jacobian.T @ expected, rtol=1e-6,
                               atol=1e-8 * np.linalg.norm(jacobian, axis=1).max())
    assert ours.sum() == pytest.approx(1.0, abs=1e-12)
    units = jacobian / np.linalg.norm(jacobian, axis=1, keepdims=True)
    projections = units @ (jacobian.T @ ours)
    np.testing.assert_allclose(projections, projections[0], rtol=1e-5)  # impartial (to cond(G)·eps: 1e10·1e-16)


def test_orthogonal_gradients_closed_form() -> None:
    """Orthogonal g_i: α_i ∝ 1/||g_i|| and the update is Σ u_i / Σ 1/||g_i||."""
    jacobian = np.diag([2.0, 1.0, 4.0])
    inverse = 1 / np.array([2.0, 1.0, 4.0])
    np.testing.assert_allclose(weights_of(IMTLG(tasks(3)), jacobian), inverse / inverse.sum(), rtol=1e-14)


RANK = rank_deficient_cases()


@pytest.mark.parametrize("jacobian", [j for _, j in RANK], ids=[n for n, _ in RANK])
def test_rank_deficient_uses_the_pseudo_inverse(jacobian: np.ndarray) -> None:
    """α ∝ D⁻¹ Ĝ⁺ 1 (Quinton & Rey's generalisation on the unit gradients), computed here from the
    SVD of the unit rows Û = D⁻¹J: Ĝ⁺ = U Σ⁻² Uᵀ over the non-zero singular values."""
    norms = np.linalg.norm(jacobian, axis=1)
    u, sigma, _ = np.linalg.svd(jacobian / norms[:, None], full_matrices=False)
    keep = sigma > 1e-10 * sigma.max()
    pinv = (u[:, keep] / sigma[keep] ** 2) @ u[:, keep].T
    beta = pinv.sum(axis=1) / norms
    np.testing.assert_allclose(weights_of(IMTLG(tasks(len(jacobian))), jacobian), beta / beta.sum(), rtol=1e-8)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gradient_norms_far_apart_keep_equal_projections(dtype: torch.dtype) -> None:
    """Directions well apart, norms 10^4 (float32) or 10^8 (float64) apart: the pseudo-inverse of
    the raw Gramian dropped its small eigenvalue as rounding and the projections came out as
    [13294, 1000, 2295]-like; solved on the unit gradients they are equal, as the paper's closed
    form gives — here solved in 50-digit arithmetic (mpmath: G α = λ δ, Σ α = 1), since the closed
    form itself loses the large task's weight in float64 at 10^8 (1.6e-8 for 7.3e-9)."""
    import mpmath

    rng = np.random.default_rng(0)
    directions = rng.normal(size=(3, 10))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    spread = 1e4 if dtype == torch.float32 else 1e8
    jacobian = directions * np.array([[spread], [1.0], [1.0]])
    ours = weights_of(IMTLG(tasks(3)), jacobian, dtype=dtype)
    with mpmath.workdps(50):
        exact = mpmath.matrix(jacobian.tolist())
        gramian = exact * exact.T
        solution = mpmath.lu_solve(gramian, mpmath.matrix([mpmath.sqrt(gramian[i, i]) for i in range(3)]))
        expected = np.array([float(v / sum(solution)) for v in solution])
    np.testing.assert_allclose(ours, expected, rtol=1e-4 if dtype == torch.float32 else 1e-8)
    projections = directions @ (jacobian.T @ ours)
    np.testing.assert_allclose(projections, projections[0], rtol=1e-4 if dtype == torch.float32 else 1e-8)


def test_duplicate_tasks_keep_equal_projections() -> None:
    a, b = np.random.default_rng(2).normal(size=(2, 6))
    jacobian = np.stack([a, a, b])  # δ is in the range of G: the projections are still equal
    update = jacobian.T @ weights_of(IMTLG(tasks(3)), jacobian)
    units = jacobian / np.linalg.norm(jacobian, axis=1, keepdims=True)
    np.testing.assert_allclose(units @ update, (units @ update)[0], rtol=1e-10)


def test_zero_and_opposite_gradients() -> None:
    weights = weights_of(IMTLG(tasks(3)), np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 2.0]]))
    assert weights[1] == 0.0  # a zero gradient gets weight 0
    np.testing.assert_array_equal(weights_of(IMTLG(tasks(2)), np.zeros((2, 3))), [0.5, 0.5])
    g = np.array([1.0, -2.0, 0.5])
    with pytest.warns(RuntimeWarning, match="IMTL-G at step 0: no combination"):
        weights = weights_of(IMTLG(tasks(2)), np.stack([g, -g]))  # 1ᵀG⁺δ = 0
    np.testing.assert_array_equal(weights, [0.0, 0.0])


def _negative_case() -> np.ndarray:
    rng = np.random.default_rng(0)
    while True:
        jacobian = rng.normal(size=(4, 5)) * np.exp(2 * rng.normal(size=(4, 1)))
        gramian = jacobian @ jacobian.T
        if np.linalg.solve(gramian, np.sqrt(np.diag(gramian))).sum() < 0:
            return jacobian


def test_the_paper_normalisation_can_increase_every_loss_and_flip_with_scale() -> None:
    """The documented caveat: with 1ᵀG⁻¹δ < 0 the paper's update has equal negative projections;
    scaling one task's loss can flip the sign, which is why no scale claim is made."""
    jacobian = _negative_case()
    update = jacobian.T @ weights_of(IMTLG(tasks(4)), jacobian)
    np.testing.assert_allclose(update, jacobian.T @ paper_closed_form(jacobian), rtol=1e-6)
    units = jacobian / np.linalg.norm(jacobian, axis=1, keepdims=True)
    assert (units @ update < 0).all()
    flipped = None
    for c in 10.0 ** np.arange(-3, 4):
        for i in range(4):
            scaled = jacobian.copy()
            scaled[i] *= c
            other = scaled.T @ weights_of(IMTLG(tasks(4)), scaled)
            if other @ update < 0:
                flipped = other
    assert flipped is not None
    cosine = flipped @ update / (np.linalg.norm(flipped) * np.linalg.norm(update))
    assert cosine == pytest.approx(-1.0, abs=1e-8)  # same line, opposite direction


def test_agrees_with_torchjd_and_keeps_the_dtype() -> None:
    jacobian = np.random.default_rng(3).normal(size=(4, 7))
    theirs = IMTLGWeighting()(torch.tensor(jacobian @ jacobian.T)).numpy()
    np.testing.assert_allclose(weights_of(IMTLG(tasks(4)), jacobian), theirs, rtol=1e-10)
    weights_of(IMTLG(tasks(4)), jacobian, dtype=torch.float32)
    with pytest.raises(ValueError, match="'level' parameter of IMTLG"):
        IMTLG(tasks(2), level="bad")  # type: ignore[arg-type]
