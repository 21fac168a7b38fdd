"""Equal weighting."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from ._base import LossBalancer
from ._factory import BalancerInfo, register_balancer

__all__ = ["EW"]


@register_balancer("ew", "Equal weights: the sum of the task losses.",
                   BalancerInfo("Caruana 1997, Multitask Learning", "losses"))
class EW(LossBalancer):
    r"""Equal weighting: :math:`\mathcal{L} = \sum_i L_i` (the plain multi-task baseline).

    Examples:
        >>> from manytask.tasks import Regression
        >>> EW([Regression("a"), Regression("b")])
        EW()
    """

    stateful: ClassVar[bool] = False

    def weights(self, losses: Tensor, present: Tensor, *, step: int) -> Tensor:
        return torch.ones_like(losses)

    def total(self, losses: Tensor, present: Tensor, *, step: int) -> tuple[Tensor, Tensor]:
        self._check(losses, "losses", (self.num_tasks,))
        # An absent task's loss is exactly 0 (a sum of 0 over a count of 0), so the plain sum is
        # the weighted one, without a multiplication in the graph.
        return losses.sum(), present.to(losses.dtype)
