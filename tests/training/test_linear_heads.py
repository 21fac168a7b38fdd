"""Representation level on linear heads: the Gramian from the heads' output gradients and weights
(never the [T', B, D] feature gradients) against the per-sample feature Jacobian computed by
autograd, and the update against the Jacobian's weighted rows."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest
import torch
from torch import Tensor

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
    assert engine._heads_linear
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
    original = BackwardEngine.__init__

    def general(self: BackwardEngine, *args: object, **kwargs: object) -> None:
        original(self, *args, **kwargs)  # type: ignore[arg-type]
        self._heads_linear = {}

    monkeypatch.setattr(BackwardEngine, "__init__", general)
    torch.manual_seed(3)
    slow, _ = run(["a", "b", "c", "d"], create_balancer(name, TASKS, level="representation"))
    for p, q in zip(fast.parameters(), slow.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-9, atol=1e-12)


def test_grad_scaler_scales_the_written_update() -> None:
    """Under a loss scale s every gradient is s times the unscaled one, the trunk's included."""
    plain, _ = run(["a", "b", "c", "d"], Recorder(TASKS, "representation"))
    scaled, _ = run(["a", "b", "c", "d"], Recorder(TASKS, "representation"),
                    scaler=torch.amp.GradScaler("cpu", init_scale=8.0))
    for p, q in zip(plain.parameters(), scaled.parameters()):
        if p.grad is not None:
            torch.testing.assert_close(q.grad, 8.0 * p.grad)


def test_non_linear_heads_take_the_general_path() -> None:
    tasks = [Regression("a", head_hidden=3), Regression("b")]
    model = HardSharing(MLP(5, (4,)), tasks)
    assert not BackwardEngine(model, create_balancer("mgda", tasks, level="representation"))._heads_linear


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
