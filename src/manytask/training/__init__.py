"""The training loop, the backward engine, optimizers, checkpoints and run logs."""

from ._callbacks import Callback
from ._checkpoint import CheckpointError, CheckpointManager
from ._device import resolve_device
from ._distributed import Ranks, init_from_env
from ._engine import BackwardEngine, NonFiniteError, batched_vjps
from ._init_from import WeightsLoaded, load_matching_weights, resolve_weights
from ._optim import build_optimizer, build_scheduler
from ._schedule import TaskSchedule, Window
from ._tensorboard import TensorBoardLogger
from ._trainer import Checkpointing, Evaluation, NonFiniteLossError, Precision, Trainer, TrainResult

__all__ = [
    "BackwardEngine",
    "batched_vjps",
    "Callback",
    "CheckpointError",
    "CheckpointManager",
    "Checkpointing",
    "Evaluation",
    "NonFiniteError",
    "NonFiniteLossError",
    "Precision",
    "Ranks",
    "TrainResult",
    "TaskSchedule",
    "TensorBoardLogger",
    "Trainer",
    "WeightsLoaded",
    "Window",
    "build_optimizer",
    "build_scheduler",
    "init_from_env",
    "load_matching_weights",
    "resolve_device",
    "resolve_weights",
]
