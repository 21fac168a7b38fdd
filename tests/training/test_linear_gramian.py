"""The exact Gramian of linear trunks from layer inputs and output gradients, and its update,
against per-task autograd (the Jacobian row by row); and the fallbacks where it cannot follow."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import pytest
import torch
from torch import Tensor, nn

from manytask.balancing import GramianBalancer, create_balancer
from manytask.config import parse_config
from manytask.data import MultiSourceLoader
from manytask.demos import shared_latent_tasks
from manytask.models import MLP, AdaptiveSharing, Backbone, FeatureInfo, HardSharing, create_model
from manytask.runs._build import build_experiment
from manytask.tasks import Regression
from manytask.training import BackwardEngine, Trainer, build_optimizer
from manytask.training._linear_gramian import LinearGramian, _layer_gramian

NAMES = ["a", "b", "c", "d"]


class Recorder(GramianBalancer):
    """Keeps the Gramian it is given; fixed, distinct weights (so a mix-up of tasks shows)."""

    stateful: ClassVar[bool] = False

    def gramian_weights(self, gramian: Tensor, losses: Tensor, present: Tensor, *, step: int) -> Tensor:
        self.seen = gramian.detach().clone()
        return torch.linspace(0.5, 2.0, gramian.shape[0], dtype=gramian.dtype)


class TiedTrunk(nn.Module):
    """One linear layer applied twice (weight reuse), then another."""

    def __init__(self) -> None:
        super().__init__()
        self.square, self.out = nn.Linear(4, 4), nn.Linear(4, 6)

    def forward(self, x: Tensor) -> Tensor:
        return torch.tanh(self.out(torch.tanh(self.square(torch.tanh(self.square(x))))))


class SequenceTrunk(nn.Module):
    """Linear layers on ``[B, L, D]`` (rows = positions), mean-pooled."""

    def __init__(self) -> None:
        super().__init__()
        self.first, self.second = nn.Linear(4, 9), nn.Linear(9, 6)

    def forward(self, x: Tensor) -> Tensor:
        return self.second(torch.relu(self.first(x))).mean(1)


def frozen_bias() -> nn.Module:
    trunk = MLP(4, (5, 6))
    trunk.stages[1][0].bias.requires_grad_(False)
    return trunk


TRUNKS: dict[str, Callable[[], nn.Module]] = {
    "mlp": lambda: MLP(4, (7, 6)), "tied": TiedTrunk, "frozen-bias": frozen_bias, "conv2d": lambda: ImageTrunk(),
}


def losses_of(out: dict[str, Tensor], y: Tensor) -> dict[str, Tensor]:
    return {n: ((o.squeeze(-1) - y[:, i]) ** 2).mean() for i, (n, o) in enumerate(out.items())}


def step(model: HardSharing, balancer: GramianBalancer, x: Tensor, y: Tensor, present: list[str],
         scaler: torch.amp.GradScaler | None = None) -> BackwardEngine:
    engine = BackwardEngine(model, balancer, scaler=scaler)
    engine.begin_step()
    losses = losses_of(engine.forward(x, present), y)
    sums, counts = torch.zeros(len(NAMES), dtype=y.dtype), torch.zeros(len(NAMES))
    for n, loss in losses.items():
        i = NAMES.index(n)
        sums = sums.index_put((torch.tensor([i]),), loss.reshape(1))
        counts[i] = 1.0
    engine.backward(sums, counts, step=0)
    return engine


def explicit(model: HardSharing, x: Tensor, y: Tensor, present: list[str]) -> tuple[Tensor, list[Tensor]]:
    """Per-task gradients of the shared parameters, one autograd call per task: ``J [T', P]``, and the heads'."""
    shared = [p for p in model.shared_parameters() if p.requires_grad]
    losses = losses_of(model(x, present), y)
    rows = [torch.cat([g.flatten() for g in torch.autograd.grad(losses[n], shared, retain_graph=True)]) for n in present]
    heads = [torch.autograd.grad(losses[n], model.heads[n].weight, retain_graph=True)[0] for n in present]
    return torch.stack(rows), heads


def shared_grad(model: HardSharing) -> Tensor:
    return torch.cat([p.grad.flatten() for p in model.shared_parameters() if p.requires_grad])


@pytest.mark.parametrize("route", [False, True], ids=["batched", "per-task"])
@pytest.mark.parametrize("trunk", list(TRUNKS))
@pytest.mark.parametrize("present", [NAMES, ["a", "c", "d"]], ids=["all", "b-absent"])
def test_gramian_and_update_match_per_task_autograd(trunk: str, present: list[str], route: bool,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Both routes: per-task output gradients in one batched backward, or per-task parameter
    gradients in one backward per task (chosen by their size; forced here)."""
    monkeypatch.setattr(LinearGramian, "_per_task_route", lambda self, count, calls: route)
    torch.manual_seed(0)
    model = HardSharing(TRUNKS[trunk](), [Regression(n) for n in NAMES], feature_dim=6).double()
    x, y = torch.randn(5, 4, dtype=torch.float64), torch.randn(5, 4, dtype=torch.float64)
    jacobian, heads = explicit(model, x, y, present)
    balancer = Recorder([Regression(n) for n in NAMES])
    engine = step(model, balancer, x, y, present)
    assert engine.linear_gramian is not None and engine.gramian_engine is None
    torch.testing.assert_close(balancer.seen, jacobian @ jacobian.T)
    weights = torch.linspace(0.5, 2.0, len(present), dtype=torch.float64)
    torch.testing.assert_close(shared_grad(model), weights @ jacobian)
    for n, grad in zip(present, heads):  # heads: their own plain gradient
        torch.testing.assert_close(model.heads[n].weight.grad, grad)


def test_the_route_is_the_one_with_fewer_per_task_entries_where_the_outputs_are_large() -> None:
    """Per-task parameter gradients when the parameters are fewer than the layers' outputs and those
    are large (a CNN's maps, a narrow MLP on a batch of thousands), per-task output gradients
    otherwise (a wide MLP on a small batch; School's narrow trunk on 256 rows, whose 16k outputs
    per task cost less to move than a backward call per task)."""
    from manytask.models import ConvNet

    def route(trunk: nn.Module, x: Tensor) -> bool:
        engine = LinearGramian([m for m in trunk.modules() if isinstance(m, (nn.Linear, nn.Conv2d))])
        engine.record()
        trunk(x)
        decision = engine._per_task_route(3, engine._calls)
        engine.clear()
        return decision

    assert route(ConvNet(out_features=50), torch.randn(8, 1, 28, 28))  # 22k parameters, 110k outputs
    assert not route(MLP(64, (256, 256)), torch.randn(8, 64))  # 82k parameters, 4k outputs
    assert route(MLP(64, (128, 128)), torch.randn(2048, 64))  # 25k parameters, 524k outputs
    assert not route(MLP(28, (64,)), torch.randn(256, 28))  # 1.9k parameters, 16k outputs: below PER_TASK_FROM


def test_sequence_rows_and_two_input_groups() -> None:
    """Rows are positions too; tasks forwarded on different inputs (two groups) mix in one Gramian."""
    torch.manual_seed(1)
    model = HardSharing(SequenceTrunk(), [Regression(n) for n in NAMES], feature_dim=6).double()
    x1, x2 = torch.randn(3, 7, 4, dtype=torch.float64), torch.randn(2, 7, 4, dtype=torch.float64)
    y1, y2 = torch.randn(3, 4, dtype=torch.float64), torch.randn(2, 4, dtype=torch.float64)
    j1, _ = explicit(model, x1, y1[:, [2, 0]], ["c", "a"])
    j2, _ = explicit(model, x2, y2[:, [1]], ["b"])
    jacobian = torch.cat([j1[1:], j2, j1[:1]])  # run order: a, b, c
    balancer = Recorder([Regression(n) for n in NAMES])
    engine = BackwardEngine(model, balancer)
    engine.begin_step()
    out = {**engine.forward(x1, ["c", "a"]), **engine.forward(x2, ["b"])}
    sums = torch.stack([((out[n].squeeze(-1) - y[:, k]) ** 2).mean()
                        for n, y, k in [("a", y1, 0), ("b", y2, 1), ("c", y1, 2)]] + [torch.tensor(0.0, dtype=torch.float64)])
    engine.backward(sums, torch.tensor([1.0, 1.0, 1.0, 0.0]), step=0)
    torch.testing.assert_close(balancer.seen, jacobian @ jacobian.T)
    torch.testing.assert_close(shared_grad(model), torch.linspace(0.5, 2.0, 3, dtype=torch.float64) @ jacobian)


@pytest.mark.parametrize("rows, width", [(3, 50), (60, 2)], ids=["by-rows", "by-weights"])
@pytest.mark.parametrize("bias", [True, False])
def test_both_routes_give_the_per_task_weight_gradients_gramian(rows: int, width: int, bias: bool) -> None:
    generator = torch.Generator().manual_seed(2)
    a = torch.randn(rows, width, generator=generator, dtype=torch.float64)
    g = torch.randn(5, rows, 3, generator=generator, dtype=torch.float64)
    per_task = torch.einsum("tro,ri->toi", g, a).flatten(1)
    if bias:
        per_task = torch.cat([per_task, g.sum(1)], dim=1)
    torch.testing.assert_close(_layer_gramian(a, g, True, bias), per_task @ per_task.T)


def test_grad_scaler_scales_the_written_update() -> None:
    torch.manual_seed(3)
    tasks = [Regression(n) for n in NAMES]
    x, y = torch.randn(6, 4), torch.randn(6, 4)
    grads = []
    for scaler in (None, torch.amp.GradScaler("cpu", init_scale=256.0)):
        torch.manual_seed(4)
        model = HardSharing(MLP(4, (5, 6)), tasks)
        step(model, create_balancer("mgda", tasks), x, y, NAMES, scaler)
        grads.append(shared_grad(model))
    torch.testing.assert_close(grads[1], 256.0 * grads[0])


class ConvTrunk(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv, self.out = nn.Conv1d(1, 2, 3), nn.Linear(4, 6)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.conv(x.unsqueeze(1)).flatten(1))


class ImageTrunk(nn.Module):
    """Two 2-d convolutions (stride, padding, dilation, no bias on one), max-pooling, a linear layer."""

    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Conv2d(2, 3, 3, padding=1)
        self.second = nn.Conv2d(3, 4, (2, 3), stride=2, dilation=(1, 2), bias=False)
        self.out = nn.Linear(4 * 3 * 2, 6)

    def forward(self, x: Tensor) -> Tensor:
        h = nn.functional.max_pool2d(torch.relu(self.first(x.view(-1, 2, 2, 1).repeat(1, 1, 3, 7))), 1)  # [B, 3, 6, 7]
        return self.out(torch.tanh(self.second(h)).flatten(1))


class InPlaceTrunk(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.first, self.out = nn.Linear(4, 5), nn.Linear(5, 6)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(torch.relu_(self.first(x)))  # the first layer's output changes in place


@pytest.mark.parametrize("trunk, message", [(ConvTrunk, "'conv.weight' is not in an nn.Linear or nn.Conv2d layer"),
                                            (InPlaceTrunk, "changed in place")])
def test_trunks_it_cannot_follow_fall_back_with_one_log_line(trunk: type[nn.Module], message: str,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    torch.manual_seed(5)
    model = HardSharing(trunk(), [Regression(n) for n in NAMES], feature_dim=6).double()
    x, y = torch.randn(5, 4, dtype=torch.float64), torch.randn(5, 4, dtype=torch.float64)
    jacobian, _ = explicit(model, x, y, NAMES)
    balancer = Recorder([Regression(n) for n in NAMES])
    with caplog.at_level("INFO", logger="manytask"):
        engine = step(model, balancer, x, y, NAMES)
    lines = [r.message for r in caplog.records if "without the linear-layer engine" in r.message]
    assert len(lines) == 1 and message in lines[0]
    torch.testing.assert_close(balancer.seen, jacobian @ jacobian.T)
    torch.testing.assert_close(shared_grad(model), torch.linspace(0.5, 2.0, 4, dtype=torch.float64) @ jacobian)
    assert engine.linear_gramian is None
    engine.begin_step()  # the in-place trunk: autograd's engine from the next step on
    assert engine.gramian_engine is not None


def test_last_shared_level_is_the_gramian_of_the_last_weight_matrix_only() -> None:
    """GradNorm's level: the last shared layer's weight (not its bias), and heads scaled by w_i."""
    torch.manual_seed(6)
    model = HardSharing(MLP(4, (5, 6)), [Regression(n) for n in NAMES], feature_dim=6).double()
    x, y = torch.randn(5, 4, dtype=torch.float64), torch.randn(5, 4, dtype=torch.float64)
    (weight,) = model.last_shared_parameters()
    losses = losses_of(model(x, NAMES), y)
    jacobian = torch.stack([torch.autograd.grad(losses[n], weight, retain_graph=True)[0].flatten() for n in NAMES])
    balancer = Recorder([Regression(n) for n in NAMES])
    balancer.level = "last_shared"
    balancer.scales_heads = True  # type: ignore[misc]
    engine = step(model, balancer, x, y, NAMES)
    assert engine._last_layer is not None
    torch.testing.assert_close(balancer.seen, jacobian @ jacobian.T)
    weights = torch.linspace(0.5, 2.0, 4, dtype=torch.float64)
    torch.testing.assert_close(weight.grad.flatten(), weights @ jacobian)
    plain = torch.autograd.grad(losses["c"], model.heads["c"].weight, retain_graph=True)[0]
    torch.testing.assert_close(model.heads["c"].weight.grad, weights[2] * plain)


class FunctionalReuseTrunk(nn.Module):
    """The first layer's weight is used again outside the layer's call: hooks cannot see that use."""

    def __init__(self) -> None:
        super().__init__()
        self.first, self.out = nn.Linear(4, 4), nn.Linear(4, 6)

    def forward(self, x: Tensor) -> Tensor:
        h = torch.tanh(self.first(x))
        return self.out(h @ self.first.weight.T)


def test_a_weight_used_outside_its_layer_is_caught_on_the_first_step(caplog: pytest.LogCaptureFixture) -> None:
    torch.manual_seed(7)
    model = HardSharing(FunctionalReuseTrunk(), [Regression(n) for n in NAMES], feature_dim=6).double()
    x, y = torch.randn(5, 4, dtype=torch.float64), torch.randn(5, 4, dtype=torch.float64)
    jacobian, _ = explicit(model, x, y, NAMES)
    balancer = Recorder([Regression(n) for n in NAMES])
    with caplog.at_level("INFO", logger="manytask"):
        engine = step(model, balancer, x, y, NAMES)
    assert any("used outside its module's call" in r.message for r in caplog.records)
    torch.testing.assert_close(balancer.seen, jacobian @ jacobian.T)  # this step: from the Jacobian
    torch.testing.assert_close(shared_grad(model), torch.linspace(0.5, 2.0, 4, dtype=torch.float64) @ jacobian)
    assert engine.linear_gramian is None
    engine.begin_step()
    assert engine.gramian_engine is not None


class NormedTiedTrunk(nn.Module):
    """A LayerNorm (so autogram, not the linear-layer engine) and ``first.weight`` used again
    outside ``first``'s call, as tied weights are."""

    def __init__(self) -> None:
        super().__init__()
        self.first, self.norm, self.out = nn.Linear(4, 6), nn.LayerNorm(6), nn.Linear(4, 6)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(torch.tanh(self.norm(torch.tanh(self.first(x))) @ self.first.weight))


class NormedTwiceTrunk(nn.Module):
    """A LayerNorm and one linear layer called twice (weight sharing across depth)."""

    def __init__(self) -> None:
        super().__init__()
        self.first, self.norm, self.square = nn.Linear(4, 6), nn.LayerNorm(6), nn.Linear(6, 6)

    def forward(self, x: Tensor) -> Tensor:
        return self.square(torch.tanh(self.norm(self.square(torch.tanh(self.first(x))))))


@pytest.mark.parametrize(("trunk", "said"), [
    (NormedTiedTrunk, "autogram differs from autograd's on HardSharing: a shared weight is used outside"),
    (NormedTwiceTrunk, "autogram failed on HardSharing: Some modules had a forward pass without"),
])
def test_autogram_that_is_wrong_or_fails_gives_way_to_the_jacobian(trunk: type[nn.Module], said: str,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    """Before: a tied weight made autogram's Gramian 35 % off J Jᵀ, silently (MGDA applied
    [0.284, 0.474, 0.242] for [0.268, 0.551, 0.181]); a layer called twice raised torchjd's bare
    ValueError at step 0. Now the first Gramian is checked (a few quadratic forms, no Jacobian)
    and an error falls back, each with one log line; both steps' Gramians are J Jᵀ."""
    torch.manual_seed(3)
    model = HardSharing(trunk(), [Regression(n) for n in NAMES], feature_dim=6).double()
    batches = [(torch.randn(5, 4, dtype=torch.float64), torch.randn(5, 4, dtype=torch.float64)) for _ in range(2)]
    jacobians = [explicit(model, x, y, NAMES)[0] for x, y in batches]  # before autogram hooks the trunk
    balancer = Recorder([Regression(n) for n in NAMES])
    engine = BackwardEngine(model, balancer)
    assert engine.gramian_engine is not None
    with caplog.at_level("INFO", logger="manytask"):
        for index, ((x, y), jacobian) in enumerate(zip(batches, jacobians)):
            model.zero_grad()
            engine.begin_step()
            losses = losses_of(engine.forward(x, NAMES), y)
            engine.backward(torch.stack([losses[n] for n in NAMES]), torch.ones(4), step=index)
            torch.testing.assert_close(balancer.seen, jacobian @ jacobian.T)
            torch.testing.assert_close(shared_grad(model), torch.linspace(0.5, 2.0, 4, dtype=torch.float64) @ jacobian)
    assert [r.message for r in caplog.records].count(next(r.message for r in caplog.records if said in r.message)) == 1
    assert engine.gramian_engine is None


def test_autogram_passes_its_check_in_float32_and_keeps_the_hooks(caplog: pytest.LogCaptureFixture) -> None:
    torch.manual_seed(8)
    tasks = [Regression(f"t{i}") for i in range(8)]
    trunk = nn.Sequential(nn.Linear(64, 256), nn.LayerNorm(256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU())
    model = HardSharing(trunk, tasks, feature_dim=256)
    engine = BackwardEngine(model, create_balancer("mgda", tasks))
    with caplog.at_level("INFO", logger="manytask"):
        for index in range(2):
            engine.begin_step()
            out = engine.forward(torch.randn(128, 64), [t.name for t in tasks])
            sums = torch.stack([o.pow(2).mean() * (i + 1) for i, o in enumerate(out.values())])
            engine.backward(sums, torch.ones(8), step=index)
    assert engine.gramian_engine is not None
    assert not [r for r in caplog.records if "from the Jacobian" in r.message]


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_float32_rounding_does_not_trip_the_first_step_check(kind: str, caplog: pytest.LogCaptureFixture) -> None:
    from manytask.models import ConvNet

    torch.manual_seed(8)
    trunk = MLP(64, (256, 256)) if kind == "mlp" else ConvNet(out_features=50)
    tasks = [Regression(f"t{i}") for i in range(8)]
    model = HardSharing(trunk, tasks)
    x = torch.randn(128, 64) if kind == "mlp" else torch.randn(16, 1, 28, 28)
    engine = BackwardEngine(model, create_balancer("mgda", tasks))
    with caplog.at_level("INFO", logger="manytask"):
        for step_index in range(2):
            engine.begin_step()
            out = engine.forward(x, [t.name for t in tasks])
            sums = torch.stack([o.pow(2).mean() * (i + 1) for i, o in enumerate(out.values())])
            engine.backward(sums, torch.ones(8), step=step_index)
    assert engine.linear_gramian is not None
    assert not [r for r in caplog.records if "linear-layer engine" in r.message]


def test_bf16_keeps_the_linear_layer_engine(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Under bf16 autocast the first step's check against autograd differs by bf16's rounding
    (~1e-2), not by a misuse of a layer: the engine is kept (a 1e-3 tolerance dropped it on every
    bf16 run, naming "a layer weight used outside its module's call" as the cause)."""
    config = {"data": {"name": "demo", "n_train": 100, "n_val": 20, "n_test": 20},
              "balancer": {"name": "mgda", "level": "exact"},
              "training": {"steps": 2, "eval_every": 2, "progress": False, "device": "cpu", "precision": "bf16"}}
    trainer = build_experiment(parse_config(config), run_dir=tmp_path / "run").trainer
    with caplog.at_level("INFO", logger="manytask"):
        trainer._train_step()
        trainer._train_step()
    assert "without the linear-layer engine" not in caplog.text
    assert trainer.engine.linear_gramian is not None and trainer.engine._verified


def test_bf16_keeps_the_autogram_engine(caplog: pytest.LogCaptureFixture) -> None:
    """Cross-stitch units are not linear layers, so the exact Gramian comes from torchjd's autogram,
    checked on the first step against autograd. Under bf16 autocast the two differ by bf16's
    rounding (~1e-2): the check allowed 1e-3 of float32's Gramian, so the run dropped autogram for the
    T x P Jacobian, saying a shared weight was used outside its module's call."""
    torch.manual_seed(0)
    data = shared_latent_tasks(n_train=300, n_val=60, n_test=60, labelled_fraction=0.3)
    tasks = list(data.tasks)
    model = create_model("cross_stitch", encoder=MLP(20, (16, 16), dropout=0.1), tasks=tasks)
    balancer = create_balancer("pcgrad", tasks, level="exact")
    trainer = Trainer(model, tasks, balancer, build_optimizer(model, balancer, lr=1e-3),
                      MultiSourceLoader({"train": data.train["train"]}, 16, seed=0), steps=100,
                      precision="bf16", progress=False)
    with caplog.at_level("INFO", logger="manytask"):
        for _ in range(3):
            trainer._train_step()
    assert "from the Jacobian" not in caplog.text
    assert trainer.engine.gramian_engine is not None and trainer.engine._checked_engine is not None


@pytest.mark.parametrize("frozen", ["norm", "first"], ids=["linear-layer-engine", "autogram"])
def test_a_shared_layer_unfrozen_mid_run_enters_the_gramian_and_the_update(frozen: str) -> None:
    """A shared layer frozen when the engine chose its route and unfrozen later (gradual
    unfreezing): the next step's Gramian and update include it. Before, the linear-layer engine,
    chosen for a trunk whose only other layer was frozen, left the unfrozen LayerNorm without a
    gradient, and autogram, which hooks only the layers that train, left the unfrozen linear
    layer out of the Gramian."""
    torch.manual_seed(0)
    trunk = nn.Sequential(nn.Linear(4, 7), nn.LayerNorm(7), nn.Tanh(), nn.Linear(7, 6))
    layer = trunk[1] if frozen == "norm" else trunk[0]
    layer.requires_grad_(False)
    tasks = [Regression(n) for n in NAMES]
    model = HardSharing(trunk, tasks, feature_dim=6).double()
    x, y = torch.randn(5, 4, dtype=torch.float64), torch.randn(5, 4, dtype=torch.float64)
    balancer = Recorder(tasks)
    engine = BackwardEngine(model, balancer)
    assert (engine.linear_gramian is not None, engine.gramian_engine is not None) == (
        (True, False) if frozen == "norm" else (False, True))

    def run() -> None:
        model.zero_grad(set_to_none=True)
        engine.begin_step()
        losses = losses_of(engine.forward(x, NAMES), y)
        engine.backward(torch.stack(list(losses.values())), torch.ones(len(NAMES)), step=0)

    run()
    layer.requires_grad_(True)
    jacobian, _ = explicit(model, x, y, NAMES)  # now over the unfrozen layer too
    run()
    torch.testing.assert_close(balancer.seen, jacobian @ jacobian.T)
    torch.testing.assert_close(shared_grad(model), torch.linspace(0.5, 2.0, 4, dtype=torch.float64) @ jacobian)
    layer.requires_grad_(False)  # frozen again: out of both
    jacobian, _ = explicit(model, x, y, NAMES)
    run()
    torch.testing.assert_close(balancer.seen, jacobian @ jacobian.T)
    assert all(p.grad is None for p in layer.parameters())


def test_without_shared_features_the_linear_layer_engine_gives_the_gramian_and_catches_reuse(
        caplog: pytest.LogCaptureFixture) -> None:
    """A model with no shared representation to split the heads at (adaptive sharing, unwidened)
    on a trunk of linear layers: the engine's Gramian comes from one batched backward from the
    losses to the layers' outputs, then one weighted backward gives the update. A layer weight
    also used outside its call is caught by its first Gramian's check: that step's Gramian comes
    from the Jacobian, and autogram is tried from the next step."""
    tasks = [Regression(n) for n in NAMES]
    for trunk, reused in ((lambda: MLP(4, (7, 6)), False), (FunctionalReuseTrunk, True)):
        torch.manual_seed(7)
        model = AdaptiveSharing(Backbone([trunk()], [FeatureInfo(6, "vector")]), tasks).double()
        x, y = torch.randn(5, 4, dtype=torch.float64), torch.randn(5, 4, dtype=torch.float64)
        shared = [p for p in model.shared_parameters() if p.requires_grad]
        losses = losses_of(model(x), y)
        jacobian = torch.stack([torch.cat([g.flatten() for g in torch.autograd.grad(losses[n], shared, retain_graph=True)])
                                for n in NAMES])
        balancer = Recorder(tasks)
        caplog.clear()
        with caplog.at_level("INFO", logger="manytask"):
            engine = step(model, balancer, x, y, NAMES)  # type: ignore[arg-type]
        assert ("its Gramian differs from autograd's" in caplog.text) == reused
        assert (engine.linear_gramian is None) == reused
        torch.testing.assert_close(balancer.seen, jacobian @ jacobian.T)
        update = torch.linspace(0.5, 2.0, 4, dtype=torch.float64) @ jacobian
        torch.testing.assert_close(torch.cat([p.grad.flatten() for p in shared]), update)
