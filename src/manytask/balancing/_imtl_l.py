"""IMTL-L: the loss balance of Impartial Multi-Task Learning (Liu et al., 2021)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..tasks import Task
from ._base import LossBalancer
from ._factory import BalancerInfo, register_balancer
from ._per_task import scatter_present, stack_present

__all__ = ["IMTLL"]


@register_balancer("imtl-l", "IMTL-L: learned loss scales e^s L - s that equalise the scaled losses.",
                   BalancerInfo("Liu et al. 2021, ICLR (Towards Impartial Multi-task Learning, IMTL-L)", "losses",
                                stateful=True))
class IMTLL(LossBalancer):
    r"""IMTL-L, the loss balance of `Liu, Li, Kuang, Xue, Chen, Yang, Liao & Zhang (2021),
    "Towards Impartial Multi-task Learning" <https://openreview.net/forum?id=IMPnRXEWpvr>`_ (ICLR).

    Each task's loss is scaled by a learned :math:`e^{s_i}` and regularised:

    .. math::
        \mathcal{L} = \sum_i \big(e^{s_i} L_i - s_i\big), \qquad w_i = e^{s_i} .

    :math:`\partial\mathcal{L}/\partial s_i = e^{s_i} L_i - 1`, so the scales are driven towards
    scaled losses :math:`e^{s_i} L_i = 1` for every task (the paper's impartial loss scale). The
    scales are learned by the run's optimizer with the model, at every level of the network (the
    paper's full IMTL combines this with IMTL-G on the shared parameters; this is IMTL-L alone).
    It is twice UW's regression form (``uw``, :math:`L_i / 2\sigma_i^2 + \log \sigma_i`) at
    :math:`s_i = -\log \sigma_i^2`: :math:`e^{s_i} L_i - s_i = L_i/\sigma_i^2 + \log \sigma_i^2`.
    Positive losses are assumed, as in the paper: for :math:`L_i \le 0` the objective has no
    minimum in :math:`s_i`.

    Each :math:`s_i` is its own ``nn.Parameter``, read only when task :math:`i` is present, so an
    absent task's :math:`s_i` gets no gradient (``None``) and a momentum optimizer leaves it
    alone (torchjd's ``IMTLL`` keeps one tensor for all tasks, which Adam would move for an
    absent task). The trainer refuses to run if they are not in the optimizer.

    .. warning:: Stateful: ``reset()`` sets every :math:`s_i` back to ``init``.

    Args:
        tasks: The run's tasks.
        init: Initial :math:`s_i` (0: the plain sum of the losses at the start).

    Examples:
        >>> from manytask.tasks import Regression
        >>> balancer = IMTLL([Regression("a"), Regression("b")])
        >>> total, weights = balancer.total(torch.tensor([2.0, 3.0]), torch.tensor([True, True]), step=0)
        >>> float(total.detach()), weights.tolist()
        (5.0, [1.0, 1.0])
    """

    def __init__(self, tasks: Sequence[Task], init: float = 0.0) -> None:
        super().__init__(tasks)
        self.init = init
        self.log_scales = nn.ParameterList(nn.Parameter(torch.tensor(float(init))) for _ in tasks)

    def weights(self, losses: Tensor, present: Tensor, *, step: int) -> Tensor:
        log_scales, index = stack_present(self.log_scales, present)
        return scatter_present(torch.exp(log_scales), index, losses)

    def regulariser(self, present: Tensor) -> Tensor:
        return -stack_present(self.log_scales, present)[0].sum()

    def total(self, losses: Tensor, present: Tensor, *, step: int) -> tuple[Tensor, Tensor]:
        """As the base class, with the present :math:`s_i` stacked once per step, not twice."""
        self._check(losses, "losses", (self.num_tasks,))
        log_scales, index = stack_present(self.log_scales, present)
        weights = scatter_present(torch.exp(log_scales), index, losses)
        return (weights * losses).sum() - log_scales.sum().to(losses), weights

    def reset(self) -> None:
        with torch.no_grad():
            for log_scale in self.log_scales:
                log_scale.fill_(self.init)

    def extra_repr(self) -> str:
        return f"init={self.init}"
