"""Benchmark suites: datasets x methods x seeds (+ single-task baselines), resumable.

A suite is a YAML file (see ``benchmarks/*.yaml``). ``run_suite`` trains every cell not yet in
the suite's raw CSV, each in its own process, then writes the tables into a section of
``docs/benchmarks.md`` headed by the command that produced them.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pydantic
import yaml
from pydantic import Field

from .._utils import StrictModel, atomic_write, load_yaml, write_section
from ..config import ConfigError, parse_config
from ..evaluation import format_mean_std
from ..metrics import delta_m, higher_is_better
from ._build import check_config, load_data, select_tasks

__all__ = ["GroupSummary", "Suite", "load_suite", "run_suite", "suite_summary", "suite_tables"]

SINGLE = "single-task"


_Strict = StrictModel  # suite entries: unknown keys are errors


class DatasetSpec(_Strict):
    """One dataset variant: ``data`` keys merged over the base config's ``data``."""

    label: str
    data: dict[str, Any] = Field(default_factory=dict)
    group: str | None = None  # variants with the same group are pooled as replicates


class MethodSpec(_Strict):
    """One multi-task method: config sections merged over the base config."""

    label: str
    balancer: dict[str, Any] = Field(default_factory=lambda: {"name": "ew"})
    data: dict[str, Any] | None = None  # e.g. a table's task columns or inputs for this row
    model: dict[str, Any] | None = None
    training: dict[str, Any] | None = None
    tasks: dict[str, Any] | None = None  # per-task overrides (e.g. attach_at for low supervision)
    include_tasks: list[str] | None = None  # train only these (e.g. the main task without an auxiliary one)
    views: dict[str, Any] | None = None  # options of the views this row's tasks name
    pretrain: dict[str, Any] | None = None
    """Config sections merged over this row's config for a first run (e.g. the view tasks alone:
    ``{include_tasks: [turns]}``); the row's run then starts from its best checkpoint
    (``training.init_from``), seed for seed."""


class ColumnSpec(_Strict):
    """A table column: ``"<task>/<metric>"`` or ``"mean/<metric>"`` (mean over main tasks)."""

    label: str
    metric: str


class PublishedRow(_Strict):
    """A published result shown beside ours."""

    label: str
    values: dict[str, float]
    source: str
    group: str | None = None  # the dataset group whose table shows it (default: every table)


class ExtraRows(_Strict):
    """Rows from another benchmark's JSON (``summary: {method: {label, per_split}}``) shown in
    one column of one group's table, e.g. the linear models beside the deep ones on School."""

    file: Path
    column: str
    group: str
    suffix: str = ""


class Suite(_Strict):
    """A benchmark suite."""

    name: str = Field(pattern=r"^[A-Za-z0-9_-]+$")
    title: str
    budget: str
    notes: str = ""
    base: dict[str, Any]
    datasets: list[DatasetSpec] = Field(default_factory=lambda: [DatasetSpec(label="default")])
    methods: list[MethodSpec]
    single_task: Literal["separate", "joint", "none"] = "separate"
    """``separate``: one model per main task; ``joint``: one ``independent`` (no-sharing) model
    for all tasks, for datasets with many tasks; ``none``: no baseline (no Δm)."""
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2])
    columns: list[ColumnSpec] | None = None
    published: list[PublishedRow] = Field(default_factory=list)
    extra_rows: list[ExtraRows] = Field(default_factory=list)


