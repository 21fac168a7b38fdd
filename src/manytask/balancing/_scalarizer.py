"""Any torchjd scalarizer as a loss-weighting balancer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import Tensor
from torchjd.scalarization import Scalarizer

from ..tasks import Task
from ._base import LossBalancer
from ._state import WrappedState

__all__ = ["TorchJDScalarizer"]


class TorchJDScalarizer(WrappedState, LossBalancer):
    r"""A torchjd ``Scalarizer`` (losses ``[T]`` -> one scalar) as a manytask balancer.

    The update is the gradient of ``scalarizer(losses)``; the weights reported for the step are
    :math:`\partial s / \partial L_i`, the weights of its linearisation. torchjd's scalarizers
    take a fixed vector of all ``T`` losses, so every task must be labelled in every batch: a
    batch with an absent task raises instead of feeding the scalarizer a made-up loss. Plain
    attributes of the scalarizer are checkpointed as in :class:`TorchJDWeighting`. A scalarizer's
    ``step()`` (torchjd's DWA) runs at the end of each epoch.

    Args:
        tasks: The run's tasks.
        scalarizer: A torchjd scalarizer.
        ignore: Attributes of the scalarizer that are derived and need not be saved.

    Examples:
        >>> from torchjd.scalarization import Mean
        >>> from manytask.tasks import Regression
        >>> balancer = TorchJDScalarizer([Regression("a"), Regression("b")], Mean())
        >>> losses = torch.tensor([1.0, 3.0], requires_grad=True)
        >>> total, weights = balancer.total(losses, torch.tensor([True, True]), step=0)
        >>> float(total.detach()), weights.tolist()
        (2.0, [0.5, 0.5])
    """

    wrapped: ClassVar[str] = "scalarizer"

    def __init__(self, tasks: Sequence[Task], scalarizer: Scalarizer, ignore: tuple[str, ...] = ()) -> None:
        super().__init__(tasks)
        self.scalarizer = scalarizer
        self.ignore = ignore

    def total(self, losses: Tensor, present: Tensor, *, step: int) -> tuple[Tensor, Tensor]:
        self._check(losses, "losses", (self.num_tasks,))
        if not bool(present.all()):
            absent = [n for n, p in zip(self.task_names, present.tolist()) if not p]
            raise ValueError(f"{type(self.scalarizer).__name__} (torchjd) needs every task's loss in every "
                             f"step, but {absent} have no label in this batch. Use a manytask balancer, "
                             "or give every batch labels for every task.")
        total = self.scalarizer(losses)
        (weights,) = torch.autograd.grad(total, losses, retain_graph=True)
        return total, weights.detach()

    def on_epoch_end(self, epoch: int) -> None:
        step = getattr(self.scalarizer, "step", None)
        if callable(step):
            step()


