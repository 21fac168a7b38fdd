"""Equal weighting."""

from __future__ import annotations

import torch
from torch import Tensor

from ._base import LossWeighting, StepInfo

__all__ = ["EW"]


class EW(LossWeighting):
    r"""Equal weighting: :math:`\mathcal{L} = \sum_i L_i` (the plain multi-task baseline).

    Examples:
        >>> from manytask.tasks import Regression
        >>> EW([Regression("a"), Regression("b")])
        EW()
    """

    def weights(self, losses: Tensor, index: Tensor, info: StepInfo) -> Tensor:
        return torch.ones_like(losses)

    def extra_repr(self) -> str:
        return ""
