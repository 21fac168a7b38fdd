"""A benchmark suite's part of a report: per group, the table, Δm ± std bars and the trade-off."""

from __future__ import annotations

import csv
import json
import math
import statistics
from pathlib import Path

from ..metrics import higher_is_better
from ..runs._bench import SINGLE, Suite, suite_summary
from ._page import Page
from ._plots import bars, pareto

__all__ = ["suite_sections"]


def _mean_std(values: list[float]) -> tuple[float, float]:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return math.nan, math.nan
    return statistics.fmean(finite), statistics.stdev(finite) if len(finite) > 1 else 0.0


def _label(method: str, *series: list[float]) -> str:
    """The method, marked ``(n of m runs)`` when its means cover only the runs whose values are defined."""
    covered = min(sum(map(math.isfinite, values)) for values in series)
    total = max(len(values) for values in series)
    return method if covered == total else f"{method} ({covered} of {total} runs)"


def suite_sections(page: Page, root: Path) -> None:
    """The suite of ``root/suite.json`` on the rows of ``root/results.csv``."""
    suite = Suite.model_validate(json.loads((root / "suite.json").read_text()))
    with (root / "results.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    page.text(f"Suite {suite.name}: {suite.budget}. {suite.notes.strip()}")
    for summary in suite_summary(suite, rows):
        page.heading(summary.group)
        page.table(summary.header, summary.lines)
        page.text(summary.footnote, note=True)
        for note in summary.notes:
            page.text(note.removeprefix("- "), note=True)
        partial = "; a method marked (n of m runs) averages the n runs whose value is defined"
        deltas = {_label(m, d): _mean_std(d) for m, d in summary.deltas.items() if any(map(math.isfinite, d))}
        if deltas:
            page.figure(bars(list(deltas), [m for m, _ in deltas.values()], [s for _, s in deltas.values()],
                             ylabel="Δm % against single-task (mean ± std over runs)"),
                        f"{summary.group}: each method's Δm % (mean ± std over runs; positive is better{partial}).")
        if len(summary.keys) == 2:
            x, y = summary.keys
            stats = {_label(m, v[x], v[y]): (_mean_std(v[x]), _mean_std(v[y])) for m, v in summary.values.items()}
            page.figure(pareto({m: (sx[0], sy[0]) for m, (sx, sy) in stats.items()},
                               {m: (sx[1], sy[1]) for m, (sx, sy) in stats.items()}, xlabel=x, ylabel=y,
                               x_higher=higher_is_better(x.split("/", 1)[1]),
                               y_higher=higher_is_better(y.split("/", 1)[1])),
                        f"{summary.group}: the two main tasks' trade-off, one point per method (mean ± std; "
                        f"{SINGLE} is one model per task); red points are on the Pareto front{partial}.")
