"""The training loop: sample -> views -> forward -> masked losses -> engine -> optimizer step."""

from __future__ import annotations

import contextlib
import logging
import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NoReturn

import numpy as np
import torch
from torch import Tensor

from .._utils import did_you_mean, index_tensor
from ..balancing import Balancer
from ..data import Batch, MultiSourceLoader, Source, TensorSource
from ..evaluation import evaluate
from ..metrics import higher_is_better
from ..models import GradientReversal, MultiTaskModel
from ..tasks import Task, loss_terms_of, replaced
from ..views import View, create_view
from ._callbacks import Callback
from ._checkpoint import CheckpointError, CheckpointManager
from ._device import resolve_device
from ._distributed import Ranks
from ._engine import BackwardEngine, NonFiniteError
from ._run_logger import RunLogger
from ._schedule import TaskSchedule

__all__ = ["Checkpointing", "Evaluation", "NonFiniteLossError", "Precision", "Trainer", "TrainResult"]

log = logging.getLogger("manytask")
_FOLD_EVERY = 20  # steps whose [T] losses are kept before being folded into the running sums
Precision = Literal["32", "bf16", "fp16", "16"]  # "16" is fp16's former name


class NonFiniteLossError(NonFiniteError):
    """A loss, the weighted total or the gradient became NaN or infinite; training stopped
    before applying it."""


@dataclass(frozen=True)
class Evaluation:
    """When and on what the trainer evaluates.

    Args:
        source: Validation source (None: no evaluation, no best checkpoint, no early stopping).
        every: Steps between evaluations (and the last step).
        monitor: ``"<task>/<metric>"`` or ``"mean/<metric>"`` (mean over the main tasks) that
            picks the best checkpoint; default ``mean/<primary metric>`` when every main task
            shares one primary metric, else the first main task's primary metric.
        patience: Stop after this many evaluations without improvement (None: never).
        batch_size: Evaluation batch size.
    """

    source: Source | None = None
    every: int = 100
    monitor: str | None = None
    patience: int | None = None
    batch_size: int = 256


