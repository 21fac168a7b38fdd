"""Scale-invariant (log) losses, as in DB-MTL (Lin, Ye, Xu, Shi & Zhang, 2023)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import Tensor

from ..tasks import Task
from ._base import LossBalancer
from ._factory import BalancerInfo, register_balancer
from ._positive import check_positive

__all__ = ["SI"]


@register_balancer("si", "Scale-invariant loss: the sum of the log task losses.",
                   BalancerInfo("Lin et al. 2023, Dual-Balancing for Multi-Task Learning (log loss transform)",
                                "losses", scale="invariant"))
class SI(LossBalancer):
    r"""Scale-invariant loss of `Lin, Ye, Xu, Shi & Zhang (2023), "Dual-Balancing for Multi-Task
    Learning" <https://arxiv.org/abs/2308.12029>`_ (DB-MTL's loss-scale balancing, used alone).

    .. math::
        \mathcal{L} = \sum_i \log (L_i + \epsilon), \qquad
        w_i = \frac{\partial \mathcal{L}}{\partial L_i} = \frac{1}{L_i + \epsilon},

    The sum runs over the tasks present in the step. With :math:`\epsilon = 0` (the default) the update
    :math:`\sum_i \nabla L_i / L_i` is exactly invariant to the scale of each loss
    (:math:`\nabla \log(cL) = \nabla L / L`). DB-MTL's code uses :math:`\epsilon = 10^{-8}`,
    which keeps a loss of exactly 0 finite at the price of exact invariance for tiny losses.
    The update is :math:`\sum_i w_i \nabla L_i` with the weights held constant, i.e.
    :math:`\nabla\mathcal{L}`. Stateless; an absent task is left out of the sum.

    **Positive losses only.** With :math:`\epsilon = 0` a present task with loss :math:`\le 0`
    raises ``ValueError`` naming it (with :math:`\epsilon > 0`: a loss :math:`\le -\epsilon`);
    a NaN or infinite loss is reported by the backward engine.

    Args:
        tasks: The run's tasks.
        eps: :math:`\epsilon \ge 0` added to each loss inside the logarithm.

    Examples:
        >>> from manytask.tasks import Regression
        >>> balancer = SI([Regression("a"), Regression("b")])
        >>> _, weights = balancer.total(torch.tensor([0.5, 4.0]), torch.tensor([True, True]), step=0)
        >>> weights.tolist()
        [2.0, 0.25]
    """

    stateful: ClassVar[bool] = False

    def __init__(self, tasks: Sequence[Task], eps: float = 0.0) -> None:
        super().__init__(tasks)
        if not (math.isfinite(eps) and eps >= 0):
            raise ValueError(f"The 'eps' parameter of SI must be a finite number >= 0. Got {eps!r} instead.")
        self.eps = eps

    def weights(self, losses: Tensor, present: Tensor, *, step: int) -> Tensor:
        shifted = losses.detach() + self.eps
        check_positive("SI" if self.eps == 0 else f"SI (eps={self.eps:g}: loss + eps)", shifted, present,
                       self.task_names, "Set eps (e.g. eps=1e-8, as DB-MTL's code does) if a loss can reach 0.",
                       step=step)
        return torch.where(present, 1.0 / shifted, 0.0)

    def extra_repr(self) -> str:
        return f"eps={self.eps}"
