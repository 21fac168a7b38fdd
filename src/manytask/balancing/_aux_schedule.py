"""Main tasks at weight 1, auxiliary tasks on a schedule of the step."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar, Literal

import torch
from torch import Tensor

from ..tasks import Task
from ._base import LossBalancer
from ._factory import BalancerInfo, register_balancer

__all__ = ["AuxSchedule"]

Schedule = Literal["constant", "linear", "cosine", "exponential"]


@register_balancer("aux-schedule", "Auxiliary tasks weighted by a schedule of the step; main tasks at 1.",
                   BalancerInfo("Ruder 2017, An Overview of Multi-Task Learning in Deep Neural Networks "
                                "(auxiliary tasks); a schedule, not one paper's method", "losses",
                                example={"schedule": "linear", "steps": 10}))
class AuxSchedule(LossBalancer):
    r"""Main and auxiliary tasks: :math:`\mathcal{L} = \sum_{i \in \text{main}} L_i +
    a(t) \sum_{j \in \text{aux}} L_j`.

    Auxiliary tasks (``Task.role == "auxiliary"``) are trained only to help the main ones
    (Ruder, 2017, "An Overview of Multi-Task Learning in Deep Neural Networks",
    <https://arxiv.org/abs/1706.05098>); a common recipe lets them shape the shared layers early and fades
    them out. Their weight :math:`a(t)` goes from ``start`` (:math:`a_0`) to ``end``
    (:math:`a_1`) over ``steps`` (:math:`S`) steps and then stays at ``end``; with
    :math:`p = \min(t, S)/S`:

    - ``constant``: :math:`a_0` while :math:`t < S`, then :math:`a_1` (a switch at step :math:`S`);
    - ``linear``: :math:`a_0 + (a_1 - a_0)\, p`;
    - ``cosine``: :math:`a_1 + (a_0 - a_1)(1 + \cos \pi p)/2`;
    - ``exponential``: :math:`a_0 (a_1/a_0)^{p}` (geometric; needs :math:`a_0, a_1 > 0`).

    Main and adversarial tasks have weight 1 (an adversarial task's sign is its gradient
    reversal). The weights depend only on the step :math:`t` (the trainer's global step, from
    0), so the method is stateless and resumes exactly. An absent task gets weight 0.

    Args:
        tasks: The run's tasks.
        steps: :math:`S > 0`, the length of the schedule in steps.
        schedule: ``"constant"``, ``"linear"``, ``"cosine"`` or ``"exponential"``.
        start: Auxiliary weight at step 0 (>= 0).
        end: Auxiliary weight from step ``steps`` on (>= 0).

    Examples:
        >>> from manytask.tasks import Regression
        >>> balancer = AuxSchedule([Regression("a"), Regression("b", role="auxiliary")], steps=10)
        >>> present = torch.tensor([True, True])
        >>> [balancer.weights(torch.ones(2), present, step=t).tolist() for t in (0, 5, 20)]
        [[1.0, 1.0], [1.0, 0.5], [1.0, 0.0]]
    """

    stateful: ClassVar[bool] = False
    auxiliary: Tensor

    def __init__(self, tasks: Sequence[Task], steps: int, schedule: Schedule = "linear", start: float = 1.0,
                 end: float = 0.0) -> None:
        super().__init__(tasks)
        if isinstance(steps, bool) or not isinstance(steps, int) or steps <= 0:
            raise ValueError(f"The 'steps' parameter of AuxSchedule must be an integer > 0. Got {steps!r} instead.")
        if schedule not in ("constant", "linear", "cosine", "exponential"):
            raise ValueError("The 'schedule' parameter of AuxSchedule must be 'constant', 'linear', 'cosine' or "
                             f"'exponential'. Got {schedule!r} instead.")
        for name, value in (("start", start), ("end", end)):
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"The {name!r} parameter of AuxSchedule must be a finite number >= 0. "
                                 f"Got {value!r} instead.")
            if schedule == "exponential" and value == 0:
                raise ValueError(f"The 'exponential' schedule of AuxSchedule interpolates geometrically, so "
                                 f"{name!r} must be > 0. Got {value!r} instead; e.g. end=0.01.")
        self.steps, self.schedule, self.start, self.end = steps, schedule, float(start), float(end)
        self.register_buffer("auxiliary", torch.tensor([t.role == "auxiliary" for t in tasks]), persistent=False)

    def auxiliary_weight(self, step: int) -> float:
        """:math:`a(t)`, the auxiliary tasks' weight at ``step``."""
        p = min(max(step, 0), self.steps) / self.steps
        a0, a1 = self.start, self.end
        if self.schedule == "constant":
            return a0 if p < 1 else a1
        if self.schedule == "linear":
            return a0 + (a1 - a0) * p
        if self.schedule == "cosine":
            return a1 + (a0 - a1) * (1 + math.cos(math.pi * p)) / 2
        return a0 * (a1 / a0) ** p

    def weights(self, losses: Tensor, present: Tensor, *, step: int) -> Tensor:
        aux = self.auxiliary.to(losses.device)
        return torch.where(aux, self.auxiliary_weight(step), torch.ones_like(losses))

    def extra_repr(self) -> str:
        return f"steps={self.steps}, schedule={self.schedule!r}, start={self.start}, end={self.end}"
