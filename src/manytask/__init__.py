"""manytask: multi-task learning for PyTorch.

Tasks with partial labels, sharing schemes, loss weighting and gradient aggregation, a
resumable training loop, single-task baselines with Δm, and a CLI.
"""

from . import catalogue as _catalogue  # noqa: F401  (fills the registries)
from .balancing import create_balancer
from .config import Config, load_config, parse_config
from .data import MultiSourceLoader, MultiTaskData, TensorSource, create_dataset
from .models import HardSharing, create_encoder, create_model
from .runs import compare, load_run, predict, train
from .tasks import BinaryClassification, Classification, Regression, SequenceLabelling, Task
from .training import Trainer, build_optimizer

__version__ = "0.1.0"

__all__ = [
    "BinaryClassification",
    "Classification",
    "Config",
    "HardSharing",
    "MultiSourceLoader",
    "MultiTaskData",
    "Regression",
    "SequenceLabelling",
    "Task",
    "TensorSource",
    "Trainer",
    "build_optimizer",
    "compare",
    "create_balancer",
    "create_dataset",
    "create_encoder",
    "create_model",
    "load_config",
    "load_run",
    "parse_config",
    "predict",
    "train",
]
