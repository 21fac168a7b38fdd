"""SDMGrad against the official algorithm written out in numpy (with a bisection projection),
torchjd's SDMGradWeighting, and the simplex QP solved by cvxpy; state and absent tasks."""

from __future__ import annotations

from typing import Any

import cvxpy as cp
import numpy as np
import pytest
import torch
from torchjd.aggregation import SDMGradWeighting

from manytask.balancing import SDMGrad, create_balancer
from manytask.balancing._simplex import project_onto_simplex
from manytask.tasks import Regression

TASKS = [Regression("a"), Regression("b"), Regression("c")]
ALL = torch.tensor([True, True, True])


def bisection_projection(v: np.ndarray) -> np.ndarray:
    """argmin ||w - v|| on the simplex: w = max(v - θ, 0) with Σ w = 1, θ found by bisection."""
    low, high = v.min() - 1, v.max()
    for _ in range(200):
        theta = (low + high) / 2
        low, high = (theta, high) if np.maximum(v - theta, 0).sum() > 1 else (low, theta)
    return np.maximum(v - (low + high) / 2, 0)


def reference_steps(gramians: list[np.ndarray], lamda: float = 0.3, lr: float = 10.0, momentum: float = 0.5,
                    n_iter: int = 20) -> list[np.ndarray]:
    """The official code's inner loop (methods/weight_methods.py, SDMGrad.sdmgrad), w kept across steps."""
    t = gramians[0].shape[0]
    w, out = np.full(t, 1 / t), []
    for gramian in gramians:
        scale = np.sqrt(np.diag(gramian)).mean()
        g = gramian / scale**2
        pull = lamda * g.mean(1)
        velocity = np.zeros(t)
        for _ in range(n_iter):
            velocity = momentum * velocity + g @ w + pull
            w = bisection_projection(w - lr * velocity)
        out.append((w + lamda / t) / (1 + lamda))
    return out


def gramians(seed: int, steps: int, t: int = 3, scale: float = 1.0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(steps):
        j = scale * rng.normal(size=(t, 6)) * np.array([[0.3], [1.0], [3.0]])[:t]
        out.append(j @ j.T)
    return out


@pytest.mark.parametrize("options", [{}, {"lamda": 0.0, "lr": 1.0, "momentum": 0.0, "n_iter": 5},
                                     {"lamda": 2.0, "lr": 0.5, "n_iter": 50}])
def test_steps_equal_the_official_algorithm(options: dict[str, Any]) -> None:
    balancer = SDMGrad(TASKS, **options).double()  # type: ignore[arg-type]
    series = gramians(0, 6)
    for gramian, expected in zip(series, reference_steps(series, **options)):
        ours = balancer.gramian_weights(torch.tensor(gramian), torch.ones(3), ALL, step=0)
        np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-10, atol=1e-13)


def test_torchjd_sdmgrad_weighting_agrees_over_steps() -> None:
    """torchjd divides by scale² + 1e-8 (ours and the official code by scale²): negligible here
    (gradients of norm ~1e4), so the weights agree over consecutive, state-carrying steps."""
    balancer = SDMGrad(TASKS).double()
    theirs = SDMGradWeighting()
    for gramian in gramians(1, 6, scale=1e4):
        g = torch.tensor(gramian)
        np.testing.assert_allclose(balancer.gramian_weights(g, torch.ones(3), ALL, step=0).numpy(),
                                   theirs(g).numpy(), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("lamda", [0.0, 0.3, 3.0])
def test_many_small_steps_reach_the_simplex_qp_minimiser(lamda: float) -> None:
    """min over the simplex of ½||Jᵀ(w + λ/T)||², by cvxpy; the returned weights are (w + λ/T)/(1 + λ)."""
    rng = np.random.default_rng(2)
    jacobian = rng.normal(size=(3, 5)) * np.array([[0.5], [1.0], [2.0]])
    w = cp.Variable(3)
    problem = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(jacobian.T @ (w + lamda / 3))), [w >= 0, cp.sum(w) == 1])
    problem.solve(solver=cp.CLARABEL)
    expected = (np.asarray(w.value) + lamda / 3) / (1 + lamda)
    balancer = SDMGrad(TASKS, lamda=lamda, lr=0.2, momentum=0.5, n_iter=3000).double()
    ours = balancer.gramian_weights(torch.tensor(jacobian @ jacobian.T), torch.ones(3), ALL, step=0).numpy()
    np.testing.assert_allclose(ours, expected, atol=1e-6)


def test_scaling_all_gradients_changes_nothing_and_a_zero_gramian_keeps_w() -> None:
    series = gramians(3, 3)
    a, b = SDMGrad(TASKS).double(), SDMGrad(TASKS).double()
    for gramian in series:
        wa = a.gramian_weights(torch.tensor(gramian), torch.ones(3), ALL, step=0)
        wb = b.gramian_weights(torch.tensor(1e-6 * gramian), torch.ones(3), ALL, step=0)
        torch.testing.assert_close(wa, wb, rtol=1e-9, atol=1e-12)
    before = a.simplex_weights.clone()
    out = a.gramian_weights(torch.zeros(3, 3, dtype=torch.float64), torch.ones(3), ALL, step=0)
    torch.testing.assert_close(a.simplex_weights, before)
    torch.testing.assert_close(out, (before + 0.3 / 3) / 1.3)


def test_absent_tasks_keep_their_entry_and_the_present_ones_are_renormalised() -> None:
    balancer = SDMGrad(TASKS, lr=1.0).double()
    with torch.no_grad():
        balancer.simplex_weights.copy_(torch.tensor([0.2, 0.5, 0.3]))
    gramian = gramians(4, 1, t=2)[0]
    present = torch.tensor([True, False, True])
    ours = balancer.gramian_weights(torch.tensor(gramian), torch.ones(3), present, step=0).numpy()
    # the reference starts from (0.2, 0.3) / 0.5 on the two-task simplex, preference 1/2 each
    g = gramian / np.sqrt(np.diag(gramian)).mean() ** 2
    w, velocity = np.array([0.4, 0.6]), np.zeros(2)
    for _ in range(20):
        velocity = 0.5 * velocity + g @ w + 0.3 * g.mean(1)
        w = bisection_projection(w - velocity)
    np.testing.assert_allclose(ours, (w + 0.15) / 1.3, rtol=1e-10)
    assert balancer.simplex_weights[1] == 0.5
    np.testing.assert_allclose(balancer.simplex_weights.numpy()[[0, 2]], w, rtol=1e-10)
    balancer.reset()
    torch.testing.assert_close(balancer.state_dict(), SDMGrad(TASKS).double().state_dict(), rtol=0, atol=0)


def test_projection_equals_bisection_on_random_points() -> None:
    rng = np.random.default_rng(5)
    for t in (1, 2, 3, 7, 20):
        for _ in range(20):
            v = rng.normal(size=t) * rng.choice([0.01, 1.0, 100.0])
            ours = project_onto_simplex(torch.tensor(v)).numpy()
            np.testing.assert_allclose(ours, bisection_projection(v), atol=1e-12)


@pytest.mark.parametrize("option, value", [("lamda", -0.1), ("lr", 0.0), ("momentum", 1.0), ("n_iter", 0),
                                           ("level", "last_shared")])
def test_invalid_options_are_refused(option: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"'{option}' parameter of SDMGrad"):
        create_balancer("sdmgrad", TASKS, **{option: value})
