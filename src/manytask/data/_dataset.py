"""The dataset contract: tasks plus train/validation/test sources, registered by name."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .._registry import Registry
from .._utils import data_root
from ..tasks import Task
from ._source import Source

__all__ = ["MultiTaskData", "DATASETS", "create_dataset", "data_root"]


@dataclass(frozen=True)
class MultiTaskData:
    """What a dataset factory returns.

    Args:
        tasks: The tasks, in a fixed order.
        train: Named training sources, mixed by the task sampler (one source with labels for
            many tasks, one source per task, or both).
        val: Validation source (model selection, early stopping), or None.
        test: Test source (reported results), or None.
        input_info: Facts about the inputs that encoders need (``in_features``,
            ``in_channels``, ``vocab_size``, ...), passed to an encoder factory when its
            signature asks for them and the config does not set them.
        description: One line for logs.
    """

    tasks: tuple[Task, ...]
    train: Mapping[str, Source]
    val: Source | None = None
    test: Source | None = None
    input_info: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""

    def __post_init__(self) -> None:
        names = [t.name for t in self.tasks]
        if len(set(names)) != len(names):
            raise ValueError(f"Task names must be unique, got {names}.")
        if not self.train:
            raise ValueError("A dataset needs at least one training source.")

    def task(self, name: str) -> Task:
        """The task called ``name``."""
        for task in self.tasks:
            if task.name == name:
                return task
        raise KeyError(f"No task {name!r}; tasks are {[t.name for t in self.tasks]}.")


DATASETS: Registry[MultiTaskData] = Registry("dataset")


def create_dataset(name: str, **options: Any) -> MultiTaskData:
    """Build a registered dataset by name."""
    return DATASETS.create(name, **options)

