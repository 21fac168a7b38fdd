"""Callbacks: typed no-op hooks the trainer calls, in this order.

``on_train_start(trainer)`` -> for each step: ``on_step_end(trainer, step, losses)`` ->
every ``eval_every`` steps: ``on_evaluate(trainer, step, metrics)`` -> ``on_train_end(trainer, result)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._trainer import Trainer, TrainResult

__all__ = ["Callback"]


class Callback:
    """Base class; override the hooks you need. State round-trips through checkpoints."""

    def on_train_start(self, trainer: Trainer) -> None:
        """Before the first step (also after a resume)."""

    def on_step_end(self, trainer: Trainer, step: int, losses: dict[str, Any]) -> None:
        """After the optimizer step; ``losses`` holds the present tasks' loss tensors."""

    def on_evaluate(self, trainer: Trainer, step: int, metrics: dict[str, float]) -> None:
        """After an evaluation, with the row written to ``metrics.csv``."""

    def on_train_end(self, trainer: Trainer, result: TrainResult) -> None:
        """After training stops."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        del state
