"""No sharing: one copy of the encoder per task (single-task models trained side by side)."""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence

from torch import Tensor, nn

from ..data import Inputs
from ..tasks import Task
from ._backbone import output_info
from ._base import MultiTaskModel
from ._heads import make_head

__all__ = ["Independent"]


def _reset(module: nn.Module) -> None:
    for child in module.modules():
        if child is not module and hasattr(child, "reset_parameters"):
            child.reset_parameters()  # type: ignore[operator]


class Independent(MultiTaskModel):
    """Single-task models trained in one run: task ``t`` reads its own copy of the encoder.

    Nothing is shared, so with a per-parameter optimizer (Adam, SGD) and a loss that is a sum of
    the task losses (``ew``), training is the same as training each task alone on the batches
    where it has labels. It is the cheap single-task baseline when there are many tasks.

    Args:
        encoder: Template encoder; each task gets a deep copy with freshly initialised weights.
        tasks: The tasks.
        feature_dim: The encoder's output size; read from ``encoder.out_features`` when not given.
    """

    def __init__(self, encoder: nn.Module, tasks: Sequence[Task], feature_dim: int | None = None) -> None:
        super().__init__()
        info = output_info(encoder, feature_dim)
        self.task_names = tuple(t.name for t in tasks)
        self.encoders = nn.ModuleDict()
        for index, task in enumerate(tasks):
            copied = copy.deepcopy(encoder)
            if index:
                _reset(copied)
            self.encoders[task.name] = copied
        self.heads = nn.ModuleDict({t.name: make_head(t, info) for t in tasks})

    def forward(self, inputs: Inputs, tasks: Sequence[str] | None = None) -> dict[str, Tensor]:
        return {n: self.heads[n](self.encoders[n](inputs)) for n in self._check_tasks(tasks)}

    def shared_modules(self) -> list[nn.Module]:
        return []

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        return iter(())

    def task_parameters(self, name: str) -> Iterator[nn.Parameter]:
        name = self._check_tasks([name])[0]
        yield from self.encoders[name].parameters()
        yield from self.heads[name].parameters()
