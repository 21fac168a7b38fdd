"""No sharing: one copy of the encoder per task (single-task models trained side by side)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from torch import Tensor, nn

from ..data import Inputs
from ..tasks import Task
from ._backbone import output_info, task_columns
from ._base import MultiTaskModel
from ._heads import make_head

__all__ = ["Independent"]


class Independent(MultiTaskModel):
    """Single-task models trained in one run: task ``t`` reads its own copy of the encoder.

    Nothing is shared, so with a per-parameter optimizer (Adam, SGD) and a loss that is a sum of
    the task losses (``ew``), training is the same as training each task alone on the batches
    where it has labels. It is the cheap single-task baseline when there are many tasks.

    Args:
        encoder: Template encoder (any module, or a :class:`Backbone`); the first task gets a deep
            copy of it, every other task a deep copy with freshly drawn weights (as construction
            draws them, see :func:`reinitialise`).
        tasks: The tasks; heads come from :func:`make_head` and the encoder's output layout.
        feature_dim: The encoder's output size; read from ``encoder.out_features`` when not given.

    Examples:
        >>> import torch
        >>> from manytask.models import MLP
        >>> from manytask.tasks import Regression
        >>> model = Independent(MLP(4, (8,)), [Regression("a"), Regression("b")])
        >>> {k: tuple(v.shape) for k, v in model(torch.randn(5, 4)).items()}
        {'a': (5, 1), 'b': (5, 1)}
    """

    def __init__(self, encoder: nn.Module, tasks: Sequence[Task], feature_dim: int | None = None) -> None:
        super().__init__()
        self._heads_at_the_top(tasks, encoder)
        info = output_info(encoder, feature_dim)
        self.task_names = tuple(t.name for t in tasks)
        self.encoders = task_columns(encoder, self.task_names)
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
