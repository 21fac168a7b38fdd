"""Fixed, user-given task weights."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import Tensor

from ..tasks import Task
from ._base import LossBalancer
from ._factory import BalancerInfo, register_balancer
from ._per_task import PerTask, per_task_values

__all__ = ["Fixed"]


@register_balancer("fixed", "Fixed weights per task, given by the user.",
                   BalancerInfo("Caruana 1997, Multitask Learning (weighted sum of task losses)", "losses",
                                example={"weights": {"a": 1.0, "b": 2.0, "c": 0.5}}))
class Fixed(LossBalancer):
    r"""Fixed task weights: :math:`\mathcal{L} = \sum_i w_i L_i` with user-given :math:`w_i \ge 0`.

    The hand-tuned linear scalarisation that most multi-task papers start from (Caruana, 1997,
    "Multitask Learning"). The weights never change; an absent task gets weight 0 for the step.
    A weight of 0 leaves a task out of the shared update (its head then learns nothing either).

    Args:
        tasks: The run's tasks.
        weights: One weight per task, as a list in task order or a mapping from task name (every
            task named, no other). Each must be finite and >= 0.

    Examples:
        >>> from manytask.tasks import Regression
        >>> balancer = Fixed([Regression("a"), Regression("b")], weights={"a": 1.0, "b": 0.1})
        >>> losses = torch.tensor([2.0, 3.0])
        >>> total, weights = balancer.total(losses, torch.tensor([True, True]), step=0)
        >>> round(float(total), 4), weights.tolist()
        (2.3, [1.0, 0.10000000149011612])
    """

    stateful: ClassVar[bool] = False
    fixed: Tensor

    def __init__(self, tasks: Sequence[Task], weights: PerTask) -> None:
        super().__init__(tasks)
        values = per_task_values("Fixed", "weights", weights, self.task_names, nonnegative=True)
        self.register_buffer("fixed", torch.tensor(values), persistent=False)  # configuration, not state

    def weights(self, losses: Tensor, present: Tensor, *, step: int) -> Tensor:
        return self.fixed.to(losses)

    def extra_repr(self) -> str:
        return "weights={" + ", ".join(f"{n!r}: {w:g}" for n, w in zip(self.task_names, self.fixed.tolist())) + "}"
