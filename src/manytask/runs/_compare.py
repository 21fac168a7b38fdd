"""Single-task baselines vs the multi-task model, with Δm%."""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path

from .._utils import atomic_write
from ..config import Config
from ..metrics import delta_m, higher_is_better
from ._build import check_config, load_data, select_tasks
from ._run_dir import claim
from ._train import on_rank_zero, ranks_of, train, try_report

__all__ = ["Comparison", "ComparisonRow", "compare"]


@dataclass(frozen=True)
class ComparisonRow:
    """One metric of one main task: single-task vs multi-task value."""

    task: str
    metric: str
    higher_is_better: bool
    single_task: float
    multi_task: float

    @property
    def change(self) -> float:
        """Signed relative improvement in percent (positive = multi-task better); NaN when the
        single-task value is 0 (no relative change) or either value is undefined."""
        if self.single_task == 0:
            return math.nan
        sign = 1.0 if self.higher_is_better else -1.0
        return 100.0 * sign * (self.multi_task - self.single_task) / abs(self.single_task)


@dataclass(frozen=True)
class Comparison:
    """Result of :func:`compare`; ``delta_m`` averages each main task's primary metric."""

    rows: tuple[ComparisonRow, ...]
    delta_m: float
    split: str
    run_dir: Path
    undefined: tuple[str, ...] = ()  # primary metrics left out of Δm (NaN for either model, or a baseline of 0)

    def table(self) -> str:
        """A readable table (Markdown)."""
        lines = [
            "| task | metric | better | single-task | multi-task | change |",
            "|---|---|---|---:|---:|---:|",
        ]
        for r in self.rows:
            arrow = "higher" if r.higher_is_better else "lower"
            change = f"{r.change:+.2f}%" if math.isfinite(r.change) else "undefined"
            lines.append(f"| {r.task} | {r.metric} | {arrow} | {r.single_task:.4f} | {r.multi_task:.4f} | {change} |")
        lines.append("")
        covered = len({r.task for r in self.rows}) - len(self.undefined)
        over = f"over {covered} of {covered + len(self.undefined)} main tasks"
        if self.undefined:
            over += f"; undefined for {', '.join(self.undefined)}, left out"
        if not math.isfinite(self.delta_m):
            lines.append(f"Δm undefined: no main task's primary metric is defined in both runs and non-zero in "
                         f"the single-task one ({', '.join(self.undefined) or 'no main task'}; {self.split} split)")
            return "\n".join(lines)
        lines.append(f"Δm = {self.delta_m:+.2f}% (Maninis et al. 2019; mean of the primary metric's signed "
                     f"relative change {over}; {self.split} split)")
        return "\n".join(lines)


def compare(config: Config, run_dir: Path | str | None = None, overwrite: bool = False) -> Comparison:
    """Train one single-task model per main task (same encoder, budget and seed) and the
    multi-task model; compare them on the test split (else validation).

    Runs go to ``<run_dir>/single-<task>/`` and ``<run_dir>/multi/``; the table to
    ``comparison.md`` and ``comparison.csv``. A directory that holds another run or comparison
    is refused unless ``overwrite`` (which deletes it first).
    """
    check_config(config)
    root = Path(run_dir if run_dir is not None else config.run_dir)
    ranks = ranks_of(config)
    on_rank_zero(ranks, lambda: claim(root, overwrite=overwrite, resume=None), f"the comparison directory {root}")
    data = load_data(config)
    tasks = select_tasks(config, data)
    mains = [t for t in tasks if t.role == "main"]
    if not mains:
        raise ValueError("compare needs at least one task with role 'main'.")
    single = {t.name: train(config, data=data, only=[t.name], run_dir=root / f"single-{t.name}", report=False)
              for t in mains}
    multi = train(config, data=data, run_dir=root / "multi", report=False)
    if ranks is not None and not ranks.is_main:  # rank 0 writes and reports the comparison
        return Comparison((), math.nan, "", root, ())
    rows = []
    for task in mains:
        for metric in task.metrics:
            key = f"{task.name}/{metric}"
            rows.append(ComparisonRow(task.name, metric, higher_is_better(metric),
                                      single[task.name].test[key], multi.test[key]))
    primary = [f"{t.name}/{t.metrics[0]}" for t in mains]
    baseline = {k: single[k.split("/")[0]].test[k] for k in primary}
    undefined = tuple(k for k in primary
                      if not (math.isfinite(multi.test[k]) and math.isfinite(baseline[k])) or baseline[k] == 0)
    defined = [k for k in primary if k not in undefined]
    dm = delta_m({k: multi.test[k] for k in defined}, {k: baseline[k] for k in defined},
                 {k: higher_is_better(k.split("/")[1]) for k in defined}) if defined else math.nan
    comparison = Comparison(tuple(rows), dm, multi.split, root, undefined)
    atomic_write(root / "comparison.md", comparison.table() + "\n")
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["task", "metric", "higher_is_better", "single_task", "multi_task", "change_percent"])
    for r in rows:
        writer.writerow([r.task, r.metric, r.higher_is_better, r.single_task, r.multi_task, round(r.change, 4)])
    writer.writerow(["delta_m", "", "", "", "", round(dm, 4)])
    atomic_write(root / "comparison.csv", buffer.getvalue())
    if config.logging.report:
        try_report(root)
    return comparison
