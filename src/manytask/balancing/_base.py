"""The balancing contract: per-task losses (or their Gramian) in, weights out; never ``backward``.

Every per-task quantity is dense over all ``T`` tasks of the run, in the run's task order, with
a ``present`` mask ``[T]`` (True where the task has labels in this batch). A task that is not
present gets weight 0, no gradient and no change of state.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar, Literal

import torch
from torch import Tensor, nn

from ..tasks import Task

__all__ = ["Balancer", "GramianBalancer", "JacobianBalancer", "LossBalancer", "Needs", "Level"]

Needs = Literal["losses", "gramian", "jacobian"]
#: Where per-task gradients are taken: all shared parameters (``exact``), the shared
#: representation (``representation``) or the last shared layer's weight (``last_shared``).
Level = Literal["exact", "representation", "last_shared"]


class Balancer(nn.Module):
    """Base of every balancing method.

    A balancer declares what it ``needs`` — the losses, the Gramian of the per-task gradients,
    or their Jacobian — and implements the one method that consumes it. The backward engine
    (``manytask.training.BackwardEngine``) computes what it needs and does every backward.

    State lives in buffers, parameters or ``get_extra_state`` so that it round-trips through
    ``state_dict``; ``reset()`` forgets it.

    Hooks (no-ops by default): :meth:`on_after_optimizer_step` and :meth:`on_epoch_end`.

    Args:
        tasks: All tasks of the run; per-task tensors follow this order.
    """

    needs: ClassVar[Needs] = "losses"
    #: True when the method keeps state between steps (the engine then checks that the losses
    #: are finite before the method sees them, so a bad step never changes its state).
    stateful: ClassVar[bool] = True
    #: True when the heads get ``w_i ∇L_i`` (loss weighting); False when each head gets the
    #: plain gradient of its own loss and only the shared part is combined (aggregation).
    scales_heads: ClassVar[bool] = True
    level: Level = "exact"

    def __init__(self, tasks: Sequence[Task]) -> None:
        super().__init__()
        if not tasks:
            raise ValueError(f"{type(self).__name__} needs at least one task.")
        self.task_names = tuple(t.name for t in tasks)

    @property
    def num_tasks(self) -> int:
        return len(self.task_names)

    def on_after_optimizer_step(self, losses: Tensor, present: Tensor, *, step: int,
                                recompute: Callable[[], Tensor]) -> None:
        """After the optimizer step. ``losses`` ``[T]`` were this step's (detached) losses;
        ``recompute()`` returns the losses ``[T]`` of the same batch under the updated model
        (one extra forward, run only if called)."""

    def on_epoch_end(self, epoch: int) -> None:
        """After the last step of loader epoch ``epoch``."""

    def reset(self) -> None:
        """Forget any state accumulated during training."""

    def _check(self, value: Tensor, name: str, shape: tuple[int, ...]) -> None:
        if tuple(value.shape) != shape:
            raise ValueError(f"{self}: {name} must have shape {list(shape)}, got {list(value.shape)}.")

    def __str__(self) -> str:
        return type(self).__name__


def check_level(owner: object, level: str) -> Level:
    """``level`` if it is ``"exact"`` or ``"representation"``; else a ValueError naming ``owner``."""
    if level not in ("exact", "representation"):
        raise ValueError(f"The 'level' parameter of {type(owner).__name__} must be 'exact' or "
                         f"'representation'. Got {level!r} instead.")
    return level  # type: ignore[return-value]


class LossBalancer(Balancer):
    """Loss weighting: the update is the gradient of ``sum_i w_i L_i`` (+ a regulariser)."""

    needs: ClassVar[Needs] = "losses"

    def weights(self, losses: Tensor, present: Tensor, *, step: int) -> Tensor:
        """Weights ``[T]`` of the losses ``[T]`` (absent tasks' entries are ignored).

        May carry gradients (learned weights, e.g. UW); must not read absent tasks' state.
        """
        raise NotImplementedError

    def regulariser(self, present: Tensor) -> Tensor | None:
        """A term added to the weighted loss (e.g. UW's log-variances), or None."""
        return None

    def total(self, losses: Tensor, present: Tensor, *, step: int) -> tuple[Tensor, Tensor]:
        """The scalar to backpropagate and the weights ``[T]`` (0 for absent tasks)."""
        self._check(losses, "losses", (self.num_tasks,))
        weights = torch.where(present, self.weights(losses, present, step=step), 0.0)
        total = (weights * losses).sum()
        regulariser = self.regulariser(present)
        if regulariser is not None:
            total = total + regulariser
        return total, weights


class GramianBalancer(Balancer):
    """Weights read off the Gramian ``G = J Jᵀ`` of the present tasks' gradients."""

    needs: ClassVar[Needs] = "gramian"
    scales_heads: ClassVar[bool] = False

    def __init__(self, tasks: Sequence[Task], level: Level = "exact") -> None:
        super().__init__(tasks)
        self.level = check_level(self, level)

    def extra_repr(self) -> str:
        return f"level={self.level!r}"

    def gramian_weights(self, gramian: Tensor, losses: Tensor, present: Tensor, *, step: int) -> Tensor:
        """Weights ``[T']`` from ``gramian`` ``[T', T']`` of the ``T'`` present tasks (in run order).

        ``losses`` ``[T]`` and ``present`` ``[T]`` are dense over all tasks, for stateful methods.
        """
        raise NotImplementedError


class JacobianBalancer(Balancer):
    """An update read off the full Jacobian ``[T', P]`` of the shared parameters."""

    needs: ClassVar[Needs] = "jacobian"
    scales_heads: ClassVar[bool] = False

    def aggregate(self, jacobian: Tensor, losses: Tensor, present: Tensor, *, step: int) -> Tensor:
        """The update ``[P]`` of the shared parameters from ``jacobian`` ``[T', P]``."""
        raise NotImplementedError
