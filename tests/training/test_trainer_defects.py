"""Defects an independent review found, each reproduced through the trainer as a user runs it."""

from __future__ import annotations

import dataclasses
import gc
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from manytask.balancing import DWA, EW, UW, create_balancer
from manytask.data import MultiSourceLoader, TensorSource
from manytask.models import MLP, Backbone, FeatureInfo, HardSharing, create_model
from manytask.tasks import Regression
from manytask.training import (
    BackwardEngine,
    Callback,
    Checkpointing,
    Evaluation,
    NonFiniteLossError,
    Trainer,
    build_optimizer,
    build_scheduler,
)

from .helpers import make_trainer

TASKS = [Regression("a"), Regression("b"), Regression("c")]


def small_run(balancer_cls: type = EW, n: int = 16, batch: int = 4, steps: int = 8, **trainer_options: Any) -> Trainer:
    torch.manual_seed(0)
    x = torch.randn(n, 3)
    y = {t.name: x @ torch.randn(3) for t in TASKS}
    model = HardSharing(nn.Sequential(nn.Linear(3, 8), nn.Tanh()), TASKS, feature_dim=8)
    balancer = balancer_cls(TASKS)
    optimizer = build_optimizer(model, balancer, "adam", lr=1e-2)
    loader = MultiSourceLoader({"s": TensorSource(x, y)}, batch, seed=0)
    return Trainer(model, TASKS, balancer, optimizer, loader, steps, progress=False, **trainer_options)


class Recorder(Callback):
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.losses: list[dict[str, float]] = []

    def on_before_backward(self, trainer: Trainer, step: int, sums: torch.Tensor, counts: torch.Tensor) -> None:
        self.calls.append(("before_backward", step))

    def on_after_backward(self, trainer: Trainer, step: int) -> None:
        self.calls.append(("after_backward", step))

    def on_before_optimizer_step(self, trainer: Trainer, step: int, optimizer: torch.optim.Optimizer) -> None:
        self.calls.append(("before_optimizer_step", step))

    def on_step_end(self, trainer: Trainer, step: int, losses: dict[str, Any]) -> None:
        self.calls.append(("step_end", step))
        self.losses.append({k: float(v) for k, v in losses.items()})

    def on_epoch_end(self, trainer: Trainer, epoch: int) -> None:
        self.calls.append(("epoch_end", epoch))


def test_dwa_sees_each_batch_in_its_own_epoch() -> None:
    """The defect: the trainer read the epoch after drawing the batch, so with 4 steps per epoch
    DWA saw epochs [0,0,0,1,1,1,1,2] and its epoch means (Eq. 7) mixed two epochs."""
    recorder = Recorder()
    trainer = small_run(DWA, steps=12, callbacks=[recorder])  # 16 samples / batch 4 = 4 steps per epoch
    trainer.fit()
    epochs = [e for kind, e in recorder.calls if kind == "epoch_end"]
    assert epochs == [0, 1, 2]
    a = torch.tensor([row["a"] for row in recorder.losses], dtype=torch.float64)
    means = a.view(3, 4).mean(1)  # steps 1-4, 5-8, 9-12 are epochs 0, 1, 2
    history = trainer.balancer.history[:, 0]
    torch.testing.assert_close(history, means[1:], rtol=1e-6, atol=1e-9)


def test_hooks_run_in_the_documented_order() -> None:
    recorder = Recorder()
    small_run(steps=5, callbacks=[recorder]).fit()
    kinds = [k for k, _ in recorder.calls]
    assert kinds[:4] == ["before_backward", "after_backward", "before_optimizer_step", "step_end"]
    assert kinds[12:18] == ["before_backward", "after_backward", "before_optimizer_step", "step_end",
                            "epoch_end", "before_backward"]  # step 4 ends epoch 0


def test_uw_outside_the_optimizer_is_refused() -> None:
    """The defect: UW whose parameters were not in the optimizer never learned, silently."""
    model = HardSharing(nn.Linear(3, 4), TASKS, feature_dim=4)
    loader = MultiSourceLoader({"s": TensorSource(torch.randn(8, 3), {t.name: torch.randn(8) for t in TASKS})}, 4)
    with pytest.raises(ValueError, match="does not hold, so they would never change.*build_optimizer"):
        Trainer(model, TASKS, UW(TASKS), build_optimizer(model), loader, 2, progress=False)


class NaNGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        return x.clone()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        return grad * float("nan")


class PoisonedTrunk(nn.Module):
    out_features = 4

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return NaNGrad.apply(self.linear(x))


