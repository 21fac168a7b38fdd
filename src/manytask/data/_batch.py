"""A batch: inputs, per-task targets and per-task label masks."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from ..tasks import Columns

__all__ = ["Batch", "Inputs", "concat_batches", "map_inputs", "num_samples"]

Inputs = Tensor | dict[str, Tensor]


def map_inputs(inputs: Inputs, fn: Callable[[Tensor], Tensor]) -> Inputs:
    """Apply ``fn`` to a tensor or to every tensor of a dict of inputs."""
    if isinstance(inputs, Mapping):
        return {key: fn(value) for key, value in inputs.items()}
    return fn(inputs)


def _inputs_on(inputs: Inputs, device: torch.device) -> bool:
    values = inputs.values() if isinstance(inputs, Mapping) else [inputs]
    return all(v.device == device for v in values)


def num_samples(inputs: Inputs) -> int:
    """Size of the leading (sample) dimension of ``inputs``."""
    if isinstance(inputs, Mapping):
        return int(next(iter(inputs.values())).shape[0])
    return int(inputs.shape[0])


@dataclass(frozen=True)
class Batch:
    """Inputs with targets and masks for the tasks this batch's source carries.

    ``masks[task]`` is True where the sample (or element, for per-token tasks) has a label.
    Tasks absent from ``targets`` have no label in this batch at all. ``full`` names tasks known
    to be labelled everywhere in the batch (their masks need not be read).
    """

    inputs: Inputs
    targets: dict[str, Tensor]
    masks: dict[str, Tensor]
    full: frozenset[str] = frozenset()

    @property
    def mask_blocks(self) -> tuple[tuple[tuple[str, ...], Tensor], ...]:
        """``(tasks, [B, G] masks)``: per-sample masks of many tasks held as one block (``masks``
        is then a :class:`~manytask.tasks.Columns` of its columns), so that which tasks are
        present is one reduction."""
        return tuple((names, block) for names, block, _ in _blocks(self.masks))

    def present(self) -> set[str]:
        """The tasks with at least one labelled entry in this batch."""
        masks = self.masks
        singles = masks.loose() if isinstance(masks, Columns) else masks
        found = {t for t, mask in singles.items() if t in self.targets and (t in self.full or bool(mask.any()))}
        for names, block, _ in _blocks(masks):  # one reduction per block of columns
            found.update(n for n, any_ in zip(names, block.any(0).tolist()) if any_ and n not in singles)
        return found

    def __len__(self) -> int:
        return num_samples(self.inputs)

    def labelled(self) -> dict[str, int]:
        """Number of labelled entries per task (computed on the batch's current device)."""
        return {task: int(mask.sum()) for task, mask in self.masks.items()}

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        """The same batch on ``device`` (itself if it is there already); blocks of columns
        (:class:`~manytask.tasks.Columns`) move as one tensor each."""
        target = torch.device(device)
        tensors = [t for values in (self.targets, self.masks) for t in _own_tensors(values)]
        if tensors and all(t.device == target for t in tensors) and _inputs_on(self.inputs, target):
            return self
        move = lambda t: t.to(device, non_blocking=non_blocking)  # noqa: E731
        return Batch(inputs=map_inputs(self.inputs, move), targets=_moved(self.targets, move),
                     masks=_moved(self.masks, move), full=self.full)


def _blocks(values: dict[str, Tensor]) -> tuple[tuple[tuple[str, ...], Tensor, tuple[Tensor, ...]], ...]:
    return values.blocks if isinstance(values, Columns) else ()


def _own_tensors(values: dict[str, Tensor]) -> list[Tensor]:
    """The tensors ``values`` holds: its blocks, and its values that are not their columns."""
    if not isinstance(values, Columns):
        return list(values.values())
    return [block for _, block, _ in values.blocks] + list(values.loose().values())


def _moved(values: dict[str, Tensor], move: Callable[[Tensor], Tensor]) -> dict[str, Tensor]:
    if not isinstance(values, Columns):
        return {k: move(v) for k, v in values.items()}
    return Columns({k: move(v) for k, v in values.loose().items()},
                   [(names, move(block)) for names, block, _ in values.blocks], order=values)


def concat_batches(first: Batch, second: Batch) -> Batch:
    """``first``'s rows followed by ``second``'s. A task only one of them carries gets False masks
    (and zero targets) on the other's rows; ``full`` keeps the tasks full in both."""
    if isinstance(first.inputs, Mapping) != isinstance(second.inputs, Mapping) or (
            isinstance(first.inputs, Mapping) and set(first.inputs) != set(second.inputs)):  # type: ignore[arg-type]
        raise ValueError("Batches to concatenate must have the same inputs (a tensor, or dicts with the same keys).")
    if isinstance(first.inputs, Mapping):
        inputs: Inputs = {k: torch.cat([v, second.inputs[k]]) for k, v in first.inputs.items()}  # type: ignore[index]
    else:
        inputs = torch.cat([first.inputs, second.inputs])  # type: ignore[list-item]
    targets, masks = {}, {}
    for task in dict.fromkeys([*first.targets, *second.targets]):
        owner = first if task in first.targets else second
        like_target, like_mask = owner.targets[task], owner.masks[task]
        target_parts, mask_parts = [], []
        for batch in (first, second):
            if task in batch.targets:
                target_parts.append(batch.targets[task])
                mask_parts.append(batch.masks[task])
            else:  # no label for this task on this batch's rows
                target_parts.append(like_target.new_zeros((len(batch), *like_target.shape[1:])))
                mask_parts.append(like_mask.new_zeros((len(batch), *like_mask.shape[1:])))
        targets[task], masks[task] = torch.cat(target_parts), torch.cat(mask_parts)
    return Batch(inputs, targets, masks, full=first.full & second.full)
