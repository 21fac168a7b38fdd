"""Random loss weighting (Lin, Ye, Xu, Shi & Zhang, 2022)."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from ._base import LossBalancer
from ._factory import BalancerInfo, register_balancer

__all__ = ["RLW"]


@register_balancer("rlw", "Random loss weighting: softmax of standard-normal draws each step.",
                   BalancerInfo("Lin et al. 2022, TMLR (Random Loss Weighting, normal distribution)", "losses",
                                equivariant=False, random=True))
class RLW(LossBalancer):
    r"""Random loss weighting of `Lin, Ye, Xu, Shi & Zhang (2022), "Reasonable Effectiveness of
    Random Weighting: A Litmus Test for Multi-Task Learning" <https://arxiv.org/abs/2111.10603>`_
    (TMLR), with the paper's default distribution (standard normal).

    .. math::
        \tilde\lambda \sim \mathcal N(0, I), \qquad
        \lambda = \mathrm{softmax}(\tilde\lambda), \qquad
        \mathcal{L} = \sum_i \lambda_i L_i .

    As in the paper (and LibMTL, torchjd's ``Random``) the weights sum to **1** over the tasks
    present in the step, so the update is a random convex combination of the task gradients,
    :math:`1/T'` of EW's on average. Each step draws one number per task of the run from the
    global torch RNG (on the losses' device and dtype), present or not, so the stream of draws
    does not depend on which tasks a batch labels; the softmax runs over the present tasks only
    and absent tasks get weight 0. Checkpoints restore the RNG, so a resumed run draws the same
    weights. Not permutation-equivariant for a given seed (the draws follow the task order),
    though it is in distribution.

    Examples:
        >>> from manytask.tasks import Regression
        >>> balancer = RLW([Regression("a"), Regression("b"), Regression("c")])
        >>> _ = torch.manual_seed(0)
        >>> weights = balancer.weights(torch.ones(3), torch.tensor([True, False, True]), step=0)
        >>> round(float(weights.sum()), 6), float(weights[1])
        (1.0, 0.0)
    """

    stateful: ClassVar[bool] = False

    def weights(self, losses: Tensor, present: Tensor, *, step: int) -> Tensor:
        draws = torch.randn(losses.shape, dtype=losses.dtype, device=losses.device)
        return torch.where(present, torch.softmax(draws.masked_fill(~present, -torch.inf), dim=0), 0.0)