def test_finite_losses_with_a_nan_gradient_are_not_applied(tmp_path: Path) -> None:
    """The defect: only the losses were checked, so a NaN gradient was applied silently."""
    model = HardSharing(PoisonedTrunk(), TASKS)
    loader = MultiSourceLoader({"s": TensorSource(torch.randn(8, 3), {t.name: torch.randn(8) for t in TASKS})}, 4)
    trainer = Trainer(model, TASKS, EW(TASKS), build_optimizer(model), loader, 2, progress=False)
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(NonFiniteLossError, match="At step 1: The gradient is not finite.*every loss is finite"):
        trainer.fit()
    assert all(torch.equal(b, p) for b, p in zip(before, model.parameters()))


class HugeGrad(torch.autograd.Function):
    """Identity whose backward scales the gradient by 1e20: finite in float32, but its squared
    norm is not."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        return x.clone()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        return grad * 1e20


class HugeTrunk(PoisonedTrunk):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return HugeGrad.apply(self.linear(x))


def test_a_huge_but_finite_gradient_is_not_called_non_finite() -> None:
    """The defect: the check summed squared norms in float32, so a finite gradient of 1e20
    overflowed to inf and stopped training with "the gradient is not finite"."""
    model = HardSharing(HugeTrunk(), TASKS)
    loader = MultiSourceLoader({"s": TensorSource(torch.randn(8, 3), {t.name: torch.randn(8) for t in TASKS})}, 4)
    trainer = Trainer(model, TASKS, EW(TASKS), build_optimizer(model, lr=1e-30), loader, 2, progress=False)
    trainer.fit()
    assert trainer.step == 2
    assert torch.isfinite(model.encoder.linear.weight.grad).all()
    assert model.encoder.linear.weight.grad.abs().max() > 1e19


def test_overflowing_weights_are_not_applied() -> None:
    trainer = small_run(UW, steps=2)
    with torch.no_grad():
        trainer.balancer.log_vars[1].fill_(-1000.0)  # e^{1000} = inf: finite losses, infinite weight
    with pytest.raises(NonFiniteLossError, match="non-finite weights"):
        trainer.fit()


def test_schedule_advances_only_on_steps_with_an_update() -> None:
    """The defect: the LR schedule stepped on batches without any label (no update)."""
    x = torch.randn(8, 3)
    mask = torch.zeros(8, dtype=torch.bool)
    mask[0] = True  # one labelled sample of 8: most batches of 2 have no label at all
    task = [Regression("a")]
    model = HardSharing(nn.Linear(3, 4), task, feature_dim=4)
    optimizer = build_optimizer(model, None, "sgd", lr=0.1)
    scheduler = build_scheduler(optimizer, "cosine", 12)
    loader = MultiSourceLoader({"s": TensorSource(x, {"a": torch.randn(8)}, masks={"a": mask})}, 2, seed=0)
    recorder = Recorder()
    Trainer(model, task, EW(task), optimizer, loader, 12, scheduler=scheduler, callbacks=[recorder], progress=False).fit()
    updates = sum(1 for kind, _ in recorder.calls if kind == "before_optimizer_step")
    assert 0 < updates < 12
    assert scheduler.last_epoch == updates


def test_nan_monitor_counts_as_no_improvement(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              caplog: pytest.LogCaptureFixture) -> None:
    """The defect: a NaN monitored metric never counted as a bad evaluation (no early stop), and
    the last model was then tested as if it were the best."""
    import manytask.training._trainer as trainer_module

    monkeypatch.setattr(trainer_module, "evaluate", lambda *a, **k: {"category/accuracy": math.nan})
    trainer = make_trainer(tmp_path, 70, eval_every=7)
    trainer.monitor = "category/accuracy"
    trainer.evaluation = dataclasses.replace(trainer.evaluation, patience=2)
    result = trainer.fit()
    assert result.stopped_early and result.steps == 14 and result.best_step is None
    with caplog.at_level("WARNING", logger="manytask"):
        assert trainer.load_best() is False
    assert "no best checkpoint" in caplog.text


def test_mean_monitor_says_which_tasks_it_covers(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    trainer = make_trainer(tmp_path, 7)
    trainer.monitor = "mean/loss"
    with caplog.at_level("WARNING", logger="manytask"):
        assert trainer._monitored({"category/loss": 1.0, "score/loss": 3.0, "flag/loss": math.nan}) == 2.0
    assert "mean over 2 of 3 tasks" in caplog.text and "flag" in caplog.text


def test_mean_monitor_covers_the_tasks_that_measure_its_metric(tmp_path: Path,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    """Before the fix a regression task counted as a task whose accuracy was 'undefined'."""
    trainer = make_trainer(tmp_path, 7)
    trainer.monitor = "mean/accuracy"
    assert [t.name for t in trainer._main_tasks() if "accuracy" in t.metrics] == ["category", "flag"]
    with caplog.at_level("WARNING", logger="manytask"):
        assert trainer._monitored({"category/accuracy": 0.5, "flag/accuracy": math.nan}) == 0.5
    assert "mean over 1 of 2 tasks; accuracy is undefined for flag." in caplog.text and "score" not in caplog.text


def test_default_monitor_is_the_mean_over_main_tasks_sharing_a_metric() -> None:
    torch.manual_seed(0)
    x = torch.randn(8, 3)
    source = TensorSource(x, {t.name: torch.randn(8) for t in TASKS})
    trainer = small_run(evaluation=Evaluation(source, every=4))
    assert trainer.monitor == "mean/rmse"


@pytest.mark.parametrize("options, match", [
    ({"device": "cuda"}, "no CUDA device.*Use device 'auto' or 'cpu'"),
    ({"evaluation": Evaluation(None, patience=3)}, "patience is set but there is no validation source"),
    ({"precision": "16"}, "needs a CUDA device"),
    ({"precision": "fp8"}, "precision must be"),
])
def test_settings_that_cannot_work_are_refused(options: dict[str, Any], match: str) -> None:
    if "device" in options and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ValueError, match=match):
        small_run(**options)


def test_bf16_autocast_trains() -> None:
    trainer = small_run(steps=4, precision="bf16")
    before = [p.detach().clone() for p in trainer.model.parameters()]
    trainer.fit()
    assert any(not torch.equal(b, p) for b, p in zip(before, trainer.model.parameters()))


def test_checkpoint_dir_is_checkpointing(tmp_path: Path) -> None:
    trainer = small_run(steps=4, checkpoints=Checkpointing(tmp_path, every=2))
    trainer.fit()
    assert [p.name for p in sorted((tmp_path / "checkpoints").iterdir())] == [
        "step-000000002.safetensors", "step-000000004.safetensors"]


def test_a_float64_model_gives_its_balancer_float64_losses(tmp_path: Path) -> None:
    """Before the fix the losses were cast to float32 on their way to the balancer: SI saw
    2.1528780460357666 for a loss of 2.1528781541016673."""
    from manytask.config import parse_config
    from manytask.runs._build import build_experiment

    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        config = parse_config({"seed": 0, "data": {"name": "demo", "n_train": 120, "n_val": 30, "n_test": 30,
                                                   "labelled_fraction": 1.0},
                               "model": {"encoder": {"hidden": [8]}}, "balancer": {"name": "si"},
                               "training": {"steps": 1, "eval_every": 1, "progress": False}})
        trainer = build_experiment(config, run_dir=tmp_path).trainer
        seen: list[torch.Tensor] = []
        weights = trainer.balancer.weights
        trainer.balancer.weights = (  # type: ignore[method-assign]
            lambda losses, *a, **k: (seen.append(losses.detach()), weights(losses, *a, **k))[1])
        trainer.fit()
        losses = seen[0]
        assert losses.dtype == torch.float64
        assert not torch.equal(losses, losses.float().double())  # not float32 values in a float64 tensor
    finally:
        torch.set_default_dtype(previous)


def test_autogram_hooks_go_with_the_last_trainer_that_used_them() -> None:
    """The exact Gramian of a LayerNorm trunk comes from torchjd's autogram, which hooks the
    trunk's modules. Once that trainer is gone, an EW trainer on the same model must run a plain
    forward: before, the hooks stayed for the model's lifetime and every step kept its graph edges
    (10 after 5 EW steps here, growing without end)."""
    import gc

    from manytask.balancing import create_balancer

    torch.manual_seed(0)
    x = torch.randn(32, 3)
    data = TensorSource(x, {t.name: torch.randn(32) for t in TASKS})
    model = HardSharing(nn.Sequential(nn.Linear(3, 8), nn.LayerNorm(8), nn.ReLU()), TASKS, feature_dim=8)

    def trainer(name: str, **options: Any) -> Trainer:
        balancer = create_balancer(name, TASKS, **options)
        return Trainer(model, TASKS, balancer, build_optimizer(model, balancer, "adam", 1e-2),
                       MultiSourceLoader({"s": data}, 8, seed=0), steps=4, progress=False)

    def hooks() -> int:
        return sum(len(m._forward_hooks) for m in model.encoder.modules())

    first = trainer("mgda", level="exact")
    second = trainer("mgda", level="exact")  # alive at once: one set of hooks, shared
    assert first.engine.gramian_engine is second.engine.gramian_engine is not None
    assert first.fit().steps_run == 4 and hooks() == 2  # Linear and LayerNorm
    del first
    gc.collect()
    assert hooks() == 2  # still the second trainer's
    del second
    gc.collect()
    assert hooks() == 0
    assert trainer("ew").fit().steps_run == 4 and hooks() == 0


def live_tensors() -> int:
    gc.collect()
    return sum(issubclass(type(o), torch.Tensor) for o in gc.get_objects())  # (type(): no proxy warns)


def test_steps_driven_by_another_loop_keep_no_growing_per_step_state() -> None:
    """Lightning's module (and any loop handed the trainer's steps) calls ``_train_step`` and
    ``_end_step`` but never logs through ``fit``: the per-step losses kept for the running means
    must be folded in as they come, not held for the whole run (3 tensors a step: 1,800 after 600
    steps, and a heap that grows with them)."""
    recorder = Recorder()
    trainer = small_run(steps=10**6, callbacks=[recorder])

    for _ in range(50):
        trainer._end_step(trainer._train_step())
    before = live_tensors()
    for _ in range(600):
        trainer._end_step(trainer._train_step())
    assert live_tensors() - before < 100
    # nothing was lost on the way: the running means are those of every step's losses
    expected = {t.name: sum(row[t.name] for row in recorder.losses) / len(recorder.losses) for t in TASKS}
    assert trainer._running_losses(reset=False) == pytest.approx(expected, rel=1e-6)


class TiedTrunk(nn.Module):
    """A LayerNorm (so the linear-layer engine does not apply: autogram does) and a weight also
    used outside its module's call, which makes autogram's Gramian wrong: the run falls back."""

    def __init__(self) -> None:
        super().__init__()
        self.first, self.norm, self.out = nn.Linear(3, 8), nn.LayerNorm(8), nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(torch.tanh(self.first(x)))
        return torch.tanh(self.out(h) + 0.5 * nn.functional.linear(h, self.out.weight))


def normed_mlp() -> Backbone:
    """Two stages with a LayerNorm: not linear layers alone, so the exact Gramian comes from autogram."""
    return Backbone([nn.Sequential(nn.Linear(3, 8), nn.LayerNorm(8), nn.ReLU()), nn.Sequential(nn.Linear(8, 8), nn.ReLU())],
                    [FeatureInfo(8, "vector"), FeatureInfo(8, "vector")])


class ForwardOnce(Callback):
    """A user's probe: one forward of the step's batch with autograd on and no backward (a
    diagnostic, a feature dump), after step 5 or, ``inside``, within step 5 before its backward."""

    def __init__(self, inside: bool = False) -> None:
        self.inside = inside

    def on_before_backward(self, trainer: Trainer, step: int, sums: torch.Tensor, counts: torch.Tensor) -> None:
        if self.inside and step == 5:
            trainer.model(trainer.step_groups[0][0])

    def on_step_end(self, trainer: Trainer, step: int, losses: dict[str, Any]) -> None:
        if not self.inside and step == 5:
            trainer.model(trainer.step_groups[0][0])


def _with_and_without(model: Callable[[], nn.Module], method: str, options: dict[str, str], probe: list[Callback],
                      nans_before: int | None = None) -> tuple[list[list[torch.Tensor]], BackwardEngine]:
    """Each step's weights and the parameters after 12 steps from the same seeds, of a run with
    ``probe`` (its callbacks, and a batch of NaNs that the caller's loop skips before step
    ``nans_before``) and of the run without; and the probed run's engine, to say which route ran."""
    torch.manual_seed(0)
    x = torch.randn(64, 3)
    y = {t.name: x @ torch.randn(3) for t in TASKS}
    nans = MultiSourceLoader({"s": TensorSource(torch.full_like(x, math.nan), y)}, 8, seed=0).next()
    runs, engines = [], []
    for probed in (True, False):
        torch.manual_seed(0)
        net = model()
        balancer = create_balancer(method, TASKS, **options)
        trainer = Trainer(net, TASKS, balancer, build_optimizer(net, balancer, "adam", lr=1e-3),
                          MultiSourceLoader({"s": TensorSource(x, y)}, 8, seed=0), 10**6, progress=False,
                          callbacks=probe if probed else [])
        weights = []
        for step in range(12):
            if probed and step == nans_before:
                with pytest.raises(NonFiniteLossError):
                    trainer._train_step(nans)
            trainer._end_step(trainer._train_step())
            weights.append(trainer.last_weights)
        runs.append([*weights, *(p.detach().clone() for p in net.parameters())])
        engines.append(trainer.engine)
    return runs, engines[0]


