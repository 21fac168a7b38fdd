"""GradNorm (Chen, Badrinarayanan, Lee & Rabinovich, 2018)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import Tensor

from ..tasks import Task
from ._base import GramianBalancer, Level
from ._factory import BalancerInfo, register_balancer

__all__ = ["GradNorm"]


@register_balancer("gradnorm", "GradNorm: equal gradient norms at the last shared layer.",
                   BalancerInfo("Chen et al. 2018, ICML Eq. 1-2", "gramian", ("last_shared",), stateful=True))
class GradNorm(GramianBalancer):
    r"""GradNorm of `Chen et al. (2018), "GradNorm: Gradient Normalization for Adaptive Loss
    Balancing in Deep Multitask Networks" <https://arxiv.org/abs/1711.02257>`_, Eq. 1-2.

    The network is trained on :math:`\sum_i w_i(t) L_i(t)`. The weights then take one gradient
    step on

    .. math::
        L_{grad} = \sum_i \left| G_W^{(i)}(t) - \bar G_W(t)\, [r_i(t)]^{\alpha} \right|_1

    where :math:`G_W^{(i)} = \|\nabla_W w_i L_i\|_2` on the weight matrix :math:`W` of the last
    shared layer (its bias is not part of :math:`W`), :math:`\bar G_W` their mean,
    :math:`\tilde L_i = L_i(t) / L_i(0)` and :math:`r_i = \tilde L_i / \mathrm{mean}_j \tilde L_j`.
    As in the paper the target :math:`\bar G_W r_i^{\alpha}` is a constant, so
    :math:`\partial L_{grad} / \partial w_i = \mathrm{sign}(G_W^{(i)} - \mathrm{target}_i)\,
    \|\nabla_W L_i\|_2`. After the step the updated weights are renormalised to the sum they
    had before it, so that all weights keep summing to :math:`T` (the paper's renormalisation;
    an absent task's weight is left as it was).

    :math:`L_i(0)` is task :math:`i`'s first **positive** loss: a task whose loss is exactly 0
    has no loss ratio yet, keeps its weight, and is left out of the update until it has one.
    The norms :math:`\|\nabla_W L_i\|` are the square roots of the diagonal of the Gramian that
    the backward engine computes over :math:`W` only (``level="last_shared"``).

    .. warning:: Stateful: weights and initial losses live in buffers; ``reset()`` clears them.

    Args:
        tasks: The run's tasks.
        alpha: Restoring-force strength :math:`\alpha` (the paper uses 0.12 to 3; 1.5 is common).
        lr: Learning rate of the weights' gradient step.
    """

    scales_heads: ClassVar[bool] = True
    loss_weights: Tensor
    initial_losses: Tensor

    def __init__(self, tasks: Sequence[Task], alpha: float = 1.5, lr: float = 0.025) -> None:
        super().__init__(tasks)
        if alpha < 0:
            raise ValueError(f"The 'alpha' parameter of GradNorm must be >= 0. Got {alpha!r} instead.")
        if not lr > 0:
            raise ValueError(f"The 'lr' parameter of GradNorm must be > 0. Got {lr!r} instead.")
        self.alpha = alpha
        self.lr = lr
        self.level: Level = "last_shared"
        self.register_buffer("loss_weights", torch.ones(len(tasks)))
        self.register_buffer("initial_losses", torch.full((len(tasks),), float("nan")))

    def gramian_weights(self, gramian: Tensor, losses: Tensor, present: Tensor, *, step: int) -> Tensor:
        index = present.nonzero().flatten()
        current = losses.detach()[index].to(self.loss_weights)
        initial = self.initial_losses[index]
        self.initial_losses[index] = torch.where(torch.isnan(initial) & (current > 0), current, initial)
        weights = self.loss_weights[index].clone()
        norms = gramian.diagonal().clamp(min=0).sqrt().to(weights)
        ratio = current / self.initial_losses[index]
        ready = torch.isfinite(ratio)
        if bool(ready.any()):
            self._update(index[ready], weights[ready], norms[ready], ratio[ready])
        return weights

    def _update(self, index: Tensor, weights: Tensor, norms: Tensor, inverse_rate: Tensor) -> None:
        grad_norms = weights * norms
        relative = inverse_rate / inverse_rate.mean()
        target = grad_norms.mean() * relative**self.alpha
        new = (weights - self.lr * torch.sign(grad_norms - target) * norms).clamp(min=1e-6)
        new = new * (weights.sum() / new.sum())
        if not bool(torch.isfinite(new).all()):
            raise FloatingPointError(f"GradNorm produced non-finite weights {new.tolist()} from gradient "
                                     f"norms {norms.tolist()} and loss ratios {inverse_rate.tolist()}.")
        self.loss_weights[index] = new

    def reset(self) -> None:
        self.loss_weights.fill_(1.0)
        self.initial_losses.fill_(float("nan"))

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, lr={self.lr}"
