"""FairGrad against cvxpy (the α-fair convex problem), scipy least squares (the paper's solver, at
tight tolerances), closed forms, Nash-MTL at α = 1, and torchjd's FairGradWeighting."""

from __future__ import annotations

import warnings

import cvxpy as cp
import numpy as np
import pytest
import torch
from scipy.optimize import least_squares
from torchjd.aggregation import FairGradWeighting

from manytask.balancing import FairGrad, NashMTL, create_balancer
from manytask.tasks import Regression


def fair(t: int, alpha: float, **options: object) -> FairGrad:
    return FairGrad([Regression(f"t{i}") for i in range(t)], alpha=alpha, max_norm=0.0, **options)  # type: ignore[arg-type]


def weights(jacobian: np.ndarray, alpha: float, **options: object) -> np.ndarray:
    t = jacobian.shape[0]
    return fair(t, alpha, **options).gramian_weights(torch.tensor(jacobian @ jacobian.T), torch.ones(t),
                                                     torch.ones(t, dtype=torch.bool), step=0).numpy()


def cvxpy_fair(jacobian: np.ndarray, alpha: float, eps: float = 0.0) -> np.ndarray:
    """argmin ½||Jᵀw||² + ½ eps Σ ||g_i||² w_i² - Σ h(w_i), h(w) = w^p / p, p = 1 - 1/α, by CLARABEL
    (power cones), at unit scale: with G = s² Ĝ, w = s^(-2α/(α+1)) ŵ."""
    s = np.linalg.norm(jacobian, axis=1).mean()
    j = jacobian / s
    w = cp.Variable(j.shape[0])
    p = 1.0 - 1.0 / alpha
    utility = cp.sum(cp.log(w)) if alpha == 1 else cp.sum(cp.power(w, p)) / p
    penalty = 0.5 * eps * cp.sum(cp.multiply((j**2).sum(1), cp.square(w)))
    problem = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(j.T @ w) + penalty - utility))
    with warnings.catch_warnings():  # "may be inaccurate": the objective is compared, not trusted
        warnings.simplefilter("ignore")
        problem.solve(solver=cp.CLARABEL, tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10)
    assert problem.status in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE)
    return np.asarray(w.value) * s ** (-2 * alpha / (alpha + 1))


def objective(jacobian: np.ndarray, w: np.ndarray, alpha: float, eps: float = 0.0) -> float:
    """½ wᵀ(G + eps diag G)w - Σ h(w_i), the problem FairGrad minimises."""
    gramian = jacobian @ jacobian.T
    gramian = gramian + eps * np.diag(np.diag(gramian))
    utility = np.log(w).sum() if alpha == 1 else (w ** (1 - 1 / alpha)).sum() / (1 - 1 / alpha)
    return float(0.5 * w @ gramian @ w - utility)


def scipy_fair(gramian: np.ndarray, alpha: float) -> np.ndarray:
    """The paper's code: least squares on G w - w^(-1/α) from 1/T, here at tight tolerances."""
    t = gramian.shape[0]
    result = least_squares(lambda w: gramian @ w - w ** (-1 / alpha), np.full(t, 1 / t), bounds=(0, np.inf),
                           xtol=1e-15, ftol=1e-15, gtol=1e-15, max_nfev=10_000)
    return np.asarray(result.x)


def cases() -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    out = [(f"random T={t}", rng.normal(size=(t, 2 * t))) for t in (2, 3, 5)]
    u, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    v, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    out.append(("ill-conditioned", (u * np.geomspace(1e-3, 1, 4)) @ v[:4]))
    out.append(("task scales 1e-2..1e2", rng.normal(size=(3, 6)) * np.array([[1e-2], [1.0], [1e2]])))
    j = rng.normal(size=(2, 6))
    out.append(("rank-deficient g3 = g1 + g2", np.vstack([j, j.sum(0)])))
    return out


CASES = cases()


@pytest.mark.parametrize("alpha", [0.5, 2.0, 5.0])
@pytest.mark.parametrize("jacobian", [j for _, j in CASES], ids=[n for n, _ in CASES])
def test_weights_equal_cvxpy_and_solve_g_w_equals_w_to_the_minus_one_over_alpha(jacobian: np.ndarray,
                                                                                  alpha: float) -> None:
    """Ours is at least as good as cvxpy's point (interior-point, less accurate on weights that
    span 1e-2..1e4), close to it, and stationary: (G w)_i w_i^(1/α) = 1."""
    ours = weights(jacobian, alpha, eps=0.0)
    reference = cvxpy_fair(jacobian, alpha)
    assert objective(jacobian, ours, alpha) <= objective(jacobian, reference, alpha) + 1e-9
    np.testing.assert_allclose(ours, reference, rtol=5e-3)
    np.testing.assert_allclose((jacobian @ jacobian.T @ ours) * ours ** (1 / alpha), 1.0, rtol=1e-7)


@pytest.mark.parametrize("alpha", [0.5, 2.0])
def test_weights_equal_scipy_least_squares_on_well_scaled_problems(alpha: float) -> None:
    jacobian = np.random.default_rng(1).normal(size=(4, 8))
    np.testing.assert_allclose(weights(jacobian, alpha, eps=0.0), scipy_fair(jacobian @ jacobian.T, alpha), rtol=1e-8)


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0, 10.0])
def test_orthogonal_gradients_closed_form(alpha: float) -> None:
    """G = diag(n²): n_i² w_i = w_i^(-1/α), so w_i = n_i^(-2α/(α+1))."""
    norms = np.array([1e-3, 0.5, 40.0])
    ours = weights(np.diag(norms), alpha, eps=0.0)
    np.testing.assert_allclose(ours, norms ** (-2 * alpha / (alpha + 1)), rtol=1e-10)