@pytest.mark.parametrize("way", ["a forward between steps", "a step that raised"])
def test_autogram_forgets_forwards_from_before_the_step(way: str, caplog: pytest.LogCaptureFixture) -> None:
    """The defect: torchjd's autogram kept what it recorded of a forward with gradients that had
    no Gramian after it: a user's probe in a callback after a step, or the forward of a step that
    raised before its Gramian (a batch of NaNs the caller's loop skipped). At the next Gramian
    that forward was pending (no backward): autogram raised, and the run left it for the T x P
    Jacobian for good, slower and with a warning. Now a step starts by forgetting it: the run is
    the run without the probe, on autogram throughout."""
    between = way == "a forward between steps"
    with caplog.at_level("WARNING", logger="manytask"):
        (probed, plain), engine = _with_and_without(
            lambda: create_model("mtan", encoder=normed_mlp(), tasks=TASKS), "upgrad", {"level": "exact"},
            [ForwardOnce()] if between else [], nans_before=None if between else 5)
    assert "autogram" not in caplog.text and engine.gramian_engine is not None  # on autogram throughout
    for mine, reference in zip(probed, plain):
        torch.testing.assert_close(mine, reference, rtol=0, atol=0)


@pytest.mark.parametrize(("method", "options"), [("mgda", {"level": "exact"}), ("gradnorm", {})])
def test_a_forward_without_backward_inside_a_step_leaves_the_linear_gramian_exact(
        method: str, options: dict[str, str]) -> None:
    """The defect: the linear-layer engine records every call of the trunk's layers in a step, and
    asked autograd for the gradients of calls no loss reaches (a user's probe forward before the
    backward) as zeros, which torch gives without the tasks' batch dimension: the step died on
    ``shape '[3, -1, 8]' is invalid``. Such calls add nothing to the Gramian nor to the update: the
    run with the probe is the run without it."""
    (probed, plain), engine = _with_and_without(lambda: HardSharing(MLP(3, (8, 8)), TASKS), method, options,
                                                [ForwardOnce(inside=True)])
    assert (engine.linear_gramian if method == "mgda" else engine._last_layer) is not None  # the linear-layer route
    for mine, reference in zip(probed, plain):
        torch.testing.assert_close(mine, reference, rtol=0, atol=0)


