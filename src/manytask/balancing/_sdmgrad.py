"""SDMGrad (Xiao, Ban & Ji, 2023)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import Tensor

from ..tasks import Task
from ._aggregation import _LEVELS
from ._base import GramianBalancer, Level
from ._factory import BalancerInfo, register_balancer
from ._simplex import project_onto_simplex, simplex_start

__all__ = ["SDMGrad"]


@register_balancer("sdmgrad", "SDMGrad: direction-oriented MGDA, pulled towards the mean gradient.",
                   BalancerInfo("Xiao, Ban & Ji 2023, NeurIPS (SDMGrad) Alg. 1", "gramian", _LEVELS,
                                stateful=True))
class SDMGrad(GramianBalancer):
    r"""SDMGrad of `Xiao, Ban & Ji (2023), "Direction-oriented Multi-objective Learning: Simple and
    Provable Stochastic Algorithms" <https://arxiv.org/abs/2305.18409>`_ (NeurIPS), Algorithm 1.

    With :math:`g_w = \sum_i w_i g_i` and the preference direction :math:`g_0 = \frac1T \sum_i g_i`
    (:math:`\tilde w = 1/T`), the weights solve

    .. math::
        \min_{w \in \Delta^T} \tfrac12 \|g_w + \lambda g_0\|^2
        = \tfrac12 (w + \lambda \tilde w)^\top G (w + \lambda \tilde w),

    approximately, by ``n_iter`` steps of projected SGD with momentum (as the official code:
    :math:`v \leftarrow \mu v + \hat G (w + \lambda \tilde w)`, :math:`w \leftarrow \Pi_\Delta(w - \eta v)`,
    the velocity restarting at 0 each step), warm-started from the previous step's :math:`w`.
    :math:`\hat G = G / s^2` with :math:`s = \frac1T \sum_i \sqrt{G_{ii}}` makes the step size
    independent of the gradients' scale (paper Sec. 6.1 and the official code, which adds 1e-4
    inside the square roots; here :math:`G = 0` leaves :math:`w` unchanged). The update is

    .. math::
        d = \frac{g_w + \lambda g_0}{1 + \lambda}, \qquad \text{weights } \frac{w + \lambda \tilde w}{1 + \lambda}

    (a convex combination; the official code multiplies it by :math:`T`, to match the sum of the
    losses). As :math:`\lambda \to \infty` it tends to the mean gradient; with a small enough
    ``lr`` and many iterations the weights tend to the minimiser above (:math:`\lambda = 0`: MGDA's).
    The official step size (10, on :math:`\hat G` whose diagonal is about 1) is large: with few
    tasks the inner iterates often jump between vertices of the simplex instead of converging,
    which is the method as published (and as torchjd's ``SDMGradWeighting`` runs it).

    **One batch.** The paper's double sampling estimates :math:`G` from two independent
    mini-batches (:math:`\hat G = J_\xi J_{\xi'}^\top`) and the update from a third; here one
    batch's Gramian :math:`J J^\top` replaces them (the contract hands the balancer one Gramian).
    The paper takes :math:`G` over all shared parameters (``level="exact"``);
    ``level="representation"`` uses the shared features' gradients.

    State and absent tasks: :math:`w` is kept dense over all tasks; a step reads the present
    tasks' entries, renormalised onto the simplex (uniform if they sum to 0), and writes them
    back; absent tasks' entries are untouched and :math:`\tilde w` is uniform over the present tasks.

    .. warning:: Stateful: ``reset()`` sets :math:`w` back to uniform.

    Args:
        tasks: The run's tasks.
        lamda: :math:`\lambda \ge 0` (LibMTL and torchjd: 0.3; the official class default is 0.6).
        level: ``"exact"`` (all shared parameters) or ``"representation"``.
        lr: Step size :math:`\eta` of the inner SGD (official code: 10).
        momentum: Momentum :math:`\mu \in [0, 1)` of the inner SGD (official code: 0.5).
        n_iter: Inner iterations per step (official code: 20).

    Examples:
        >>> from manytask.tasks import Regression
        >>> sdm = SDMGrad([Regression("a"), Regression("b")], lamda=0.0, lr=1.0, n_iter=200)
        >>> gramian = torch.tensor([[1.0, 0.0], [0.0, 4.0]])  # MGDA: w = (0.8, 0.2)
        >>> sdm.gramian_weights(gramian, torch.ones(2), torch.tensor([True, True]), step=0)
        tensor([0.8000, 0.2000])
    """

    simplex_weights: Tensor
    stateful: ClassVar[bool] = True

    def __init__(self, tasks: Sequence[Task], lamda: float = 0.3, level: Level = "exact", lr: float = 10.0,
                 momentum: float = 0.5, n_iter: int = 20) -> None:
        super().__init__(tasks, level)
        checks = (("lamda", lamda, math.isfinite(lamda) and lamda >= 0, "a finite number >= 0"),
                  ("lr", lr, math.isfinite(lr) and lr > 0, "a finite number > 0"),
                  ("momentum", momentum, 0 <= momentum < 1, "in [0, 1)"),
                  ("n_iter", n_iter, isinstance(n_iter, int) and n_iter >= 1, "an integer >= 1"))
        for name, value, ok, need in checks:
            if not ok:
                raise ValueError(f"The {name!r} parameter of SDMGrad must be {need}. Got {value!r} instead.")
        self.lamda, self.lr, self.momentum, self.n_iter = lamda, lr, momentum, n_iter
        self.register_buffer("simplex_weights", torch.full((len(tasks),), 1.0 / len(tasks), dtype=torch.float64))

    def gramian_weights(self, gramian: Tensor, losses: Tensor, present: Tensor, *, step: int) -> Tensor:
        index = present.nonzero().flatten().to(self.simplex_weights.device)
        t = index.numel()
        self._check(gramian, "gramian", (t, t))
        g = gramian.detach().double()
        scale = g.diagonal().clamp(min=0).sqrt().mean()
        g = g / torch.where(scale > 0, scale, 1.0) ** 2
        preference = torch.full((t,), 1.0 / t, dtype=torch.float64, device=g.device)
        w = simplex_start(self.simplex_weights[index].to(g))
        pull = self.lamda * (g @ preference)
        velocity = torch.zeros_like(w)
        for _ in range(self.n_iter):
            velocity = self.momentum * velocity + g @ w + pull
            w = project_onto_simplex(w - self.lr * velocity)
        self.simplex_weights[index] = w.to(self.simplex_weights)
        return ((w + self.lamda * preference) / (1 + self.lamda)).to(gramian.dtype)

    def reset(self) -> None:
        self.simplex_weights.fill_(1.0 / self.num_tasks)

    def extra_repr(self) -> str:
        return (f"lamda={self.lamda}, level={self.level!r}, lr={self.lr}, momentum={self.momentum}, "
                f"n_iter={self.n_iter}")
