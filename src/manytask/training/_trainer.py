"""The training loop: sample -> forward -> masked per-task losses -> balancing -> step."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from ..balancing import Balancer, StepInfo, forward_for
from ..data import Batch, MultiSourceLoader, Source, TensorSource
from ..evaluation import evaluate
from ..metrics import higher_is_better
from ..models import MultiTaskModel
from ..tasks import Task
from ._callbacks import Callback
from ._checkpoint import CheckpointError, CheckpointManager
from ._run_logger import RunLogger

__all__ = ["Trainer", "TrainResult", "NonFiniteLossError"]


class NonFiniteLossError(FloatingPointError):
    """A task's loss became NaN or infinite; training stopped before applying it."""


@dataclass
class TrainResult:
    """Outcome of :meth:`Trainer.fit`."""

    steps: int
    best_step: int | None
    best_value: float | None
    monitor: str | None
    stopped_early: bool
    history: list[dict[str, float]] = field(default_factory=list)
    run_dir: Path | None = None
    train_seconds: float = 0.0  # wall time inside this session's training steps (no evaluation)
    steps_run: int = 0  # steps run by this call of fit (fewer than ``steps`` after a resume)


class Trainer:
    """Trains a multi-task model; resumable exactly from its checkpoints.

    Each step draws a batch (the loader's sampler picks the source), computes the loss of every
    task labelled in it (mean over its labelled entries only), and lets the balancer turn the
    losses into gradients. Tasks without labels in the batch get no loss and no gradient.
    Every ``eval_every`` steps the model is evaluated on ``val`` and one row goes to
    ``metrics.csv``; the ``monitor`` metric picks the best checkpoint and drives early stopping.

    Args:
        model: The multi-task model.
        tasks: Its tasks (same names as the model's heads).
        balancer: How per-task losses become the update.
        optimizer: Built over the model (and balancer) parameters, e.g. by ``build_optimizer``.
        loader: The training loader.
        steps: Number of optimisation steps.
        val: Validation source (None: no evaluation, no early stopping).
        eval_every: Steps between evaluations (and checkpoints, unless ``checkpoint_every``).
        monitor: Metric ``"<task>/<metric>"`` (or ``"mean/<metric>"``, its mean over the main
            tasks) for best checkpoint / early stopping; default the first main task's first metric.
        patience: Stop after this many evaluations without improvement (None: never).
        scheduler: Learning-rate scheduler stepped once per step.
        run_dir: Where ``metrics.csv`` and ``checkpoints/`` go (None: nothing written).
        checkpoint_every: Steps between checkpoints (default ``eval_every``; 0 disables).
        device: Where the model runs.
        max_grad_norm: Clip the global gradient norm (None: no clipping).
        progress: Show a progress bar.
        is_main_process: Only the main process writes logs and checkpoints.
        validate_batches: Check targets and masks against the tasks: in-memory sources once,
            whole, when training starts; other sources batch by batch.
        callbacks: Hooks, see :class:`Callback`.
    """

    def __init__(
        self,
        model: MultiTaskModel,
        tasks: Sequence[Task],
        balancer: Balancer,
        optimizer: torch.optim.Optimizer,
        loader: MultiSourceLoader,
        steps: int,
        val: Source | None = None,
        eval_every: int = 100,
        monitor: str | None = None,
        patience: int | None = None,
        scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
        run_dir: Path | str | None = None,
        checkpoint_every: int | None = None,
        device: torch.device | str = "cpu",
        max_grad_norm: float | None = None,
        progress: bool = True,
        is_main_process: bool = True,
        validate_batches: bool = True,
        eval_batch_size: int = 256,
        callbacks: Sequence[Callback] = (),
    ) -> None:
        self.tasks = {t.name: t for t in tasks}
        if tuple(self.tasks) != tuple(model.task_names):
            raise ValueError(f"Tasks {list(self.tasks)} do not match the model's heads {list(model.task_names)}.")
        if steps < 1 or eval_every < 1:
            raise ValueError(f"steps and eval_every must be >= 1. Got steps={steps}, eval_every={eval_every}.")
        if balancer.needs_features and not model.has_features:
            raise ValueError(f"{balancer} needs the model's shared features, but {type(model).__name__} "
                             "has none; use level='exact'.")
        self.model = model.to(device)
        self.balancer = balancer.to(device)
        self.optimizer = optimizer
        self.loader = loader
        self.steps = steps
        self.val = val
        self.eval_every = eval_every
        self.monitor = monitor or self._default_monitor()
        self._check_monitor()
        self.patience = patience
        self.scheduler = scheduler
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.checkpoint_every = eval_every if checkpoint_every is None else checkpoint_every
        self.device = torch.device(device)
        self.max_grad_norm = max_grad_norm
        self.progress = progress
        self.is_main_process = is_main_process
        self.validate_batches = validate_batches
        self.eval_batch_size = eval_batch_size
        self.callbacks = list(callbacks)
        self.checkpoints = CheckpointManager(
            self.run_dir / "checkpoints" if self.run_dir else Path("."),
            enabled=self.run_dir is not None and is_main_process and self.checkpoint_every > 0,
        )
        self.step = 0
        self.best_value: float | None = None
        self.best_step: int | None = None
        self.bad_evals = 0
        self._checked_sources = self._check_static_sources()
        self._recent_losses: list[tuple[list[str], Tensor]] = []  # folded into the sums below when read
        self._loss_sum = torch.zeros(len(self.tasks), dtype=torch.float64, device=self.device)
        self._loss_count = torch.zeros(len(self.tasks), dtype=torch.long, device=self.device)

    # ----------------------------------------------------------------------------------------
    def fit(self, resume: Path | str | Literal["latest"] | None = None) -> TrainResult:
        """Train for the remaining steps; ``resume`` is a checkpoint path or ``"latest"``."""
        if resume is not None:
            self.load(self._resolve(resume))
        columns = self._columns()
        logger = RunLogger(self.run_dir, columns, enabled=self.is_main_process and self.run_dir is not None,
                           progress=self.progress, total=self.steps)
        logger.start(self.step if resume is not None else None)
        self.model.train()
        self._call("on_train_start")
        stopped = False
        first_step = self.step
        start_time = time.perf_counter()
        step_seconds = 0.0
        try:
            while self.step < self.steps and not stopped:
                tic = time.perf_counter()
                losses = self._train_step()
                step_seconds += time.perf_counter() - tic
                self.step += 1
                self._call("on_step_end", step=self.step, losses=losses)
                if self.step % 20 == 0 or self.step == self.steps:
                    logger.advance(self._running_losses(reset=False))
                else:
                    logger.advance()
                improved = False
                if self.step % self.eval_every == 0 or self.step == self.steps:
                    stopped, improved = self._evaluate_and_log(logger, time.perf_counter() - start_time)
                due = self.checkpoint_every and (
                    self.step % self.checkpoint_every == 0 or self.step == self.steps or stopped
                )
                if due or improved:  # after the metrics row, so a resumed run has every row
                    self.checkpoints.save(self.state_dict(), self.step, best=improved)
        finally:
            logger.close()
        result = TrainResult(self.step, self.best_step, self.best_value, self.monitor, stopped,
                             logger.rows, self.run_dir, step_seconds, self.step - first_step)
        self._call("on_train_end", result=result)
        return result

    def _train_step(self) -> dict[str, Tensor]:
        source, batch = self.loader.next()
        present = [t for t in self.tasks if t in batch.full or (t in batch.masks and bool(batch.masks[t].any()))]
        if self.validate_batches and source not in self._checked_sources:
            self._validate(batch)
        batch = batch.to(self.device, non_blocking=True)
        self.optimizer.zero_grad(set_to_none=True)
        losses: dict[str, Tensor] = {}
        if present:
            outputs, features, task_features = forward_for(self.balancer, self.model, batch.inputs, present)
            for name in present:
                mask = None if name in batch.full else batch.masks[name]
                losses[name] = self.tasks[name].loss(outputs[name], batch.targets[name], mask)
            stacked = torch.stack(list(losses.values()))
            if not bool(torch.isfinite(stacked).all()):
                self._fail_non_finite(losses)
            self.balancer.backward(losses, StepInfo(self.step, self.loader.epoch, self.model, features, task_features))
            penalty = self.model.penalty()
            if penalty is not None:
                penalty.backward()
            if self.max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.max_grad_norm)
            self.optimizer.step()
            self._recent_losses.append((present, stacked.detach()))
        if self.scheduler is not None:
            self.scheduler.step()
        return losses

    def _check_static_sources(self) -> set[str]:
        """Validate in-memory sources once, whole; others are validated batch by batch."""
        checked = set()
        if self.validate_batches:
            for name, source in self.loader.sources.items():
                if isinstance(source, TensorSource):
                    source.check(list(self.tasks.values()))
                    checked.add(name)
        return checked

    def _validate(self, batch: Batch) -> None:
        for name, target in batch.targets.items():
            if name in self.tasks:
                self.tasks[name].check(target, batch.masks[name])

    def _fail_non_finite(self, losses: dict[str, Tensor]) -> None:
        bad = {k: float(v.detach()) for k, v in losses.items() if not math.isfinite(float(v.detach()))}
        name, value = next(iter(bad.items()))
        latest = self.checkpoints.latest() if self.checkpoints.enabled else None
        where = f"the last good checkpoint is {latest}" if latest else "no checkpoint was written yet"
        raise NonFiniteLossError(
            f"The loss of task {name!r} is {value} at step {self.step + 1} (all bad: {bad}). Training "
            f"stopped before applying it; {where}. Lower the learning rate, clip gradients "
            "(max_grad_norm), or check this task's targets for extreme values."
        )

    def _evaluate_and_log(self, logger: RunLogger, elapsed: float) -> tuple[bool, bool]:
        """Evaluate, log one row; return (stop early, monitor improved)."""
        row: dict[str, float] = {"step": self.step, "epoch": self.loader.epoch, "time_s": round(elapsed, 3)}
        row.update({f"train/{k}/loss": v for k, v in self._running_losses(reset=True).items()})
        stop = improved = False
        if self.val is not None:
            metrics = evaluate(self.model, list(self.tasks.values()), self.val, self.eval_batch_size, self.device)
            row.update({f"val/{k}": v for k, v in metrics.items()})
            stop, improved = self._update_monitor(metrics)
        logger.log(row)
        self._call("on_evaluate", step=self.step, metrics=row)
        return stop, improved

    def _monitored(self, metrics: dict[str, float]) -> float:
        assert self.monitor is not None  # only called when there is a validation source
        head, metric = self.monitor.split("/", 1)
        if head != "mean":
            return metrics.get(self.monitor, math.nan)
        mains = [t for t in self.tasks.values() if t.role == "main"] or list(self.tasks.values())
        values = [metrics.get(f"{t.name}/{metric}", math.nan) for t in mains]
        values = [v for v in values if not math.isnan(v)]
        return sum(values) / len(values) if values else math.nan

    def _update_monitor(self, metrics: dict[str, float]) -> tuple[bool, bool]:
        """Track the best value; return (stop early, improved)."""
        value = self._monitored(metrics)
        if math.isnan(value) or self.monitor is None:
            return False, False
        metric = self.monitor.split("/", 1)[1]
        better = metric != "loss" and higher_is_better(metric)
        if self.best_value is None or (value > self.best_value if better else value < self.best_value):
            self.best_value, self.best_step, self.bad_evals = value, self.step, 0
            return False, True
        self.bad_evals += 1
        return self.patience is not None and self.bad_evals >= self.patience, False

    def _running_losses(self, reset: bool) -> dict[str, float]:
        for names, values in self._recent_losses:
            index = self.balancer.index(names).to(self.device)
            self._loss_sum[index] += values.to(self._loss_sum)
            self._loss_count[index] += 1
        self._recent_losses.clear()
        means = (self._loss_sum / self._loss_count.clamp(min=1)).tolist()
        counts = self._loss_count.tolist()
        out = {name: m for name, m, c in zip(self.tasks, means, counts) if c}
        if reset:
            self._loss_sum.zero_()
            self._loss_count.zero_()
        return out

    # ----------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly: model, optimizer, scheduler, balancer,
        loader position, RNG states, monitor and callbacks."""
        self._running_losses(reset=False)  # fold pending per-step losses into the sums
        return {
            "step": self.step,
            "tasks": list(self.tasks),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "balancer": self.balancer.state_dict(),
            "loader": self.loader.state_dict(),
            "monitor": {"name": self.monitor, "best_value": self.best_value, "best_step": self.best_step,
                        "bad_evals": self.bad_evals},
            "running_loss": {"sum": self._loss_sum, "count": self._loss_count},
            "rng": _rng_state(),
            "callbacks": [c.state_dict() for c in self.callbacks],
        }

    def load(self, path: Path) -> None:
        """Restore the state saved in checkpoint ``path``."""
        state = CheckpointManager.load(path)
        if state.get("tasks") != list(self.tasks):
            raise CheckpointError(f"Checkpoint {path} was written for tasks {state.get('tasks')}, "
                                  f"but this run has {list(self.tasks)}.")
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.balancer.load_state_dict(state["balancer"])
        except (RuntimeError, ValueError, KeyError) as error:
            raise CheckpointError(f"Checkpoint {path} does not fit this model/optimizer/balancer: {error}") from None
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.loader.load_state_dict(state["loader"])
        monitor = state["monitor"]
        self.best_value, self.best_step, self.bad_evals = monitor["best_value"], monitor["best_step"], monitor["bad_evals"]
        self._loss_sum.copy_(state["running_loss"]["sum"])
        self._loss_count.copy_(state["running_loss"]["count"])
        for callback, cb_state in zip(self.callbacks, state["callbacks"]):
            callback.load_state_dict(cb_state)
        _set_rng_state(state["rng"])
        self.step = int(state["step"])

    def load_best(self) -> None:
        """Load the best checkpoint's model weights (no-op when none was written)."""
        path = self.checkpoints.directory / "best.safetensors"
        if self.checkpoints.enabled and path.is_file():
            self.model.load_state_dict(CheckpointManager.load(path)["model"])

    # ----------------------------------------------------------------------------------------
    def _resolve(self, resume: Path | str) -> Path:
        if resume == "latest":
            latest = self.checkpoints.latest()
            if latest is None:
                raise CheckpointError(f"No checkpoint to resume from in {self.checkpoints.directory}; "
                                      "train without --resume first.")
            return latest
        return Path(resume)

    def _default_monitor(self) -> str | None:
        mains = [t for t in self.tasks.values() if t.role == "main"] or list(self.tasks.values())
        return f"{mains[0].name}/{mains[0].metrics[0]}" if self.val is not None else None

    def _check_monitor(self) -> None:
        if self.monitor is None:
            return
        valid = [f"{t.name}/{m}" for t in self.tasks.values() for m in (*t.metrics, "loss")]
        valid += sorted({f"mean/{m}" for t in self.tasks.values() for m in (*t.metrics, "loss")})
        if self.monitor not in valid:
            import difflib

            close = difflib.get_close_matches(self.monitor, valid, n=3)
            raise ValueError(f"Unknown monitor metric {self.monitor!r}."
                             + (f" Did you mean {', '.join(map(repr, close))}?" if close else "")
                             + f" Valid: {', '.join(valid)}.")

    def _columns(self) -> list[str]:
        columns = ["time_s", *(f"train/{t}/loss" for t in self.tasks)]
        if self.val is not None:
            for task in self.tasks.values():
                columns += [f"val/{task.name}/{m}" for m in task.metrics] + [f"val/{task.name}/loss"]
        return columns

    def _call(self, hook: str, **kwargs: Any) -> None:
        for callback in self.callbacks:
            getattr(callback, hook)(self, **kwargs)


def _rng_state() -> dict[str, Any]:
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)  # type: ignore[misc]
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [kind, torch.from_numpy(np.asarray(keys, dtype=np.int64)), pos, has_gauss, cached],
        "python": random.getstate(),
    }


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
