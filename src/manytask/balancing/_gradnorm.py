"""GradNorm (Chen, Badrinarayanan, Lee & Rabinovich, 2018)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor
from torchjd.autojac import jac

from ..tasks import Task
from ._base import Balancer, StepInfo

__all__ = ["GradNorm"]


class GradNorm(Balancer):
    r"""GradNorm of `Chen et al. (2018), "GradNorm: Gradient Normalization for Adaptive Loss
    Balancing in Deep Multitask Networks" <https://arxiv.org/abs/1711.02257>`_, Eq. 1-2.

    The network is trained on :math:`\sum_i w_i(t) L_i(t)`. The weights then take one gradient
    step on

    .. math::
        L_{grad} = \sum_i \left| G_W^{(i)}(t) - \bar G_W(t)\, [r_i(t)]^{\alpha} \right|_1

    where :math:`G_W^{(i)} = \|\nabla_W w_i L_i\|_2` on the last shared layer :math:`W`,
    :math:`\bar G_W` their mean, :math:`\tilde L_i = L_i(t) / L_i(0)` and
    :math:`r_i = \tilde L_i / \mathrm{mean}_j \tilde L_j`. As in the paper the target
    :math:`\bar G_W r_i^{\alpha}` is a constant, so
    :math:`\partial L_{grad} / \partial w_i = \mathrm{sign}(G_W^{(i)} - \mathrm{target}_i)\,
    \|\nabla_W L_i\|_2`. After the step the weights are renormalised so that they sum to the
    number of tasks. :math:`L_i(0)` is task :math:`i`'s loss the first time it has labels.

    The per-task gradient norms come from one batched backward (torchjd ``jac``) over the
    last shared layer only.

    .. warning:: Stateful: weights and initial losses live in buffers; ``reset()`` clears them.

    Args:
        tasks: The run's tasks.
        alpha: Restoring-force strength :math:`\alpha` (the paper uses 0.12 to 3; 1.5 is common).
        lr: Learning rate of the weights' gradient step.
    """

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
        self.register_buffer("loss_weights", torch.ones(len(tasks)))
        self.register_buffer("initial_losses", torch.full((len(tasks),), float("nan")))

    def backward(self, losses: Mapping[str, Tensor], info: StepInfo) -> Tensor:
        names = list(losses)
        index = self.index(names).to(self.loss_weights.device)
        stacked = torch.stack([losses[n] for n in names])
        detached = stacked.detach().to(self.loss_weights)
        first = torch.isnan(self.initial_losses[index])
        self.initial_losses[index] = torch.where(first, detached, self.initial_losses[index])

        weights = self.loss_weights[index].clone()
        last_layer = info.model.last_shared_parameters()
        jacobians = jac([losses[n] for n in names], last_layer, retain_graph=True)
        norms = torch.cat([j.flatten(1) for j in jacobians], dim=1).norm(dim=1).to(weights)
        (weights.to(stacked) * stacked).sum().backward()
        self._update(index, weights, norms, detached)
        return weights

    def _update(self, index: Tensor, weights: Tensor, norms: Tensor, losses: Tensor) -> None:
        grad_norms = weights * norms
        inverse_rate = losses / self.initial_losses[index]
        relative = inverse_rate / inverse_rate.mean()
        target = grad_norms.mean() * relative**self.alpha
        new = (weights - self.lr * torch.sign(grad_norms - target) * norms).clamp(min=1e-6)
        self.loss_weights[index] = new * (weights.sum() / new.sum())

    def reset(self) -> None:
        self.loss_weights.fill_(1.0)
        self.initial_losses.fill_(float("nan"))

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, lr={self.lr}"
