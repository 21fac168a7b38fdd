"""CAGrad against an independent cvxpy solution of the paper's primal problem (Eq. 3):
max_d min_i g_iᵀd s.t. ||d - g0|| <= c||g0||, on explicit Jacobians; its limits c = 0 (the mean
gradient) and c -> inf (MGDA's min-norm direction); the official code's rescaling; torchjd."""

from __future__ import annotations

import warnings

import cvxpy as cp
import numpy as np
import pytest
import torch
from torchjd.aggregation import CAGradWeighting

from manytask.balancing import CAGrad, min_norm_weights
from manytask.tasks import Regression

from .jacobian_cases import full_rank_cases, rank_deficient_cases, weights_of

CASES = full_rank_cases() + rank_deficient_cases()


def tasks(t: int) -> list[Regression]:
    return [Regression(f"t{i}") for i in range(t)]


def cvxpy_primal(jacobian: np.ndarray, c: float) -> tuple[np.ndarray, float]:
    """The maximiser d and the value of min_i g_iᵀd over the ball, solved on J / ||g0|| (unit
    ball radius c) and scaled back."""
    g0 = jacobian.mean(axis=0)
    scale = np.linalg.norm(g0)
    j = jacobian / scale
    d, t = cp.Variable(j.shape[1]), cp.Variable()
    problem = cp.Problem(cp.Maximize(t), [j @ d >= t, cp.norm(d - g0 / scale, 2) <= c])
    with warnings.catch_warnings():  # tight tolerances: CLARABEL may report 'inaccurate' at ~1e-10
        warnings.filterwarnings("ignore", "Solution may be inaccurate", UserWarning)
        problem.solve(solver=cp.CLARABEL, tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12, max_iter=500)
    assert problem.status in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE)
    return np.asarray(d.value) * scale, float(t.value) * scale**2


@pytest.mark.parametrize("c", [0.4, 0.9, 3.0])
@pytest.mark.parametrize("jacobian", [j for _, j in CASES], ids=[n for n, _ in CASES])
def test_update_solves_the_primal_problem(jacobian: np.ndarray, c: float) -> None:
    update = jacobian.T @ weights_of(CAGrad(tasks(len(jacobian)), c=c), jacobian)
    reference, value = cvxpy_primal(jacobian, c)
    g0 = jacobian.mean(axis=0)
    scale = np.linalg.norm(g0)
    assert np.linalg.norm(update - g0) <= c * scale * (1 + 1e-7)  # feasible
    assert (jacobian @ update).min() >= value - 1e-6 * scale**2  # optimal
    np.testing.assert_allclose(update, reference, atol=1e-4 * scale)  # the same maximiser


def test_zero_radius_is_the_mean_and_large_radius_tends_to_mgda() -> None:
    rng = np.random.default_rng(7)
    jacobian = rng.normal(size=(4, 9)) * np.array([[0.1], [1.0], [3.0], [1.0]])
    np.testing.assert_allclose(weights_of(CAGrad(tasks(4), c=0.0), jacobian), np.full(4, 0.25), rtol=0, atol=0)
    gramian = jacobian @ jacobian.T
    mgda = jacobian.T @ min_norm_weights(torch.tensor(gramian)).numpy()
    update = jacobian.T @ weights_of(CAGrad(tasks(4), c=1e4), jacobian)
    cosine = mgda @ update / (np.linalg.norm(mgda) * np.linalg.norm(update))
    assert cosine > 1 - 1e-6


def test_rescale_divides_by_one_plus_c_squared() -> None:
    jacobian = np.random.default_rng(8).normal(size=(3, 6))
    plain = weights_of(CAGrad(tasks(3), c=0.5), jacobian)
    rescaled = weights_of(CAGrad(tasks(3), c=0.5, rescale=True), jacobian)
    np.testing.assert_allclose(rescaled, plain / 1.25, rtol=1e-6)


def test_agrees_with_torchjd_on_random_jacobians() -> None:
    """torchjd's CAGradWeighting solves the same dual with CLARABEL (a cross-check, not the reference)."""
    rng = np.random.default_rng(9)
    for t in (2, 3, 5):
        jacobian = rng.normal(size=(t, 2 * t))
        ours = weights_of(CAGrad(tasks(t), c=0.4), jacobian)
        theirs = CAGradWeighting(c=0.4)(torch.tensor(jacobian @ jacobian.T)).numpy()
        np.testing.assert_allclose(jacobian.T @ ours, jacobian.T @ theirs, atol=1e-5 * np.abs(jacobian).max())


def test_degenerate_inputs_stay_finite() -> None:
    np.testing.assert_array_equal(weights_of(CAGrad(tasks(2)), np.zeros((2, 3))), [0.5, 0.5])
    g = np.array([1.0, 2.0, -1.0])
    np.testing.assert_allclose(weights_of(CAGrad(tasks(2)), np.stack([g, -g])), [0.5, 0.5])  # g0 = 0: d = 0
    weights_of(CAGrad(tasks(3)), np.random.default_rng(0).normal(size=(3, 4)), dtype=torch.float32)


@pytest.mark.parametrize("bad", [{"c": -0.1}, {"c": float("nan")}, {"rescale": 1}, {"level": "x"}])
def test_invalid_options_name_the_parameter(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=f"'{next(iter(bad))}' parameter of CAGrad"):
        CAGrad(tasks(2), **bad)  # type: ignore[arg-type]


def test_zero_on_the_hull_boundary_is_named() -> None:
    """g = e1, -e1, e2: 0 is on the hull's boundary and every g_w has g_wᵀg0 >= 0, so the dual's
    optimum is g_w = 0. c < 1: the mean (here a maximiser: min_i g_iᵀg0 = 0 = the optimum) with a
    warning; c >= 1: d = 0, in the ball and optimal."""
    jacobian = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]])
    with pytest.warns(RuntimeWarning, match="CAGrad at step 0: the dual solution is g_w = 0"):
        np.testing.assert_allclose(weights_of(CAGrad(tasks(3), c=0.4), jacobian), np.full(3, 1 / 3))
    np.testing.assert_array_equal(weights_of(CAGrad(tasks(3), c=2.0), jacobian), np.zeros(3))
