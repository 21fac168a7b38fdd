"""A comparison's part of a report: single-task vs multi-task per metric, Δm, curves and cost."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from ._page import Page
from ._plots import Series, bars, panels
from ._run import read_metrics, run_sections

__all__ = ["comparison_sections"]


def _float(text: str) -> float:
    return float(text) if text not in ("", None) else math.nan


def comparison_sections(page: Page, root: Path) -> None:
    """The table of ``comparison.csv`` with its Δm, each metric's relative change, the single- and
    multi-task validation curves side by side, each run's cost, then the multi-task run."""
    with (root / "comparison.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    metrics = [r for r in rows if r["task"] != "delta_m"]
    delta = next((_float(r["change_percent"]) for r in rows if r["task"] == "delta_m"), math.nan)
    page.heading("Single-task vs multi-task")
    page.table(["task", "metric", "better", "single-task", "multi-task", "change %"],
               [(r["task"], r["metric"], "higher" if r["higher_is_better"] == "True" else "lower",
                 _float(r["single_task"]), _float(r["multi_task"]), _float(r["change_percent"])) for r in metrics])
    primary: dict[str, dict[str, str]] = {}  # each main task's first row: its primary metric
    for r in metrics:
        primary.setdefault(r["task"], r)
    left_out = [f"{t}/{r['metric']}" for t, r in primary.items() if not math.isfinite(_float(r["change_percent"]))]
    if math.isfinite(delta):
        over = f"{len(primary) - len(left_out)} of {len(primary)} main tasks"
        if left_out:
            over += f"; undefined for {', '.join(left_out)}, left out"
        page.text(f"Δm = {delta:+.2f}% (Maninis et al. 2019): the mean of the primary metric's signed relative "
                  f"change, multi-task against single-task, over {over}; positive is better.")
    else:
        page.text("Δm undefined: no main task's primary metric is defined in both runs and non-zero in the "
                  f"single-task one ({', '.join(left_out) or 'no main task'}).")
    labels = [f"{r['task']}/{r['metric']}" for r in metrics] + ["Δm"]
    page.figure(bars(labels, [_float(r["change_percent"]) for r in metrics] + [delta],
                     ylabel="relative change of multi-task over single-task (%)"),
                "Each metric's relative change (positive: the multi-task model is better), and Δm; an "
                "undefined one is marked, not drawn.")
    multi = read_metrics(root / "multi")
    curves: dict[str, dict[str, Series]] = {}
    for r in metrics:
        key = f"val/{r['task']}/{r['metric']}"
        single = read_metrics(root / f"single-{r['task']}")
        curves[f"{r['task']}/{r['metric']}"] = {
            "single-task": ([s["step"] for s in single], [s.get(key, math.nan) for s in single]),
            "multi-task": ([m["step"] for m in multi], [m.get(key, math.nan) for m in multi])}
    if curves:
        page.figure(panels(curves), "Validation metrics of each single-task model and of the multi-task model.")
    runs = sorted(p for p in root.iterdir() if p.is_dir() and (p / "results.json").is_file())
    if runs:
        page.heading("Cost")
        costs = [(p.name, json.loads((p / "results.json").read_text())) for p in runs]
        page.table(["run", "steps", "seconds per step", "peak memory (MB)"],
                   [(name, r.get("steps"), r["cost"]["seconds_per_step"], r["cost"]["peak_memory_mb"])
                    for name, r in costs])
        page.figure(bars([n for n, _ in costs], [r["cost"]["seconds_per_step"] for _, r in costs],
                         ylabel="seconds per training step", signed=False),
                    "Seconds per training step of each run (training only, no evaluation).")
    if (root / "multi").is_dir():
        page.heading("The multi-task run")
        run_sections(page, root / "multi", level=3)
