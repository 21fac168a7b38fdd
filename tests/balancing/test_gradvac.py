"""GradVac against an independent numpy implementation of Algorithm 1 (Wang et al. 2021) on
explicit Jacobians over several steps, with the same visiting orders; its target cosine after a
correction, the PCGrad limit, the masking of absent tasks, state and torchjd's T = 2 result."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchjd.aggregation import GradVacWeighting

from manytask.balancing import GradVac
from manytask.tasks import Regression


def tasks(t: int) -> list[Regression]:
    return [Regression(f"t{i}") for i in range(t)]


def orders(seed: int, t: int) -> list[list[int]]:
    """The visiting orders GradVac draws after ``torch.manual_seed(seed)`` (its documented protocol:
    one ``torch.rand(t, t)``, self last, argsort per row)."""
    torch.manual_seed(seed)
    keys = torch.rand(t, t, dtype=torch.float64)
    keys.fill_diagonal_(2.0)
    return keys.argsort(dim=1)[:, : t - 1].tolist()


def algorithm_1(jacobian: np.ndarray, targets: np.ndarray, order: list[list[int]], beta: float) -> np.ndarray:
    """One step of the paper's update rule on the gradients; updates ``targets`` in place."""
    corrected = jacobian.copy()
    for i in range(len(jacobian)):
        for j in order[i]:
            gi, gj = corrected[i], jacobian[j]
            phi = gi @ gj / (np.linalg.norm(gi) * np.linalg.norm(gj))
            target = targets[i, j]
            if phi < target:
                w = (np.linalg.norm(gi) * (target * np.sqrt(1 - phi**2) - phi * np.sqrt(1 - target**2))
                     / (np.linalg.norm(gj) * np.sqrt(1 - target**2)))
                corrected[i] = gi + w * gj
            targets[i, j] = (1 - beta) * target + beta * phi
    return corrected.sum(axis=0)


def run(balancer: GradVac, jacobian: np.ndarray, present: list[bool], seed: int) -> np.ndarray:
    torch.manual_seed(seed)
    gramian = torch.tensor(jacobian @ jacobian.T)
    mask = torch.tensor(present)
    return balancer.gramian_weights(gramian, torch.ones(len(present), dtype=torch.float64), mask, step=seed).numpy()


@pytest.mark.parametrize("t, beta", [(3, 0.5), (4, 0.1), (5, 1.0), (24, 0.5), (40, 0.2)])
def test_several_steps_match_algorithm_1(t: int, beta: float) -> None:
    rng = np.random.default_rng(t)
    balancer = GradVac(tasks(t), beta=beta).double()
    targets = np.zeros((t, t))
    for step in range(6):
        jacobian = rng.normal(size=(t, 2 * t)) * np.exp(rng.normal(size=(t, 1)))
        weights = run(balancer, jacobian, [True] * t, step)
        expected = algorithm_1(jacobian, targets, orders(step, t), beta)
        np.testing.assert_allclose(jacobian.T @ weights, expected, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(balancer.targets.numpy(), targets, rtol=0, atol=1e-12)
    assert np.abs(targets).max() > 0.05  # the targets moved


def test_absent_tasks_pairs_are_untouched() -> None:
    rng = np.random.default_rng(0)
    balancer = GradVac(tasks(4), beta=0.3).double()
    targets = np.zeros((4, 4))
    for step in range(6):
        present = [True, step % 2 == 0, True, step % 3 != 1]
        index = [i for i, p in enumerate(present) if p]
        jacobian = rng.normal(size=(len(index), 7))
        before = balancer.targets.clone()
        weights = run(balancer, jacobian, present, step)
        sub = targets[np.ix_(index, index)]
        expected = algorithm_1(jacobian, sub, orders(step, len(index)), 0.3)
        targets[np.ix_(index, index)] = sub
        np.testing.assert_allclose(jacobian.T @ weights, expected, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(balancer.targets.numpy(), targets, rtol=0, atol=1e-12)
        for k, p in enumerate(present):
            if not p:
                assert torch.equal(balancer.targets[k], before[k]) and torch.equal(balancer.targets[:, k], before[:, k])


def test_a_correction_reaches_the_target_cosine() -> None:
    balancer = GradVac(tasks(2), beta=0.5).double()
    balancer.targets.fill_(0.3)
    jacobian = np.array([[1.0, 0.2, 0.0], [-0.4, 1.0, 0.5]])
    weights = run(balancer, jacobian, [True, True], 0)
    # C = [[1, w12], [w21, 1]] (g_i' = Σ_k C_ik g_k) and weights = 1ᵀC = [1 + w21, 1 + w12]
    w12, w21 = weights[1] - 1.0, weights[0] - 1.0
    for gi, gj, w in ((jacobian[0], jacobian[1], w12), (jacobian[1], jacobian[0], w21)):
        corrected = gi + w * gj
        assert corrected @ gj / (np.linalg.norm(corrected) * np.linalg.norm(gj)) == pytest.approx(0.3, abs=1e-12)


def test_zero_targets_give_pcgrad_for_two_tasks() -> None:
    g1, g2 = np.array([1.0, 0.0]), np.array([-1.0, 2.0])
    expected = g1 - (g1 @ g2) / (g2 @ g2) * g2 + g2 - (g1 @ g2) / (g1 @ g1) * g1
    weights = run(GradVac(tasks(2), beta=0.0).double(), np.stack([g1, g2]), [True, True], 0)
    np.testing.assert_allclose(np.stack([g1, g2]).T @ weights, expected, rtol=1e-14)


def test_agrees_with_torchjd_for_two_tasks_over_steps() -> None:
    """For T = 2 there is no visiting order, so torchjd's GradVacWeighting must agree."""
    rng = np.random.default_rng(1)
    ours, theirs = GradVac(tasks(2), beta=0.5).double(), GradVacWeighting(beta=0.5, eps=0.0)
    for step in range(5):
        jacobian = rng.normal(size=(2, 5))
        np.testing.assert_allclose(run(ours, jacobian, [True, True], step),
                                   theirs(torch.tensor(jacobian @ jacobian.T)).numpy(), rtol=1e-12)


def test_state_reset_round_trip_and_options() -> None:
    rng = np.random.default_rng(2)
    balancer = GradVac(tasks(3))
    for step in range(3):
        run(balancer, rng.normal(size=(3, 4)).astype(np.float64), [True] * 3, step)
    copy = GradVac(tasks(3))
    copy.load_state_dict(balancer.state_dict())
    assert torch.equal(copy.targets, balancer.targets) and balancer.targets.abs().max() > 0
    balancer.reset()
    assert torch.equal(balancer.targets, torch.zeros(3, 3))
    weights = run(GradVac(tasks(3)), np.array([[1.0, 0.0], [0.0, 0.0], [-1.0, 1.0]]), [True] * 3, 0)
    assert np.isfinite(weights).all()
    with pytest.raises(ValueError, match="'beta' parameter of GradVac"):
        GradVac(tasks(2), beta=1.5)
