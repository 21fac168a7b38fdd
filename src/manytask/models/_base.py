"""The model contract every sharing scheme follows."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ..data import Inputs
from ..tasks import Task

__all__ = ["MultiTaskModel", "own_parameters"]


def own_parameters(parameters: nn.ParameterDict, names: Sequence[str],
                   tasks: Sequence[str] | None) -> list[Tensor]:
    """Each task's own parameter in ``names`` order, detached for the tasks not in ``tasks`` (all
    kept when None): a task absent from the step gets no gradient, not a zero one that a momentum
    optimizer would still step on."""
    asked = set(names if tasks is None else tasks)
    return [parameters[t] if t in asked else parameters[t].detach() for t in names]


class MultiTaskModel(nn.Module):
    """Base class of sharing schemes.

    Subclasses implement :meth:`forward` (or :meth:`features` + :meth:`forward_heads` when all
    tasks read one shared representation), :meth:`shared_parameters` and
    :meth:`task_parameters`. Optional: :meth:`penalty` (soft-sharing regulariser, added to the
    loss by the trainer), :meth:`last_shared_parameters` (for GradNorm), and the hooks below.
    """

    task_names: tuple[str, ...]

    #: True when :meth:`features` returns the one representation all heads read.
    has_features: bool = False

    #: False when shared parameters are used outside their modules' ``forward`` (weights
    #: reconstructed from factors): torchjd's autogram engine, which hooks modules, cannot follow
    #: them, so the exact Gramian comes from the Jacobian.
    hookable: bool = True

    def forward(self, inputs: Inputs, tasks: Sequence[str] | None = None) -> dict[str, Tensor]:
        """Outputs of ``tasks`` (default: all), keyed by task name."""
        return self.forward_heads(self.features(inputs), tasks)

    def features(self, inputs: Inputs) -> Tensor:
        """The shared representation of ``inputs``."""
        raise NotImplementedError(
            f"{type(self).__name__} has no single shared representation; use exact (parameter-"
            "level) gradient balancing with it instead of representation-level balancing."
        )

    def forward_heads(self, features: Tensor, tasks: Sequence[str] | None = None) -> dict[str, Tensor]:
        """Task outputs computed from the shared representation."""
        raise NotImplementedError(f"{type(self).__name__} does not implement forward_heads().")

    def shared_modules(self) -> list[nn.Module]:
        """The modules that hold the shared parameters (none a child of another); the Gramian
        engine hooks them. Default: none known (the engine then falls back to the Jacobian)."""
        return []

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters used by every task."""
        raise NotImplementedError

    def task_parameters(self, name: str) -> Iterator[nn.Parameter]:
        """Parameters used only by task ``name``."""
        raise NotImplementedError

    def spare_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters no task reads yet (reserved copies a growing scheme will use); the optimizer
        holds them at the default rate. Default: none."""
        return iter(())

    def last_shared_parameters(self) -> list[nn.Parameter]:
        """Weight matrix (matrices) of the last shared layer; GradNorm measures gradient norms there."""
        raise ValueError(f"{type(self).__name__} has no last shared layer for GradNorm to measure the tasks' "
                         "gradients at; use another balancer (UW, DWA, MGDA, ...).")

    def scaled_parameters(self) -> list[tuple[str, list[nn.Parameter], float]]:
        """Parameters trained at a multiple of the default learning rate, as ``(label, parameters,
        scale)`` (cross-stitch units); the optimizer gives each its own group. Default: none."""
        return []

    def penalty(self) -> Tensor | None:
        """A regulariser the trainer adds to the loss (soft sharing), or None."""
        return None

    def structure_report(self) -> str | None:
        """A learned structure in words (learning to branch), saved by a run as ``structure.txt``;
        None for schemes with a fixed one."""
        return None

    def diagnostics(self) -> dict[str, float]:
        """Numbers the trainer logs at every evaluation as ``model/<key>`` in ``metrics.csv``
        (MMoE's expert utilisation); the keys must not change during a run. Default: none."""
        return {}

    def on_after_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Called by the trainer after each optimizer step (JMT's decoupled successive step)."""

    def on_epoch_end(self, epoch: int) -> None:
        """Called by the trainer after each epoch (JMT's snapshot for successive regularisation)."""

    def callbacks(self) -> list[Any]:
        """Trainer callbacks the scheme needs (objects with :class:`~manytask.training.Callback`'s
        hooks), run before the user's: adaptive sharing's widening rounds. Default: none."""
        return []

    @staticmethod
    def _heads_at_the_top(tasks: Sequence[Task], encoder: nn.Module) -> None:
        """Raise if a task asks for a head below the encoder's last stage (``attach_at``): only
        ``low_supervision`` and ``jmt`` tap lower stages."""
        stages = len(getattr(encoder, "stages", [encoder]))
        low = {t.name: t.attach_at for t in tasks if t.attach_at not in (None, stages)}
        if low:
            raise ValueError(f"Tasks {low} ask for heads at lower stages (attach_at), but this scheme reads "
                             f"every head at the last of the encoder's {stages} stage(s); use model "
                             "'low_supervision' or 'jmt'.")

    def _check_tasks(self, tasks: Sequence[str] | None) -> Sequence[str]:
        if tasks is None:
            return self.task_names
        unknown = set(tasks).difference(self.task_names)  # (one pass over each: many tasks)
        if unknown:
            named = [t for t in tasks if t in unknown]
            raise KeyError(f"Unknown tasks {named}; the model has {list(self.task_names)}.")
        return tasks
