"""Uncertainty weighting (Kendall, Gal & Cipolla, 2018)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..tasks import Task
from ._base import LossBalancer
from ._factory import BalancerInfo, register_balancer
from ._per_task import scatter_present, stack_present

__all__ = ["UW"]


@register_balancer("uw", "Uncertainty weighting: learned homoscedastic noise per task.",
                   BalancerInfo("Kendall, Gal & Cipolla 2018, CVPR Eq. 7, 10", "losses", stateful=True))
class UW(LossBalancer):
    r"""Uncertainty weighting of `Kendall, Gal & Cipolla (2018), "Multi-Task Learning Using
    Uncertainty to Weigh Losses for Scene Geometry and Semantics"
    <https://arxiv.org/abs/1705.07115>`_, Eq. 7 and 10.

    Each task has a learned homoscedastic noise :math:`\sigma_i`, stored as
    :math:`s_i = \log \sigma_i^2`. A regression task (Gaussian likelihood) and a
    classification task (scaled softmax) contribute

    .. math::
        \frac{1}{2\sigma_i^2} L_i + \log\sigma_i \quad\text{and}\quad
        \frac{1}{\sigma_i^2} L_i + \log\sigma_i,

    i.e. :math:`c_i e^{-s_i} L_i + s_i / 2` with :math:`c_i = 1/2` or :math:`1`. The form
    comes from each task's ``uncertainty_form``.

    Each :math:`s_i` is its own ``nn.Parameter``, read only when task :math:`i` is present, so an
    absent task's :math:`s_i` gets no gradient (``None``) and a momentum optimizer leaves it
    alone. The trainer refuses to run if they are not in the optimizer.

    .. warning:: Stateful: ``reset()`` sets every :math:`s_i` back to ``init``.

    Args:
        tasks: The run's tasks.
        init: Initial :math:`s_i` (0 gives :math:`\sigma_i = 1`).
    """

    scale: Tensor

    def __init__(self, tasks: Sequence[Task], init: float = 0.0) -> None:
        super().__init__(tasks)
        self.init = init
        self.log_vars = nn.ParameterList(nn.Parameter(torch.tensor(float(init))) for _ in tasks)
        scale = [0.5 if t.uncertainty_form == "regression" else 1.0 for t in tasks]
        self.register_buffer("scale", torch.tensor(scale))

    def _weights_and_log_vars(self, losses: Tensor, present: Tensor) -> tuple[Tensor, Tensor]:
        log_vars, index = stack_present(self.log_vars, present)
        scale = self.scale if index is None else self.scale[index]
        return scatter_present(scale * torch.exp(-log_vars), index, losses), log_vars

    def weights(self, losses: Tensor, present: Tensor, *, step: int) -> Tensor:
        return self._weights_and_log_vars(losses, present)[0]

    def regulariser(self, present: Tensor) -> Tensor:
        return 0.5 * stack_present(self.log_vars, present)[0].sum()

    def total(self, losses: Tensor, present: Tensor, *, step: int) -> tuple[Tensor, Tensor]:
        """As the base class, with the present :math:`s_i` stacked once per step, not twice."""
        self._check(losses, "losses", (self.num_tasks,))
        weights, log_vars = self._weights_and_log_vars(losses, present)
        return (weights * losses).sum() + 0.5 * log_vars.sum().to(losses), weights

    def reset(self) -> None:
        with torch.no_grad():
            for log_var in self.log_vars:
                log_var.fill_(self.init)

    def extra_repr(self) -> str:
        return f"init={self.init}"
