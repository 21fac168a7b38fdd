"""Equal weighting."""

from __future__ import annotations

import torch
from torch import Tensor

from ._base import LossBalancer

__all__ = ["EW"]


class EW(LossBalancer):
    r"""Equal weighting: :math:`\mathcal{L} = \sum_i L_i` (the plain multi-task baseline).

    Examples:
        >>> from manytask.tasks import Regression
        >>> EW([Regression("a"), Regression("b")])
        EW()
    """

    def weights(self, losses: Tensor, present: Tensor, *, step: int) -> Tensor:
        return torch.ones_like(losses)
