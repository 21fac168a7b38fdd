"""MoCo (Fernando, Shen, Liu, Chaudhury, Murugesan & Chen, 2023)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import Tensor

from ..tasks import Task
from ._base import JacobianBalancer, Level
from ._factory import BalancerInfo, register_balancer
from ._simplex import project_onto_simplex, simplex_start
from ._tracked import TrackedGradients

__all__ = ["MoCo"]


@register_balancer("moco", "MoCo: tracked task gradients, weights by a projected step on their Gramian.",
                   BalancerInfo("Fernando et al. 2023, ICLR (MoCo) Alg. 1", "jacobian", ("exact",), stateful=True,
                                nonconflicting=False))
class MoCo(TrackedGradients, JacobianBalancer):
    r"""MoCo of `Fernando et al. (2023), "Mitigating Gradient Bias in Multi-objective Learning: A
    Provably Convergent Approach" <https://openreview.net/forum?id=dLAYGdKTi2>`_ (ICLR), Algorithm 1.

    Each task's gradient :math:`g_i` is tracked by :math:`y_i`, and the weights
    :math:`\lambda \in \Delta^T` take one projected gradient step on
    :math:`\tfrac12 \|Y^\top\lambda\|^2 + \tfrac\rho2 \|\lambda\|^2`:

    .. math::
        y_i \leftarrow y_i - \beta_t (y_i - g_i), \qquad
        \lambda \leftarrow \Pi_{\Delta}\big(\lambda - \gamma_t (Y Y^\top + \rho I)\lambda\big), \qquad
        d = Y^\top \lambda,

    with the new :math:`Y` (rows :math:`y_i`) in both places. Step sizes decay as
    :math:`\beta_t = \beta / t^{\sigma_\beta}` and :math:`\gamma_t = \gamma / t^{\sigma_\gamma}`, as
    in LibMTL's MoCo (from the authors' code; their defaults are used), :math:`t` counting the
    updates (per task for :math:`\beta_t`). :math:`y_i` starts at 0 and :math:`\lambda` uniform.
    ``normalize=True`` first rescales each :math:`g_i` to norm :math:`L_i`
    (:math:`g_i L_i / \|g_i\|`), as LibMTL's MoCo does; it is not in Algorithm 1.

    **Exact level only.** :math:`y_i` averages gradients across steps, which is meaningful for
    the shared parameters (fixed coordinates) but not for gradients w.r.t. the shared features
    of different batches (other samples at every step), so ``level`` is always ``"exact"`` (as
    in the paper and LibMTL).

    State and absent tasks: :math:`Y` ``[T, P]`` is a buffer created on the first step (``P``
    shared parameters; ``state_dict`` and ``load_state_dict`` carry it, ``reset()`` drops it);
    :math:`\lambda` and the per-task counts are dense over all tasks. An absent task's
    :math:`y_i`, :math:`\lambda_i` and count stay as they are; the projection runs over the
    present tasks' :math:`\lambda`, renormalised onto their simplex first. The tracked gradient
    lags the current one, so the update can conflict with a task even when no two task gradients
    do (no ``nonconflicting`` claim).

    .. warning:: Stateful: :math:`Y` (``T x P``, the size of ``T`` copies of the shared gradient),
       :math:`\lambda` and step counts live in buffers; ``reset()`` forgets them.

    Args:
        tasks: The run's tasks.
        beta: :math:`\beta \in (0, 1]`, step of the gradient tracking (LibMTL: 0.5).
        beta_sigma: Decay exponent :math:`\sigma_\beta \ge 0` (LibMTL: 0.5).
        gamma: :math:`\gamma > 0`, step of the weights (LibMTL: 0.1).
        gamma_sigma: Decay exponent :math:`\sigma_\gamma \ge 0` (LibMTL: 0.5).
        rho: :math:`\rho \ge 0`, the weights' :math:`\ell_2` regulariser (LibMTL: 0).
        normalize: Rescale each gradient to norm :math:`L_i` first (LibMTL).

    Examples:
        >>> from manytask.tasks import Regression
        >>> moco = MoCo([Regression("a"), Regression("b")], beta=1.0, gamma=0.5)
        >>> jacobian = torch.tensor([[1.0, 0.0], [0.0, 2.0]])  # y = g; λ = Π((.5, .5) - .5 (.5, 2))
        >>> moco.aggregate(jacobian, torch.ones(2), torch.tensor([True, True]), step=0)
        tensor([0.8750, 0.2500])
        >>> moco.weights.tolist()
        [0.875, 0.125]
    """

    weights: Tensor
    counts: Tensor
    steps: Tensor
    stateful: ClassVar[bool] = True

    def __init__(self, tasks: Sequence[Task], beta: float = 0.5, beta_sigma: float = 0.5, gamma: float = 0.1,
                 gamma_sigma: float = 0.5, rho: float = 0.0, normalize: bool = False) -> None:
        super().__init__(tasks)
        checks = (("beta", beta, 0 < beta <= 1, "in (0, 1]"),
                  ("beta_sigma", beta_sigma, math.isfinite(beta_sigma) and beta_sigma >= 0, "a finite number >= 0"),
                  ("gamma", gamma, math.isfinite(gamma) and gamma > 0, "a finite number > 0"),
                  ("gamma_sigma", gamma_sigma, math.isfinite(gamma_sigma) and gamma_sigma >= 0, "a finite number >= 0"),
                  ("rho", rho, math.isfinite(rho) and rho >= 0, "a finite number >= 0"))
        for name, value, ok, need in checks:
            if not ok:
                raise ValueError(f"The {name!r} parameter of MoCo must be {need}. Got {value!r} instead.")
        self.level: Level = "exact"
        self.beta, self.beta_sigma, self.gamma, self.gamma_sigma = beta, beta_sigma, gamma, gamma_sigma
        self.rho, self.normalize = rho, normalize
        n = len(tasks)
        self.register_buffer("tracked", None)
        self.register_buffer("weights", torch.full((n,), 1.0 / n, dtype=torch.float64))  # = reset() in any dtype
        self.register_buffer("counts", torch.zeros(n, dtype=torch.long))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    def aggregate(self, jacobian: Tensor, losses: Tensor, present: Tensor, *, step: int) -> Tensor:
        index = present.nonzero().flatten().to(self.weights.device)
        grads = jacobian.detach()
        if grads.ndim != 2 or grads.shape[0] != index.numel():
            raise ValueError(f"{self}: jacobian must have shape [{index.numel()}, P], got {list(grads.shape)}.")
        tracked = self._track(grads, self.num_tasks, "MoCo")
        if self.normalize:
            norms = grads.norm(dim=1, keepdim=True)
            scale = losses.detach()[present].to(grads)[:, None] / torch.where(norms > 0, norms, 1.0)
            grads = grads * scale
        self.counts[index] += 1
        beta = self.beta / self.counts[index].to(grads).pow(self.beta_sigma)
        y = tracked[index]
        y = y - beta[:, None] * (y - grads)
        tracked[index] = y
        self.steps += 1
        gamma = self.gamma / self.steps.to(grads).pow(self.gamma_sigma)
        lam = simplex_start(self.weights[index].to(grads))
        lam = project_onto_simplex(lam - gamma * (y @ (y.T @ lam) + self.rho * lam))
        self.weights[index] = lam.to(self.weights)
        return lam @ y

    def reset(self) -> None:
        self.tracked = None
        self.weights.fill_(1.0 / self.num_tasks)
        self.counts.zero_()
        self.steps.zero_()

    def extra_repr(self) -> str:
        return (f"beta={self.beta}, beta_sigma={self.beta_sigma}, gamma={self.gamma}, "
                f"gamma_sigma={self.gamma_sigma}, rho={self.rho}, normalize={self.normalize}")
