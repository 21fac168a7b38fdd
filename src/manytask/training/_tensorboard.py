"""TensorBoard logging (``logging.tensorboard: true``): per-task losses and weights, the learning
rate, the step time and every validation metric, in ``<run_dir>/tensorboard``."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ._callbacks import Callback

if TYPE_CHECKING:
    from ._trainer import Trainer, TrainResult

__all__ = ["TensorBoardLogger"]


class TensorBoardLogger(Callback):
    """Writes scalars with ``torch.utils.tensorboard`` (needs ``pip install "manytask[tensorboard]"``):
    ``loss/<task>`` and ``weight/<task>`` (the balancer's) for the tasks a step trained, ``lr`` (the
    first parameter group's) and ``time/step_s`` every ``every`` steps, and each evaluation's
    metrics under their ``metrics.csv`` names (``val/<task>/<metric>``). Only the main process
    writes; a resumed run drops the events after its step.

    Args:
        every: Steps between training scalars.
    """

    def __init__(self, every: int = 10) -> None:
        if every < 1:
            raise ValueError(f"TensorBoardLogger every must be >= 1. Got {every}.")
        try:
            from torch.utils.tensorboard import SummaryWriter  # noqa: F401
        except ImportError:
            raise ImportError('TensorBoard logging needs the tensorboard package: pip install "manytask[tensorboard]" '
                              "(or set logging.tensorboard: false).") from None
        self.every = every
        self.writer: Any = None
        self._tic = time.perf_counter()

    def on_train_start(self, trainer: Trainer) -> None:
        if trainer.run_dir is None or not trainer.is_main_process:
            return
        from torch.utils.tensorboard import SummaryWriter

        resumed_at = trainer.step + 1 if trainer.step else None  # a resumed run: drop what came after its step
        self.writer = SummaryWriter(str(trainer.run_dir / "tensorboard"), purge_step=resumed_at)
        self._tic = time.perf_counter()

    def on_step_end(self, trainer: Trainer, step: int, losses: dict[str, Any]) -> None:
        if self.writer is None or step % self.every:
            return
        for name, loss in losses.items():
            self.writer.add_scalar(f"loss/{name}", float(loss), step)
        if trainer.last_weights is not None:
            for name, weight in zip(trainer.tasks, trainer.last_weights.tolist()):
                if name in losses:
                    self.writer.add_scalar(f"weight/{name}", weight, step)
        self.writer.add_scalar("lr", trainer.optimizer.param_groups[0]["lr"], step)
        now = time.perf_counter()
        self.writer.add_scalar("time/step_s", (now - self._tic) / self.every, step)
        self._tic = now

    def on_evaluate(self, trainer: Trainer, step: int, metrics: dict[str, float]) -> None:
        if self.writer is not None:
            for key, value in metrics.items():  # the evaluation's own columns (the step's are logged above)
                if key.startswith(("val/", "model/")):
                    self.writer.add_scalar(key, value, step)  # "val/<task>/<metric>", as in metrics.csv

    def on_train_end(self, trainer: Trainer, result: TrainResult) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