@pytest.mark.parametrize("alpha, scale, seed", [(0.05, 1e-3, 0), (10.0, 1e3, 10), (50.0, 1.0, 0)])
def test_extreme_alpha_every_equation_holds_even_for_tiny_weights(alpha: float, scale: float, seed: int) -> None:
    """Weights here span 1e-21 .. 1e2; each equation (G w)_i = w_i^(-1/α) must hold to the
    rounding of its terms (a stop on the Newton decrement alone left such a weight 8 % off)."""
    rng = np.random.default_rng(seed)
    jacobian = scale * rng.normal(size=(4, 8)) * np.array([[0.1], [1.0], [3.0], [10.0]])
    gramian = jacobian @ jacobian.T
    gramian = gramian + 1e-6 * np.diag(np.diag(gramian))  # the default eps
    ours = weights(jacobian, alpha)
    rhs = ours ** (-1 / alpha)
    assert (np.abs(gramian @ ours - rhs) <= 1e-9 * (np.abs(gramian) @ ours + rhs)).all()


def test_alpha_one_is_nash_mtl_and_alpha_zero_is_the_sum() -> None:
    jacobian = np.random.default_rng(2).normal(size=(3, 5))
    gramian = torch.tensor(jacobian @ jacobian.T)
    present = torch.ones(3, dtype=torch.bool)
    tasks = [Regression(n) for n in "abc"]
    nash = NashMTL(tasks, max_norm=0.0).double().gramian_weights(gramian, torch.ones(3), present, step=0)
    torch.testing.assert_close(torch.tensor(weights(jacobian, 1.0)), nash, rtol=1e-9, atol=0)
    assert weights(jacobian, 0.0).tolist() == [1.0, 1.0, 1.0]


def test_singular_problem_uses_the_relative_tikhonov_term() -> None:
    g = np.random.default_rng(3).normal(size=8)
    jacobian = np.stack([g, -2 * g, np.random.default_rng(4).normal(size=8)])  # 2 g_1 + g_2 = 0
    ours, reference = weights(jacobian, 2.0), cvxpy_fair(jacobian, 2.0, eps=1e-6)
    best = objective(jacobian, reference, 2.0, 1e-6)
    assert objective(jacobian, ours, 2.0, 1e-6) <= best + 1e-10 * abs(best)  # weights ~1e3: relative
    np.testing.assert_allclose(ours, reference, rtol=1e-3)
    with pytest.raises((ValueError, RuntimeError), match="FairGrad at step 0.*eps"):
        weights(jacobian, 2.0, eps=0.0)


def test_max_norm_clips_the_update() -> None:
    jacobian = 0.01 * np.random.default_rng(5).normal(size=(3, 6))  # small gradients: large weights
    balancer = create_balancer("fairgrad", [Regression(n) for n in "abc"], alpha=2.0, max_norm=1.0)
    assert isinstance(balancer, FairGrad)
    w = balancer.gramian_weights(torch.tensor(jacobian @ jacobian.T), torch.ones(3), torch.ones(3, dtype=torch.bool),
                                 step=0).numpy()
    assert np.linalg.norm(w @ jacobian) == pytest.approx(1.0, rel=1e-9)
    np.testing.assert_allclose(w / np.linalg.norm(w), weights(jacobian, 2.0) / np.linalg.norm(weights(jacobian, 2.0)),
                               rtol=1e-9)


def test_stateless_and_absent_tasks_are_left_out() -> None:
    balancer = fair(3, 2.0)
    assert not FairGrad.stateful and not list(balancer.buffers())
    jacobian = np.random.default_rng(6).normal(size=(2, 5))
    present = torch.tensor([True, False, True])
    w = balancer.gramian_weights(torch.tensor(jacobian @ jacobian.T), torch.ones(3), present, step=0)
    np.testing.assert_allclose(w.numpy(), weights(jacobian, 2.0), rtol=1e-12)


def test_torchjd_fairgrad_agrees_on_well_scaled_gramians() -> None:
    jacobian = np.random.default_rng(7).normal(size=(4, 8))
    gramian = torch.tensor(jacobian @ jacobian.T)
    for alpha in (0.5, 1.0, 2.0):
        np.testing.assert_allclose(FairGradWeighting(alpha)(gramian).numpy(), weights(jacobian, alpha, eps=0.0),
                                   rtol=1e-6)


def test_torchjd_fairgrad_stops_early_on_small_gradients() -> None:
    """Evidence for the report: torchjd's FairGradWeighting runs scipy's least_squares from 1/T with
    default tolerances on the raw Gramian, which stops far from the solution when the gradients
    are small. G = 1e-8 diag(1, 4), α = 1: the solution is w = (1e4, 5e3) (w_i = G_ii^(-1/2))."""
    gramian = torch.diag(torch.tensor([1e-8, 4e-8], dtype=torch.float64))
    exact = np.array([1e4, 5e3])
    np.testing.assert_allclose(weights(np.diag([1e-4, 2e-4]), 1.0, eps=0.0), exact, rtol=1e-12)
    theirs = FairGradWeighting(1.0)(gramian).numpy()
    assert np.abs(theirs / exact - 1).max() > 0.5  # torchjd 0.18: about (512, 510)


@pytest.mark.parametrize("option, value", [("alpha", -1.0), ("alpha", float("inf")), ("level", "last_shared"),
                                           ("max_norm", -0.1), ("eps", -1e-9), ("tol", 0.0), ("max_iter", 0)])
def test_invalid_options_are_refused(option: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"'{option}' parameter of FairGrad"):
        FairGrad([Regression("a")], **{option: value})  # type: ignore[arg-type]