def load_suite(path: str | Path) -> Suite:
    """Read and validate a suite file; every cell's config is checked before anything runs."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Suite file {path} does not exist (suites live in benchmarks/*.yaml).")
    try:
        suite = Suite.model_validate(load_yaml(path.read_text()) or {})
    except (pydantic.ValidationError, yaml.YAMLError) as error:
        raise ConfigError(f"Suite file {path} is invalid: {error}") from None
    for dataset in suite.datasets:
        for method in suite.methods:
            config = _cell_config(suite, dataset, method, suite.seeds[0])
            check_config(parse_config(config))
            if method.pretrain is not None:
                check_config(parse_config(_merge(config, method.pretrain)))
    return suite


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        nested = isinstance(value, Mapping) and isinstance(out.get(key), dict)
        out[key] = _merge(out[key], value) if nested else copy.deepcopy(value)
    return out


def _cell_config(suite: Suite, dataset: DatasetSpec, method: MethodSpec | None, seed: int) -> dict[str, Any]:
    config = _merge(suite.base, {"data": dataset.data, "seed": seed})
    config.setdefault("training", {})["progress"] = False
    config.setdefault("logging", {})["report"] = False  # the suite's report covers its cells
    if method is not None:
        sections = (("data", method.data), ("model", method.model), ("training", method.training),
                    ("tasks", method.tasks), ("views", method.views))
        config = _merge(config, {k: v for k, v in sections if v})
        config["balancer"] = copy.deepcopy(method.balancer)
        if method.include_tasks is not None:
            config["include_tasks"] = list(method.include_tasks)
    return config


@dataclass(frozen=True)
class Cell:
    dataset: str
    method: str
    seed: int
    task: str  # "all" for cells training every task, else the single task trained
    config: dict[str, Any]
    primary: str  # "+"-joined primary metric keys of the main tasks
    pretrain: dict[str, Any] | None = None  # a first run's config; ``config`` then starts from it

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.dataset, self.method, str(self.seed), self.task)


def _cells(suite: Suite) -> Iterator[Cell]:
    """Every cell, seed by seed (an interrupted suite has whole seeds of every dataset first)."""
    mains_of: dict[str, list[Any]] = {}
    for dataset in suite.datasets:
        config = parse_config(_cell_config(suite, dataset, None, suite.seeds[0]))
        mains_of[dataset.label] = [t for t in select_tasks(config, load_data(config)) if t.role == "main"]
    for seed in suite.seeds:
        for dataset in suite.datasets:
            mains = mains_of[dataset.label]
            primary = "+".join(f"{t.name}/{t.metrics[0]}" for t in mains)
            if suite.single_task == "separate":
                alone = MethodSpec(label=SINGLE, balancer={"name": "ew"})
                for task in mains:
                    raw = _cell_config(suite, dataset, alone, seed)
                    yield Cell(dataset.label, SINGLE, seed, task.name, raw, primary)
            elif suite.single_task == "joint":
                joint = MethodSpec(label=SINGLE, balancer={"name": "ew"}, model={"name": "independent"})
                yield Cell(dataset.label, SINGLE, seed, "all", _cell_config(suite, dataset, joint, seed), primary)
            for method in suite.methods:
                raw = _cell_config(suite, dataset, method, seed)
                first = None if method.pretrain is None else _merge(raw, method.pretrain)
                yield Cell(dataset.label, method.label, seed, "all", raw, primary, first)


def _read_rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _write_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(path, buffer.getvalue())


def _run_in_child(cell: Cell, run_dir: Path, config: dict[str, Any] | None = None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        spec, out = Path(tmp) / "spec.json", Path(tmp) / "out.json"
        spec.write_text(json.dumps({"config": cell.config if config is None else config,
                                    "only": None if cell.task == "all" else [cell.task], "run_dir": str(run_dir),
                                    "parent": os.getpid()}))
        process = subprocess.Popen([sys.executable, "-m", "manytask.runs._cell", str(spec), str(out)])
        try:
            process.wait()
        except BaseException:  # interrupted: the cell must not train on alone
            process.terminate()
            process.wait()
            raise
        if process.returncode != 0 or not out.is_file():
            raise RuntimeError(f"Benchmark cell {cell.key} failed (exit code {process.returncode}); "
                               f"its run directory is {run_dir}. Fix the error above and rerun: "
                               "finished cells are kept.")
        return json.loads(out.read_text())  # peak_rss_mb: the cell's own (rusage's would hold the bench's)


def run_suite(path: str | Path, results_dir: Path = Path("benchmarks/results"), runs_dir: Path = Path("runs/bench"),
              docs: Path | None = Path("docs/benchmarks.md"), command: str | None = None,
              log: Callable[[str], None] = print) -> Path:
    """Run every unfinished cell of the suite at ``path``; return the raw CSV's path."""
    suite = load_suite(path)
    csv_path = results_dir / f"{suite.name}.csv"
    rows = _read_rows(csv_path)
    done = {(r["dataset"], r["method"], r["seed"], r["task"]) for r in rows}
    cells = list(_cells(suite))
    todo = [c for c in cells if c.key not in done]
    log(f"{suite.name}: {len(cells)} cells, {len(cells) - len(todo)} already done, {len(todo)} to run.")
    for number, cell in enumerate(todo, 1):
        start = time.perf_counter()
        run_dir = runs_dir / suite.name / cell.dataset / cell.method / f"seed-{cell.seed}" / cell.task
        if cell.pretrain is not None:
            _run_in_child(cell, run_dir.with_name("pretrain"), cell.pretrain)
            finetune = _merge(cell.config, {"training": {"init_from": str(run_dir.with_name("pretrain"))}})
            figures = _run_in_child(cell, run_dir, finetune)
        else:
            figures = _run_in_child(cell, run_dir)
        row: dict[str, Any] = dict(zip(("dataset", "method", "seed", "task"), cell.key))
        row["primary"] = cell.primary
        kept = ("steps", "best_step", "seconds_per_step", "threads", "peak_rss_mb", "peak_rss_of", "split")
        row.update({k: figures[k] for k in kept})
        row.update({k: ("" if v is None else v) for k, v in figures["metrics"].items()})
        rows.append(row)
        _write_rows(csv_path, rows)
        log(f"[{number}/{len(todo)}] {cell.dataset} / {cell.method} / seed {cell.seed} / {cell.task}: "
            f"{time.perf_counter() - start:.0f} s")
    if docs is not None:
        write_section(suite.name, suite_tables(suite, _read_rows(csv_path), command), docs)
    if suite.base.get("logging", {}).get("report", True):
        write_suite_report(suite, csv_path, runs_dir / suite.name)
    return csv_path


