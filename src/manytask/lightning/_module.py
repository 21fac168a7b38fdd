"""A LightningModule around manytask's own training step, with manual optimisation."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

try:
    import lightning as L
except ImportError:  # pragma: no cover - the extra is not installed
    raise ImportError('manytask.lightning needs Lightning: pip install "manytask[lightning]"') from None

from ..data import Batch, MultiSourceLoader
from ..training import CheckpointError, Trainer, TrainResult

__all__ = ["MultiTaskModule", "StepLoader"]

_KEY = "manytask"  # the checkpoint entry of manytask's own state


class StepLoader:
    """A manytask loader as the iterable Lightning reads: one epoch of ``(source, batch)`` pairs
    (``steps_per_epoch`` of them; the loader's own state carries over between epochs)."""

    def __init__(self, loader: MultiSourceLoader) -> None:
        self.loader = loader

    def __len__(self) -> int:
        return self.loader.steps_per_epoch

    def __iter__(self) -> Iterator[tuple[str, Batch]]:
        for _ in range(self.loader.steps_per_epoch):
            yield self.loader.next()


class MultiTaskModule(L.LightningModule):
    """Trains what a manytask :class:`~manytask.training.Trainer` holds (model, tasks, balancer,
    optimizer, views, schedule) inside Lightning's loop: each ``training_step`` is the manytask
    step — the backward engine (gradient-level balancers included, hence manual optimisation),
    the finite checks, the optimizer step and the balancer's hooks — so a Lightning fit gives the
    parameters manytask's own ``Trainer.fit`` gives. Lightning's checkpoints hold the model and
    balancer (both submodules), the optimizer and, under ``"manytask"``, the rest of the
    trainer's state: a fit resumed from one (``ckpt_path=``) continues exactly. Per-task losses
    are logged as ``loss/<task>``.

    The run's callbacks (relatedness probe, adaptive sharing, TensorBoard) see the fit's start,
    steps and end. The budget is the trainer's ``steps``, which the learning-rate schedule, the
    reversal ramp and the annealed sampler run on: the fit stops there even if Lightning's
    ``max_steps`` allows more; a smaller ``max_steps`` stops it early (resume from Lightning's
    checkpoint with ``ckpt_path=``).

    Args:
        trainer: A manytask Trainer built as usual (its evaluation and checkpoints are not used:
            Lightning's checkpoints take their place; evaluate with
            :func:`manytask.evaluation.evaluate`).

    Examples:
        >>> # module = MultiTaskModule(build_experiment(config).trainer)
        >>> # L.Trainer(max_steps=100).fit(module, StepLoader(module.inner.loader))
    """

    def __init__(self, trainer: Trainer) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.inner = trainer
        self.model = trainer.model
        self.balancer = trainer.balancer
        self._first_step = trainer.step

    def on_train_start(self) -> None:
        # The step goes through Lightning's wrapper of the optimizer, so that Lightning counts it
        # (max_steps, logging, checkpoints); it steps the same optimizer.
        self.inner.optimizer = self.optimizers()  # type: ignore[assignment]
        self._first_step = self.inner.step
        self.inner._call("on_train_start")  # the run's callbacks (relatedness, adaptive sharing, TensorBoard)

    def on_train_end(self) -> None:
        optimizer = self.inner.optimizer
        self.inner.optimizer = getattr(optimizer, "optimizer", optimizer)  # the plain one again
        inner = self.inner
        result = TrainResult(inner.step, inner.best_step, inner.best_value, inner.monitor, False,
                             run_dir=inner.run_dir, steps_run=inner.step - self._first_step)
        inner._call("on_train_end", result=result)

    def training_step(self, batch: tuple[str, Batch], batch_idx: int) -> None:
        self.inner.model.train()
        losses = self.inner._train_step(batch)
        self.inner._end_step(losses)
        if self.inner.step >= self.inner.steps:  # the run's budget, which its schedules run on
            self.trainer.should_stop = True
        for name, value in losses.items():
            self.log(f"loss/{name}", value, on_step=True, prog_bar=False, batch_size=len(batch[1]))

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Beside Lightning's model, balancer and optimizer: the rest of manytask's state (its
        step, loader position, learning-rate schedule, views' generator, RNG states, ...), so
        that a fit resumed from this checkpoint continues exactly."""
        state = self.inner.state_dict()
        checkpoint[_KEY] = {k: v for k, v in state.items() if k not in ("model", "optimizer", "balancer")}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if _KEY not in checkpoint:
            raise CheckpointError("This Lightning checkpoint holds no manytask state: it was not written by a "
                                  "MultiTaskModule, so the step, loader position and schedules cannot be resumed.")
        self.inner.load_state_dict(checkpoint[_KEY], where="The Lightning checkpoint")

    def configure_optimizers(self) -> Any:
        return self.inner.optimizer

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        source, data = batch
        return source, data.to(device)
