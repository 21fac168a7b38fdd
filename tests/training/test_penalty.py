"""A model's ``penalty()`` goes through the backward engine: same loss scale, same finite check."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from manytask.balancing import create_balancer
from manytask.models import HardSharing
from manytask.tasks import Regression
from manytask.training import BackwardEngine, NonFiniteError


class Penalised(HardSharing):
    """Hard sharing with ``strength * ||W||^2`` on the trunk's weight (a soft-sharing stand-in)."""

    strength = 0.3

    def penalty(self) -> Tensor:
        return self.strength * self.encoder[0].weight.pow(2).sum()


def _setup(balancer: str) -> tuple[Penalised, BackwardEngine, Tensor, Tensor]:
    torch.manual_seed(0)
    tasks = [Regression("a"), Regression("b"), Regression("c")]
    model = Penalised(nn.Sequential(nn.Linear(4, 5), nn.Tanh()), tasks, feature_dim=5)
    return model, BackwardEngine(model, create_balancer(balancer, tasks)), torch.randn(8, 4), torch.randn(8, 3)


def _sums(engine: BackwardEngine, x: Tensor, y: Tensor) -> Tensor:
    engine.begin_step()
    out = engine.forward(x, ["a", "b", "c"])
    return torch.stack([((out[n].squeeze(1) - y[:, i]) ** 2).sum() for i, n in enumerate("abc")])


@pytest.mark.parametrize("balancer", ["ew", "mgda"])
def test_penalty_gradient_is_added_to_the_balanced_update(balancer: str) -> None:
    model, engine, x, y = _setup(balancer)
    _, weights = engine.backward(_sums(engine, x, y), torch.full((3,), 8.0), step=0)
    # Independent: the weighted task gradients plus d/dW of the penalty, by plain autograd.
    out = model(x, ["a", "b", "c"])
    total = sum(weights[i] * ((out[n].squeeze(1) - y[:, i]) ** 2).mean() for i, n in enumerate("abc"))
    expected = torch.autograd.grad(total + model.penalty(), model.encoder[0].weight)[0]
    torch.testing.assert_close(model.encoder[0].weight.grad, expected)


def test_penalty_is_scaled_with_the_losses_under_a_grad_scaler() -> None:
    model, _, x, y = _setup("ew")
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    engine = BackwardEngine(model, create_balancer("ew", [Regression(n) for n in "abc"]), scaler=scaler)
    engine.backward(_sums(engine, x, y), torch.full((3,), 8.0), step=0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    scaler.unscale_(optimizer)
    scaled = model.encoder[0].weight.grad.clone()
    model.zero_grad()
    plain = BackwardEngine(model, create_balancer("ew", [Regression(n) for n in "abc"]))
    plain.backward(_sums(plain, x, y), torch.full((3,), 8.0), step=0)
    torch.testing.assert_close(scaled, model.encoder[0].weight.grad)  # before the fix: off by 1024x in the penalty


def test_non_finite_penalty_is_named() -> None:
    model, engine, x, y = _setup("ew")
    model.strength = float("inf")
    with pytest.raises(NonFiniteError, match="penalty of Penalised is inf"):
        engine.backward(_sums(engine, x, y), torch.full((3,), 8.0), step=0)