def write_suite_report(suite: Suite, csv_path: Path, directory: Path) -> None:
    """Keep the suite and its results in ``directory`` (``suite.json``, ``results.csv``) and write
    its ``report.html`` there (``manytask report DIRECTORY`` writes it again)."""
    from ._train import try_report

    directory.mkdir(parents=True, exist_ok=True)
    atomic_write(directory / "suite.json", suite.model_dump_json(indent=1))
    atomic_write(directory / "results.csv", csv_path.read_text())
    try_report(directory)


def _float(row: Mapping[str, str], key: str) -> float:
    value = row.get(key, "")
    return float(value) if value not in ("", None) else math.nan


def _metric_of(row: Mapping[str, str], column: str, tasks: list[str]) -> float:
    """``column`` of a multi-task row; ``mean/<metric>`` is the mean over ``tasks`` (those that
    measure the metric), NaN where one of them has no value (counted in the table, not dropped)."""
    head, metric = column.split("/", 1)
    if head != "mean":
        return _float(row, column)
    values = [_float(row, f"{t}/{metric}") for t in tasks]
    return sum(values) / len(values) if values else math.nan


def _measuring(rows: list[dict[str, str]], column: str, mains: list[str]) -> list[str]:
    """The main tasks a ``mean/<metric>`` column averages: those with a value of the metric in some
    row of the suite (a regression task has no accuracy in any row); ``mains`` otherwise."""
    head, metric = column.split("/", 1)
    if head != "mean":
        return mains
    return [t for t in mains if any(math.isfinite(_float(r, f"{t}/{metric}")) for r in rows)]


def _undefined_terms(multitask: Mapping[str, float], baseline: Mapping[str, float]) -> list[str]:
    """Why each undefined term of a run's Δm is undefined (no value, or a baseline of 0); empty if
    Δm is defined."""
    reasons = []
    for key, base in baseline.items():
        if not math.isfinite(multitask[key]):
            reasons.append(f"{key}: no multi-task value")
        elif not math.isfinite(base):
            reasons.append(f"{key}: no single-task value")
        elif base == 0:
            reasons.append(f"{key}: single-task baseline is 0")
    return reasons


