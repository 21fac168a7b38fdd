"""Tasks: name, head, loss, metrics and role of each thing a multi-task model learns."""

from ._task import (
    BinaryClassification,
    Classification,
    Regression,
    SequenceLabelling,
    Task,
    TargetError,
)

__all__ = [
    "BinaryClassification",
    "Classification",
    "Regression",
    "SequenceLabelling",
    "Task",
    "TargetError",
]
