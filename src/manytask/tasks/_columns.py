"""Per-task tensors stored as the columns of one block.

Many tasks of one kind (School's 139 schools) have their targets and masks gathered as one
``[B, n, ...]`` block per batch (:class:`~manytask.data.TensorSource`), and identical linear heads
give their outputs as one ``[B, n, K]`` block (:class:`~manytask.models.HardSharing`). Handing each
task its column, and stacking the columns back for the batched losses, costs a tensor object per
task and a copy per step. :class:`Columns` is a plain ``dict`` of the columns (one ``unbind`` call
makes them) that remembers their block, and :func:`stacked` reads ``[S, B, ...]`` of some of its
tasks off the block in one call.
"""

from __future__ import annotations

import functools
import itertools
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from .._utils._index import index_tensor

__all__ = ["Columns", "replaced", "stacked"]

_FIRST: Callable[[Any], Any] = operator.itemgetter(0)
_SECOND: Callable[[Any], Any] = operator.itemgetter(1)


class Columns(dict[str, Tensor]):
    """A dict of per-task tensors, those of ``blocks`` being the columns ``block[:, j]`` of a
    ``[B, n, ...]`` block (task ``names[j]``); read and written like any dict.

    Args:
        values: The tasks' tensors that are not in a block.
        blocks: ``(names, block)`` pairs: ``block[:, j]`` is task ``names[j]``'s tensor.
        order: The keys' order (default: each block's tasks, then the other tasks of ``values``).

    Examples:
        >>> block = torch.arange(6.0).reshape(2, 3)
        >>> columns = Columns({"x": torch.zeros(2)}, [(("a", "b", "c"), block)])
        >>> columns["b"].tolist(), list(columns)
        ([1.0, 4.0], ['a', 'b', 'c', 'x'])
        >>> stacked(columns, ["c", "a"]).tolist()
        [[2.0, 5.0], [0.0, 3.0]]
    """

    def __init__(self, values: Mapping[str, Tensor], blocks: Iterable[tuple[Sequence[str], Tensor]] = (),
                 order: Iterable[str] | None = None) -> None:
        self.blocks = tuple((tuple(names), block, block.unbind(1)) for names, block in blocks)
        for names, block, _ in self.blocks:
            if block.shape[1] != len(names):
                raise ValueError(f"A block of {len(names)} tasks has {block.shape[1]} columns (dim 1).")
        merged: dict[str, Tensor] = {}
        for names, _, views in self.blocks:
            merged.update(zip(names, views))
        merged.update(values)  # a value given for a block's task replaces its column
        super().__init__(merged if order is None else {k: merged[k] for k in order})
        self._where = _positions(tuple(names for names, _, _ in self.blocks))
        self._loose = dict.fromkeys(values)  # the keys whose value may not be a block's column

    def __reduce__(self) -> tuple[Any, ...]:  # (pickle, copy): rebuilt from its blocks and loose values
        return Columns, (self.loose(), [(names, block) for names, block, _ in self.blocks], list(self))

    def __setitem__(self, key: str, value: Tensor) -> None:
        self._loose[key] = None
        super().__setitem__(key, value)

    def update(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        changes = dict(*args, **kwargs)
        self._loose.update(dict.fromkeys(changes))
        super().update(changes)

    def block_of(self, names: Sequence[str]) -> Tensor | None:
        """``[S, B, ...]``, task ``names[i]``'s tensor at ``[i]``, read off one block; None unless
        every one of ``names`` is still that block's column (not replaced since)."""
        where = self._where.get(names[0]) if names else None
        if where is None:
            return None
        block, (block_names, tensor, views) = where[0], self.blocks[where[0]]
        # C-level maps, not a Python loop: School reads ~100 columns three times a step
        positions = list(map(self._where.get, names, itertools.repeat((-1, 0))))
        if set(map(_FIRST, positions)) != {block}:
            return None
        index = list(map(_SECOND, positions))
        if not all(map(operator.is_, map(self.get, names), map(views.__getitem__, index))):
            return None  # a column replaced since
        if index == list(range(len(block_names))):
            return tensor.movedim(1, 0)
        return tensor.index_select(1, index_tensor(index, tensor.device)).movedim(1, 0)

    def loose(self) -> dict[str, Tensor]:
        """The values that are not a block's column."""
        return {k: self[k] for k in self._loose if k in self}


@functools.lru_cache(maxsize=64)  # the same blocks' names every step
def _positions(blocks: tuple[tuple[str, ...], ...]) -> dict[str, tuple[int, int]]:
    """Each task's ``(block, column)``."""
    return {name: (b, j) for b, names in enumerate(blocks) for j, name in enumerate(names)}


def stacked(values: Mapping[str, Tensor], names: Sequence[str]) -> Tensor:
    """``torch.stack([values[n] for n in names])``, read off their block when ``values`` holds
    them as the columns of one (:class:`Columns`)."""
    if isinstance(values, Columns):
        block = values.block_of(names)
        if block is not None:
            return block
    return torch.stack([values[n] for n in names])


def replaced(values: Mapping[str, Tensor | None], changes: Mapping[str, Tensor | None]) -> dict[str, Tensor | None]:
    """A copy of ``values`` with ``changes`` applied, which keeps the blocks of :class:`Columns`
    (a replaced column leaves its block)."""
    if not isinstance(values, Columns):
        return {**values, **changes}
    copy = Columns.__new__(Columns)
    dict.__init__(copy, values)
    copy.blocks, copy._where, copy._loose = values.blocks, values._where, dict(values._loose)
    copy.update(changes)  # type: ignore[arg-type]
    return copy  # type: ignore[return-value]
