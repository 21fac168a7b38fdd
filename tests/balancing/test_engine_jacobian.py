"""The engine's Jacobian path at both levels against an independent per-task computation."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from manytask.balancing import JacobianBalancer
from manytask.models import HardSharing
from manytask.tasks import Regression
from manytask.training import BackwardEngine


class RowMean(JacobianBalancer):
    """The mean of the Jacobian's rows (a test double)."""

    stateful = False

    def __init__(self, tasks: list[Regression], level: str) -> None:
        super().__init__(tasks)
        self.level = level  # type: ignore[assignment]
        self.shapes: list[tuple[int, ...]] = []

    def aggregate(self, jacobian: Tensor, losses: Tensor, present: Tensor, *, step: int) -> Tensor:
        self.shapes.append(tuple(jacobian.shape))
        return jacobian.mean(0)


@pytest.mark.parametrize("level", ["exact", "representation"])
def test_row_mean_update_is_the_mean_of_the_present_tasks_gradients(level: str) -> None:
    torch.manual_seed(0)
    tasks = [Regression("a"), Regression("b"), Regression("c")]
    model = HardSharing(nn.Sequential(nn.Linear(4, 5), nn.Tanh()), tasks, feature_dim=5)
    x, y = torch.randn(8, 4), torch.randn(8, 3)
    present = ["a", "c"]
    # Independent: each present task's trunk gradient from its own backward, then the mean.
    out = model(x, present)
    losses = {n: ((out[n].squeeze(1) - y[:, i]) ** 2).mean() for i, n in enumerate(model.task_names) if n in present}
    per_task = [torch.autograd.grad(losses[n], list(model.encoder.parameters()), retain_graph=True) for n in present]
    expected_trunk = [sum(g) / 2 for g in zip(*per_task)]
    expected_head = torch.autograd.grad(losses["c"], model.heads["c"].weight)[0]

    balancer = RowMean(tasks, level)
    engine = BackwardEngine(model, balancer)
    engine.begin_step()
    out = engine.forward(x, present)
    sums = torch.stack([((out["a"].squeeze(1) - y[:, 0]) ** 2).sum(), torch.zeros(()),
                        ((out["c"].squeeze(1) - y[:, 2]) ** 2).sum()])
    _, weights = engine.backward(sums, torch.tensor([8.0, 0.0, 8.0]), step=0)
    rows = 8 * 5 if level == "representation" else sum(p.numel() for p in model.encoder.parameters())
    assert balancer.shapes == [(2, rows)]
    for p, e in zip(model.encoder.parameters(), expected_trunk):
        torch.testing.assert_close(p.grad, e)
    torch.testing.assert_close(model.heads["c"].weight.grad, expected_head)  # plain, unweighted
    assert model.heads["b"].weight.grad is None
    torch.testing.assert_close(weights, torch.tensor([0.5, 0.0, 0.5]), atol=1e-5, rtol=0)


@pytest.mark.parametrize("case", ["zero gradient", "duplicate tasks"])
def test_logged_weights_reproduce_the_update_when_the_gradients_are_dependent(case: str) -> None:
    """A Jacobian method's logged weights (``weight/<task>``, ``last_weights``) solve ``J Jᵀ w = J u``.
    With a zero gradient the old solve (LAPACK's gelsy on the float32 Gramian) gave [0, 0, 0], with
    two equal gradients weights that missed the update by 24-62 %: both Gramians are singular only
    up to float32 rounding. Here u is the plain sum, so weights reproducing it exist (1, 1, 1)."""
    generator = torch.Generator().manual_seed(0)
    jacobian = torch.randn(3, 40, generator=generator)
    rounding = torch.randn(40, generator=generator) * 1e-7  # two computations of one gradient differ at this
    jacobian[1] = 0.0 if case == "zero gradient" else jacobian[0] * (1 + rounding)
    update = jacobian.sum(0)
    losses = torch.ones(3)
    weights = BackwardEngine._least_squares_weights(jacobian, update, losses, torch.arange(3))
    assert weights.dtype == torch.float32
    torch.testing.assert_close(jacobian.T @ weights, update, rtol=1e-5, atol=1e-5)
