"""UPGrad against independent cvxpy projections onto the dual cone {x : Jx >= 0}, the two-task
closed form, the KKT certificate of each projection, and its defining property J d >= 0."""

from __future__ import annotations

import warnings

import cvxpy as cp
import numpy as np
import pytest
import torch

from manytask.balancing import UPGrad, create_balancer
from manytask.balancing._gramian_linalg import dual_cone_weights
from manytask.tasks import Regression

from .jacobian_cases import full_rank_cases, rank_deficient_cases, weights_of

CASES = full_rank_cases() + rank_deficient_cases()


def tasks(t: int) -> list[Regression]:
    return [Regression(f"t{i}") for i in range(t)]


def cvxpy_projection(jacobian: np.ndarray, x: np.ndarray) -> np.ndarray:
    """argmin ||y - x||² s.t. J y >= 0, on the unit rows (same cone) and unit target (the
    projection onto a cone is positively homogeneous), by CLARABEL with tight tolerances."""
    norms = np.linalg.norm(jacobian, axis=1)
    scale = np.linalg.norm(x)
    y = cp.Variable(jacobian.shape[1])
    problem = cp.Problem(cp.Minimize(cp.sum_squares(y - x / scale)), [(jacobian / norms[:, None]) @ y >= 0])
    with warnings.catch_warnings():  # tight tolerances: CLARABEL may report 'inaccurate' at ~1e-10
        warnings.filterwarnings("ignore", "Solution may be inaccurate", UserWarning)
        problem.solve(solver=cp.CLARABEL, tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12, max_iter=500)
    assert problem.status in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE)
    return np.asarray(y.value) * scale


@pytest.mark.parametrize("jacobian", [j for _, j in CASES], ids=[n for n, _ in CASES])
def test_update_is_the_mean_of_the_cvxpy_projections(jacobian: np.ndarray) -> None:
    update = jacobian.T @ weights_of(UPGrad(tasks(len(jacobian))), jacobian)
    reference = np.mean([cvxpy_projection(jacobian, g) for g in jacobian], axis=0)
    scale = np.linalg.norm(jacobian, axis=1).mean()
    np.testing.assert_allclose(update, reference, atol=1e-6 * scale)  # cvxpy's own accuracy


@pytest.mark.parametrize("jacobian", [j for _, j in CASES], ids=[n for n, _ in CASES])
def test_update_is_in_the_dual_cone(jacobian: np.ndarray) -> None:
    update = jacobian.T @ weights_of(UPGrad(tasks(len(jacobian))), jacobian)
    norms = np.linalg.norm(jacobian, axis=1)
    # J d >= 0 up to rounding, relative to each row's norm and the update's (or the input's, when the
    # dual cone is {0} and the update is rounding)
    assert (jacobian @ update >= -1e-10 * norms * (np.linalg.norm(update) + 1e-3 * norms.max())).all()


@pytest.mark.parametrize("jacobian", [j for _, j in CASES], ids=[n for n, _ in CASES])
def test_each_projection_satisfies_the_kkt_conditions(jacobian: np.ndarray) -> None:
    """v = e_i + x with x >= 0, G v >= 0 and x ⊙ G v = 0 certify v = argmin_{v >= e_i} vᵀGv
    (Prop. 1 of Quinton & Rey), independently of how v was found."""
    gramian = jacobian @ jacobian.T
    t = len(gramian)
    v = dual_cone_weights(gramian, np.eye(t), "test", 0)
    norms = np.sqrt(np.diag(gramian))
    for i in range(t):
        x = v[i] - np.eye(t)[i]
        gv = gramian @ v[i] / norms  # (J d)_k / ||g_k||: cosine-like, scale free
        d_norm = np.sqrt(max(v[i] @ gramian @ v[i], 0.0)) + 1e-6 * norms.max()  # (the cone may be {0})
        assert (x >= -1e-12).all()
        rounding = 1e-12 * (np.abs(gramian) @ np.abs(v[i])) / norms  # G v's own rounding (BLAS-dependent)
        assert (gv >= -1e-9 * d_norm - rounding).all()
        assert np.abs(x * norms * gv).max() <= 1e-8 * norms.max() * d_norm


def test_two_tasks_closed_form() -> None:
    """For two conflicting gradients π_J(g_1) = g_1 - (g_1·g_2 / ||g_2||²) g_2 (and symmetrically)."""
    rng = np.random.default_rng(3)
    g1, g2 = rng.normal(size=(2, 6))
    g2 -= 2 * (g1 @ g2) / (g1 @ g1) * g1 if g1 @ g2 > 0 else 0  # make them conflict
    assert g1 @ g2 < 0
    expected = 0.5 * (g1 - (g1 @ g2) / (g2 @ g2) * g2 + g2 - (g1 @ g2) / (g1 @ g1) * g1)
    update = np.stack([g1, g2]).T @ weights_of(UPGrad(tasks(2)), np.stack([g1, g2]))
    np.testing.assert_allclose(update, expected, rtol=1e-10, atol=1e-12)


def test_no_conflict_gives_the_mean() -> None:
    rng = np.random.default_rng(4)
    jacobian = np.abs(rng.normal(size=(4, 7)))  # positive entries: every pair has a positive inner product
    np.testing.assert_allclose(weights_of(UPGrad(tasks(4)), jacobian), np.full(4, 0.25), rtol=0, atol=1e-14)


def test_zero_gradients_give_finite_weights() -> None:
    assert np.isfinite(weights_of(UPGrad(tasks(3)), np.zeros((3, 4)))).all()
    jacobian = np.array([[1.0, 0.0], [0.0, 0.0], [-1.0, 1.0]])  # task 1 has a zero gradient
    update = jacobian.T @ weights_of(UPGrad(tasks(3)), jacobian)
    assert (jacobian @ update >= -1e-12).all()


def test_dtype_and_options() -> None:
    jacobian = np.random.default_rng(5).normal(size=(3, 5))
    weights_of(UPGrad(tasks(3)), jacobian, dtype=torch.float32)  # returns float32 (checked in weights_of)
    assert create_balancer("upgrad", tasks(2), level="representation").level == "representation"
    with pytest.raises(ValueError, match="'level' parameter of UPGrad"):
        UPGrad(tasks(2), level="last_shared")
    with pytest.raises(ValueError, match="square Gramian"):
        UPGrad(tasks(2)).gramian_weights(torch.ones(2, 3), torch.ones(2), torch.ones(2, dtype=torch.bool), step=0)
