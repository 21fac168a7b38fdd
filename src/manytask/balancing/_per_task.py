"""Per-task options given as a list in task order or as a mapping from task name."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

__all__ = ["PerTask", "per_task_values", "scatter_present", "stack_present"]

#: A per-task option: one value per task in the run's task order, or ``{task name: value}``.
PerTask = Sequence[float] | Mapping[str, float]


def per_task_values(owner: str, option: str, value: PerTask, task_names: Sequence[str], *,
                    nonnegative: bool = False) -> list[float]:
    """``value`` as one finite float per task, in the order of ``task_names``.

    A list must have one entry per task; a mapping must name every task and no other. Raises
    ``ValueError`` naming ``option`` of ``owner`` otherwise, or for a non-finite value (or a
    negative one when ``nonnegative``).
    """
    names = list(task_names)
    if isinstance(value, Mapping):
        unknown = [k for k in value if k not in names]
        if unknown:
            raise ValueError(f"The {option!r} parameter of {owner} names unknown tasks {unknown}; "
                             f"the tasks are {names}.")
        missing = [n for n in names if n not in value]
        if missing:
            raise ValueError(f"The {option!r} parameter of {owner} must give a value for every task; "
                             f"{missing} are missing (the tasks are {names}).")
        values = [float(value[n]) for n in names]
    elif isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ValueError(f"The {option!r} parameter of {owner} must be a list in task order or a mapping "
                         f"from task name. Got {value!r} instead.")
    else:
        if len(value) != len(names):
            raise ValueError(f"The {option!r} parameter of {owner} must have one value per task "
                             f"({len(names)}: {names}). Got {len(value)} values instead.")
        values = [float(v) for v in value]
    for name, v in zip(names, values):
        if not math.isfinite(v) or (nonnegative and v < 0):
            need = "a finite number >= 0" if nonnegative else "a finite number"
            raise ValueError(f"The {option!r} parameter of {owner} must be {need} for every task. "
                             f"Got {v!r} for task {name!r} instead.")
    return values


def stack_present(scalars: nn.ParameterList, present: Tensor) -> tuple[Tensor, Tensor | None]:
    """The present tasks' learned scalars (one ``nn.Parameter`` per task, so that an absent task's
    gets no gradient) stacked ``[T']``, and their task indices (None: every task is present).

    The list's parameters are read off its dict: iterating an ``nn.ParameterList`` is a
    ``getattr`` per entry (98 µs a step at 32 tasks; 1 µs so)."""
    params: list[Tensor] = list(scalars._parameters.values())  # type: ignore[arg-type]
    if bool(present.all()):
        return torch.stack(params), None
    index = present.nonzero().flatten()
    return torch.stack([params[i] for i in index.tolist()]), index


def scatter_present(values: Tensor, index: Tensor | None, like: Tensor) -> Tensor:
    """``values`` of the present tasks as a ``[T]`` tensor like ``like``, 0 for absent tasks."""
    if index is None:
        return values.to(like)
    return torch.zeros_like(like).index_put((index.to(like.device),), values.to(like))
