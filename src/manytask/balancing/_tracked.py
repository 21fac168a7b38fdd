"""Per-task gradient vectors kept across steps (MoCo, DB-MTL) in a buffer created on first use."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from ._state import fill_unset_buffers

__all__ = ["TrackedGradients"]


class TrackedGradients(nn.Module):
    """Mixin of a Jacobian balancer that keeps one vector per task, ``tracked`` ``[T, P]``.

    ``P`` (the number of shared parameters) is known only at the first step, so the buffer is
    registered as None and created then. ``state_dict`` holds it once it exists;
    ``load_state_dict`` fills it into a fresh balancer, and a state without it (saved before the
    first step) empties it again; ``reset`` must set it to None.
    """

    tracked: Tensor | None

    def _track(self, grads: Tensor, num_tasks: int, owner: str) -> Tensor:
        """The buffer, created as zeros ``[num_tasks, P]`` like ``grads`` ``[T', P]`` if needed."""
        if self.tracked is None:
            self.tracked = grads.new_zeros(num_tasks, grads.shape[1])
        elif self.tracked.shape[1] != grads.shape[1]:
            raise ValueError(f"{owner} keeps gradients of {self.tracked.shape[1]} shared parameters, but got "
                             f"{grads.shape[1]}: the model changed. Call reset() to start again.")
        return self.tracked

    def forget_tracked(self) -> None:
        """Drop the kept vectors (they restart from zeros at the next step): the shared parameters
        changed, e.g. when adaptive sharing widens a stage and some become task-specific."""
        self.tracked = None

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:  # type: ignore[override]
        if prefix + "tracked" in state_dict:
            fill_unset_buffers(self, prefix, state_dict)
        else:
            self.tracked = None  # a state saved before the first step
        super()._load_from_state_dict(state_dict, prefix, *args)
