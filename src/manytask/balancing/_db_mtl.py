"""DB-MTL (Lin, Ye, Xu, Shi & Zhang, 2023)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import Tensor

from ..tasks import Task
from ._base import JacobianBalancer, Level
from ._factory import BalancerInfo, register_balancer
from ._positive import check_positive
from ._tracked import TrackedGradients

__all__ = ["DBMTL"]


@register_balancer("db-mtl", "DB-MTL: log losses, EMA of their gradients, each scaled to the largest norm.",
                   BalancerInfo("Lin et al. 2023, arXiv 2308.12029 (DB-MTL) Sec. 3, Alg. 1", "jacobian", ("exact",),
                                stateful=True, scale="invariant", nonconflicting=False))
class DBMTL(TrackedGradients, JacobianBalancer):
    r"""DB-MTL of `Lin, Ye, Xu, Shi & Zhang (2023), "Dual-Balancing for Multi-Task Learning"
    <https://arxiv.org/abs/2308.12029>`_, Sec. 3 and Algorithm 1.

    Loss-scale balancing takes the gradient of :math:`\log (L_i + \epsilon)`; gradient-magnitude
    balancing keeps an exponential moving average of it and scales every task's average to the
    largest norm:

    .. math::
        \hat g_i \leftarrow \beta_t \hat g_i + (1 - \beta_t) \frac{\nabla L_i}{L_i + \epsilon}, \qquad
        d = \sum_i \frac{\max_j \|\hat g_j\|}{\|\hat g_i\|} \hat g_i,

    with :math:`\beta_t = \beta / t^{\sigma}` (:math:`t` counting task :math:`i`'s updates) and
    :math:`\hat g_i = 0` at the start, as in the paper's code (LibMTL's ``DB_MTL``; defaults
    :math:`\beta = 0.9`, :math:`\sigma = 0`). The backward engine hands over the Jacobian of the
    losses, so row :math:`i` is divided by :math:`L_i + \epsilon` (:math:`\nabla \log L = \nabla L / L`).
    A task whose :math:`\hat g_i` is 0 contributes nothing. With :math:`\epsilon = 0` (default)
    the update is exactly invariant to the scale of each loss; a present loss :math:`\le 0` then
    raises ``ValueError`` naming the task (LibMTL uses :math:`\epsilon = 10^{-8}`).

    **Heads.** In the paper every parameter, heads included, follows :math:`\nabla \log L_i`; the
    backward engine gives each head the plain gradient of its own loss, :math:`\nabla L_i`
    (the same direction, scaled by :math:`L_i`; Adam removes most of that difference).

    **Exact level only.** The moving average is over gradients of the shared parameters across
    steps (the paper and LibMTL refuse representation gradients).

    State and absent tasks: :math:`\hat G` ``[T, P]`` is a buffer created on the first step
    (``state_dict`` and ``load_state_dict`` carry it, ``reset()`` drops it) and the per-task
    counts are dense over all tasks; an absent task's :math:`\hat g_i` and count stay as they are
    and it is left out of the update. The average lags the current gradient, so the update can
    conflict with a task even when no two task gradients do (no ``nonconflicting`` claim).

    .. warning:: Stateful: :math:`\hat G` (``T x P``) and the counts live in buffers;
       ``reset()`` forgets them.

    Args:
        tasks: The run's tasks.
        beta: :math:`\beta \in [0, 1)` of the moving average (0: no averaging).
        beta_sigma: Decay exponent :math:`\sigma \ge 0` of :math:`\beta_t`.
        eps: :math:`\epsilon \ge 0` added to each loss inside the logarithm.

    Examples:
        >>> from manytask.tasks import Regression
        >>> db = DBMTL([Regression("a"), Regression("b")], beta=0.0)
        >>> jacobian = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
        >>> db.aggregate(jacobian, torch.tensor([2.0, 0.1]), torch.tensor([True, True]), step=0)
        tensor([10., 10.])
    """

    counts: Tensor
    stateful: ClassVar[bool] = True

    def __init__(self, tasks: Sequence[Task], beta: float = 0.9, beta_sigma: float = 0.0, eps: float = 0.0) -> None:
        super().__init__(tasks)
        checks = (("beta", beta, 0 <= beta < 1, "in [0, 1)"),
                  ("beta_sigma", beta_sigma, math.isfinite(beta_sigma) and beta_sigma >= 0, "a finite number >= 0"),
                  ("eps", eps, math.isfinite(eps) and eps >= 0, "a finite number >= 0"))
        for name, value, ok, need in checks:
            if not ok:
                raise ValueError(f"The {name!r} parameter of DBMTL must be {need}. Got {value!r} instead.")
        self.level: Level = "exact"
        self.beta, self.beta_sigma, self.eps = beta, beta_sigma, eps
        self.register_buffer("tracked", None)
        self.register_buffer("counts", torch.zeros(len(tasks), dtype=torch.long))

    def aggregate(self, jacobian: Tensor, losses: Tensor, present: Tensor, *, step: int) -> Tensor:
        index = present.nonzero().flatten().to(self.counts.device)
        grads = jacobian.detach()
        if grads.ndim != 2 or grads.shape[0] != index.numel():
            raise ValueError(f"{self}: jacobian must have shape [{index.numel()}, P], got {list(grads.shape)}.")
        shifted = losses.detach() + self.eps
        check_positive("DB-MTL" if self.eps == 0 else f"DB-MTL (eps={self.eps:g}: loss + eps)", shifted, present,
                       self.task_names, "Set eps (e.g. eps=1e-8, as DB-MTL's code does) if a loss can reach 0.",
                       step=step)
        tracked = self._track(grads, self.num_tasks, "DB-MTL")
        log_grads = grads / shifted[present].to(grads)[:, None]
        self.counts[index] += 1
        beta = self.beta / self.counts[index].to(grads).pow(self.beta_sigma)
        average = log_grads + beta[:, None] * (tracked[index] - log_grads)
        tracked[index] = average
        norms = average.norm(dim=1)
        scale = torch.where(norms > 0, norms.max() / torch.where(norms > 0, norms, 1.0), 0.0)
        return scale @ average

    def reset(self) -> None:
        self.tracked = None
        self.counts.zero_()

    def extra_repr(self) -> str:
        return f"beta={self.beta}, beta_sigma={self.beta_sigma}, eps={self.eps}"
