"""GradDrop (Chen, Ngiam, Huang, Luong, Kretzschmar, Chai & Anguelov, 2020)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import Tensor

from ..tasks import Task
from ._base import JacobianBalancer, Level
from ._factory import BalancerInfo, register_balancer
from ._per_task import PerTask, per_task_values

__all__ = ["GradDrop"]

_LEVELS: tuple[Level, ...] = ("representation", "exact")


@register_balancer("graddrop", "GradDrop: per element, keep one sign of the task gradients, drawn by sign purity.",
                   BalancerInfo("Chen et al. 2020, NeurIPS (GradDrop) Eq. 1-3, Alg. 1", "jacobian", _LEVELS,
                                random=True, nonconflicting=False))
class GradDrop(JacobianBalancer):
    r"""Gradient sign dropout of `Chen et al. (2020), "Just Pick a Sign: Optimizing Deep Multitask
    Models with Gradient Sign Dropout" <https://arxiv.org/abs/2010.06808>`_ (NeurIPS), Eq. 1-3 and
    Algorithm 1.

    For every element of the task gradients :math:`g_i` (the rows of the Jacobian), the gradient
    positive sign purity and the masks are

    .. math::
        \mathcal P = \tfrac12\Big(1 + \frac{\sum_i g_i}{\sum_i |g_i|}\Big), \qquad
        M_i = \mathbb 1[\mathcal P > U]\, \mathbb 1[g_i > 0] + \mathbb 1[\mathcal P < U]\, \mathbb 1[g_i < 0],

    with :math:`U \sim \mathcal U(0, 1)` i.i.d. per element (drawn from the global torch RNG, which
    the trainer's checkpoints restore), and the update is
    :math:`\sum_i (k_i + (1 - k_i) M_i)\, g_i` (:math:`k_i` the leak: 1 passes task :math:`i`'s
    gradient through untouched). So each element keeps only the positive or only the negative
    task gradients, positive with probability :math:`\mathcal P`. :math:`f` (the paper's
    monotone transform of :math:`\mathcal P`) is the identity; an element where every
    :math:`g_i = 0` has :math:`\mathcal P = 1/2` (nothing to keep).

    **Where it is applied.** The paper inserts GradDrop at a shared activation layer :math:`A`
    (``level="representation"``, the default): the rows are the per-sample gradients w.r.t. the
    shared features, ``[T', B·D]``, and :math:`\mathcal P`, :math:`U` and the masks are per
    (sample, feature) element. For batched activations the authors' reference implementation
    (lingvo's ``GradDrop``, default ``marginalize_batch_dim=True``; LibMTL does the same) computes
    :math:`\mathcal P` and the signs from :math:`\sum_{\text{batch}} \mathrm{sgn}(A) \circ g_i`
    instead, one mask per feature shared by the batch and applied to every sample's gradient; the
    balancing contract passes neither the activations' values nor the batch layout, so that
    variant cannot be computed here. What is implemented is lingvo's
    ``marginalize_batch_dim=False`` variant, in which the :math:`\mathrm{sgn}(A)` factor does not
    change the masks' distribution (flipping the sign of an element maps
    :math:`\mathcal P \to 1 - \mathcal P`, and :math:`1 - U` is uniform too). ``level="exact"``
    applies the same per element of the shared parameters' gradients, as torchjd's ``GradDrop``
    aggregator and the GradDrop baseline of the SDMGrad authors' code do.

    Permuting the tasks permutes nothing in the update (the purity is symmetric) given the same
    random draws. Not conflict-free: with pairwise non-conflicting gradients a draw can still
    give an update that conflicts with one of them. Stateless; absent tasks are left out.

    Args:
        tasks: The run's tasks.
        level: ``"representation"`` (the paper's) or ``"exact"``.
        leak: :math:`k_i \in [0, 1]`: one number for every task, a list in task order or a
            mapping from task name (the paper's code: 0, or 1 for a task to pass through).

    Examples:
        >>> from manytask.tasks import Regression
        >>> drop = GradDrop([Regression("a"), Regression("b")])
        >>> jacobian = torch.tensor([[1.0, 2.0, -1.0], [3.0, -2.0, -1.0]])
        >>> _ = torch.manual_seed(0)  # U = (0.50, 0.77, 0.09): keeps +, -, - (P = 1, 1/2, 0)
        >>> drop.aggregate(jacobian, torch.ones(2), torch.tensor([True, True]), step=0)
        tensor([ 4., -2., -2.])
    """

    leak: Tensor
    stateful: ClassVar[bool] = False

    def __init__(self, tasks: Sequence[Task], level: Level = "representation", leak: float | PerTask = 0.0) -> None:
        super().__init__(tasks)
        if level not in _LEVELS:
            raise ValueError(f"The 'level' parameter of GradDrop must be 'representation' or 'exact'. "
                             f"Got {level!r} instead.")
        self.level = level
        values = ([float(leak)] * len(tasks) if isinstance(leak, (int, float))
                  else per_task_values("GradDrop", "leak", leak, self.task_names))
        bad = [(n, v) for n, v in zip(self.task_names, values) if not 0 <= v <= 1]
        if bad:
            raise ValueError(f"The 'leak' parameter of GradDrop must be in [0, 1] for every task. Got {bad[0][1]!r} "
                             f"for task {bad[0][0]!r} instead.")
        self.register_buffer("leak", torch.tensor(values), persistent=False)  # configuration, not state

    def aggregate(self, jacobian: Tensor, losses: Tensor, present: Tensor, *, step: int) -> Tensor:
        grads = jacobian.detach()
        index = present.nonzero().flatten().to(self.leak.device)
        if grads.ndim != 2 or grads.shape[0] != index.numel():
            raise ValueError(f"{self}: jacobian must have shape [{index.numel()}, P], got {list(grads.shape)}.")
        leak = self.leak[index].to(grads)[:, None]
        magnitude = grads.abs().sum(0)
        purity = 0.5 * (1 + grads.sum(0) / torch.where(magnitude > 0, magnitude, 1.0))
        uniform = torch.rand(purity.shape, dtype=grads.dtype, device=grads.device)
        mask = ((purity > uniform) & (grads > 0)) | ((purity < uniform) & (grads < 0))
        return ((leak + (1 - leak) * mask) * grads).sum(0)

    def extra_repr(self) -> str:
        return f"level={self.level!r}, leak={self.leak.tolist()}"
