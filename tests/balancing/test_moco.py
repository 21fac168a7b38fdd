"""MoCo against Algorithm 1 written out in numpy (bisection projection), its lazily created
tracking buffer through state_dict / load_state_dict / reset, and absent tasks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from manytask.balancing import BALANCERS, MoCo, create_balancer
from manytask.tasks import Regression

TASKS = [Regression("a"), Regression("b"), Regression("c")]


def bisection_projection(v: np.ndarray) -> np.ndarray:
    low, high = v.min() - 1, v.max()
    for _ in range(200):
        theta = (low + high) / 2
        low, high = (theta, high) if np.maximum(v - theta, 0).sum() > 1 else (low, theta)
    return np.maximum(v - (low + high) / 2, 0)


def trajectory(seed: int, steps: int, p: int = 7) -> list[tuple[np.ndarray, np.ndarray]]:
    """(Jacobian [3, p], losses [3]) per step, task scales 1e-2 .. 1e1."""
    rng = np.random.default_rng(seed)
    return [(rng.normal(size=(3, p)) * np.array([[1e-2], [1.0], [10.0]]), rng.uniform(0.5, 2.0, size=3))
            for _ in range(steps)]


def reference(steps: list[tuple[np.ndarray, np.ndarray]], beta: float = 0.5, beta_sigma: float = 0.5,
              gamma: float = 0.1, gamma_sigma: float = 0.5, rho: float = 0.0,
              normalize: bool = False) -> list[np.ndarray]:
    """y_i <- y_i - β_t (y_i - g_i); λ <- Π(λ - γ_t (Y Yᵀ + ρ I) λ); d = Yᵀλ, every task present."""
    y, lam, out = np.zeros_like(steps[0][0]), np.full(3, 1 / 3), []
    for t, (jacobian, losses) in enumerate(steps, start=1):
        g = jacobian / np.linalg.norm(jacobian, axis=1, keepdims=True) * losses[:, None] if normalize else jacobian
        y = y - beta / t**beta_sigma * (y - g)
        lam = bisection_projection(lam - gamma / t**gamma_sigma * (y @ y.T + rho * np.eye(3)) @ lam)
        out.append(lam @ y)
    return out


def run(balancer: MoCo, steps: list[tuple[np.ndarray, np.ndarray]], present: torch.Tensor | None = None,
        start: int = 0) -> list[torch.Tensor]:
    present = torch.ones(3, dtype=torch.bool) if present is None else present
    return [balancer.aggregate(torch.tensor(j[present.numpy()]), torch.tensor(losses), present, step=start + s)
            for s, (j, losses) in enumerate(steps)]


@pytest.mark.parametrize("options", [{}, {"beta": 0.9, "beta_sigma": 0.0, "gamma": 0.05, "gamma_sigma": 0.0,
                                          "rho": 0.1}, {"normalize": True}])
def test_updates_equal_algorithm_1(options: dict[str, object]) -> None:
    steps = trajectory(0, 6)
    ours = run(MoCo(TASKS, **options).double(), steps)  # type: ignore[arg-type]
    for u, expected in zip(ours, reference(steps, **options)):  # type: ignore[arg-type]
        np.testing.assert_allclose(u.numpy(), expected, rtol=1e-10, atol=1e-14)


def test_absent_task_keeps_its_tracked_gradient_weight_and_count() -> None:
    steps = trajectory(1, 5)
    balancer = MoCo(TASKS).double()
    run(balancer, steps[:2])
    tracked_c = balancer.tracked[2].clone()  # type: ignore[index]
    weight_c, count_c = balancer.weights[2].item(), balancer.counts[2].item()
    present = torch.tensor([True, True, False])
    run(balancer, steps[2:], present)
    assert torch.equal(balancer.tracked[2], tracked_c)  # type: ignore[index]
    assert balancer.weights[2].item() == weight_c and balancer.counts[2].item() == count_c == 2
    assert balancer.counts.tolist() == [5, 5, 2] and int(balancer.steps) == 5


def test_the_present_tasks_weights_are_renormalised_before_the_projection() -> None:
    balancer = MoCo(TASKS, beta=1.0, gamma=0.2, gamma_sigma=0.0).double()
    with torch.no_grad():
        balancer.weights.copy_(torch.tensor([0.1, 0.6, 0.3], dtype=torch.float64))
    jacobian = np.random.default_rng(2).normal(size=(2, 4))
    present = torch.tensor([True, False, True])
    update = balancer.aggregate(torch.tensor(jacobian), torch.ones(3), present, step=0)
    lam = bisection_projection(np.array([0.25, 0.75]) - 0.2 * jacobian @ jacobian.T @ np.array([0.25, 0.75]))
    np.testing.assert_allclose(update.numpy(), lam @ jacobian, rtol=1e-12)
    np.testing.assert_allclose(balancer.weights.numpy(), [lam[0], 0.6, lam[1]], rtol=1e-12)


def test_lazy_buffer_round_trips_through_state_dict_and_reset() -> None:
    steps = trajectory(3, 6)
    balancer = MoCo(TASKS).double()
    fresh_state = {k: v.clone() for k, v in balancer.state_dict().items()}
    assert "tracked" not in fresh_state and balancer.tracked is None
    run(balancer, steps[:3])
    state = balancer.state_dict()
    assert state["tracked"].shape == (3, 7)

    resumed = MoCo(TASKS).double()
    resumed.load_state_dict(state)  # strict: the lazy buffer is filled in
    for a, b in zip(run(balancer, steps[3:], start=3), run(resumed, steps[3:], start=3)):
        assert torch.equal(a, b)
    torch.testing.assert_close(balancer.state_dict(), resumed.state_dict(), rtol=0, atol=0)

    resumed.load_state_dict(fresh_state)  # a state saved before the first step empties it again
    assert resumed.tracked is None and resumed.counts.tolist() == [0, 0, 0]
    balancer.reset()
    assert balancer.tracked is None
    torch.testing.assert_close(balancer.state_dict(), fresh_state, rtol=0, atol=0)
    np.testing.assert_allclose(run(balancer, steps[:1])[0].numpy(), reference(steps[:1])[0], rtol=1e-12)


def test_a_different_number_of_parameters_is_refused() -> None:
    balancer = MoCo(TASKS).double()
    run(balancer, trajectory(4, 1, p=7))
    with pytest.raises(ValueError, match="MoCo keeps gradients of 7 shared parameters, but got 5"):
        run(balancer, trajectory(4, 1, p=5))


def test_exact_level_only() -> None:
    assert create_balancer("moco", TASKS).level == "exact"
    with pytest.raises(ValueError, match="Unknown option 'level' for balancer 'moco'"):
        BALANCERS.validate("moco", {"level": "representation"})


@pytest.mark.parametrize("option, value", [("beta", 0.0), ("beta", 1.5), ("beta_sigma", -1.0), ("gamma", 0.0),
                                           ("gamma_sigma", float("nan")), ("rho", -0.1)])
def test_invalid_options_are_refused(option: str, value: float) -> None:
    with pytest.raises(ValueError, match=f"'{option}' parameter of MoCo"):
        MoCo(TASKS, **{option: value})  # type: ignore[arg-type]
