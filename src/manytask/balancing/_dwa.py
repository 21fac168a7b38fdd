"""Dynamic weight average (Liu, Johns & Davison, 2019)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ..tasks import Task
from ._base import LossBalancer
from ._factory import BalancerInfo, register_balancer

__all__ = ["DWA"]


@register_balancer("dwa", "Dynamic weight average: weights from the epochs' loss ratios.",
                   BalancerInfo("Liu, Johns & Davison 2019, CVPR (MTAN) Eq. 7", "losses", stateful=True))
class DWA(LossBalancer):
    r"""Dynamic weight average of `Liu, Johns & Davison (2019), "End-to-End Multi-Task Learning
    with Attention" <https://arxiv.org/abs/1803.10704>`_, Eq. 7.

    .. math::
        w_k(t) = \frac{K \exp(r_k(t-1)/T)}{\sum_i \exp(r_i(t-1)/T)}, \qquad
        r_k(t-1) = \frac{\mathcal{L}_k(t-1)}{\mathcal{L}_k(t-2)}

    where :math:`\mathcal{L}_k(t)` is task :math:`k`'s mean training loss over epoch
    :math:`t` (averaged over the steps where it had labels) and :math:`K` the number of tasks
    present in the step. Weights are 1 until every present task has two finished epochs.
    The trainer closes an epoch through :meth:`on_epoch_end` after its last step.

    .. warning:: Stateful: the epoch means live in buffers; ``reset()`` clears them.

    Args:
        tasks: The run's tasks.
        temperature: :math:`T`; larger is softer (the paper uses 2).
    """

    epoch_sum: Tensor
    epoch_count: Tensor
    history: Tensor

    def __init__(self, tasks: Sequence[Task], temperature: float = 2.0) -> None:
        super().__init__(tasks)
        if not temperature > 0:
            raise ValueError(f"The 'temperature' parameter of DWA must be > 0. Got {temperature!r} instead.")
        self.temperature = temperature
        n = len(tasks)
        self.register_buffer("epoch_sum", torch.zeros(n, dtype=torch.float64))
        self.register_buffer("epoch_count", torch.zeros(n, dtype=torch.long))
        self.register_buffer("history", torch.full((2, n), float("nan"), dtype=torch.float64))
        self._kept: tuple[Tensor, Tensor, tuple[object, ...], Tensor] | None = None  # see weights()

    def weights(self, losses: Tensor, present: Tensor, *, step: int) -> Tensor:
        self.epoch_sum.add_(torch.where(present, losses.detach(), 0.0))
        self.epoch_count.add_(present)
        # The weights change only with the history (an epoch's end, a reset and a load write it in
        # place) and the tasks present: kept while both tensors are the same, unchanged (the engine
        # hands over the same `present` while the counts repeat), instead of ~10 ops every step.
        versions = (self.history._version, present._version, losses.dtype, losses.device)
        kept = self._kept
        if kept is not None and kept[0] is self.history and kept[1] is present and kept[2] == versions:
            return kept[3]
        ratios = (self.history[1] / self.history[0]).to(losses)
        if bool(torch.isfinite(ratios[present]).all()):
            logits = torch.where(present, ratios / self.temperature, -torch.inf)
            weights = present.sum() * torch.softmax(logits, dim=0)
        else:
            weights = torch.ones_like(losses)
        self._kept = (self.history, present, versions, weights)
        return weights

    def on_epoch_end(self, epoch: int) -> None:
        seen = self.epoch_count > 0
        means = self.epoch_sum / self.epoch_count.clamp(min=1)
        self.history[0] = torch.where(seen, self.history[1], self.history[0])
        self.history[1] = torch.where(seen, means, self.history[1])
        self.epoch_sum.zero_()
        self.epoch_count.zero_()

    def reset(self) -> None:
        self.epoch_sum.zero_()
        self.epoch_count.zero_()
        self.history.fill_(float("nan"))

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}"
