"""Data sources: indexable collections of labelled (or partly labelled) samples."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from ..tasks import Columns, TargetError, Task
from ._batch import Batch, Inputs, map_inputs, num_samples

__all__ = ["Source", "TensorSource", "EmptySourceError"]

#: Fewest same-shaped tasks (per-sample masks) that a :class:`TensorSource` stores as one block.
STACK_AT = 8


def rows_of(values: Tensor, indices: Tensor) -> Tensor:
    """``values[indices]`` for a 1-D index tensor, by ``index_select`` (on the CPU 2-4x faster than
    indexing with ``[]``: 52 -> 16 us for 256 rows of 256 floats)."""
    return values.index_select(0, indices if indices.device == values.device else indices.to(values.device))


class EmptySourceError(ValueError):
    """A data source with no sample, or with no label for a task that needs one."""


@runtime_checkable
class Source(Protocol):
    """What the loader needs from a data source."""

    name: str

    def __len__(self) -> int: ...

    @property
    def tasks(self) -> tuple[str, ...]: ...

    def batch(self, indices: Tensor) -> Batch: ...


class TensorSource:
    """A source held in memory as tensors: ``inputs [N, ...]``, ``targets[task] [N, ...]``.

    Args:
        inputs: A tensor or a dict of tensors, all with ``N`` rows.
        targets: Per-task targets with ``N`` rows. Unlabelled entries may hold any value.
        masks: Per-task bool masks, ``[N]`` or a prefix of the target's shape; missing masks
            mean every entry is labelled.
        name: Used in error messages and logs.
    """

    def __init__(
        self,
        inputs: Inputs,
        targets: Mapping[str, Tensor],
        masks: Mapping[str, Tensor] | None = None,
        name: str = "data",
    ) -> None:
        self.name = name
        n = num_samples(inputs)
        if n == 0:
            raise EmptySourceError(f"Data source {name!r} has no samples; give it at least one row.")
        masks = dict(masks or {})
        unknown = sorted(set(masks) - set(targets))
        if unknown:
            raise ValueError(f"Data source {name!r}: masks for tasks without targets: {unknown}.")
        for key, value in (inputs.items() if isinstance(inputs, Mapping) else [("inputs", inputs)]):
            if value.shape[0] != n:
                raise ValueError(
                    f"Data source {name!r}: input {key!r} has {value.shape[0]} rows, expected {n}."
                )
        for task, target in targets.items():
            if target.shape[0] != n:
                raise ValueError(
                    f"Data source {name!r}: targets of task {task!r} have {target.shape[0]} rows "
                    f"but the inputs have {n}; give one target row per sample."
                )
            mask = masks.get(task)
            if mask is None:
                masks[task] = torch.ones(n, dtype=torch.bool)
            elif mask.dtype != torch.bool or tuple(mask.shape) != tuple(target.shape[: mask.ndim]):
                raise ValueError(
                    f"Data source {name!r}: mask of task {task!r} must be a bool tensor of shape "
                    f"{tuple(target.shape[:1])} (or a prefix of the target shape "
                    f"{tuple(target.shape)}); got dtype {mask.dtype} and shape {tuple(mask.shape)}."
                )
        self.inputs = inputs
        self.targets = dict(targets)
        self.masks = masks
        self.fully_labelled = frozenset(t for t, m in masks.items() if bool(m.all()))
        self._blocks = self._stack_alike()
        self._blocked = frozenset(name for names, _, _ in self._blocks for name in names)

    def _stack_alike(self) -> list[tuple[tuple[str, ...], Tensor, Tensor]]:
        """Many tasks with targets of one shape and dtype and per-sample masks (School's 139
        schools) are stored as one ``[N, G, ...]`` target block and one ``[N, G]`` mask block, so
        that a batch takes two gathers instead of two per task (one, and a view of the masks, where
        every task of the block is fully labelled); each task's target and mask become views into
        them."""
        groups: dict[tuple[object, ...], list[str]] = {}
        for task, target in self.targets.items():
            if self.masks[task].ndim == 1:
                key = (target.dtype, tuple(target.shape), target.device, task in self.fully_labelled)
                groups.setdefault(key, []).append(task)
        blocks = []
        for names in groups.values():
            if len(names) < STACK_AT:
                continue
            targets = torch.stack([self.targets[t] for t in names], dim=1)
            masks = torch.stack([self.masks[t] for t in names], dim=1)
            for j, task in enumerate(names):
                self.targets[task], self.masks[task] = targets[:, j], masks[:, j]
            blocks.append((tuple(names), targets, masks))
        return blocks

    def __len__(self) -> int:
        return num_samples(self.inputs)

    def __repr__(self) -> str:
        return f"TensorSource(name={self.name!r}, n={len(self)}, tasks={list(self.tasks)})"

    @property
    def tasks(self) -> tuple[str, ...]:
        """Tasks this source has targets for (possibly with few labels)."""
        return tuple(self.targets)

    def labelled_counts(self) -> dict[str, int]:
        """Number of samples with at least one label, per task."""
        return {t: int(m.reshape(len(self), -1).any(1).sum()) for t, m in self.masks.items()}

    def batch(self, indices: Tensor) -> Batch:
        """The samples at ``indices`` as a :class:`Batch`.

        A fully labelled task's mask is all True, so its first ``len(indices)`` rows are the same
        mask: a view instead of a gather (masks are read, never written)."""
        n = len(indices)
        targets = {k: rows_of(v, indices) for k, v in self.targets.items() if k not in self._blocked}
        masks = {k: v[:n] if k in self.fully_labelled else rows_of(v, indices) for k, v in self.masks.items()
                 if k not in self._blocked}
        rows = [(names, rows_of(target_block, indices),
                 mask_block[:n] if names[0] in self.fully_labelled else rows_of(mask_block, indices))
                for names, target_block, mask_block in self._blocks]
        order = list(self.targets)
        return Batch(inputs=map_inputs(self.inputs, lambda t: rows_of(t, indices)),
                     targets=Columns(targets, [(names, block) for names, block, _ in rows], order),
                     masks=Columns(masks, [(names, labelled) for names, _, labelled in rows], order),
                     full=self.fully_labelled)

    def check(self, tasks: Sequence[Task]) -> None:
        """Validate every target and mask against its task once (the data never changes)."""
        for task in tasks:
            if task.name in self.targets:
                try:
                    task.check(self.targets[task.name], self.masks[task.name])
                except TargetError as error:
                    raise TargetError(f"Data source {self.name!r}: {error}") from None

    def subset(self, indices: Tensor, name: str | None = None) -> TensorSource:
        """A new source with the rows at ``indices``."""
        b = self.batch(indices)
        return TensorSource(b.inputs, b.targets, b.masks, name or self.name)

    def only(self, tasks: tuple[str, ...] | list[str], name: str | None = None,
             unlabelled: bool = False) -> TensorSource:
        """Keep only ``tasks``' targets, and only the rows labelled for at least one of them (every
        row if ``unlabelled``: they feed the tasks that read views)."""
        missing = [t for t in tasks if t not in self.targets]
        if missing:
            raise KeyError(f"Data source {self.name!r} has no targets for {missing}.")
        if unlabelled:
            targets = {t: self.targets[t] for t in tasks}
            return TensorSource(self.inputs, targets, {t: self.masks[t] for t in tasks}, name or self.name)
        keep = torch.zeros(len(self), dtype=torch.bool)
        for t in tasks:
            keep |= self.masks[t].reshape(len(self), -1).any(1)
        if not bool(keep.any()):
            raise EmptySourceError(f"Data source {self.name!r} has no label for {list(tasks)}.")
        rows = keep.nonzero().squeeze(1)
        return TensorSource(
            map_inputs(self.inputs, lambda t: rows_of(t, rows)),
            {t: rows_of(self.targets[t], rows) for t in tasks},
            {t: rows_of(self.masks[t], rows) for t in tasks},
            name or self.name,
        )
