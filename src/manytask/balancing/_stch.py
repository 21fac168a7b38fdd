"""Smooth Tchebycheff scalarisation (Lin, Zhang, Yang, Liu, Wang & Zhang, 2024)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import Tensor

from ..tasks import Task
from ._base import LossBalancer
from ._factory import BalancerInfo, register_balancer
from ._per_task import PerTask, per_task_values

__all__ = ["STCH"]


@register_balancer("stch", "Smooth Tchebycheff: a log-sum-exp smoothing of the weighted worst loss.",
                   BalancerInfo("Lin et al. 2024, ICML (Smooth Tchebycheff Scalarization)", "losses",
                                example={"mu": 1.0}))
class STCH(LossBalancer):
    r"""Smooth Tchebycheff scalarisation of `Lin, Zhang, Yang, Liu, Wang & Zhang (2024), "Smooth
    Tchebycheff Scalarization for Multi-Objective Optimization" <https://arxiv.org/abs/2402.19078>`_
    (ICML).

    .. math::
        \mathcal{L} = \mu \log \sum_i \exp\!\Big(\frac{\lambda_i (L_i - z_i^*)}{\mu}\Big), \qquad
        w_i = \frac{\partial\mathcal{L}}{\partial L_i} = \lambda_i\,
        \mathrm{softmax}\Big(\frac{\lambda (L - z^*)}{\mu}\Big)_i,

    This smooths the Tchebycheff scalarisation :math:`\max_i \lambda_i (L_i - z_i^*)` and
    tends to it as :math:`\mu \to 0`. The softmax is a log-sum-exp derivative, computed stably.
    The update is :math:`\sum_i w_i \nabla L_i` with the weights held constant, i.e.
    :math:`\nabla\mathcal{L}`. Stateless; an absent task is left out of the sum (the preference
    of the others is not renormalised). This is the paper's scalarisation of the raw losses;
    its multi-task experiments first divide each loss by its mean over a warm-up epoch and take
    the logarithm, which this class does not do (combine it with a normalisation of your own).

    Args:
        tasks: The run's tasks.
        mu: Smoothing :math:`\mu > 0`; smaller is closer to the maximum (the paper tries
            0.01 to 1; there is no single best value).
        preference: :math:`\lambda \ge 0` per task (list in task order or mapping from task
            name), not all 0; default uniform :math:`1/T` (the paper's preferences lie on the
            simplex).
        ideal: The ideal point :math:`z^*` per task (list or mapping); default 0.

    Examples:
        >>> from manytask.tasks import Regression
        >>> balancer = STCH([Regression("a"), Regression("b")], mu=1.0)
        >>> _, weights = balancer.total(torch.tensor([1.0, 1.0]), torch.tensor([True, True]), step=0)
        >>> weights.tolist()
        [0.25, 0.25]
    """

    stateful: ClassVar[bool] = False
    preference: Tensor
    ideal: Tensor

    def __init__(self, tasks: Sequence[Task], mu: float = 1.0, preference: PerTask | None = None,
                 ideal: PerTask | None = None) -> None:
        super().__init__(tasks)
        if not (math.isfinite(mu) and mu > 0):
            raise ValueError(f"The 'mu' parameter of STCH must be a finite number > 0. Got {mu!r} instead.")
        n = len(tasks)
        lam = [1.0 / n] * n if preference is None else per_task_values(
            "STCH", "preference", preference, self.task_names, nonnegative=True)
        if not any(v > 0 for v in lam):
            raise ValueError(f"The 'preference' parameter of STCH must have a value > 0. Got {lam} instead.")
        z = [0.0] * n if ideal is None else per_task_values("STCH", "ideal", ideal, self.task_names)
        self.mu = mu
        self.register_buffer("preference", torch.tensor(lam), persistent=False)  # configuration, not state
        self.register_buffer("ideal", torch.tensor(z), persistent=False)

    def weights(self, losses: Tensor, present: Tensor, *, step: int) -> Tensor:
        lam = self.preference.to(losses)
        scaled = lam * (losses.detach() - self.ideal.to(losses)) / self.mu
        return torch.where(present, lam * torch.softmax(scaled.masked_fill(~present, -torch.inf), dim=0), 0.0)

    def extra_repr(self) -> str:
        return f"mu={self.mu}"
