"""Geometric loss strategy (Chennupati, Sistu, Yogamani & Rawashdeh, 2019)."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from ._base import LossBalancer
from ._factory import BalancerInfo, register_balancer
from ._positive import check_positive

__all__ = ["GLS"]


@register_balancer("gls", "Geometric loss strategy: the geometric mean of the task losses.",
                   BalancerInfo("Chennupati et al. 2019, CVPRW (MultiNet++, geometric loss strategy)", "losses",
                                scale="direction"))
class GLS(LossBalancer):
    r"""Geometric loss strategy of `Chennupati, Sistu, Yogamani & Rawashdeh (2019), "MultiNet++:
    Multi-Stream Feature Aggregation and Geometric Loss Strategy for Multi-Task Learning"
    <https://arxiv.org/abs/1904.08492>`_ (CVPR Workshops): the geometric mean of the losses of
    the :math:`T'` tasks present in the step.

    .. math::
        \mathcal{L} = \Big(\prod_{i=1}^{T'} L_i\Big)^{1/T'}, \qquad
        w_i = \frac{\partial \mathcal{L}}{\partial L_i} = \frac{\mathcal{L}}{T' L_i},

    computed in the log domain (:math:`\exp` of the mean :math:`\log L_i`). The update is
    :math:`\sum_i w_i \nabla L_i` with the weights held constant, which is exactly
    :math:`\nabla\mathcal{L}` (and :math:`\sum_i w_i L_i = \mathcal{L}`). Scaling one loss by
    :math:`c` scales the update by :math:`c^{1/T'}` and keeps its direction. Stateless; an absent
    task is left out of the product (and :math:`T'` counts the present tasks).

    **Positive losses only.** The geometric mean of a zero loss is 0 and its gradient
    :math:`\mathcal{L}/(T' L_i)` is undefined (0/0), so a present task with loss :math:`\le 0`
    raises ``ValueError`` naming it; a NaN or infinite loss is reported by the backward engine.

    Examples:
        >>> from manytask.tasks import Regression
        >>> balancer = GLS([Regression("a"), Regression("b")])
        >>> total, weights = balancer.total(torch.tensor([1.0, 4.0]), torch.tensor([True, True]), step=0)
        >>> round(float(total), 5), [round(w, 5) for w in weights.tolist()]
        (2.0, [1.0, 0.25])
    """

    stateful: ClassVar[bool] = False

    def weights(self, losses: Tensor, present: Tensor, *, step: int) -> Tensor:
        losses = losses.detach()
        check_positive("GLS", losses, present, self.task_names,
                       "Use a loss that stays positive, or a linear weighting ('ew', 'fixed') if it can reach 0.",
                       step=step)
        logs = torch.where(present, losses, 1.0).log()  # absent tasks: log 1 = 0
        count = present.sum()
        geometric_mean = torch.exp(logs.sum() / count)
        return torch.where(present, geometric_mean / (count * losses), 0.0)
