"""torchjd weightings and scalarizers as balancers, and the Jacobian path of the engine."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import Tensor, nn
from torchjd.aggregation import GradVacWeighting
from torchjd.scalarization import DWA as TorchJDDWA
from torchjd.scalarization import Mean

from manytask.balancing import JacobianBalancer, TorchJDScalarizer, TorchJDWeighting
from manytask.models import HardSharing
from manytask.tasks import Regression
from manytask.training import BackwardEngine, CheckpointManager

TASKS = [Regression("a"), Regression("b"), Regression("c")]


def problem(seed: int = 0) -> tuple[HardSharing, Tensor, Tensor]:
    torch.manual_seed(seed)
    model = HardSharing(nn.Sequential(nn.Linear(4, 6), nn.Tanh()), TASKS, feature_dim=6)
    return model, torch.randn(8, 4), torch.randn(8, 3)


def step(engine: BackwardEngine, model: HardSharing, x: Tensor, y: Tensor, present: tuple[bool, ...] = (True,) * 3) -> Tensor:
    model.zero_grad(set_to_none=True)
    names = [t.name for t, p in zip(TASKS, present) if p]
    engine.begin_step()
    out = engine.forward(x, names)
    sums = torch.stack([((out[t.name].squeeze(1) - y[:, i]) ** 2).sum() if p else torch.tensor(0.0)
                        for i, (t, p) in enumerate(zip(TASKS, present))])
    return engine.backward(sums, torch.tensor([8.0 if p else 0.0 for p in present]), step=0)[1]


def per_task_gradients(model: HardSharing, x: Tensor, y: Tensor) -> Tensor:
    out = model(x)
    shared = [p for p in model.shared_parameters()]
    rows = []
    for i, t in enumerate(TASKS):
        loss = ((out[t.name].squeeze(1) - y[:, i]) ** 2).mean()
        rows.append(torch.cat([g.flatten() for g in torch.autograd.grad(loss, shared, retain_graph=True)]))
    return torch.stack(rows)


class RowMean(JacobianBalancer):
    """Test-only: the mean of the Jacobian's rows."""

    def aggregate(self, jacobian: Tensor, losses: Tensor, present: Tensor, *, step: int) -> Tensor:
        return jacobian.mean(0)


def test_jacobian_balancer_gets_the_jacobian_and_heads_their_own_gradient() -> None:
    model, x, y = problem()
    jacobian = per_task_gradients(model, x, y)  # an independent computation, task by task
    head_a = torch.autograd.grad(((model(x)["a"].squeeze(1) - y[:, 0]) ** 2).mean(), model.heads["a"].weight)[0]
    step(BackwardEngine(model, RowMean(TASKS)), model, x, y)
    shared = torch.cat([p.grad.flatten() for p in model.shared_parameters()])
    torch.testing.assert_close(shared, jacobian.mean(0))
    torch.testing.assert_close(model.heads["a"].weight.grad, head_a)


def test_torchjd_weighting_matches_an_independent_gramian() -> None:
    """With torchjd's Mean weighting the exact update is the mean of the per-task gradients."""
    from torchjd.aggregation import MeanWeighting

    model, x, y = problem()
    jacobian = per_task_gradients(model, x, y)
    step(BackwardEngine(model, TorchJDWeighting(TASKS, MeanWeighting())), model, x, y)
    torch.testing.assert_close(torch.cat([p.grad.flatten() for p in model.shared_parameters()]), jacobian.mean(0))


