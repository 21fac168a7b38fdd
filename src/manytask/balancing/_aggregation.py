"""Gradient aggregation: weights read off the Gramian of the per-task gradients."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import Tensor
from torchjd.aggregation import Weighting

from ..tasks import Task
from ._base import GramianBalancer, Level
from ._factory import BalancerInfo, register_balancer
from ._min_norm import min_norm_weights
from ._state import WrappedState

__all__ = ["MGDA", "TorchJDWeighting"]

_LEVELS: tuple[Level, ...] = ("exact", "representation")



class TorchJDWeighting(WrappedState, GramianBalancer):
    r"""Any torchjd Gramian ``Weighting`` as a manytask balancer.

    ``level="exact"``: the Gramian of the present tasks' gradients w.r.t. **all shared
    parameters**, computed by the backward engine without building the Jacobian.
    ``level="representation"``: the Gramian of their gradients w.r.t. the shared representation
    :math:`z` (Sener & Koltun's MGDA-UB idea, for any weighting), about one backward pass.
    Either way the shared parameters receive :math:`\sum_i w_i \nabla L_i` and each task's own
    parameters the plain gradient of its own loss.

    A stateful torchjd weighting (one with ``reset()``: GradVac, SDMGrad, ...) keeps its state by
    row position, so a step with an absent task raises rather than read one task's state for
    another; a stateless one weights the present tasks. State that the weighting keeps in plain
    attributes (numbers, arrays, tensors) is saved with ``get_extra_state``, so a stateful
    weighting resumes exactly; an attribute a checkpoint cannot hold raises when the checkpoint
    is written (list it in ``ignore`` if it is rebuilt).

    Args:
        tasks: The run's tasks.
        weighting: A torchjd weighting of a Gramian ``[T', T'] -> [T']``.
        level: ``"exact"`` or ``"representation"``.
        ignore: Attributes of the weighting that are derived and need not be saved.

    Examples:
        >>> from torchjd.aggregation import MeanWeighting
        >>> from manytask.tasks import Regression
        >>> TorchJDWeighting([Regression("a"), Regression("b")], MeanWeighting()).level
        'exact'
    """

    wrapped: ClassVar[str] = "weighting"

    def __init__(self, tasks: Sequence[Task], weighting: Weighting, level: Level = "exact",
                 ignore: tuple[str, ...] = ()) -> None:
        super().__init__(tasks, level)
        self.weighting = weighting
        self.ignore = ignore

    def gramian_weights(self, gramian: Tensor, losses: Tensor, present: Tensor, *, step: int) -> Tensor:
        if callable(getattr(self.weighting, "reset", None)) and not bool(present.all()):  # torchjd's Stateful
            absent = [n for n, p in zip(self.task_names, present.tolist()) if not p]
            raise ValueError(f"{type(self.weighting).__name__} (torchjd) keeps state per task by row position, "
                             f"so it needs every task in every step, but {absent} have no label in this batch "
                             "(another task's state would be read for theirs). Use a manytask balancer, or give "
                             "every batch labels for every task.")
        return self.weighting(gramian)


@register_balancer("mgda", "MGDA: the min-norm point of the task gradients' convex hull, solved exactly.",
                   BalancerInfo("Sener & Koltun 2018, NeurIPS Eq. 3", "gramian", _LEVELS))
class MGDA(GramianBalancer):
    r"""Multiple-gradient descent of `Sener & Koltun (2018), "Multi-Task Learning as
    Multi-Objective Optimization" <https://arxiv.org/abs/1810.04650>`_, Eq. 3 (MGDA-UB at
    ``level="representation"``, Sec. 3.3).

    The update is the min-norm point of the convex hull of the task gradients:

    .. math::
        \min_{\alpha \in \Delta^{T}} \Big\| \sum_i \alpha_i \nabla_\theta L_i \Big\|_2^2
        = \min_{\alpha \in \Delta^{T}} \alpha^\top G \alpha

    solved exactly on the Gramian :math:`G` (an active-set method on the KKT conditions, see
    :func:`~manytask.balancing.min_norm_weights`); for two tasks this is Algorithm 1's
    :math:`\alpha = \mathrm{clip}_{[0,1]} \frac{(g_2 - g_1)^\top g_2}{\|g_1 - g_2\|^2}`.

    ``normalization`` follows Sener & Koltun's code (``gradient_normalizers`` in
    isl-org/MultiObjectiveOptimization, "optional and not included in the paper"): the weights
    are those of the min-norm point of the normalised gradients :math:`g_i / n_i`, with
    :math:`n_i = 1` (``"none"``), :math:`\|g_i\|` (``"l2"``), :math:`L_i` (``"loss"``) or
    :math:`L_i \|g_i\|` (``"loss+"``), and are applied to the raw losses, as in their training loop;
    i.e. :math:`\alpha = \arg\min_{\Delta} \alpha^\top N^{-1} G N^{-1} \alpha`.

    Args:
        tasks: The run's tasks.
        level: ``"exact"`` (all shared parameters) or ``"representation"``.
        tol: Tolerance of the KKT conditions, relative to the Gramian's scale.
        normalization: ``"none"`` (the paper), ``"l2"``, ``"loss"`` or ``"loss+"`` (their code's
            options; a zero norm or loss leaves that gradient as it is; ``"loss"`` and ``"loss+"``
            need positive losses).
    """

    stateful: ClassVar[bool] = False

    def __init__(self, tasks: Sequence[Task], level: Level = "exact", tol: float = 1e-9,
                 normalization: str = "none") -> None:
        super().__init__(tasks, level)
        if not tol > 0:
            raise ValueError(f"The 'tol' parameter of MGDA must be > 0. Got {tol!r} instead.")
        if normalization not in ("none", "l2", "loss", "loss+"):
            raise ValueError("The 'normalization' parameter of MGDA must be 'none', 'l2', 'loss' or 'loss+'. "
                             f"Got {normalization!r} instead.")
        self.tol = tol
        self.normalization = normalization

    def gramian_weights(self, gramian: Tensor, losses: Tensor, present: Tensor, *, step: int) -> Tensor:
        if self.normalization == "none":
            return min_norm_weights(gramian, tol=self.tol)
        norms = gramian.diagonal().clamp(min=0).sqrt()
        present_losses = losses[present].to(gramian)
        if self.normalization in ("loss", "loss+") and not bool((present_losses > 0).all()):
            bad = [n for n, p, v in zip(self.task_names, present.tolist(), losses.tolist()) if p and not v > 0]
            raise ValueError(f"MGDA with normalization={self.normalization!r} needs positive losses; at step {step} "
                             f"the loss of {bad} is not. Use normalization 'l2' or 'none'.")
        scale = {"l2": norms, "loss": present_losses, "loss+": present_losses * norms}[self.normalization]
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        return min_norm_weights(gramian / scale[:, None] / scale[None, :], tol=self.tol)
