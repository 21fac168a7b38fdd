"""Callbacks: typed no-op hooks the trainer calls, in this order.

``on_train_start(trainer)`` -> for each step: ``on_before_backward(trainer, step, sums, counts)``
-> ``on_after_backward(trainer, step)`` -> ``on_before_optimizer_step(trainer, step, optimizer)``
-> ``on_step_end(trainer, step, losses)`` -> after an epoch's last step
``on_epoch_end(trainer, epoch)`` -> every evaluation ``on_evaluate(trainer, step, metrics)`` ->
``on_train_end(trainer, result)``. ``step`` counts from 0 before the step's update and from 1
after it (``on_step_end``, ``on_evaluate``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from torch import Tensor

if TYPE_CHECKING:
    import torch

    from ._trainer import Trainer, TrainResult

__all__ = ["Callback"]


class Callback:
    """Base class; override the hooks you need. State round-trips through checkpoints."""

    def on_train_start(self, trainer: Trainer) -> None:
        """Before the first step (also after a resume)."""

    def on_before_backward(self, trainer: Trainer, step: int, sums: Tensor, counts: Tensor) -> None:
        """After the forward: per-task loss sums and label counts ``[T]`` (count 0: absent); read
        them only (the counts tensor is reused by later steps with the same labels)."""

    def on_after_backward(self, trainer: Trainer, step: int) -> None:
        """After the backward engine filled ``.grad`` (before clipping and unscaling)."""

    def on_before_optimizer_step(self, trainer: Trainer, step: int, optimizer: torch.optim.Optimizer) -> None:
        """After unscaling and clipping, right before ``optimizer.step()``."""

    def on_step_end(self, trainer: Trainer, step: int, losses: dict[str, Any]) -> None:
        """After the optimizer step; ``losses`` holds the present tasks' loss tensors."""

    def on_epoch_end(self, trainer: Trainer, epoch: int) -> None:
        """After the last step of loader epoch ``epoch``."""

    def on_evaluate(self, trainer: Trainer, step: int, metrics: dict[str, float]) -> None:
        """After an evaluation, with the row written to ``metrics.csv``."""

    def on_train_end(self, trainer: Trainer, result: TrainResult) -> None:
        """After training stops."""

    def columns(self, trainer: Trainer) -> list[str]:
        """Columns this callback adds to ``metrics.csv`` (fixed for the run)."""
        del trainer
        return []

    def row(self, trainer: Trainer) -> dict[str, float]:
        """Its values for an evaluation's row (called before ``on_evaluate``)."""
        del trainer
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        del state
