"""A task-by-task matrix (how much task i helps task j), saved as CSV and JSON and summarised."""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._utils import atomic_write

__all__ = ["TaskMatrix", "load_matrices"]

FOLDER = "relatedness"


@dataclass(frozen=True)
class TaskMatrix:
    """``values[i, j]``: what row task ``i`` does for column task ``j`` (NaN: not measured).
    ``signed``: values around 0, positive and negative (affinity, gain, cosine, correlation);
    otherwise magnitudes (a conflict rate, a norm ratio). ``effect``: the value is what ``i`` does
    to ``j`` (positive: helps; affinity, transfer gain) rather than how alike they are."""

    name: str  # the file stem: <run>/relatedness/<name>.csv and .json
    title: str
    description: str
    tasks: tuple[str, ...]
    values: np.ndarray
    signed: bool = True
    effect: bool = False

    def save(self, run_dir: Path) -> Path:
        """Write ``<name>.csv`` (rows and columns named by task) and ``<name>.json``."""
        folder = run_dir / FOLDER
        folder.mkdir(parents=True, exist_ok=True)
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["", *self.tasks])
        for task, row in zip(self.tasks, self.values.tolist()):
            writer.writerow([task, *("" if math.isnan(v) else f"{v:.6g}" for v in row)])
        atomic_write(folder / f"{self.name}.csv", buffer.getvalue())
        atomic_write(folder / f"{self.name}.json", json.dumps({
            "title": self.title, "description": self.description, "tasks": list(self.tasks), "signed": self.signed,
            "effect": self.effect,
            "values": [[None if math.isnan(v) else v for v in row] for row in self.values.tolist()]}, indent=1))
        return folder / f"{self.name}.csv"

    def partners(self) -> list[str]:
        """Per task, one line: the partner that helps it most and the one that hurts it most (an
        effect), or the most and least alike (a similarity)."""
        lines = []
        for j, task in enumerate(self.tasks):
            column = [(self.values[i, j], other) for i, other in enumerate(self.tasks)
                      if i != j and math.isfinite(self.values[i, j])]
            if not column:
                continue
            best, worst = max(column), min(column)
            if not self.effect:
                least = f", least alike {worst[1]} ({worst[0]:+.3g})" if len(column) > 1 else ""
                lines.append(f"{task}: most alike {best[1]} ({best[0]:+.3g}){least}")
                continue
            said = [f"helped most by {best[1]} ({best[0]:+.3g})"] if best[0] > 0 else []
            said += [f"hurt most by {worst[1]} ({worst[0]:+.3g})"] if worst[0] < 0 else []
            lines.append(f"{task}: {', '.join(said) or 'no partner changes it'}")
        return lines


def load_matrices(run_dir: Path) -> list[TaskMatrix]:
    """The matrices saved in ``run_dir/relatedness`` (none: empty), by name."""
    out = []
    for path in sorted((run_dir / FOLDER).glob("*.json")) if (run_dir / FOLDER).is_dir() else []:
        saved = json.loads(path.read_text())
        if not {"title", "tasks", "values"} <= set(saved):
            continue  # another file (the grouping summary)
        values = np.array([[math.nan if v is None else v for v in row] for row in saved["values"]], dtype=float)
        out.append(TaskMatrix(path.stem, saved["title"], saved.get("description", ""), tuple(saved["tasks"]), values,
                              saved.get("signed", True), saved.get("effect", False)))
    return out
