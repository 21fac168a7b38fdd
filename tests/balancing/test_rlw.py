"""RLW: softmax of standard-normal draws from the global RNG, over the present tasks."""

from __future__ import annotations

import numpy as np
import torch
from torchjd.scalarization import Random

from manytask.balancing import RLW, balancer_info
from manytask.tasks import Regression

TASKS = [Regression("a"), Regression("b"), Regression("c")]
ALL = torch.tensor([True, True, True])


def numpy_softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


def test_weights_are_the_softmax_of_this_steps_normal_draws() -> None:
    torch.manual_seed(3)
    draws = torch.randn(3, dtype=torch.float64).numpy()
    torch.manual_seed(3)
    _, weights = RLW(TASKS).total(torch.ones(3, dtype=torch.float64), ALL, step=0)
    np.testing.assert_allclose(weights.numpy(), numpy_softmax(draws), rtol=1e-12)
    assert abs(weights.sum().item() - 1) < 1e-12


def test_matches_torchjd_random_under_the_same_seed() -> None:
    losses = torch.tensor([0.5, 2.0, 3.0], requires_grad=True)
    torch.manual_seed(7)
    (expected,) = torch.autograd.grad(Random()(losses), losses)
    torch.manual_seed(7)
    _, weights = RLW(TASKS).total(losses.detach(), ALL, step=0)
    torch.testing.assert_close(weights, expected)


def test_absent_task_gets_zero_and_the_softmax_runs_over_the_present_draws() -> None:
    torch.manual_seed(5)
    draws = torch.randn(3, dtype=torch.float64).numpy()
    torch.manual_seed(5)
    _, weights = RLW(TASKS).total(torch.ones(3, dtype=torch.float64), torch.tensor([True, False, True]), step=0)
    expected = numpy_softmax(draws[[0, 2]])
    np.testing.assert_allclose(weights.numpy(), [expected[0], 0.0, expected[1]], rtol=1e-12)


def test_each_step_draws_anew_and_the_mean_weight_is_one_over_t() -> None:
    torch.manual_seed(0)
    balancer = RLW(TASKS)
    samples = torch.stack([balancer.weights(torch.ones(3), ALL, step=s) for s in range(2000)])
    assert not torch.equal(samples[0], samples[1])
    assert (samples > 0).all()
    torch.testing.assert_close(samples.sum(1), torch.ones(2000))
    torch.testing.assert_close(samples.mean(0), torch.full((3,), 1 / 3), atol=0.02, rtol=0)


def test_same_rng_state_same_weights_and_honest_claims() -> None:
    state = torch.get_rng_state()
    a = RLW(TASKS).weights(torch.ones(3), ALL, step=0)
    torch.set_rng_state(state)
    b = RLW(TASKS).weights(torch.ones(3), ALL, step=0)
    assert torch.equal(a, b)
    info = balancer_info("rlw")
    assert info.random and not info.equivariant and not info.stateful
