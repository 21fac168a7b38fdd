"""FAMO: fast adaptive multitask optimization (Liu, Feng, Stone & Liu, 2023)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from ..tasks import Task
from ._base import LossBalancer
from ._factory import BalancerInfo, register_balancer
from ._per_task import PerTask, per_task_values
from ._positive import check_positive

__all__ = ["FAMO"]

_BETAS = (0.9, 0.999)  # Adam's defaults, as in the paper's code
_ADAM_EPS = 1e-8


def _host(values: Tensor) -> np.ndarray:
    """``values`` as a NumPy array on the host (a view of a CPU tensor, else a copy). FAMO's
    arithmetic is on ``[T]`` vectors, where a torch call's dispatch (2-5 µs) is the whole cost: its
    weights and after-step update took 0.61 ms a step at T = 2 in ~80 torch calls, 0.22 ms so."""
    return values.detach().cpu().numpy()


@register_balancer("famo", "FAMO: balanced loss decrease from loss values only (O(1) per step).",
                   BalancerInfo("Liu, Feng, Stone & Liu 2023, NeurIPS (FAMO) Alg. 1-2", "losses", stateful=True,
                                scale="direction"))
class FAMO(LossBalancer):
    r"""FAMO of `Liu, Feng, Stone & Liu (2023), "FAMO: Fast Adaptive Multitask Optimization"
    <https://arxiv.org/abs/2306.03792>`_ (NeurIPS), Algorithm 1 and its practical form
    (Algorithm 2, the official code and LibMTL).

    With logits :math:`\xi` and :math:`z = \mathrm{softmax}(\xi)`, the model is updated along

    .. math::
        d = \sum_i \frac{c\, z_i}{L_i - b_i + \epsilon} \nabla L_i, \qquad
        c = \Big(\sum_j \frac{z_j}{L_j - b_j + \epsilon}\Big)^{-1},

    the gradient of :math:`c \sum_i z_i \log(L_i - b_i + \epsilon)` with :math:`c` held constant,
    so the weights :math:`w_i = c z_i / (L_i - b_i + \epsilon)` sum to 1. After the optimizer
    step, the same batch's losses under the updated model (``recompute()``) give
    :math:`\delta_i = \log(L_i^{\text{old}} - b_i + \epsilon) - \log(L_i^{\text{new}} - b_i + \epsilon)`,
    and the logits take one step on the gradient :math:`J_z^\top \delta` (:math:`J_z` the
    softmax Jacobian) with weight decay :math:`\gamma`: Adam (``optimizer="adam"``, Algorithm 2
    and the code) or :math:`\xi \leftarrow \xi - \beta(J_z^\top\delta + \gamma \xi)`
    (``optimizer="sgd"``, Algorithm 1). Tasks that improved most lose weight.

    Absent tasks: the softmax runs over the present tasks only; an absent task's logit and its
    Adam moments and step count stay as they are (each logit keeps its own Adam step count, so
    with every task present this is exactly ``torch.optim.Adam``). ``recompute()`` (one extra
    forward) runs only when two or more tasks are present: with one, :math:`J_z^\top\delta = 0`
    whatever :math:`\delta`, and only the weight decay acts. Losses must stay above
    :math:`b_i - \epsilon` (the logarithm); a loss that does not raises ``ValueError`` naming
    the task. The scale of a loss does not change the direction of the update (nor, for
    :math:`b = 0`, the logits' steps) up to :math:`\epsilon`.

    .. warning:: Stateful: logits and Adam moments live in buffers; ``reset()`` zeroes them.

    Args:
        tasks: The run's tasks.
        lr: Step size :math:`\beta` of the logits (paper: 0.025).
        weight_decay: :math:`\gamma` (paper's Algorithm 2 and LibMTL: 1e-3; the official code's
            default is 1e-5).
        optimizer: ``"adam"`` (practical, default) or ``"sgd"`` (Algorithm 1).
        min_losses: Lower bounds :math:`b_i` of the losses (list in task order or mapping from
            task name); default 0.
        eps: :math:`\epsilon` inside the logarithms (the code's 1e-8).

    Examples:
        >>> from manytask.tasks import Regression
        >>> balancer = FAMO([Regression("a"), Regression("b")])
        >>> present = torch.tensor([True, True])
        >>> _, weights = balancer.total(torch.tensor([1.0, 3.0]), present, step=0)
        >>> [round(w, 4) for w in weights.tolist()]
        [0.75, 0.25]
        >>> balancer.on_after_optimizer_step(torch.tensor([1.0, 3.0]), present, step=0,
        ...                                  recompute=lambda: torch.tensor([0.5, 3.0]))
        >>> bool(balancer.logits[0] < 0 < balancer.logits[1])  # task a improved: less weight
        True
    """

    logits: Tensor
    exp_avg: Tensor
    exp_avg_sq: Tensor
    steps: Tensor
    min_losses: Tensor

    def __init__(self, tasks: Sequence[Task], lr: float = 0.025, weight_decay: float = 1e-3,
                 optimizer: Literal["adam", "sgd"] = "adam", min_losses: PerTask | None = None,
                 eps: float = 1e-8) -> None:
        super().__init__(tasks)
        for name, value in (("lr", lr), ("weight_decay", weight_decay), ("eps", eps)):
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"The {name!r} parameter of FAMO must be a finite number >= 0. "
                                 f"Got {value!r} instead.")
        if optimizer not in ("adam", "sgd"):
            raise ValueError(f"The 'optimizer' parameter of FAMO must be 'adam' or 'sgd'. Got {optimizer!r} instead.")
        n = len(tasks)
        bounds = [0.0] * n if min_losses is None else per_task_values("FAMO", "min_losses", min_losses,
                                                                        self.task_names)
        self.lr, self.weight_decay, self.optimizer, self.eps = lr, weight_decay, optimizer, eps
        self.register_buffer("logits", torch.zeros(n))
        self.register_buffer("exp_avg", torch.zeros(n))
        self.register_buffer("exp_avg_sq", torch.zeros(n))
        self.register_buffer("steps", torch.zeros(n, dtype=torch.long))
        self.register_buffer("min_losses", torch.tensor(bounds), persistent=False)  # configuration, not state

    def _shifted(self, losses: Tensor, present: np.ndarray, which: str, step: int) -> np.ndarray:
        shifted = _host(losses.to(self.logits.dtype)) - _host(self.min_losses) + self.eps
        if (present & (shifted <= 0)).any():  # raises, naming the task, unless a loss is not finite
            check_positive(f"FAMO ({which} losses, minus min_losses, plus eps)", torch.from_numpy(shifted),
                           torch.from_numpy(present), self.task_names,
                           "Losses must stay above min_losses - eps; lower min_losses.", step=step)
        return shifted

    def _softmax(self, present: np.ndarray) -> np.ndarray:
        logits = _host(self.logits)
        shifted = np.exp(logits - logits[present].max(), out=np.zeros_like(logits), where=present)
        return shifted / shifted.sum()

    def weights(self, losses: Tensor, present: Tensor, *, step: int) -> Tensor:
        mask = _host(present)
        if not mask.any():
            return torch.zeros_like(losses)
        shifted = self._shifted(losses, mask, "the", step)
        with np.errstate(all="ignore"):  # a NaN or infinite loss gives NaN weights, for the engine to name
            ratio = np.divide(self._softmax(mask), shifted, out=np.zeros_like(shifted), where=mask)
            return torch.from_numpy(ratio / ratio.sum()).to(losses)

    def on_after_optimizer_step(self, losses: Tensor, present: Tensor, *, step: int,
                                recompute: Callable[[], Tensor]) -> None:
        mask = _host(present)
        count = int(mask.sum())
        if count == 0:
            return
        grad = np.zeros_like(_host(self.logits))
        if count >= 2:
            before = self._shifted(losses, mask, "the step's", step)
            new = _host(recompute().to(self.logits.dtype))
            bad = mask & ~np.isfinite(new)
            if bad.any():
                raise ValueError(f"FAMO: the recomputed loss of task {self.task_names[int(bad.argmax())]!r} after the "
                                 "optimizer step is not finite; the logits are left unchanged.")
            after = self._shifted(torch.from_numpy(new), mask, "the recomputed", step)
            delta = np.log(before, out=np.zeros_like(before), where=mask)
            delta -= np.log(after, out=np.zeros_like(after), where=mask)
            z = self._softmax(mask)
            grad = z * (delta - (z * delta).sum())  # J_softmax^T delta (J is symmetric)
        self._step(grad, mask)

    def _step(self, grad: np.ndarray, present: np.ndarray) -> None:
        logits = _host(self.logits)
        grad = grad + self.weight_decay * logits
        if self.optimizer == "sgd":
            self.logits.copy_(torch.from_numpy(np.where(present, logits - self.lr * grad, logits)))
            return
        beta1, beta2 = _BETAS
        steps = _host(self.steps) + present
        exp_avg, exp_avg_sq = _host(self.exp_avg), _host(self.exp_avg_sq)
        exp_avg = np.where(present, beta1 * exp_avg + (1 - beta1) * grad, exp_avg)
        exp_avg_sq = np.where(present, beta2 * exp_avg_sq + (1 - beta2) * grad * grad, exp_avg_sq)
        counts = np.maximum(steps, 1).astype(logits.dtype)
        correction1 = 1 - np.power(beta1, counts)
        correction2 = 1 - np.power(beta2, counts)
        denominator = np.sqrt(exp_avg_sq) / np.sqrt(correction2) + _ADAM_EPS
        update = self.lr / correction1 * exp_avg / denominator
        for buffer, value in ((self.logits, np.where(present, logits - update, logits)), (self.steps, steps),
                              (self.exp_avg, exp_avg), (self.exp_avg_sq, exp_avg_sq)):
            buffer.copy_(torch.from_numpy(value))

    def reset(self) -> None:
        for buffer in (self.logits, self.exp_avg, self.exp_avg_sq, self.steps):
            buffer.zero_()

    def extra_repr(self) -> str:
        return (f"lr={self.lr}, weight_decay={self.weight_decay}, optimizer={self.optimizer!r}, "
                f"eps={self.eps}")
