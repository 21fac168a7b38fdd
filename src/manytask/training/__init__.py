"""The training loop, optimizers, checkpoints and run logs."""

from ._callbacks import Callback
from ._checkpoint import CheckpointError, CheckpointManager
from ._optim import build_optimizer, build_scheduler
from ._trainer import NonFiniteLossError, Trainer, TrainResult

__all__ = [
    "Callback",
    "CheckpointError",
    "CheckpointManager",
    "NonFiniteLossError",
    "TrainResult",
    "Trainer",
    "build_optimizer",
    "build_scheduler",
]