@dataclass
class GroupSummary:
    """One dataset group's results: the table's rows (as shown) and the numbers behind them."""

    group: str
    header: list[str]
    lines: list[list[str]]
    footnote: str
    notes: list[str]
    keys: list[str]  # the main tasks' primary metrics, "<task>/<metric>"
    values: dict[str, dict[str, list[float]]]  # method -> primary key -> one value per run
    deltas: dict[str, list[float]]  # method -> Δm % of each run (NaN where undefined)


def _own_peak(row: dict[str, str]) -> bool:
    """Whether a CSV row's peak RSS is its cell's own (older rows hold the bench process's)."""
    return row.get("peak_rss_of") == "cell"


def suite_summary(suite: Suite, rows: list[dict[str, str]]) -> list[GroupSummary]:
    """Each dataset group's table: mean ± std over datasets x seeds, Δm against single-task."""
    ew = next((m.label for m in suite.methods if m.balancer.get("name") == "ew"), None)
    groups: dict[str, list[str]] = defaultdict(list)
    for dataset in suite.datasets:
        groups[dataset.group or dataset.label].append(dataset.label)
    summaries = []
    for group, labels in groups.items():
        mine = [r for r in rows if r["dataset"] in labels]
        if not mine:
            continue
        keys = mine[0]["primary"].split("+")
        mains = [k.split("/", 1)[0] for k in keys]
        single = [r for r in mine if r["method"] == SINGLE]
        columns = suite.columns or [ColumnSpec(label=k, metric=k) for k in keys]
        replicates = sorted({(r["dataset"], r["seed"]) for r in mine})
        covered = {c.metric: _measuring(mine, c.metric, mains) for c in columns}  # mean/<metric>: its tasks

        def single_value(replicate: tuple[str, str], column: str, single: list[dict[str, Any]] = single,
                         mains: list[str] = mains, covered: dict[str, list[str]] = covered) -> float:
            """A single-task baseline's value; NaN (counted in the table) if any task lacks it."""
            own = [r for r in single if (r["dataset"], r["seed"]) == replicate]
            by_task = {t: next((r for r in own if r["task"] in (t, "all")), None) for t in mains}
            head, metric = column.split("/", 1)
            wanted = covered.get(column, mains) if head == "mean" else [head]
            values = [_float(r, f"{t}/{metric}") if (r := by_task.get(t)) is not None else math.nan for t in wanted]
            return sum(values) / len(values) if values else math.nan

        header = ["method", *(c.label for c in columns), *(["Δm %"] if single else []), "step time / EW",
                  "peak RSS (MB)"]
        lines: list[list[str]] = []
        methods = ([SINGLE] if single else []) + [m.label for m in suite.methods]
        notes: list[str] = []  # the runs whose Δm is undefined, and why
        primary: dict[str, dict[str, list[float]]] = {}
        all_deltas: dict[str, list[float]] = {}
        stale_runs = sum(not _own_peak(r) for r in mine)
        for method in methods:
            cells = {(r["dataset"], r["seed"]): r for r in mine if r["method"] == method and r["task"] == "all"}
            values, deltas, ratios, memory = defaultdict(list), [], [], []
            primary[method] = {k: [] for k in keys}
            undefined: list[str] = []
            for replicate in replicates:
                if method == SINGLE:
                    for c in columns:
                        values[c.label].append(single_value(replicate, c.metric))
                    for k in keys:
                        primary[method][k].append(single_value(replicate, k))
                    memory += [_float(r, "peak_rss_mb") for r in single
                               if (r["dataset"], r["seed"]) == replicate and _own_peak(r)]
                    continue
                row = cells.get(replicate)
                if row is None:  # not in the CSV: counted, so that the means say (n of m)
                    for c in columns:
                        values[c.label].append(math.nan)
                    for k in keys:
                        primary[method][k].append(math.nan)
                    if single:
                        deltas.append(math.nan)
                        undefined.append(f"{replicate[0]} seed {replicate[1]} (not run yet)")
                    continue
                for c in columns:
                    values[c.label].append(_metric_of(row, c.metric, covered[c.metric]))
                for k in keys:
                    primary[method][k].append(_float(row, k))
                if single:
                    ours = {k: _float(row, k) for k in keys}
                    baseline = {k: single_value(replicate, k) for k in keys}
                    reasons = _undefined_terms(ours, baseline)
                    if reasons:  # NaN: the cell says "(n of m)", the note below names the run and why
                        deltas.append(math.nan)
                        undefined.append(f"{replicate[0]} seed {replicate[1]} ({'; '.join(reasons)})")
                    else:
                        deltas.append(delta_m(ours, baseline, {k: higher_is_better(k.split("/", 1)[1]) for k in keys}))
                base = next((r for r in mine if r["method"] == ew and r["task"] == "all"
                             and (r["dataset"], r["seed"]) == replicate), None)
                if base is not None:
                    ratios.append(_float(row, "seconds_per_step") / _float(base, "seconds_per_step"))
                if _own_peak(row):
                    memory.append(_float(row, "peak_rss_mb"))
            if method != SINGLE and single:
                all_deltas[method] = deltas
            line = [method, *(format_mean_std(values[c.label]) for c in columns)]
            if single:
                line.append("–" if method == SINGLE else format_mean_std(deltas, 2))
            if undefined:
                notes.append(f"- Δm % of {method} is undefined on {len(undefined)} of {len(deltas)} runs, left out "
                             f"of its mean: {', '.join(undefined)}.")
            line.append(format_mean_std(ratios, 2, spread=False) if ratios else "–")
            line.append(format_mean_std(memory, 0, spread=False) if memory else "–")
            lines.append(line)
        for extra in (e for e in suite.extra_rows if e.group == group):
            summary = json.loads(extra.file.read_text())["summary"]
            for entry in summary.values():
                line = [entry["label"] + extra.suffix, *(
                    format_mean_std(entry["per_split"]) if c.label == extra.column else "–" for c in columns)]
                line += (["–"] if single else []) + ["–", "–"]
                lines.append(line)
        published_here = [p for p in suite.published if p.group in (None, group)]
        for published in published_here:
            line = [f"{published.label} (published)", *(
                f"{published.values[c.label]:g}" if c.label in published.values else "–" for c in columns)]
            line += (["–"] if single else []) + ["–", "–"]
            lines.append(line)
        threads = sorted({r.get("threads", "") for r in mine} - {""})
        footnote = (f"Mean ± std over {len(replicates)} runs ({len(labels)} dataset variant(s) x seeds "
                    f"{', '.join(map(str, suite.seeds))}); Δm % against the single-task models of the same run "
                    f"(Maninis et al. 2019); step time relative to {ew!r} on the same data and seed; peak RSS of "
                    f"the run's own process; {'/'.join(threads) or '?'} torch thread(s) per run; a mean "
                    "marked (n of m) covers only n of the m runs, the others' value being undefined.")
        if stale_runs:
            notes.append(f"- Peak RSS: {stale_runs} run(s) were measured before each cell read its own peak; they "
                         "reported the bench process's (the same value in every row) and are left out of the "
                         "column ('–' where no run of a method has a measurement). Rerunning those cells fills it.")
        for extra in (e for e in suite.extra_rows if e.group == group):
            command = json.loads(extra.file.read_text()).get("command", "")
            notes.append(f"- Rows marked '{extra.suffix.strip()}': `{command}` (raw results in `{extra.file}`).")
        for published in published_here:
            notes.append(f"- {published.label}: {published.source}")
        summaries.append(GroupSummary(group, header, lines, footnote, notes, keys, primary, all_deltas))
    return summaries


def suite_tables(suite: Suite, rows: list[dict[str, str]], command: str | None = None) -> str:
    """The suite's Markdown: one table per dataset group, mean ± std over datasets x seeds."""
    command = command or f"manytask bench benchmarks/{suite.name}.yaml"
    out = [f"## {suite.title}", "", f"Command: `{command}`. Budget: {suite.budget}.", ""]
    if suite.notes:
        out += [suite.notes.strip(), ""]
    several = len({d.group or d.label for d in suite.datasets}) > 1
    for summary in suite_summary(suite, rows):
        if several:
            out += [f"### {summary.group}", ""]
        out += ["| " + " | ".join(summary.header) + " |", "|" + "---|" * len(summary.header)]
        out += ["| " + " | ".join(line) + " |" for line in summary.lines]
        out += ["", summary.footnote, ""]
        out += summary.notes
    return "\n".join(out).strip() + "\n"
