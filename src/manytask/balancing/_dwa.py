"""Dynamic weight average (Liu, Johns & Davison, 2019)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ..tasks import Task
from ._base import LossWeighting, StepInfo

__all__ = ["DWA"]


class DWA(LossWeighting):
    r"""Dynamic weight average of `Liu, Johns & Davison (2019), "End-to-End Multi-Task Learning
    with Attention" <https://arxiv.org/abs/1803.10704>`_, Eq. 7.

    .. math::
        w_k(t) = \frac{K \exp(r_k(t-1)/T)}{\sum_i \exp(r_i(t-1)/T)}, \qquad
        r_k(t-1) = \frac{\mathcal{L}_k(t-1)}{\mathcal{L}_k(t-2)}

    where :math:`\mathcal{L}_k(t)` is task :math:`k`'s mean training loss over epoch
    :math:`t` (averaged over the steps where it had labels) and :math:`K` the number of tasks
    present in the step. Weights are 1 until every present task has two finished epochs.

    .. warning:: Stateful: the epoch means live in buffers; ``reset()`` clears them.

    Args:
        tasks: The run's tasks.
        temperature: :math:`T`; larger is softer (the paper uses 2).
    """

    epoch_sum: Tensor
    epoch_count: Tensor
    history: Tensor
    epoch: Tensor

    def __init__(self, tasks: Sequence[Task], temperature: float = 2.0) -> None:
        super().__init__(tasks)
        if not temperature > 0:
            raise ValueError(f"The 'temperature' parameter of DWA must be > 0. Got {temperature!r} instead.")
        self.temperature = temperature
        n = len(tasks)
        self.register_buffer("epoch_sum", torch.zeros(n, dtype=torch.float64))
        self.register_buffer("epoch_count", torch.zeros(n, dtype=torch.long))
        self.register_buffer("history", torch.full((2, n), float("nan"), dtype=torch.float64))
        self.register_buffer("epoch", torch.tensor(0, dtype=torch.long))

    def weights(self, losses: Tensor, index: Tensor, info: StepInfo) -> Tensor:
        if info.epoch != int(self.epoch):
            self._close_epoch(info.epoch)
        index = index.to(self.epoch_sum.device)
        ratios = self.history[1, index] / self.history[0, index]
        if bool(torch.isnan(ratios).any()):
            weights = torch.ones_like(losses)
        else:
            weights = len(index) * torch.softmax(ratios / self.temperature, dim=0).to(losses)
        self.epoch_sum[index] += losses.detach().to(self.epoch_sum)
        self.epoch_count[index] += 1
        return weights

    def _close_epoch(self, epoch: int) -> None:
        seen = self.epoch_count > 0
        means = self.epoch_sum / self.epoch_count.clamp(min=1)
        self.history[0] = torch.where(seen, self.history[1], self.history[0])
        self.history[1] = torch.where(seen, means, self.history[1])
        self.epoch_sum.zero_()
        self.epoch_count.zero_()
        self.epoch.fill_(epoch)

    def reset(self) -> None:
        self.epoch_sum.zero_()
        self.epoch_count.zero_()
        self.history.fill_(float("nan"))
        self.epoch.zero_()

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}"
