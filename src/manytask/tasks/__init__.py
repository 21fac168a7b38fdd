"""Tasks: name, head, loss, metrics and role of each thing a multi-task model learns."""

from ._batched import STACK_AT, loss_terms_of
from ._columns import Columns, replaced, stacked
from ._task import (
    LOSSES,
    BinaryClassification,
    Classification,
    Level,
    Regression,
    Role,
    SequenceLabelling,
    TargetError,
    Task,
)

__all__ = [
    "LOSSES",
    "STACK_AT",
    "BinaryClassification",
    "Level",
    "Role",
    "Classification",
    "Columns",
    "Regression",
    "SequenceLabelling",
    "Task",
    "TargetError",
    "loss_terms_of",
    "replaced",
    "stacked",
]