@pytest.mark.parametrize("way", ["a weight used outside its module", "an error inside autogram"])
def test_off_autogram_no_hook_keeps_a_graph_per_step(way: str, caplog: pytest.LogCaptureFixture) -> None:
    """The defect: when the run left torchjd's autogram for the Jacobian (its first Gramian
    disagreed with autograd's, or it raised later: a user's forward without a backward inside a
    step), the engine kept the autogram engine it had checked, so its hooks stayed on the trunk and
    recorded every later forward's graph (with its activations), never released."""
    torch.manual_seed(0)
    x = torch.randn(64, 3)
    y = {t.name: x @ torch.randn(3) for t in TASKS}
    if way == "a weight used outside its module":
        model: nn.Module = HardSharing(TiedTrunk(), TASKS, feature_dim=8)
        callbacks: list[Callback] = []
        message = "from the Jacobian from now on (torchjd's autogram differs"
    else:  # a forward inside a step is still pending at that step's Gramian
        model = create_model("mtan", encoder=normed_mlp(), tasks=TASKS)
        callbacks = [ForwardOnce(inside=True)]
        message = "from the Jacobian from now on (torchjd's autogram failed"
    balancer = create_balancer("upgrad", TASKS, level="exact")
    loader = MultiSourceLoader({"s": TensorSource(x, y)}, 8, seed=0)
    trainer = Trainer(model, TASKS, balancer, build_optimizer(model, balancer, "adam", lr=1e-3), loader, 10**6,
                      progress=False, callbacks=callbacks)
    with caplog.at_level("WARNING", logger="manytask"):
        for _ in range(30):
            trainer._end_step(trainer._train_step())
    assert message in caplog.text
    assert not [m for m in model.modules() if m._forward_hooks or m._forward_pre_hooks]
    before = live_tensors()
    for _ in range(200):
        trainer._end_step(trainer._train_step())
    assert live_tensors() - before < 50
