"""A run's part of a report: what it scored, what it cost, and how it got there."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from ._page import Page
from ._plots import Series, heatmap, panels

__all__ = ["read_metrics", "relatedness_sections", "run_sections"]


def read_metrics(run_dir: Path) -> list[dict[str, float]]:
    """``metrics.csv`` as rows of floats (an empty cell is NaN); no file gives no rows."""
    path = run_dir / "metrics.csv"
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        return [{k: float(v) if v not in ("", None) else math.nan for k, v in row.items()}
                for row in csv.DictReader(handle)]


def _series(rows: list[dict[str, float]], key: str) -> Series:
    return [r["step"] for r in rows], [r.get(key, math.nan) for r in rows]


def _roles(run_dir: Path) -> dict[str, str]:
    path = run_dir / "tasks.json"
    if not path.is_file():
        return {}
    return {t["fields"]["name"]: t["fields"].get("role", "main") for t in json.loads(path.read_text())["tasks"]}


def _columns(rows: list[dict[str, float]], prefix: str) -> list[str]:
    """The columns starting with ``prefix`` that hold at least one value, in file order."""
    return [k for k in rows[0] if k.startswith(prefix) and any(math.isfinite(r.get(k, math.nan)) for r in rows)]


def results_table(page: Page, results: Mapping[str, Any], roles: Mapping[str, str]) -> None:
    """The best checkpoint's metrics, one row per task and metric."""
    metrics = results.get("metrics", {})
    rows = []
    for key, value in metrics.items():
        task, metric = key.split("/", 1)
        rows.append((task, roles.get(task, ""), metric, math.nan if value is None else float(value)))
    page.table(["task", "role", "metric", f"value ({results.get('split', '?')} split)"], rows)
    cost = results.get("cost", {})
    facts = [("estimator", results.get("estimator")), ("hyperparameters", results.get("params")),
             ("steps", results.get("steps")),
             ("best step", results.get("best_step") if results.get("best_step") is not None or "steps" not in results
              else "none (the monitor was never defined: the last model was tested)"),
             ("monitor", results.get("monitor")), ("stopped early", results.get("stopped_early")),
             ("seconds per step", cost.get("seconds_per_step")), ("seconds to fit", cost.get("fit_seconds")),
             (f"peak memory (MB, {cost.get('peak_memory_kind', '?')})", cost.get("peak_memory_mb"))]
    page.table(["", "value"], [(k, v) for k, v in facts if v is not None])
    search = results.get("search")
    if search:  # fit-linear: each grid point's cross-validated score
        page.table(["hyperparameters", "score (mean over folds)", "std", *(f"fold {k}" for k in
                                                                         range(len(search[0]["folds"])))],
                   [(json.dumps(r["params"], sort_keys=True), r["score"], r["score_std"], *r["folds"]) for r in search],
                   caption="Cross-validation on the training rows: the mean over main tasks of their primary metric "
                           "(negated where lower is better: higher is better); the best was refitted on every "
                           "training row.")


