"""The one place that writes a run's logs: ``metrics.csv`` and the progress bar."""

from __future__ import annotations

import csv
import io
import math
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from tqdm.auto import tqdm

from .._utils import atomic_write

__all__ = ["RunLogger", "UnknownColumnError"]


class UnknownColumnError(KeyError):
    """A row for ``metrics.csv`` holds a column its header does not have."""

    def __str__(self) -> str:  # KeyError quotes its message; show it plainly.
        return str(self.args[0])


class RunLogger:
    """Appends one row per evaluation to ``metrics.csv`` and drives a progress bar.

    Only rank 0 writes (``enabled=False`` elsewhere). Columns are fixed at construction: a row
    with another column raises :class:`UnknownColumnError` (the header is never extended, so
    every row of the file has the same columns and none is dropped).
    """

    def __init__(self, run_dir: Path | None, columns: Sequence[str], enabled: bool = True,
                 progress: bool = True, total: int = 0) -> None:
        self.enabled = enabled
        self.columns = ["step", "epoch", *columns]  # the trainer logs time_s and the metrics
        self.path = Path(run_dir) / "metrics.csv" if run_dir is not None else None
        self.rows: list[dict[str, float]] = []
        # Not a terminal (CI, a file, a notebook's captured output): plain lines, about 10 a run.
        self._plain = enabled and progress and not sys.stderr.isatty()
        self._bar = tqdm(total=total, disable=None if (enabled and progress and not self._plain) else True,
                         file=sys.stderr, dynamic_ncols=True, leave=False)
        self._total, self._step, self._first = total, 0, 0
        self._every = max(1, total // 10)
        self._start = time.perf_counter()
        self._losses: Mapping[str, float] = {}
        self._validation: dict[str, float] = {}

    def start(self, resume_step: int | None) -> None:
        """Create ``metrics.csv``; on resume keep only rows up to ``resume_step``."""
        if not self.enabled or self.path is None:
            return
        kept: list[dict[str, str]] = []
        if resume_step is not None and self.path.exists():
            with self.path.open(newline="") as handle:
                kept = [r for r in csv.DictReader(handle) if int(float(r["step"])) <= resume_step]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=self.columns)
        writer.writeheader()
        writer.writerows(kept)
        atomic_write(self.path, buffer.getvalue())
        self._bar.update(resume_step or 0)
        self._step = self._first = resume_step or 0

    def log(self, row: Mapping[str, float]) -> None:
        """Append one evaluation row (missing columns are left empty; an unknown column raises
        :class:`UnknownColumnError`)."""
        unknown = [k for k in row if k not in self.columns]
        if unknown:
            raise UnknownColumnError(f"metrics.csv has no column for {unknown}; its columns are fixed when the "
                                     f"run starts: {self.columns}. Pass every column to RunLogger(columns=...).")
        self.rows.append(dict(row))
        first: dict[str, float] = {}  # each task's first (primary) validation metric
        for key, value in row.items():
            if key.startswith("val/") and not key.endswith("/loss") and key.split("/")[1] not in {
                    k.split("/")[0] for k in first}:
                first[key[4:]] = value
        self._validation = first
        if self._validation and not self._plain:
            shown = {f"val {k}": f"{v:.3g}" for k, v in list(self._validation.items())[:3]}
            mean = self._validation_mean()
            if mean is not None:
                shown["val mean"] = f"{mean:.3g}"
            self._bar.set_postfix({**{k: f"{v:.3g}" for k, v in self._losses.items()}, **shown}, refresh=False)
        if not self.enabled or self.path is None:
            return
        with self.path.open("a", newline="") as handle:
            csv.DictWriter(handle, fieldnames=self.columns).writerow(
                {k: _fmt(v) for k, v in row.items()}
            )

    def advance(self, losses: Mapping[str, float] | None = None) -> None:
        """One step done; optionally show the running per-task losses (and the last validation
        metrics). Off a terminal, a plain line every tenth of the run: step, steps/s, ETA, losses,
        each task's first validation metric (and their mean, when it is the same metric)."""
        self._bar.update(1)
        self._step += 1
        if losses:
            self._losses = dict(losses)
            if not self._plain:
                self._bar.set_postfix({k: f"{v:.3g}" for k, v in losses.items()}, refresh=False)
        if self._plain and (self._step % self._every == 0 or self._step == self._total):
            elapsed = time.perf_counter() - self._start
            rate = (self._step - self._first) / elapsed if elapsed > 0 else math.inf
            eta = (self._total - self._step) / rate if rate > 0 else math.inf
            parts = [f"step {self._step}/{self._total}", f"{rate:.1f} steps/s", f"ETA {eta:.0f} s"]
            if self._losses:
                parts.append("loss " + " ".join(f"{k} {v:.3g}" for k, v in self._losses.items()))
            if self._validation:
                mean = self._validation_mean()
                said = f" (mean {mean:.3g})" if mean is not None else ""
                parts.append("val " + " ".join(f"{k} {v:.3g}" for k, v in self._validation.items()) + said)
            print("manytask: " + ", ".join(parts), file=sys.stderr, flush=True)

    def _validation_mean(self) -> float | None:
        """The tasks' mean first validation metric, when they share it (a mean of one metric only)."""
        finite = [v for v in self._validation.values() if math.isfinite(v)]
        shared = len({k.split("/")[-1] for k in self._validation}) == 1
        return sum(finite) / len(finite) if finite and shared and len(finite) > 1 else None

    def write(self, message: str) -> None:
        """Print a line without breaking the progress bar."""
        if self.enabled:
            self._bar.write(message, file=sys.stderr)

    def close(self) -> None:
        self._bar.close()


def _fmt(value: float) -> str | float:
    if isinstance(value, float) and math.isnan(value):
        return ""
    return value
