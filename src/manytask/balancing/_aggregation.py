"""Gradient aggregation over the shared parameters, exact or at the shared representation."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import torch
from torch import Tensor
from torchjd.aggregation import GramianWeightedAggregator, MGDAWeighting, PCGradWeighting, Weighting
from torchjd.autojac import backward as jd_backward
from torchjd.autojac import jac_to_grad, mtl_backward

from ..tasks import Task
from ._base import Balancer, StepInfo

__all__ = ["GradientAggregation", "MGDA", "PCGrad", "Level"]

Level = Literal["exact", "representation"]


class GradientAggregation(Balancer):
    r"""Combine per-task gradients with weights read off their Gramian (a torchjd ``Weighting``).

    ``level="exact"``: the Jacobian of the present tasks' losses w.r.t. **all shared
    parameters** :math:`J \in \mathbb{R}^{T' \times P}` is computed in one batched (vmapped)
    backward through the trunk (torchjd ``mtl_backward``); the shared parameters receive
    :math:`w^\top J` with :math:`w = \mathrm{weighting}(J J^\top)`.

    ``level="representation"``: the Jacobian is taken w.r.t. the shared representation
    :math:`z` only, in one ordinary backward through the heads (each head reads its own leaf
    alias of :math:`z`, see ``StepInfo.task_features``); :math:`w` is read off its Gramian and
    :math:`w^\top J_z` is backpropagated through the trunk once (Sener & Koltun's MGDA-UB idea,
    applied to any Gramian weighting). Cost: about one backward pass.

    In both cases each task's own parameters receive the plain gradient of its own loss.

    Args:
        tasks: The run's tasks.
        weighting: torchjd weighting of a Gramian ``[T', T'] -> [T']``.
        level: ``"exact"`` or ``"representation"``.
    """

    def __init__(self, tasks: Sequence[Task], weighting: Weighting, level: Level = "exact") -> None:
        super().__init__(tasks)
        if level not in ("exact", "representation"):
            raise ValueError(
                f"The 'level' parameter of {type(self).__name__} must be 'exact' or "
                f"'representation'. Got {level!r} instead."
            )
        self.level: Level = level
        self.weighting = weighting
        self.needs_features = level == "representation"

    def backward(self, losses: Mapping[str, Tensor], info: StepInfo) -> Tensor:
        names = list(losses)
        values = [losses[n] for n in names]
        model = info.model
        task_params = [[p for p in model.task_parameters(n) if p.requires_grad] for n in names]
        if self.level == "representation":
            if info.features is None or info.task_features is None:
                raise ValueError(
                    f"{self} at the representation level needs the shared features; "
                    f"{type(model).__name__} has none. Use level='exact'."
                )
            heads: list[Tensor] = [p for ps in task_params for p in ps]
            return self._representation(values, names, heads, info.features, info.task_features)
        shared = [p for p in model.shared_parameters() if p.requires_grad]
        if info.features is not None:
            mtl_backward(values, features=info.features, tasks_params=task_params, shared_params=shared)
        else:
            heads = [p for ps in task_params for p in ps]
            jd_backward(values, inputs=shared, retain_graph=bool(heads))
            if heads:
                torch.stack(values).sum().backward(inputs=heads)
        return jac_to_grad(shared, GramianWeightedAggregator(self.weighting)).detach()

    def _representation(self, values: list[Tensor], names: list[str], heads: list[Tensor],
                        features: Tensor, task_features: dict[str, Tensor]) -> Tensor:
        # One backward through the heads: each task's head read its own leaf alias of the
        # features, so its .grad is that task's gradient w.r.t. the features, and each head's
        # parameters get the plain gradient of its own loss.
        torch.stack(values).sum().backward(inputs=[task_features[n] for n in names] + heads)
        grads = [task_features[n].grad for n in names]
        if any(g is None for g in grads):
            raise RuntimeError("A task's loss does not depend on its features; check the model's heads.")
        jacobian = torch.stack(grads)  # type: ignore[arg-type]  # [T', *features.shape]
        flat = jacobian.flatten(1)
        weights = self.weighting(flat @ flat.T)
        features.backward(torch.tensordot(weights.to(jacobian), jacobian, dims=1))
        return weights.detach()

    def extra_repr(self) -> str:
        return f"level={self.level!r}"


class MGDA(GradientAggregation):
    r"""Multiple-gradient descent of `Sener & Koltun (2018), "Multi-Task Learning as
    Multi-Objective Optimization" <https://arxiv.org/abs/1810.04650>`_, Eq. 3 (MGDA-UB at
    ``level="representation"``, Sec. 3.3).

    The update is the min-norm point of the convex hull of the task gradients:

    .. math::
        \min_{\alpha \in \Delta^{T}} \Big\| \sum_i \alpha_i \nabla_\theta L_i \Big\|_2^2

    For two tasks this is :math:`\alpha = \mathrm{clip}_{[0,1]}
    \frac{(g_2 - g_1)^\top g_2}{\|g_1 - g_2\|^2}` (Algorithm 1). Solved by torchjd's
    ``MGDAWeighting`` (Frank-Wolfe).

    Args:
        tasks: The run's tasks.
        level: ``"exact"`` (all shared parameters) or ``"representation"``.
        epsilon: Frank-Wolfe stopping tolerance.
        max_iters: Frank-Wolfe iteration cap.
    """

    def __init__(self, tasks: Sequence[Task], level: Level = "exact", epsilon: float = 1e-3,
                 max_iters: int = 100) -> None:
        super().__init__(tasks, MGDAWeighting(epsilon=epsilon, max_iters=max_iters), level)


class PCGrad(GradientAggregation):
    r"""Projecting conflicting gradients of `Yu et al. (2020), "Gradient Surgery for Multi-Task
    Learning" <https://arxiv.org/abs/2001.06782>`_, Algorithm 1 (Eq. in Sec. 2.2).

    Each :math:`g_i` is projected, in random order, onto the normal plane of every
    :math:`g_j` it conflicts with:
    :math:`g_i \leftarrow g_i - \frac{g_i^\top g_j}{\|g_j\|^2} g_j` if :math:`g_i^\top g_j < 0`;
    the update is :math:`\sum_i g_i`. Solved by torchjd's ``PCGradWeighting`` (uses the
    global torch RNG for the order, which the trainer's checkpoints restore).

    Args:
        tasks: The run's tasks.
        level: ``"exact"`` (all shared parameters) or ``"representation"``.
    """

    def __init__(self, tasks: Sequence[Task], level: Level = "exact") -> None:
        super().__init__(tasks, PCGradWeighting(), level)