def run_sections(page: Page, run_dir: Path, level: int = 2, relatedness: bool = True) -> None:
    """Results, learning curves, learning rate, task weights, diagnostics, the relatedness
    measured (unless shown elsewhere) and config of one run."""
    results = json.loads((run_dir / "results.json").read_text()) if (run_dir / "results.json").is_file() else {}
    if results:
        page.heading("Result", level)
        results_table(page, results, _roles(run_dir))
    rows = read_metrics(run_dir)
    if not results and rows and (run_dir / "config.yaml").is_file():
        planned = (yaml.safe_load((run_dir / "config.yaml").read_text()) or {}).get("training", {}).get("steps", "?")
        page.heading("Unfinished run", level)
        page.text(f"This run has no results.json: its last evaluation is at step {int(rows[-1]['step'])} of "
                  f"{planned}, and its best checkpoint was never tested. Continue it with `manytask train "
                  f"{run_dir / 'config.yaml'} --resume latest`.", note=True)
    if rows:
        best = results.get("best_step")
        mark = float(best) if isinstance(best, (int, float)) else None
        tasks = [k.split("/")[1] for k in _columns(rows, "train/")]
        page.heading("Learning curves", level)
        curves = {task: {"train loss": _series(rows, f"train/{task}/loss"),
                         "validation loss": _series(rows, f"val/{task}/loss")} for task in tasks}
        where_best = ("dashed: the best checkpoint." if mark is not None else
                      "no best checkpoint: the monitored value was never defined, so the last model was tested."
                      if results else "no best checkpoint yet.")
        page.figure(panels(curves, mark_x=mark, log_y=True),
                    "Each task's training loss (mean over the steps since the previous evaluation) and "
                    f"validation loss; {where_best}")
        metrics = [k for k in _columns(rows, "val/") if not k.endswith("/loss")]
        if metrics:
            page.figure(panels({k[4:]: {"validation": _series(rows, k)} for k in metrics}, mark_x=mark),
                        "Each task's validation metrics at every evaluation.")
        weights = _columns(rows, "weight/")
        if weights or _columns(rows, "lr"):
            page.heading("Learning rate and task weights", level)
            lines = {"learning rate": {"lr": _series(rows, "lr")}}
            if weights:
                lines["task weights"] = {k[7:]: _series(rows, k) for k in weights}
            page.figure(panels(lines, columns=2),
                        "Learning rate at each evaluation; each task's balancer weight, the mean over the steps "
                        "since the previous evaluation that trained the task.")
        diagnostics = _columns(rows, "model/")
        if diagnostics:
            page.heading("Model diagnostics", level)
            page.figure(panels({k[6:]: {k[6:]: _series(rows, k)} for k in diagnostics}),
                        "What the model reports at each evaluation (e.g. experts' gate weights).")
    if relatedness:
        relatedness_sections(page, run_dir, level)
    structure = run_dir / "structure.txt"
    if structure.is_file():
        page.preformatted(structure.read_text(), "Learned sharing structure")
    config = run_dir / "config.yaml"
    if config.is_file():
        page.preformatted(config.read_text(), "Configuration (config.yaml)")


def relatedness_sections(page: Page, run_dir: Path, level: int = 2) -> None:
    """Each task-by-task matrix in ``run_dir/relatedness`` as a heat map, with the recommended
    groups and each task's most helpful and most harmful partner."""
    from ..relatedness import load_matrices

    matrices = load_matrices(run_dir)
    if not matrices:
        return
    page.heading("Which tasks help which", level)
    groups_file = run_dir / "relatedness" / "groups.json"
    if groups_file.is_file():
        saved = json.loads(groups_file.read_text())
        page.table(["from", f"recommended {saved['k']} groups"],
                   [(name, " | ".join(", ".join(g) for g in groups)) for name, groups in saved["groups"].items()]
                   + [(name, f"none: {reason}") for name, reason in saved.get("no_groups", {}).items()])
        if saved.get("rank_correlation") is not None:
            page.text(f"Spearman rank correlation of the lookahead affinity and the pair-run transfer gains (off the "
                      f"diagonal): {saved['rank_correlation']:+.2f}.")
    order = ["tag_affinity", "transfer_gain", "gradient_cosine", "gradient_conflict", "gradient_norm_ratio",
             "representation_similarity", "parameter_cosine", "mtrl_correlation", "relationship_correlation"]
    for matrix in sorted(matrices, key=lambda m: order.index(m.name) if m.name in order else len(order)):
        page.heading(matrix.title, level + 1)
        page.figure(heatmap(matrix.values, matrix.tasks, signed=matrix.signed, colorbar=matrix.title),
                    f"{matrix.description} Rows: the acting task; columns: the affected task.")
        if matrix.signed:
            for line in matrix.partners():
                page.text(line, note=True)