@dataclass(frozen=True)
class Checkpointing:
    """Where and how often the trainer writes ``metrics.csv`` and checkpoints.

    Args:
        run_dir: The run directory (None: nothing is written).
        every: Steps between checkpoints (default: the evaluation interval; 0 disables).
    """

    run_dir: Path | str | None = None
    every: int | None = None


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

    One step reads top to bottom: draw a batch (the loader's sampler picks the source) -> apply
    the views that tasks name -> forward the present tasks -> masked per-task loss sums and
    counts -> the :class:`BackwardEngine` (the balancer's weights, one backward) -> clip ->
    optimizer step -> balancer and epoch hooks. Tasks without labels in the batch get no loss,
    no gradient and no change of balancer state. Hooks, in order, on every callback:
    ``on_train_start``, then per step ``on_before_backward``, ``on_after_backward``,
    ``on_before_optimizer_step``, ``on_step_end``, ``on_epoch_end`` (after an epoch's last
    step), ``on_evaluate``; finally ``on_train_end``.

    Args:
        model: The multi-task model.
        tasks: Its tasks (same names and order as the model's heads).
        balancer: How per-task losses become the update.
        optimizer: Built over the model and balancer parameters, e.g. by ``build_optimizer``.
        loader: The training loader.
        steps: Number of optimisation steps.
        evaluation: Validation source, interval, monitor, patience.
        checkpoints: Run directory and checkpoint interval.
        precision: ``"32"``, ``"bf16"`` (autocast to bfloat16) or ``"16"`` (autocast to float16
            with a gradient scaler; CUDA only).
        views: Views by name, for tasks that name one (default: created from the registry).
        scheduler: Learning-rate scheduler, stepped once per optimizer step.
        device: Where the model runs.
        max_grad_norm: Clip the global gradient norm (None: no clipping).
        progress: Show a progress bar.
        is_main_process: Only the main process writes logs and checkpoints.
        validate_batches: Check targets and masks against the tasks (in-memory sources once).
        callbacks: Hooks, see :class:`Callback`.
        seed: Seeds the views' generator.
        schedule: Which tasks train at each step (periods, windows, alternating groups); a task
            off at a step is absent from it. None: every task, every step.
        ranks: Data-parallel ranks (``torchrun``), or None in one process. Every rank trains
            the same model on its share of each global batch and ends each step with the same
            gradients as one process on the whole batch (see :class:`BackwardEngine`); only rank 0
            writes logs and checkpoints; every rank evaluates the whole validation source, so
            they all take the same decisions (best step, early stopping).
    """

    def __init__(
        self,
        model: MultiTaskModel,
        tasks: Sequence[Task],
        balancer: Balancer,
        optimizer: torch.optim.Optimizer,
        loader: MultiSourceLoader,
        steps: int,
        *,
        evaluation: Evaluation = Evaluation(),
        checkpoints: Checkpointing = Checkpointing(),
        precision: Precision = "32",
        views: Mapping[str, View] | None = None,
        scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
        device: torch.device | str = "cpu",
        max_grad_norm: float | None = None,
        progress: bool = True,
        is_main_process: bool = True,
        validate_batches: bool = True,
        callbacks: Sequence[Callback] = (),
        seed: int = 0,
        schedule: TaskSchedule | None = None,
        ranks: Ranks | None = None,
    ) -> None:
        self.tasks = {t.name: t for t in tasks}
        if tuple(self.tasks) != tuple(model.task_names):
            raise ValueError(f"Tasks {list(self.tasks)} do not match the model's heads {list(model.task_names)}.")
        if tuple(self.tasks) != balancer.task_names:
            raise ValueError(f"{balancer} was built for tasks {list(balancer.task_names)}, "
                             f"but this run has {list(self.tasks)}.")
        if steps < 1 or evaluation.every < 1:
            raise ValueError(f"steps and evaluation.every must be >= 1. Got steps={steps}, every={evaluation.every}.")
        if evaluation.patience is not None and evaluation.source is None:
            raise ValueError("patience is set but there is no validation source to measure it on; "
                             "give a validation split or remove patience.")
        self.device = resolve_device(device)
        self.model = model.to(self.device)
        self.balancer = balancer.to(self.device)
        self.optimizer = optimizer
        _check_optimized(optimizer, balancer)
        self.loader = loader
        self.steps = steps
        self.evaluation = evaluation
        self.val = evaluation.source
        self.monitor = evaluation.monitor or self._default_monitor()
        self._check_monitor()
        self.scheduler = scheduler
        self.precision = _check_precision(precision, self.device)
        scaler = torch.amp.GradScaler(self.device.type) if self.precision == "16" else None
        self.scaler = scaler
        self.views = self._views(views)
        if self.views and balancer.needs != "losses" and balancer.level == "representation":
            raise ValueError(f"{balancer} works at the shared representation, but tasks with views read "
                             "other inputs than the batch's; use level='exact'.")
        self.view_generator = torch.Generator().manual_seed(seed)
        if schedule is not None and schedule.tasks != list(self.tasks):
            raise ValueError(f"The task schedule was built for tasks {schedule.tasks}, but this run has "
                             f"{list(self.tasks)}.")
        self.schedule = schedule
        self.ranks = ranks
        if ranks is not None:
            is_main_process, progress = ranks.is_main, progress and ranks.is_main
        self.engine = BackwardEngine(self.model, self.balancer, scaler, ranks)
        self.run_dir = Path(checkpoints.run_dir) if checkpoints.run_dir is not None else None
        self.checkpoint_every = evaluation.every if checkpoints.every is None else checkpoints.every
        self.max_grad_norm = max_grad_norm
        self.progress = progress
        self.is_main_process = is_main_process
        self.validate_batches = validate_batches
        self.callbacks = [*model.callbacks(), *callbacks]  # a scheme's own first (adaptive widening)
        self._reversals = [m for m in model.modules() if isinstance(m, GradientReversal) and m.schedule != "constant"]
        self.checkpoints = CheckpointManager(
            self.run_dir / "checkpoints" if self.run_dir else Path("."),
            enabled=self.run_dir is not None and is_main_process and self.checkpoint_every > 0,
        )
        self.step = 0
        self.best_value: float | None = None
        self.best_step: int | None = None
        self.bad_evals = 0
        self._seconds_before = 0.0  # training seconds of earlier fits of this run (a checkpoint's elapsed_s)
        self._fit_start: float | None = None
        self._checked_sources = self._check_static_sources()
        self._position = {name: i for i, name in enumerate(self.tasks)}
        self._dataset_tasks = [name for name, task in self.tasks.items() if task.view is None]  # read from the batch
        self._layouts: dict[tuple[tuple[str, ...], tuple[int, ...]], tuple[Tensor, Tensor | None]] = {}
        self._recent_losses: list[tuple[Tensor, Tensor, Tensor]] = []  # per step: losses, present, weights [T]
        self._loss_sum = torch.zeros(len(self.tasks), dtype=torch.float64, device=self.device)
        self._weight_sum = torch.zeros(len(self.tasks), dtype=torch.float64, device=self.device)
        self._loss_count = torch.zeros(len(self.tasks), dtype=torch.long, device=self.device)
        self._buffers = [b for b in self.model.buffers() if b.is_floating_point()]
        self.skipped_steps = 0  # steps the float16 loss scaler skipped (overflowing gradients)
        self.step_groups: list[Any] = []  # this step's (inputs, tasks, targets, masks) groups, for probes
        self.last_weights: Tensor | None = None  # the balancer's weights [T] at the last step (absent tasks: 0)

    # ----------------------------------------------------------------------------------------
    def fit(self, resume: Path | str | Literal["latest"] | None = None) -> TrainResult:
        """Train for the remaining steps; ``resume`` is a checkpoint path or ``"latest"``."""
        if resume is not None:
            self.load(self._resolve(resume))
        if self.ranks is not None:  # one model: rank 0's (the same seed built the same one anyway)
            self.ranks.same_on_every_rank([*self.model.parameters(), *self.model.buffers(),
                                           *self.balancer.parameters()])
        logger = RunLogger(self.run_dir, self._columns(), enabled=self.is_main_process and self.run_dir is not None,
                           progress=self.progress, total=self.steps)
        logger.start(self.step if resume is not None else None)
        self.model.train()
        self._call("on_train_start")
        stopped = False
        first_step = self.step
        self._fit_start = time.perf_counter()
        step_seconds = 0.0
        try:
            while self.step < self.steps and not stopped:
                tic = time.perf_counter()
                losses = self._train_step()
                step_seconds += time.perf_counter() - tic
                self._end_step(losses)
                report = self.step % 20 == 0 or self.step == self.steps
                logger.advance(self._running_losses(reset=False) if report else None)
                improved = False
                if self.step % self.evaluation.every == 0 or self.step == self.steps:
                    stopped, improved = self._evaluate_and_log(logger, self.elapsed())
                due = self.checkpoint_every and (
                    self.step % self.checkpoint_every == 0 or self.step == self.steps or stopped
                )
                if due or improved:  # after the metrics row, so a resumed run has every row
                    self.checkpoints.save(self.state_dict(), self.step, best=improved)
        finally:
            self._seconds_before, self._fit_start = self.elapsed(), None
            logger.close()
        result = TrainResult(self.step, self.best_step, self.best_value, self.monitor, stopped,
                             logger.rows, self.run_dir, step_seconds, self.step - first_step)
        self._call("on_train_end", result=result)
        return result

    def elapsed(self) -> float:
        """Seconds this run has trained, across resumes (``time_s`` in metrics.csv): the checkpoint's
        count when resumed, plus this fit's wall time (the time between runs is not counted)."""
        running = time.perf_counter() - self._fit_start if self._fit_start is not None else 0.0
        return self._seconds_before + running

    def _end_step(self, losses: dict[str, Tensor]) -> None:
        """Count the step; its hooks, and the epoch's when it was the last of a loader epoch (an
        epoch is ``steps_per_epoch`` steps, so the step count says it, whoever drew the batch)."""
        self.step += 1
        self._call("on_step_end", step=self.step, losses=losses)
        if self.step % self.loader.steps_per_epoch == 0:
            epoch = self.step // self.loader.steps_per_epoch - 1
            self.balancer.on_epoch_end(epoch)
            self.model.on_epoch_end(epoch)
            self._call("on_epoch_end", epoch=epoch)

    def _train_step(self, drawn: tuple[str, Batch] | None = None) -> dict[str, Tensor]:
        """One step on the loader's next batch (or on ``drawn``: ``(source, batch)``, as another
        training loop such as Lightning's hands it over); returns the present tasks' (detached)
        losses when callbacks will read them."""
        source, batch = drawn if drawn is not None else self.loader.next()
        if self.validate_batches and source not in self._checked_sources:
            self._validate(batch, source)
        batch = batch.to(self.device, non_blocking=True)
        if self.ranks is not None and self._buffers:  # rank 0's running statistics (as DDP's broadcast_buffers)
            self.ranks.same_on_every_rank(self._buffers)
        groups = self._groups(batch)
        self.optimizer.zero_grad(set_to_none=True)
        for reversal in self._reversals:  # adversarial heads' strength schedule (Ganin & Lempitsky 2015)
            reversal.progress = self.step / self.steps
        if not groups:
            return {}
        self.engine.begin_step()
        with self._autocast():
            sums, counts = self.loss_sums(groups, self.engine.forward)
        if self.ranks is not None:  # shares of different sizes drew different amounts in the forward (dropout)
            self.ranks.same_random_state(self.device)
        self.step_groups = groups  # for losses_now() in the hooks below (relatedness probes)
        self._call("on_before_backward", step=self.step, sums=sums, counts=counts)
        try:
            losses, weights = self.engine.backward(sums, counts, step=self.step)
            self.last_weights = weights
        except NonFiniteError as error:
            self._fail_non_finite(str(error))
        present = self.engine.present  # the global batch's: this rank's own share may lack a task
        self._call("on_after_backward", step=self.step)
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        if self.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(self.engine.model_parameters, self.max_grad_norm)
        self._call("on_before_optimizer_step", step=self.step, optimizer=self.optimizer)
        if self.scaler is not None:
            scale = self.scaler.get_scale()
            if self.engine.overflowed:  # a Gramian balancer's per-task gradients overflowed: nothing to apply
                self.scaler.update(scale * self.scaler.get_backoff_factor())
            else:
                self.scaler.step(self.optimizer)
                self.scaler.update()
            if self.scaler.get_scale() < scale:  # inf/NaN in the float16 gradients: the scaler skipped the step
                self.skipped_steps += 1
                log.warning("manytask: step %d skipped: its float16 gradients overflowed; the loss scale is now "
                            "%g (%d step(s) skipped so far). Nothing was applied; the learning-rate schedule and "
                            "the balancer's after-step update wait for the next step.",
                            self.step + 1, self.scaler.get_scale(), self.skipped_steps)
                self._keep_step_losses(losses, present, weights)
                return self._named(losses, groups)
        else:
            self.optimizer.step()
        self.model.on_after_optimizer_step(self.optimizer)
        if self.scheduler is not None:
            self.scheduler.step()
        self.balancer.on_after_optimizer_step(losses, present, step=self.step,
                                              recompute=lambda: self._recompute(groups))
        self._keep_step_losses(losses, present, weights)
        return self._named(losses, groups)

    def _named(self, losses: Tensor, groups: list[tuple[Any, list[str], Any, Any]]) -> dict[str, Tensor]:
        """The present tasks' losses by name when callbacks will read them (else nothing)."""
        if not self.callbacks:
            return {}
        return {n: losses[self._position[n]] for _, group, _, _ in groups for n in group}

    def loss_sums(self, groups: list[tuple[Any, list[str], dict[str, Tensor], dict[str, Tensor | None]]],
                forward: Callable[[Any, list[str]], Mapping[str, Tensor]]) -> tuple[Tensor, Tensor]:
        """Per-task loss sums and counts ``[T]`` in run order (absent tasks: 0) of ``groups`` (as
        :attr:`step_groups`), each group's outputs from ``forward(inputs, names)``."""
        names: list[str] = []
        group_sums: list[Tensor] = []
        group_counts: list[int] = []
        for inputs, group, targets, masks in groups:
            total, count = loss_terms_of([self.tasks[n] for n in group], forward(inputs, group), targets, masks)
            names += group
            group_sums.append(total)
            group_counts += count
        return self._dense(names, group_sums, group_counts)

    def _dense(self, names: list[str], sums: list[Tensor], counts_of: list[int]) -> tuple[Tensor, Tensor]:
        """Per-task loss sums and counts ``[T]`` in run order (absent tasks: 0), from each input
        group's sums of ``names`` and their counts.

        The counts and the scatter index are cached by ``(names, counts)``: with full batches they
        repeat every step (they are only read)."""
        stacked = sums[0] if len(sums) == 1 else torch.cat(sums)
        if stacked.dtype not in (torch.float32, torch.float64):
            stacked = stacked.float()  # bf16 and float16 up (float64 kept)
        key = (tuple(names), tuple(counts_of))
        cached = self._layouts.get(key)
        if cached is None:  # (a miss most steps under partial labels: School's present schools vary)
            positions = list(map(self._position.__getitem__, names))
            count = np.zeros(len(self.tasks))
            count[positions] = key[1]
            in_order = positions == list(range(len(self.tasks)))
            index = None if in_order else index_tensor(positions, stacked.device)
            counts = torch.from_numpy(count).to(stacked.device, torch.get_default_dtype())  # (as torch.tensor)
            cached = counts, index
            if len(self._layouts) >= 256:  # counts that vary every step (partial labels): no reuse
                self._layouts.clear()
            self._layouts[key] = cached
        counts, index = cached
        if index is None:
            return stacked, counts  # every task present, in run order
        return stacked.new_zeros(len(self.tasks)).index_put((index,), stacked), counts

    def _groups(self, batch: Batch) -> list[tuple[Any, list[str], dict[str, Tensor], dict[str, Tensor | None]]]:
        """The present tasks grouped by the inputs they read: the batch's, or a view's. Across
        ranks a task is present if some rank's share labels it (every rank forwards it)."""
        present = batch.present() if self.ranks is None else self._present_anywhere(batch)
        active = self.schedule.active(self.step) if self.schedule is not None else None  # None: every task
        plain = [t for t in self._dataset_tasks if t in present and (active is None or t in active)]
        groups: list[tuple[Any, list[str], dict[str, Tensor], dict[str, Tensor | None]]] = []
        if plain:
            masks = replaced(batch.masks, {t: None for t in plain if t in batch.full})  # None: no mask to read
            groups.append((batch.inputs, plain, batch.targets, masks))
        generator = self.view_generator
        if self.ranks is not None and self.views:  # a stream of its own per rank, drawn from the shared one
            seed = int(torch.randint(2**62, (1,), generator=self.view_generator))
            generator = torch.Generator().manual_seed(seed + self.ranks.rank)
        viewed = []
        for name, view in self.views.items():
            names = [t for t, task in self.tasks.items() if task.view == name and (active is None or t in active)]
            if names:
                viewed.append((names, view(batch.inputs, generator=generator)))
        if not viewed:
            return groups
        labelled = torch.stack([v.mask.any() for _, v in viewed]).float()  # one flag per view, one sync
        if self.ranks is not None:  # present if some rank's share has a target, as for dataset tasks
            self.ranks.all_reduce(labelled)
        for (names, v), flag in zip(viewed, labelled.tolist()):
            if flag:  # else nothing to predict in this batch (predict: K): absent, not forwarded
                groups.append((v.inputs, names, {t: v.target for t in names}, {t: v.mask for t in names}))
        return groups

    def _present_anywhere(self, batch: Batch) -> set[str]:
        """The tasks some rank's share of the global batch labels (one all-reduce of ``[T]``)."""
        assert self.ranks is not None
        local = batch.present()
        flags = torch.tensor([float(t in local) for t in self.tasks], device=self.device)
        self.ranks.all_reduce(flags)
        return {t for t, flag in zip(self.tasks, flags.tolist()) if flag > 0}

    @torch.no_grad()
    def losses_now(self) -> Tensor:
        """The per-task mean losses ``[T]`` (absent tasks: 0) of the current step's batch under the
        parameters as they are now, in eval mode (no dropout, no running-statistics update): for
        probes inside a step's hooks, e.g. the loss after a lookahead update (Fifty et al. 2021)."""
        was_training = self.model.training
        self.model.eval()
        try:
            return self._recompute(self.step_groups, reduce=False)
        finally:
            self.model.train(was_training)

    @torch.no_grad()
    def _recompute(self, groups: list[tuple[Any, list[str], dict[str, Tensor], dict[str, Tensor | None]]],
                   reduce: bool = True) -> Tensor:
        """The losses ``[T]`` of this step's global batch under the updated model (absent tasks: 0);
        without ``reduce``, of this rank's share (a collective that every rank must join is not run)."""
        sums, counts = self.loss_sums(groups, self.model)
        if reduce:
            sums, counts = self.engine.reduce(sums, counts)
        return sums / counts.clamp(min=1)

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.precision == "32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def _views(self, views: Mapping[str, View] | None) -> dict[str, View]:
        named = sorted({t.view for t in self.tasks.values() if t.view is not None})
        given = dict(views or {})
        missing = [n for n in named if n not in given]
        for name in missing:
            given[name] = create_view(name)
        unused = sorted(set(given) - set(named))
        if unused:
            raise ValueError(f"Views {unused} are given but no task names them; set Task(view=...) or remove them.")
        return {n: given[n] for n in named}

    def _check_static_sources(self) -> set[str]:
        """Validate in-memory sources once, whole; others are validated batch by batch."""
        checked = set()
        if self.validate_batches:
            plain = [t for t in self.tasks.values() if t.view is None]
            for name, source in self.loader.sources.items():
                if isinstance(source, TensorSource):
                    source.check(plain)
                    checked.add(name)
        return checked

    def _validate(self, batch: Batch, source: str) -> None:
        for name, target in batch.targets.items():
            if name in self.tasks and self.tasks[name].view is None:
                self.tasks[name].check(target, batch.masks[name])

    def _fail_non_finite(self, problem: str) -> NoReturn:
        latest = self.checkpoints.latest() if self.checkpoints.enabled else None
        where = f"the last good checkpoint is {latest}" if latest else "no checkpoint was written yet"
        raise NonFiniteLossError(
            f"At step {self.step + 1}: {problem}. Training stopped before applying it; {where}. Lower the "
            "learning rate, clip gradients (max_grad_norm), or check the targets for extreme values."
        )

    # ---- evaluation and the monitor ---------------------------------------------------------
    def _evaluate_and_log(self, logger: RunLogger, elapsed: float) -> tuple[bool, bool]:
        """Evaluate, log one row; return (stop early, monitor improved)."""
        row: dict[str, float] = {"step": self.step, "epoch": self.loader.epoch, "time_s": round(elapsed, 3)}
        row["lr"] = self.optimizer.param_groups[0]["lr"]
        row.update({f"weight/{k}": v for k, v in self._running_weights().items()})
        row.update({f"train/{k}/loss": v for k, v in self._running_losses(reset=True).items()})
        row.update({f"model/{k}": v for k, v in self.model.diagnostics().items()})  # e.g. MMoE's experts
        for callback in self.callbacks:  # e.g. gradient conflicts since the previous evaluation
            if hasattr(callback, "row"):
                row.update(callback.row(self))
        stop = improved = False
        if self.val is not None:
            shard = (self.ranks.rank, self.ranks.world) if self.ranks is not None else None  # each rank a share
            metrics = evaluate(self.model, list(self.tasks.values()), self.val, self.evaluation.batch_size,
                               self.device, views=self.views, shard=shard)
            row.update({f"val/{k}": v for k, v in metrics.items()})
            stop, improved = self._update_monitor(metrics, logger)
        logger.log(row)
        self._call("on_evaluate", step=self.step, metrics=row)
        return stop, improved

    def _monitored(self, metrics: dict[str, float], logger: RunLogger | None = None) -> float:
        assert self.monitor is not None  # only called when there is a validation source
        head, metric = self.monitor.split("/", 1)
        if head != "mean":
            return metrics.get(self.monitor, math.nan)
        measured = [t for t in self._main_tasks() if metric == "loss" or metric in t.metrics]  # not wage's auroc
        values = {t.name: metrics.get(f"{t.name}/{metric}", math.nan) for t in measured}
        finite = [v for v in values.values() if math.isfinite(v)]
        undefined = [n for n, v in values.items() if not math.isfinite(v)]
        if undefined:
            _say(logger, f"step {self.step}: {self.monitor} is the mean over {len(finite)} of {len(values)} "
                 f"tasks; {metric} is undefined for {', '.join(undefined)}.")
        return sum(finite) / len(finite) if finite else math.nan

    def _update_monitor(self, metrics: dict[str, float], logger: RunLogger) -> tuple[bool, bool]:
        """Track the best value; return (stop early, improved). An undefined (NaN) value counts
        as an evaluation without improvement, and says so."""
        value = self._monitored(metrics, logger)
        metric = self.monitor.split("/", 1)[1] if self.monitor else "loss"
        better = metric != "loss" and higher_is_better(metric)
        if not math.isfinite(value):
            _say(logger, f"step {self.step}: the monitored {self.monitor} is {value}; this evaluation "
                 "counts as no improvement.")
        elif self.best_value is None or (value > self.best_value if better else value < self.best_value):
            self.best_value, self.best_step, self.bad_evals = value, self.step, 0
            return False, True
        self.bad_evals += 1
        patience = self.evaluation.patience
        return patience is not None and self.bad_evals >= patience, False

    def _keep_step_losses(self, losses: Tensor, present: Tensor, weights: Tensor) -> None:
        """Keep a step's ``[T]`` losses, present mask and weights for the running means, folded
        into the sums every ``_FOLD_EVERY`` steps (a few batched ops, not a dozen a step) and at
        every read; a loop that never reads them (Lightning's) holds at most that many."""
        self._recent_losses.append((losses, present, weights))
        if len(self._recent_losses) >= _FOLD_EVERY:
            self._fold_step_losses()

    def _fold_step_losses(self) -> None:
        if self._recent_losses:
            losses = torch.stack([loss for loss, _, _ in self._recent_losses]).to(self._loss_sum)  # [steps, T]
            present = torch.stack([p for _, p, _ in self._recent_losses])
            weights = torch.stack([w for _, _, w in self._recent_losses]).to(self._weight_sum)
            self._loss_sum += torch.where(present, losses, 0.0).sum(0)
            self._weight_sum += torch.where(present, weights, 0.0).sum(0)
            self._loss_count += present.sum(0)
            self._recent_losses.clear()

    def _running_losses(self, reset: bool) -> dict[str, float]:
        self._fold_step_losses()
        means = (self._loss_sum / self._loss_count.clamp(min=1)).tolist()
        counts = self._loss_count.tolist()
        out = {name: m for name, m, c in zip(self.tasks, means, counts) if c}
        if reset:
            self._loss_sum.zero_()
            self._weight_sum.zero_()
            self._loss_count.zero_()
        return out

    def _running_weights(self) -> dict[str, float]:
        """Each task's mean balancer weight over the steps since the last evaluation that trained it
        (read before ``_running_losses(reset=True)``, which folds the pending steps in first)."""
        self._running_losses(reset=False)
        means = (self._weight_sum / self._loss_count.clamp(min=1)).tolist()
        return {name: m for name, m, c in zip(self.tasks, means, self._loss_count.tolist()) if c}

    # ---- state ------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly: model, optimizer, scheduler, scaler, balancer,
        loader position, views' generator, RNG states, monitor and callbacks."""
        self._running_losses(reset=False)  # fold pending per-step losses into the sums
        return {
            "step": self.step,
            "tasks": list(self.tasks),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "balancer": self.balancer.state_dict(),
            "loader": self.loader.state_dict(),
            "views": self.view_generator.get_state(),
            "monitor": {"name": self.monitor, "best_value": self.best_value, "best_step": self.best_step,
                        "bad_evals": self.bad_evals},
            "running_loss": {"sum": self._loss_sum, "count": self._loss_count, "weight_sum": self._weight_sum},
            "rng": _rng_state(),
            "callbacks": [c.state_dict() for c in self.callbacks],
            "ranks": self.ranks.world if self.ranks is not None else 1,
            "schedule": self.schedule.state_dict() if self.schedule is not None else None,
            "elapsed_s": self.elapsed(),
        }

    def load(self, path: Path) -> None:
        """Restore the state saved in checkpoint ``path``."""
        self.load_state_dict(CheckpointManager.load(path), where=f"Checkpoint {path}")

    def load_state_dict(self, state: dict[str, Any], where: str = "The checkpoint") -> None:
        """Restore what :meth:`state_dict` gave; without ``model``, ``optimizer`` and
        ``balancer`` (another loop, such as Lightning's, restores those) the rest only."""
        if state.get("tasks") != list(self.tasks):
            raise CheckpointError(f"{where} was written for tasks {state.get('tasks')}, "
                                  f"but this run has {list(self.tasks)}.")
        try:
            if "model" in state:
                self.model.load_state_dict(state["model"])
                self.optimizer.load_state_dict(state["optimizer"])
                _match_strides(self.optimizer)
                self.balancer.load_state_dict(state["balancer"])
        except (RuntimeError, ValueError, KeyError) as error:
            raise CheckpointError(f"{where} does not fit this model/optimizer/balancer: {error}") from None
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None and state.get("scaler") is not None:
            self.scaler.load_state_dict(state["scaler"])
        self.loader.load_state_dict(state["loader"])
        self.view_generator.set_state(state["views"])
        monitor = state["monitor"]
        self.best_value, self.best_step = monitor["best_value"], monitor["best_step"]
        self.bad_evals = monitor["bad_evals"]
        self._loss_sum.copy_(state["running_loss"]["sum"])
        self._loss_count.copy_(state["running_loss"]["count"])
        self._weight_sum.copy_(state["running_loss"].get("weight_sum", torch.zeros_like(self._weight_sum)))
        for callback, cb_state in zip(self.callbacks, state["callbacks"]):
            callback.load_state_dict(cb_state)
        _set_rng_state(state["rng"])
        self.step = int(state["step"])
        self._seconds_before = float(state.get("elapsed_s", 0.0))  # (older checkpoints lack it: 0)
        if self.schedule is not None and state.get("schedule") is not None:
            self.schedule.load_state_dict(state["schedule"])
        written, now = int(state.get("ranks", 1)), self.ranks.world if self.ranks is not None else 1
        if self.is_main_process:  # said louder when the number of ranks changed
            (log.info if written == now else log.warning)(
                "manytask: resumed at step %d on %d rank(s); the checkpoint was written by %d%s.", self.step, now,
                written, "" if written == now else " (the global batches are the same: training continues as it "
                "would have)")

    def load_best(self) -> bool:
        """Load the best checkpoint's model weights; False (and a log line) when there is none,
        so the model stays the last one trained."""
        path = self.checkpoints.directory / "best.safetensors"
        if self.checkpoints.enabled and path.is_file():
            self.model.load_state_dict(CheckpointManager.load(path)["model"])
            return True
        if self.checkpoints.enabled and self.val is not None:
            log.warning("manytask: no best checkpoint (the monitored %s was never finite); the last "
                        "model is used.", self.monitor)
        return False

    def checkpoint_step(self, resume: Path | str) -> int:
        """The step at which the checkpoint ``resume`` (a path or ``"latest"``) was written."""
        return CheckpointManager.step_of(self._resolve(resume))

    # ----------------------------------------------------------------------------------------
    def _resolve(self, resume: Path | str) -> Path:
        if resume == "latest":
            latest = self.checkpoints.latest()
            if latest is None:
                raise CheckpointError(f"No checkpoint to resume from in {self.checkpoints.directory}; "
                                      "train without --resume first.")
            return latest
        return Path(resume)

    def _main_tasks(self) -> list[Task]:
        return [t for t in self.tasks.values() if t.role == "main"] or list(self.tasks.values())

    def _default_monitor(self) -> str | None:
        if self.val is None:
            return None
        mains = [t for t in self._main_tasks() if t.view is None] or self._main_tasks()
        primaries = {t.metrics[0] for t in mains}
        if len(mains) > 1 and len(primaries) == 1:
            return f"mean/{primaries.pop()}"
        return f"{mains[0].name}/{mains[0].metrics[0]}"

    def _check_monitor(self) -> None:
        if self.monitor is None:
            return
        valid = [f"{t.name}/{m}" for t in self.tasks.values() for m in (*t.metrics, "loss")]
        valid += sorted({f"mean/{m}" for t in self.tasks.values() for m in (*t.metrics, "loss")})
        if self.monitor not in valid:
            raise ValueError(f"Unknown monitor metric {self.monitor!r}.{did_you_mean(self.monitor, valid)}")

    def _columns(self) -> list[str]:
        columns = ["time_s", "lr", *(f"train/{t}/loss" for t in self.tasks), *(f"weight/{t}" for t in self.tasks)]
        if self.val is not None:
            for task in self.tasks.values():
                columns += [f"val/{task.name}/{m}" for m in task.metrics] + [f"val/{task.name}/loss"]
        columns += [k for callback in self.callbacks if hasattr(callback, "columns") for k in callback.columns(self)]
        return columns + [f"model/{k}" for k in self.model.diagnostics()]

    def _call(self, hook: str, **kwargs: Any) -> None:
        for callback in self.callbacks:
            method = getattr(callback, hook, None)
            if method is not None:
                method(self, **kwargs)


def _match_strides(optimizer: torch.optim.Optimizer) -> None:
    """Lay each restored per-parameter state tensor out like its parameter. A checkpoint stores
    tensors contiguous; a fresh state is ``zeros_like(param)``, strided as the parameter is, and
    fused optimizer kernels do not round alike on the two layouts, so a resumed run with a
    non-contiguous parameter (a transposed or sliced one) would drift from the straight run."""
    for group in optimizer.param_groups:
        for param in group["params"]:
            state = optimizer.state.get(param, {})
            for key, value in state.items():
                if (isinstance(value, Tensor) and value.shape == param.shape and value.stride() != param.stride()):
                    state[key] = torch.empty_like(param, dtype=value.dtype).copy_(value)


def _say(logger: RunLogger | None, message: str) -> None:
    if logger is not None:
        logger.write(message)
    else:
        log.warning("manytask: %s", message)


def _check_precision(precision: str, device: torch.device) -> Precision:
    if precision not in ("32", "bf16", "16", "fp16"):
        raise ValueError(f"precision must be '32', 'bf16' or 'fp16'. Got {precision!r} instead.")
    if precision in ("16", "fp16") and device.type != "cuda":
        raise ValueError("precision 'fp16' (float16 with loss scaling) needs a CUDA device; on "
                         f"{device.type} use 'bf16' or '32'.")
    return "16" if precision == "fp16" else precision  # type: ignore[return-value]


def _check_optimized(optimizer: torch.optim.Optimizer, balancer: Balancer) -> None:
    """A balancer's learned weights must be optimised, or they silently never change."""
    held = {id(p) for group in optimizer.param_groups for p in group["params"]}
    missing = [n for n, p in balancer.named_parameters() if p.requires_grad and id(p) not in held]
    if missing:
        raise ValueError(f"{balancer} learns parameters {missing[:3]} that the optimizer does not hold, so "
                         "they would never change. Build the optimizer with build_optimizer(model, balancer, ...), "
                         "or add balancer.parameters() to it.")


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
