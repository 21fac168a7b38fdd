"""Every registered balancer, through the backward engine, with T = 3 tasks and Adam."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from manytask.balancing import BALANCERS, Balancer, balancer_info, create_balancer
from manytask.models import HardSharing
from manytask.tasks import Regression
from manytask.training import BackwardEngine, NonFiniteError, build_optimizer

NAMES = BALANCERS.names()
LEVELS = [(n, lv) for n in NAMES for lv in (balancer_info(n).levels if len(balancer_info(n).levels) > 1 else (None,))]
IDS = [f"{n}-{lv}" if lv else n for n, lv in LEVELS]
#: Per-task state that records which tasks were present, and so changes when one is absent.
PRESENCE_RECORDS = {"solved_for"}  # Nash-MTL: the tasks present at its last solve


def make(name: str, level: str | None, tasks: list[Regression], dtype: torch.dtype = torch.float32,
         seed: int = 0) -> tuple[HardSharing, Balancer, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    model = HardSharing(nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 6), nn.Tanh()), tasks, feature_dim=6)
    balancer = build(name, level, tasks)
    model.to(dtype)
    balancer.to(dtype)
    return model, balancer, build_optimizer(model, balancer, "adam", lr=1e-2)


def build(name: str, level: str | None, tasks: list[Regression]) -> Balancer:
    """The registered balancer with its example options (and ``level``, if it has several)."""
    options = dict(balancer_info(name).example) | ({"level": level} if level else {})
    return create_balancer(name, tasks, **options)


def data(seed: int, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(16, 4, generator=g, dtype=dtype)
    # Ill-conditioned targets: scales 1e-3 .. 1e3.
    y = torch.randn(16, 3, generator=g, dtype=dtype) * torch.tensor([1e-3, 1.0, 1e3], dtype=dtype)
    return x, y


def step(model: HardSharing, balancer: Balancer, optimizer: torch.optim.Optimizer, engine: BackwardEngine,
         seed: int, present: list[bool], epoch_end: bool = False, apply: bool = True) -> torch.Tensor:
    x, y = data(seed, next(model.parameters()).dtype)
    names = [n for n, p in zip(model.task_names, present) if p]
    optimizer.zero_grad(set_to_none=True)
    engine.begin_step()
    out = engine.forward(x, names)
    index = torch.tensor([model.task_names.index(n) for n in names])
    sums = torch.zeros(3, dtype=x.dtype).index_put(
        (index,), torch.stack([((out[n].squeeze(1) - y[:, model.task_names.index(n)]) ** 2).sum() for n in names]))
    counts = torch.tensor([16.0 if p else 0.0 for p in present], dtype=x.dtype)
    losses, weights = engine.backward(sums, counts, step=seed)
    if not apply:
        return weights
    optimizer.step()
    balancer.on_after_optimizer_step(losses, counts > 0, step=seed, recompute=lambda: losses)
    if epoch_end:
        balancer.on_epoch_end(seed)
    return weights


def tasks3() -> list[Regression]:
    return [Regression("a"), Regression("b"), Regression("c")]


def state_of(module: nn.Module) -> dict[str, object]:
    return {k: (v.clone() if isinstance(v, torch.Tensor) else copy.deepcopy(v)) for k, v in module.state_dict().items()}


def assert_same_state(a: dict[str, object], b: dict[str, object]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        va, vb = a[key], b[key]
        if isinstance(va, torch.Tensor):
            assert torch.equal(va.nan_to_num(7.0), vb.nan_to_num(7.0)), key  # type: ignore[union-attr]
        else:
            assert repr(va) == repr(vb), key


@pytest.mark.parametrize("name, level", LEVELS, ids=IDS)
def test_absent_task_for_several_steps_changes_nothing_of_it(name: str, level: str | None) -> None:
    model, balancer, optimizer = make(name, level, tasks3())
    engine = BackwardEngine(model, balancer)
    for s in range(3):
        step(model, balancer, optimizer, engine, s, [True, True, True], epoch_end=True)
    head_c = [p.detach().clone() for p in model.heads["c"].parameters()]
    own_c = {k: v for k, v in state_of(balancer).items()
             if isinstance(v, torch.Tensor) and v.ndim and v.shape[-1] == 3 and k.split(".")[-1] not in PRESENCE_RECORDS}
    uw_c = [p.detach().clone() for n, p in balancer.named_parameters() if n.endswith(".2")]
    for s in range(3, 8):
        weights = step(model, balancer, optimizer, engine, s, [True, True, False], epoch_end=True)
        assert weights[2] == 0
        assert model.heads["c"].weight.grad is None
    for before, after in zip(head_c, model.heads["c"].parameters()):
        assert torch.equal(before, after.detach())
    after_state = state_of(balancer)
    for key, value in own_c.items():
        assert torch.equal(value[..., 2].nan_to_num(7.0), after_state[key][..., 2].nan_to_num(7.0)), key  # type: ignore[index]
    for before, (n, p) in zip(uw_c, [(n, p) for n, p in balancer.named_parameters() if n.endswith(".2")]):
        assert torch.equal(before, p.detach()), n


@pytest.mark.parametrize("name, level", LEVELS, ids=IDS)
def test_state_round_trip_after_some_steps(name: str, level: str | None) -> None:
    """Copying the state of a trained balancer into a fresh one continues identically (the old
    test copied a fresh state into a fresh one)."""
    model, balancer, optimizer = make(name, level, tasks3())
    engine = BackwardEngine(model, balancer)
    for s in range(5):
        step(model, balancer, optimizer, engine, s, [True, s % 2 == 0, True], epoch_end=s % 2 == 1)
    model2, fresh, optimizer2 = make(name, level, tasks3(), seed=1)
    if balancer_info(name).stateful:
        assert not _same(state_of(balancer), state_of(fresh))  # training changed the state
    model2.load_state_dict(model.state_dict())
    fresh.load_state_dict(balancer.state_dict())
    rng = torch.get_rng_state()
    a = step(model, balancer, optimizer, BackwardEngine(model, balancer), 9, [True, True, True], apply=False)
    torch.set_rng_state(rng)
    b = step(model2, fresh, optimizer2, BackwardEngine(model2, fresh), 9, [True, True, True], apply=False)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert_same_state(state_of(balancer), state_of(fresh))
    for p, q in zip(model.parameters(), model2.parameters()):
        assert (p.grad is None and q.grad is None) or torch.equal(p.grad, q.grad)


def _same(a: dict[str, object], b: dict[str, object]) -> bool:
    try:
        assert_same_state(a, b)
    except AssertionError:
        return False
    return True


@pytest.mark.parametrize("name, level", LEVELS, ids=IDS)
def test_reset_returns_to_the_initial_state(name: str, level: str | None) -> None:
    model, balancer, optimizer = make(name, level, tasks3())
    initial = state_of(balancer)
    engine = BackwardEngine(model, balancer)
    for s in range(4):
        step(model, balancer, optimizer, engine, s, [True, True, True], epoch_end=True)
    balancer.reset()
    assert_same_state(initial, state_of(balancer))


EQUIVARIANT = [(n, lv) for n, lv in LEVELS if balancer_info(n).equivariant]


@pytest.mark.parametrize("name, level", EQUIVARIANT, ids=[f"{n}-{lv}" if lv else n for n, lv in EQUIVARIANT])
def test_permuting_tasks_permutes_weights(name: str, level: str | None) -> None:
    n = 2 if balancer_info(name).random else 3  # e.g. PCGrad's projection order is random for T >= 3
    tasks = tasks3()[:n]
    perm = list(reversed(range(n)))
    results = []
    for order in (list(range(n)), perm):
        torch.manual_seed(0)
        encoder = nn.Sequential(nn.Linear(4, 6), nn.Tanh())
        heads = [nn.Linear(6, 1) for _ in range(n)]
        model = HardSharing(encoder, [tasks[i] for i in order], feature_dim=6)
        for i in order:
            model.heads[tasks[i].name].load_state_dict(heads[i].state_dict())
        balancer = build(name, level, [tasks[i] for i in order])
        engine = BackwardEngine(model, balancer)
        x, y = data(3)
        engine.begin_step()
        out = engine.forward(x, list(model.task_names))
        sums = torch.stack([((out[tasks[i].name].squeeze(1) - y[:, i]) ** 2).sum() for i in order])
        weights = engine.backward(sums, torch.full((n,), 16.0), step=0)[1]
        results.append((weights, encoder[0].weight.grad.clone()))
    torch.testing.assert_close(results[0][0][perm], results[1][0], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(results[0][1], results[1][1], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("name, level", LEVELS, ids=IDS)
def test_float64(name: str, level: str | None) -> None:
    model, balancer, optimizer = make(name, level, tasks3(), dtype=torch.float64)
    engine = BackwardEngine(model, balancer)
    weights = step(model, balancer, optimizer, engine, 0, [True, True, True])
    assert torch.isfinite(weights).all()
    assert all(p.grad is None or p.grad.dtype == torch.float64 for p in model.parameters())


@pytest.mark.parametrize("name, level", LEVELS, ids=IDS)
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_loss_is_refused_before_anything_changes(name: str, level: str | None, bad: float) -> None:
    model, balancer, optimizer = make(name, level, tasks3())
    before = state_of(balancer)
    engine = BackwardEngine(model, balancer)
    engine.begin_step()
    x, _ = data(0)
    out = engine.forward(x, list(model.task_names))
    sums = torch.stack([out["a"].sum(), out["b"].sum() * bad, out["c"].sum()])
    with pytest.raises(NonFiniteError, match="task 'b'"):
        engine.backward(sums, torch.full((3,), 16.0), step=0)
    assert_same_state(before, state_of(balancer))
