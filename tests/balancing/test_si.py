"""SI (sum of log losses) against the gradient of sum_i log L_i computed independently."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from manytask.balancing import SI, create_balancer
from manytask.models import HardSharing
from manytask.tasks import Regression
from manytask.training import BackwardEngine

TASKS = [Regression("a"), Regression("b"), Regression("c")]
ALL = torch.tensor([True, True, True])


def test_weights_are_the_partial_derivatives_of_the_sum_of_logs() -> None:
    losses = torch.tensor([0.25, 2.0, 1e3], dtype=torch.float64, requires_grad=True)
    (expected,) = torch.autograd.grad(torch.log(losses).sum(), losses)
    _, weights = SI(TASKS).total(losses, ALL, step=0)
    torch.testing.assert_close(weights, expected)
    torch.testing.assert_close(weights, torch.tensor([4.0, 0.5, 1e-3], dtype=torch.float64))


def test_update_is_exactly_invariant_to_each_loss_scale_through_the_engine() -> None:
    """A model, real MSE losses; losses scaled by 1e-3 / 1e3 give the same update, and it equals
    sum_i grad L_i / L_i from one autograd.grad per task."""
    torch.manual_seed(0)
    x, y = torch.randn(8, 3, dtype=torch.float64), torch.randn(8, 3, dtype=torch.float64)
    updates = []
    for scale in ([1.0, 1.0, 1.0], [1e-3, 1.0, 1e3]):
        torch.manual_seed(1)
        model = HardSharing(nn.Sequential(nn.Linear(3, 4), nn.Tanh()), TASKS, feature_dim=4).double()
        engine = BackwardEngine(model, SI(TASKS))
        engine.begin_step()
        out = engine.forward(x, ["a", "b", "c"])
        sums = torch.stack([((out[n].squeeze(1) - y[:, i]) ** 2).sum() for i, n in enumerate("abc")])
        engine.backward(sums * torch.tensor(scale, dtype=torch.float64), torch.full((3,), 8.0, dtype=torch.float64),
                        step=0)
        updates.append(torch.cat([p.grad.flatten() for p in model.encoder.parameters()]))
    torch.testing.assert_close(updates[1], updates[0], rtol=1e-12, atol=1e-15)
    torch.manual_seed(1)
    twin = HardSharing(nn.Sequential(nn.Linear(3, 4), nn.Tanh()), TASKS, feature_dim=4).double()
    out = twin(x, ["a", "b", "c"])
    expected = 0
    for i, n in enumerate("abc"):
        loss = ((out[n].squeeze(1) - y[:, i]) ** 2).mean()
        grads = torch.autograd.grad(loss, list(twin.encoder.parameters()), retain_graph=True)
        expected = expected + torch.cat([g.flatten() for g in grads]) / loss.detach()
    torch.testing.assert_close(updates[0], expected)


def test_absent_task_is_left_out() -> None:
    _, weights = SI(TASKS).total(torch.tensor([2.0, 0.0, 4.0]), torch.tensor([True, False, True]), step=0)
    assert weights.tolist() == [0.5, 0.0, 0.25]


@pytest.mark.parametrize("bad", [0.0, -1.0])
def test_a_non_positive_loss_raises_naming_the_task_and_the_fix(bad: float) -> None:
    with pytest.raises(ValueError, match="task 'c' has loss .* Set eps"):
        SI(TASKS).total(torch.tensor([1.0, 2.0, bad]), ALL, step=0)


def test_eps_admits_a_zero_loss_as_db_mtl_does() -> None:
    _, weights = SI(TASKS, eps=1e-8).total(torch.tensor([0.0, 1.0, 3.0], dtype=torch.float64), ALL, step=0)
    torch.testing.assert_close(weights, torch.tensor([1e8, 1 / (1 + 1e-8), 1 / (3 + 1e-8)], dtype=torch.float64))
    with pytest.raises(ValueError, match="task 'a'"):
        SI(TASKS, eps=1e-8).total(torch.tensor([-1.0, 1.0, 3.0]), ALL, step=0)


def test_nan_is_left_to_the_engine() -> None:
    _, weights = SI(TASKS).total(torch.tensor([-1.0, math.nan, 3.0]), ALL, step=0)  # no ValueError
    assert not torch.isfinite(weights).all()


@pytest.mark.parametrize("eps", [-1e-8, math.inf, math.nan])
def test_invalid_eps_raises(eps: float) -> None:
    with pytest.raises(ValueError, match="'eps' parameter of SI"):
        SI(TASKS, eps=eps)


def test_registry_builds_it() -> None:
    balancer = create_balancer("si", TASKS, eps=1e-8)
    assert isinstance(balancer, SI) and balancer.eps == 1e-8
