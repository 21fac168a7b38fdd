"""Uncertainty weighting (Kendall, Gal & Cipolla, 2018)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..tasks import Task
from ._base import LossWeighting, StepInfo

__all__ = ["UW"]


class UW(LossWeighting):
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

    The :math:`s_i` are ``nn.Parameter``: the trainer optimises them with the model.

    .. warning:: Stateful: ``reset()`` sets every :math:`s_i` back to ``init``.

    Args:
        tasks: The run's tasks.
        init: Initial :math:`s_i` (0 gives :math:`\sigma_i = 1`).
    """

    scale: Tensor

    def __init__(self, tasks: Sequence[Task], init: float = 0.0) -> None:
        super().__init__(tasks)
        self.init = init
        self.log_vars = nn.Parameter(torch.full((len(tasks),), float(init)))
        scale = [0.5 if t.uncertainty_form == "regression" else 1.0 for t in tasks]
        self.register_buffer("scale", torch.tensor(scale))

    def weights(self, losses: Tensor, index: Tensor, info: StepInfo) -> Tensor:
        index = index.to(self.log_vars.device)
        return self.scale[index] * torch.exp(-self.log_vars[index])

    def regulariser(self, index: Tensor) -> Tensor:
        return 0.5 * self.log_vars[index.to(self.log_vars.device)].sum()

    def reset(self) -> None:
        with torch.no_grad():
            self.log_vars.fill_(self.init)

    def extra_repr(self) -> str:
        return f"init={self.init}"
