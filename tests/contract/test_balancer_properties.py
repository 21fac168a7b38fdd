"""What every registered balancer claims in its ``BalancerInfo``, checked with shared seeded asserts.

Per-task gradients are computed independently here (one ``autograd.grad`` per task) and compared
with the update the backward engine leaves in ``.grad``.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from manytask.balancing import balancer_info
from manytask.models import HardSharing
from manytask.tasks import Regression
from manytask.training import BackwardEngine, build_optimizer

from .test_balancer_contract import IDS, LEVELS, build, data, make, step, tasks3


def _blocked_model(name: str, level: str | None, seed: int = 0) -> tuple[HardSharing, object, torch.optim.Optimizer]:
    """Head ``i`` reads only features ``2i, 2i+1`` of a linear trunk: the tasks' trunk gradients
    are orthogonal (no two conflict) and of very different scales."""
    torch.manual_seed(seed)
    tasks = tasks3()
    model = HardSharing(nn.Sequential(nn.Linear(4, 6)), tasks, feature_dim=6)
    balancer = build(name, level, tasks)
    _block_heads(model)
    return model, balancer, build_optimizer(model, balancer, "sgd", lr=1e-3)


def _block_heads(model: HardSharing) -> None:
    with torch.no_grad():
        for i, head in enumerate(model.heads.values()):
            mask = torch.zeros(6)
            mask[2 * i: 2 * i + 2] = 1
            head.weight.mul_(mask)


def _task_gradients(model: HardSharing, seed: int) -> torch.Tensor:
    """Each task's gradient w.r.t. the trunk, ``[T, P]``, one plain backward per task (on an
    unhooked twin of ``model``)."""
    twin = HardSharing(nn.Sequential(nn.Linear(4, 6)), tasks3(), feature_dim=6)
    twin.load_state_dict(model.state_dict())
    model = twin
    x, y = data(seed)
    out = model(x, list(model.task_names))
    rows = []
    for i, n in enumerate(model.task_names):
        loss = ((out[n].squeeze(1) - y[:, i]) ** 2).mean()
        grads = torch.autograd.grad(loss, list(model.encoder.parameters()), retain_graph=True)
        rows.append(torch.cat([g.flatten() for g in grads]))
    return torch.stack(rows)


def _trunk_update(model: HardSharing) -> torch.Tensor:
    return torch.cat([p.grad.flatten() for p in model.encoder.parameters()])


@pytest.mark.parametrize("name, level", LEVELS, ids=IDS)
def test_outputs_stay_finite_under_ill_conditioned_partial_steps(name: str, level: str | None) -> None:
    model, balancer, optimizer = make(name, level, tasks3())
    engine = BackwardEngine(model, balancer)
    for s in range(8):
        present = [True, s % 3 != 1, s % 4 != 2]
        weights = step(model, balancer, optimizer, engine, s, present, epoch_end=s % 3 == 2)
        assert torch.isfinite(weights).all(), (s, weights)
        assert all(torch.isfinite(p).all() for p in model.parameters())


NONCONFLICTING = [(n, lv) for n, lv in LEVELS if balancer_info(n).nonconflicting]


@pytest.mark.parametrize("name, level", NONCONFLICTING, ids=[f"{n}-{lv}" if lv else n for n, lv in NONCONFLICTING])
def test_update_conflicts_with_no_task_when_no_two_tasks_conflict(name: str, level: str | None) -> None:
    model, balancer, optimizer = _blocked_model(name, level)
    engine = BackwardEngine(model, balancer)
    for s in range(3):  # some state first (stateful methods)
        step(model, balancer, optimizer, engine, s, [True, True, True], epoch_end=True)
        _block_heads(model)
    gradients = _task_gradients(model, 5)
    gram = gradients @ gradients.T
    assert (gram - torch.diag(gram.diagonal())).abs().max() < 1e-6 * gram.diagonal().max()  # orthogonal
    step(model, balancer, optimizer, engine, 5, [True, True, True], apply=False)
    update = _trunk_update(model)
    alignment = gradients @ update / (gradients.norm(dim=1) * update.norm())
    assert (alignment >= -1e-5).all(), alignment


SCALED = [(n, lv) for n, lv in LEVELS if balancer_info(n).scale]


@pytest.mark.parametrize("name, level", SCALED, ids=[f"{n}-{lv}" if lv else n for n, lv in SCALED])
@pytest.mark.parametrize("factor", [1e-2, 1e3])
def test_scaling_one_loss_keeps_what_the_method_claims(name: str, level: str | None, factor: float) -> None:
    updates = []
    for c in (1.0, factor):
        model, balancer, _ = make(name, level, tasks3(), dtype=torch.float64)
        engine = BackwardEngine(model, balancer)
        x, y = data(2, torch.float64)
        engine.begin_step()
        out = engine.forward(x, list(model.task_names))
        sums = torch.stack([((out[n].squeeze(1) - y[:, i]) ** 2).sum() for i, n in enumerate(model.task_names)])
        engine.backward(sums * torch.tensor([1.0, c, 1.0], dtype=torch.float64), torch.full((3,), 16.0,
                        dtype=torch.float64), step=0)
        updates.append(_trunk_update(model))
    if balancer_info(name).scale == "invariant":
        torch.testing.assert_close(updates[1], updates[0], rtol=1e-6, atol=1e-9)
    else:
        cosine = updates[0] @ updates[1] / (updates[0].norm() * updates[1].norm())
        assert cosine > 1 - 1e-9, cosine


def test_every_registered_balancer_names_its_paper_and_a_valid_level() -> None:
    for name, _ in LEVELS:
        info = balancer_info(name)
        assert info.paper and any(ch.isdigit() for ch in info.paper), name  # authors and year
        assert (info.needs == "losses") == (not info.levels) or info.levels == ("last_shared",), name


def test_regression_tasks_helper_is_three_tasks() -> None:  # guards the shared fixtures' assumptions
    assert [t.name for t in tasks3()] == ["a", "b", "c"] and all(isinstance(t, Regression) for t in tasks3())
