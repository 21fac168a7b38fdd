"""Representation level on linear heads: the Gramian from the heads' output gradients and weights
(never the [T', B, D] feature gradients) against the per-sample feature Jacobian computed by
autograd, and the update against the Jacobian's weighted rows."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest
import torch
from torch import Tensor, nn

from manytask.balancing import GramianBalancer, create_balancer
from manytask.models import MLP, HardSharing
from manytask.tasks import Classification, Regression, Task
from manytask.training import BackwardEngine

TASKS: list[Task] = [Regression("a"), Classification("b", num_classes=3), Regression("c", num_outputs=2),
                     Regression("d")]


class Recorder(GramianBalancer):
    """Keeps the Gramian; fixed, distinct weights (a mix-up of tasks shows)."""

    stateful: ClassVar[bool] = False

    def gramian_weights(self, gramian: Tensor, losses: Tensor, present: Tensor, *, step: int) -> Tensor:
        self.seen = gramian.detach().clone()
        return torch.linspace(0.5, 2.0, gramian.shape[0], dtype=gramian.dtype)


def data(batch: int = 6) -> tuple[Tensor, dict[str, Tensor]]:
    torch.manual_seed(1)
    x = torch.randn(batch, 5, dtype=torch.float64)
    return x, {"a": torch.randn(batch, dtype=torch.float64), "b": torch.randint(0, 3, (batch,)),
               "c": torch.randn(batch, 2, dtype=torch.float64), "d": torch.randn(batch, dtype=torch.float64)}


def run(present: list[str], balancer: GramianBalancer, scaler: torch.amp.GradScaler | None = None
        ) -> tuple[HardSharing, BackwardEngine]:
    torch.manual_seed(0)
    model = HardSharing(MLP(5, (7, 4)), TASKS).double()
    x, targets = data()
    engine = BackwardEngine(model, balancer, scaler=scaler)
    engine.begin_step()
    out = engine.forward(x, present)
    by_name = {t.name: t for t in TASKS}
    sums = torch.zeros(len(TASKS), dtype=torch.float64)
    counts = torch.zeros(len(TASKS))
    for i, task in enumerate(TASKS):
        if task.name in present:
            total, count = by_name[task.name].loss_terms(out[task.name], targets[task.name], None)
            sums = sums.index_put((torch.tensor([i]),), total.reshape(1).double())
            counts[i] = count
    engine.backward(sums, counts, step=0)
    return model, engine


def backward_once(engine: BackwardEngine, x: Tensor, targets: dict[str, Tensor], tasks: list[Task]) -> None:
    """One step of the engine with every task of ``tasks`` present: forward, loss terms, backward."""
    engine.begin_step()
    out = engine.forward(x, [t.name for t in tasks])
    terms = [t.loss_terms(out[t.name], targets[t.name], None) for t in tasks]
    engine.backward(torch.stack([s.double() for s, _ in terms]), torch.tensor([float(c) for _, c in terms]), step=0)


def copy_per_head(monkeypatch: pytest.MonkeyPatch) -> None:
    """Engines built from now on take the general route: a detached copy and a call per head."""
    original = BackwardEngine.__init__

    def per_head(self: BackwardEngine, *args: object, **kwargs: object) -> None:
        original(self, *args, **kwargs)  # type: ignore[arg-type]
        self._hard_sharing = None

    monkeypatch.setattr(BackwardEngine, "__init__", per_head)


def assert_same_gradients(a: nn.Module, b: nn.Module) -> None:
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-9, atol=1e-12)


def feature_jacobian(present: list[str]) -> tuple[Tensor, Tensor, list[Tensor]]:
    """By autograd, one task at a time: the rows ``[T', B·D]`` of dL_t/dz, dL_t/dθ_trunk, and each head's
    plain weight gradient."""
    torch.manual_seed(0)
    model = HardSharing(MLP(5, (7, 4)), TASKS).double()
    x, targets = data()
    z = model.features(x)
    by_name = {t.name: t for t in TASKS}
    trunk = list(model.encoder.parameters())
    rows, trunk_rows, heads = [], [], []
    for name in present:
        loss = by_name[name].mean_loss(model.heads[name](z), targets[name], None)
        rows.append(torch.autograd.grad(loss, z, retain_graph=True)[0].flatten())
        trunk_rows.append(torch.cat([g.flatten() for g in torch.autograd.grad(loss, trunk, retain_graph=True)]))
        heads.append(torch.autograd.grad(loss, model.heads[name].weight, retain_graph=True)[0])
    return torch.stack(rows), torch.stack(trunk_rows), heads


@pytest.mark.parametrize("present", [["a", "b", "c", "d"], ["b", "d"]], ids=["all", "two-present"])
def test_gramian_and_update_match_the_feature_jacobian(present: list[str]) -> None:
    balancer = Recorder(TASKS, "representation")
    model, engine = run(present, balancer)
    assert engine._linear[0] is not None
    rows, trunk_rows, heads = feature_jacobian(present)
    torch.testing.assert_close(balancer.seen, rows @ rows.T)
    weights = torch.linspace(0.5, 2.0, len(present), dtype=torch.float64)
    torch.testing.assert_close(torch.cat([p.grad.flatten() for p in model.encoder.parameters()]), weights @ trunk_rows)
    for name, grad in zip(present, heads):  # each head: the plain gradient of its own loss
        torch.testing.assert_close(model.heads[name].weight.grad, grad)
    assert all(model.heads[n].weight.grad is None for n in "abcd" if n not in present)


@pytest.mark.parametrize("name", ["mgda", "upgrad", "pcgrad", "nash-mtl"])
def test_same_weights_and_update_as_the_general_path(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A registered method gives the same update with the factorised Gramian as with the feature
    Gramian of the general path (forced by turning the linear-head route off)."""
    torch.manual_seed(3)
    fast, _ = run(["a", "b", "c", "d"], create_balancer(name, TASKS, level="representation"))
    monkeypatch.setattr(BackwardEngine, "_linear_heads_step", None)
    copy_per_head(monkeypatch)
    torch.manual_seed(3)
    slow, _ = run(["a", "b", "c", "d"], create_balancer(name, TASKS, level="representation"))
    assert_same_gradients(fast, slow)


def test_grad_scaler_scales_the_written_update() -> None:
    """Under a loss scale s every gradient is s times the unscaled one, the trunk's included."""
    plain, _ = run(["a", "b", "c", "d"], Recorder(TASKS, "representation"))
    scaled, _ = run(["a", "b", "c", "d"], Recorder(TASKS, "representation"),
                    scaler=torch.amp.GradScaler("cpu", init_scale=8.0))
    for p, q in zip(plain.parameters(), scaled.parameters()):
        if p.grad is not None:
            torch.testing.assert_close(q.grad, 8.0 * p.grad)


def test_non_linear_heads_take_the_general_path() -> None:
    """The route is chosen per step from the heads read: a non-linear head among them takes the
    general path; a step whose tasks all have linear heads takes the route."""
    tasks = [Regression("a", head_hidden=3), Regression("b")]
    model = HardSharing(MLP(5, (4,)), tasks)
    engine = BackwardEngine(model, create_balancer("mgda", tasks, level="representation"))
    x = torch.randn(6, 5)
    engine.begin_step()
    engine.forward(x, ["a", "b"])
    assert engine._linear == [None]
    engine.begin_step()
    engine.forward(x, ["b"])
    assert engine._linear[0] is not None


def test_a_head_replaced_after_the_engine_was_built_is_the_one_used() -> None:
    """The heads are read from the model every step: a head replaced after the engine was built
    (before the fix the Gramian and the trunk's update used the old head's weights, silently) gives
    the update of an engine built after the replacement."""
    def step(replace_first: bool) -> HardSharing:
        torch.manual_seed(0)
        model = HardSharing(MLP(5, (7, 4)), TASKS).double()
        if replace_first:
            model.heads["b"] = nn.Linear(4, 3).double()
        engine = BackwardEngine(model, Recorder(TASKS, "representation"))
        if not replace_first:
            model.heads["b"] = nn.Linear(4, 3).double()
        backward_once(engine, *data(), TASKS)
        return model

    torch.manual_seed(1)
    late = step(replace_first=False)
    torch.manual_seed(1)
    early = step(replace_first=True)
    assert_same_gradients(late, early)


@pytest.mark.parametrize("balancer", ["mgda", "upgrad", "pcgrad"])
def test_representation_level_trains_under_bf16_autocast(tmp_path: Path, balancer: str) -> None:
    """Before the fix the bf16 head-output gradients met the float32 head weights in one matmul:
    'expected m1 and m2 to have the same dtype' at the first step, for every such method."""
    from manytask.config import parse_config
    from manytask.runs._build import build_experiment

    config = parse_config({"seed": 0, "data": {"name": "demo", "n_train": 200, "n_val": 40, "n_test": 40},
                           "model": {"name": "hps", "encoder": {"name": "mlp", "hidden": [16, 16]}},
                           "balancer": {"name": balancer, "level": "representation"},
                           "training": {"steps": 3, "eval_every": 3, "precision": "bf16", "device": "cpu",
                                        "progress": False}})
    trainer = build_experiment(config, run_dir=tmp_path).trainer
    trainer.fit()
    assert trainer.last_weights is not None and bool(torch.isfinite(trainer.last_weights).all())


def test_identical_heads_read_one_copy_of_the_features_through_one_matmul() -> None:
    """Nine identical heads (HardSharing groups them into one matmul): one detached copy of the
    features for all, and the Gramian and update still those of the per-task feature Jacobian."""
    tasks = [Regression(f"t{i}") for i in range(9)]
    torch.manual_seed(0)
    model = HardSharing(MLP(5, (7, 4)), tasks).double()
    x = torch.randn(6, 5, dtype=torch.float64)
    y = torch.randn(9, 6, dtype=torch.float64)
    present = [t.name for t in tasks if t.name != "t4"]
    balancer = Recorder(tasks, "representation")
    engine = BackwardEngine(model, balancer)
    engine.begin_step()
    out = engine.forward(x, present)
    assert len(engine._groups[0][2]) == 1  # one leaf, not one per head
    losses = [((out[n].squeeze(1) - y[int(n[1:])]) ** 2).mean() if n in present else torch.zeros((), dtype=x.dtype)
              for n in (t.name for t in tasks)]
    engine.backward(torch.stack(losses), torch.tensor([0.0 if t.name == "t4" else 1.0 for t in tasks]), step=0)

    reference = HardSharing(MLP(5, (7, 4)), tasks).double()
    reference.load_state_dict(model.state_dict())
    z = reference.features(x)
    trunk = list(reference.encoder.parameters())
    rows, trunk_rows = [], []
    for n in present:
        loss = ((reference.heads[n](z).squeeze(1) - y[int(n[1:])]) ** 2).mean()
        rows.append(torch.autograd.grad(loss, z, retain_graph=True)[0].flatten())
        trunk_rows.append(torch.cat([g.flatten() for g in torch.autograd.grad(loss, trunk, retain_graph=True)]))
        head_grad = torch.autograd.grad(loss, reference.heads[n].weight, retain_graph=True)[0]
        torch.testing.assert_close(model.heads[n].weight.grad, head_grad)
    rows_t = torch.stack(rows)
    torch.testing.assert_close(balancer.seen, rows_t @ rows_t.T)
    weights = torch.linspace(0.5, 2.0, len(present), dtype=torch.float64)
    torch.testing.assert_close(torch.cat([p.grad.flatten() for p in model.encoder.parameters()]),
                               weights @ torch.stack(trunk_rows))
    assert model.heads["t4"].weight.grad is None


class Tokens(nn.Module):
    """A one-stage sequence encoder ``[B, L, 5] -> [B, L, 4]``."""

    layout = "sequence"
    out_features = 4

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(5, 4)

    def forward(self, x: Tensor) -> Tensor:
        return torch.tanh(self.proj(x))


@pytest.mark.parametrize("name", ["mgda", "upgrad"])
def test_token_heads_on_one_copy_of_the_features_match_a_copy_per_head(name: str,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Linear token heads on ``[B, L, D]`` features: not the factorised route (which needs ``[B, D]``);
    the per-task feature gradients come from the heads' output gradients (``C_t W_t``) on the one
    detached copy, and give the same update as one copy per head."""
    tasks: list[Task] = [Regression("a", level="token"), Classification("b", num_classes=3, level="token"),
                         Regression("c", level="token")]

    def step() -> tuple[HardSharing, int]:
        torch.manual_seed(3)
        model = HardSharing(Tokens(), tasks).double()
        x = torch.randn(3, 5, 5, dtype=torch.float64)
        targets = {"a": torch.randn(3, 5, dtype=torch.float64), "b": torch.randint(0, 3, (3, 5)),
                   "c": torch.randn(3, 5, dtype=torch.float64)}
        engine = BackwardEngine(model, create_balancer(name, tasks, level="representation"))
        backward_once(engine, x, targets, tasks)
        return model, len(engine._groups[0][2])

    fast, copies = step()
    assert copies == 1
    copy_per_head(monkeypatch)
    slow, copies = step()
    assert copies == 3
    assert_same_gradients(fast, slow)


@pytest.mark.parametrize("where", ["head", "global"])
def test_a_head_with_a_hook_is_called_and_its_hook_counts(where: str) -> None:
    """One matmul for the heads would skip their hooks: with a forward hook on a head (or on every
    module) the heads are called, and a hook that doubles head b's output gives the update of the
    general path (a detached copy per head) with the same hook."""
    calls: list[nn.Module] = []

    def doubled(module: nn.Module, args: tuple[Tensor, ...], output: Tensor) -> Tensor | None:
        if not (isinstance(module, nn.Linear) and module.out_features == 3):  # head b
            return None
        calls.append(module)
        return 2 * output

    def step(per_head: bool) -> tuple[HardSharing, BackwardEngine]:
        torch.manual_seed(0)
        model = HardSharing(MLP(5, (7, 4)), TASKS).double()
        engine = BackwardEngine(model, create_balancer("mgda", TASKS, level="representation"))
        if per_head:
            engine._hard_sharing = None
        handle = (model.heads["b"].register_forward_hook(doubled) if where == "head"
                  else nn.modules.module.register_module_forward_hook(doubled))
        try:
            backward_once(engine, *data(), TASKS)
        finally:
            handle.remove()
        return model, engine

    hooked, engine = step(per_head=False)
    assert engine._hard_sharing is not None and engine._linear == [None] and len(calls) == 1
    general, _ = step(per_head=True)
    assert len(calls) == 2
    assert_same_gradients(hooked, general)
    plain, _ = run(["a", "b", "c", "d"], create_balancer("mgda", TASKS, level="representation"))
    assert not torch.allclose(plain.heads["b"].weight.grad, hooked.heads["b"].weight.grad)


@pytest.mark.parametrize("balancer", ["mgda", "nash-mtl", "gradvac"])
def test_an_absent_tasks_head_stays_put_under_adam_through_the_trainer(tmp_path: Path, balancer: str) -> None:
    """Through the trainer, under Adam, with batches that label only some tasks: on a step that
    lacks a task its head is not in the one matmul, gets no gradient and does not move; the others do."""
    from .helpers import make_trainer

    trainer = make_trainer(tmp_path, 12, balancer, level="representation")
    moved_when_absent, moved_when_present = [], []
    for _ in range(12):
        before = {n: h.weight.detach().clone() for n, h in trainer.model.heads.items()}
        source, batch = trainer.loader.next()
        trainer._train_step((source, batch))
        present = batch.present()
        assert trainer.engine._linear[0] is not None  # the one-matmul route
        for name, head in trainer.model.heads.items():
            moved = not torch.equal(before[name], head.weight)
            (moved_when_present if name in present else moved_when_absent).append(moved)
    assert moved_when_absent and not any(moved_when_absent)
    assert all(moved_when_present)


@pytest.mark.parametrize("name, options", [("mgda", {"level": "exact"}), ("pcgrad", {"level": "exact"}),
                                           ("db-mtl", {}), ("moco", {}),
                                           ("gradnorm", {}), ("graddrop", {"level": "exact"}),
                                           ("upgrad", {"level": "representation"})])
@pytest.mark.parametrize("identical", [True, False], ids=["nine-identical", "mixed-sizes"])
def test_every_gradient_route_gives_the_update_of_a_copy_per_head(name: str, options: dict[str, str],
                                                                  identical: bool,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The heads as one matmul on one detached copy, whose per-task feature gradients come from the
    heads' output gradients (C_t W_t, batched when the heads have the same size), give every level
    (exact, GradNorm's last shared layer, a Jacobian method, representation) the update of a copy per head."""
    tasks: list[Task] = [Regression(f"t{i}") for i in range(9)] if identical else list(TASKS)

    def step() -> tuple[HardSharing, bool]:
        torch.manual_seed(3)
        model = HardSharing(MLP(5, (7, 4)), tasks).double()
        x = torch.randn(6, 5, dtype=torch.float64)
        targets = {t.name: (torch.randint(0, 3, (6,)) if isinstance(t, Classification)
                            else torch.randn(6, t.num_outputs, dtype=torch.float64).squeeze(1)) for t in tasks}
        engine = BackwardEngine(model, create_balancer(name, tasks, **options))
        backward_once(engine, x, targets, tasks)
        return model, engine._linear[0] is not None

    fast, routed = step()
    assert routed
    copy_per_head(monkeypatch)
    slow, routed = step()
    assert not routed
    assert_same_gradients(fast, slow)