def test_stateful_torchjd_weighting_round_trips_through_a_checkpoint(tmp_path: Path) -> None:
    model, x, y = problem()
    balancer = TorchJDWeighting(TASKS, GradVacWeighting(beta=0.3))
    engine = BackwardEngine(model, balancer)
    for _ in range(3):
        step(engine, model, x, y)
    manager = CheckpointManager(tmp_path)
    manager.save({"balancer": balancer.state_dict()}, 3)
    fresh = TorchJDWeighting(TASKS, GradVacWeighting(beta=0.3))
    fresh.load_state_dict(CheckpointManager.load(manager.path(3))["balancer"])
    assert torch.equal(fresh.weighting._phi_t, balancer.weighting._phi_t)
    assert fresh.weighting._state_key == balancer.weighting._state_key
    rng = torch.get_rng_state()
    a = balancer.gramian_weights(torch.eye(3) + 0.5, torch.ones(3), torch.ones(3, dtype=torch.bool), step=3)
    torch.set_rng_state(rng)
    b = fresh.gramian_weights(torch.eye(3) + 0.5, torch.ones(3), torch.ones(3, dtype=torch.bool), step=3)
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_state_a_checkpoint_cannot_hold_is_refused_not_dropped() -> None:
    weighting = GradVacWeighting()
    weighting.handle = object()  # type: ignore[attr-defined]
    with pytest.raises(TypeError, match="GradVacWeighting.handle holds a object.*not continue exactly"):
        TorchJDWeighting(TASKS, weighting).state_dict()


def test_scalarizer_is_the_gradient_of_its_scalar() -> None:
    model, x, y = problem()
    jacobian = per_task_gradients(model, x, y)
    weights = step(BackwardEngine(model, TorchJDScalarizer(TASKS, Mean())), model, x, y)
    torch.testing.assert_close(weights, torch.full((3,), 1 / 3))
    torch.testing.assert_close(torch.cat([p.grad.flatten() for p in model.shared_parameters()]), jacobian.mean(0))


def test_scalarizer_refuses_a_batch_with_an_absent_task() -> None:
    model, x, y = problem()
    with pytest.raises(ValueError, match=r"needs every task's loss in every step, but \['b'\]"):
        step(BackwardEngine(model, TorchJDScalarizer(TASKS, Mean())), model, x, y, (True, False, True))


def test_torchjd_dwa_gets_its_epoch_ends_and_resumes(tmp_path: Path) -> None:
    model, x, y = problem()
    balancer = TorchJDScalarizer(TASKS, TorchJDDWA(temperature=2.0))
    engine = BackwardEngine(model, balancer)
    for epoch in range(3):
        for _ in range(2):
            step(engine, model, x, y)
        balancer.on_epoch_end(epoch)
    assert len(balancer.scalarizer._previous_averages) == 2
    manager = CheckpointManager(tmp_path)
    manager.save({"balancer": balancer.state_dict()}, 1)
    fresh = TorchJDScalarizer(TASKS, TorchJDDWA(temperature=2.0))
    fresh.load_state_dict(CheckpointManager.load(manager.path(1))["balancer"])
    losses = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    both = torch.ones(3, dtype=torch.bool)
    torch.testing.assert_close(balancer.total(losses, both, step=0)[1], fresh.total(losses, both, step=0)[1])
    fresh.reset()
    assert fresh.scalarizer._previous_averages == []


def test_a_stateful_torchjd_weighting_refuses_a_step_with_an_absent_task() -> None:
    """torchjd keeps a stateful weighting's state by row position: with tasks {a, b} present and
    then {b, c}, GradVac's target for the pair (a, b) would be read as the one for (b, c)."""
    balancer = TorchJDWeighting(TASKS, GradVacWeighting(beta=0.3))
    gramian = torch.eye(2) - 0.4 * (1 - torch.eye(2))
    balancer.gramian_weights(torch.eye(3), torch.ones(3), torch.ones(3, dtype=torch.bool), step=0)
    with pytest.raises(ValueError, match=r"GradVacWeighting \(torchjd\) keeps state per task.*\['a'\]"):
        balancer.gramian_weights(gramian, torch.ones(3), torch.tensor([False, True, True]), step=1)


def test_a_stateless_torchjd_weighting_works_on_the_present_tasks() -> None:
    from torchjd.aggregation import IMTLGWeighting

    balancer = TorchJDWeighting(TASKS, IMTLGWeighting())
    gramian = torch.eye(2) - 0.4 * (1 - torch.eye(2))
    weights = balancer.gramian_weights(gramian, torch.ones(3), torch.tensor([False, True, True]), step=0)
    torch.testing.assert_close(weights, IMTLGWeighting()(gramian))
