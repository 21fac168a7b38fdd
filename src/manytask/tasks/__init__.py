"""Tasks: name, head, loss, metrics and role of each thing a multi-task model learns."""

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
    "BinaryClassification",
    "Level",
    "Role",
    "Classification",
    "Regression",
    "SequenceLabelling",
    "Task",
    "TargetError",
]
