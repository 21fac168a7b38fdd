"""Which tasks train at a step: asynchronous periods, warm-up / stop windows, alternating groups.

A task that does not train at a step is treated as absent from the batch: no forward, no loss, no
gradient, no balancer update (every balancer already handles absent tasks). The MTL tips that
close the notes on Ruder's overview (2017) this project started from say that tasks with
different iteration periods may need asynchronous training, and that with alternating training
one task's estimates can serve as another's features (e.g. the joint many-task model feeding the
POS tagger's predictions to the chunker).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch

__all__ = ["TaskSchedule", "Window"]


@dataclass(frozen=True)
class Window:
    """A task trains at steps ``start <= step < stop`` (0-based) with ``(step - start) % every == 0``."""

    every: int = 1
    start: int = 0
    stop: int | None = None

    def __post_init__(self) -> None:
        if self.every < 1 or self.start < 0 or (self.stop is not None and self.stop <= self.start):
            raise ValueError(f"A task schedule needs every >= 1, start >= 0 and stop > start. Got every={self.every}, "
                             f"start={self.start}, stop={self.stop}.")

    def active(self, step: int) -> bool:
        return self.start <= step and (self.stop is None or step < self.stop) and (step - self.start) % self.every == 0


class TaskSchedule:
    """The tasks that train at each step.

    Args:
        tasks: Every task of the run, in run order.
        windows: Per-task :class:`Window` (period, warm-up, stop); unnamed tasks train every step.
        alternate: Groups of tasks that take turns, one group a step (each task in at most one
            group; tasks in no group train at every step their window allows).
        order: ``"round_robin"`` (group ``step mod len(groups)``) or ``"random"`` (a group drawn
            uniformly each step from a seeded generator, part of the checkpoint).
        seed: Seed of the random order.

    Examples:
        >>> schedule = TaskSchedule(["pos", "chunk", "lm"], {"lm": Window(every=2)}, [["pos"], ["chunk"]])
        >>> [sorted(schedule.active(step)) for step in range(4)]
        [['lm', 'pos'], ['chunk'], ['lm', 'pos'], ['chunk']]
    """

    def __init__(self, tasks: Sequence[str], windows: Mapping[str, Window] | None = None,
                 alternate: Sequence[Sequence[str]] | None = None,
                 order: Literal["round_robin", "random"] = "round_robin", seed: int = 0) -> None:
        self.tasks = list(tasks)
        self.windows = dict(windows or {})
        self.groups = [list(g) for g in alternate or []]
        named = [t for g in self.groups for t in g] + list(self.windows)
        unknown = sorted({t for t in named if t not in self.tasks})
        if unknown:
            raise ValueError(f"The task schedule names unknown tasks {unknown}; the tasks are {self.tasks}.")
        grouped = [t for g in self.groups for t in g]
        if len(grouped) != len(set(grouped)) or any(not g for g in self.groups):
            raise ValueError(f"Alternating groups must be non-empty and name each task once. Got {self.groups}.")
        if order not in ("round_robin", "random"):
            raise ValueError(f"The alternating order must be 'round_robin' or 'random'. Got {order!r}.")
        self.order = order
        self.generator = torch.Generator().manual_seed(seed)
        self._step: int | None = None
        self._group = 0

    def active(self, step: int) -> set[str]:
        """The tasks that train at ``step`` (call once per step, in order, for the random order)."""
        turn: set[str] = set()
        if self.groups:
            if self.order == "round_robin":
                self._group = step % len(self.groups)
            elif self._step != step:
                self._group = int(torch.randint(len(self.groups), (1,), generator=self.generator))
            self._step = step
            turn = set(self.groups[self._group])
        grouped = {t for g in self.groups for t in g}
        return {t for t in self.tasks if (t in turn or t not in grouped)
                and self.windows.get(t, Window()).active(step)}

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state(), "step": self._step, "group": self._group}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self._step, self._group = state["step"], int(state["group"])
