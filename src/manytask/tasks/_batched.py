"""The losses of many tasks at once: tasks of one kind computed by one batched call.

School's 139 regression tasks, or any run with many tasks of one kind, would otherwise call the
loss (and, under partial labels, a boolean selection) once per task: about 20 µs of Python and
two autograd nodes each, a large part of a training step at that many tasks. Tasks whose
:meth:`~manytask.tasks.Task.stack_key` agree (``STACK_AT`` or more of them, with outputs and
targets of one shape) are stacked ``[S, B, ...]`` (read off their block where they are the
:class:`~manytask.tasks.Columns` of one) and take their losses from one call of the elementwise
loss, masked by ``torch.where``: the same sums and counts as one
:meth:`~manytask.tasks.Task.loss_terms` per task, up to the order of floating-point additions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from ._columns import stacked
from ._task import Task

__all__ = ["STACK_AT", "loss_terms_of"]

#: Fewest tasks of one kind whose losses are computed in one batched call.
STACK_AT = 8


def loss_terms_of(tasks: Sequence[Task], outputs: Mapping[str, Tensor], targets: Mapping[str, Tensor],
                  masks: Mapping[str, Tensor | None]) -> tuple[Tensor, list[int]]:
    """Each task's ``(sum, count)`` of its elementwise loss over its labelled entries, as
    :meth:`Task.loss_terms` gives them: the sums ``[S]`` and the counts, in the order of ``tasks``.

    ``outputs``, ``targets`` and ``masks`` are keyed by task name (a mask of None: every entry is
    labelled).
    """
    kinds: dict[tuple[object, ...], list[int]] = {}
    for i, task in enumerate(tasks if len(tasks) >= STACK_AT else ()):
        key = task.stack_key()
        if key is not None:
            output, target, mask = outputs[task.name], targets[task.name], masks[task.name]
            key += (output.shape, output.dtype, target.shape, target.dtype, output.device, mask is None)
            kinds.setdefault(key, []).append(i)
    batched = [members for members in kinds.values() if len(members) >= STACK_AT]
    done = {i for members in batched for i in members}
    order = [i for i in range(len(tasks)) if i not in done]  # computed one by one, then each kind
    terms = [tasks[i].loss_terms(outputs[tasks[i].name], targets[tasks[i].name], masks[tasks[i].name])
             for i in order]
    sums = [torch.stack([total for total, _ in terms])] if terms else []
    counts = [count for _, count in terms]
    for members in batched:
        names = [tasks[i].name for i in members]
        mask = None if masks[names[0]] is None else stacked(masks, names)  # type: ignore[arg-type]
        total, count = tasks[members[0]].stacked_loss_terms(stacked(outputs, names), stacked(targets, names), mask)
        order += members
        sums.append(total)
        counts += count
    joined = sums[0] if len(sums) == 1 else torch.cat(sums)
    if order == list(range(len(tasks))):
        return joined, counts
    slot = {i: k for k, i in enumerate(order)}  # where task i's sum is in `joined`
    back = [slot[i] for i in range(len(tasks))]
    return joined[torch.tensor(back, device=joined.device)], [counts[k] for k in back]
