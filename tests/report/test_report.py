"""report.html read back without a browser: every figure a real, non-blank PNG; every table's
numbers those of the run's own files; the columns behind the plots (learning rate, task weights)
checked against closed forms."""

from __future__ import annotations

import base64
import csv
import io
import json
import math
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from manytask.cli import app
from manytask.config import parse_config
from manytask.report import ReportError, write_report
from manytask.report._plots import heatmap, panels, pareto_front
from manytask.runs import compare, train

pytestmark = pytest.mark.report

BASE = {
    "data": {"name": "demo", "n_train": 300, "n_val": 60, "n_test": 60},
    "training": {"steps": 30, "eval_every": 10, "progress": False},
}


class _Page(HTMLParser):
    """Images, tables (rows of cell texts) and every URL the page would fetch."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.tables: list[list[list[str]]] = []
        self.urls: list[str] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        for key in ("src", "href"):
            if found.get(key):
                self.urls.append(str(found[key]))
        if tag == "img":
            self.images.append(str(found["src"]))
        elif tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def _read(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text())
    return page


def _check_figures(page: _Page, count: int) -> None:
    assert len(page.images) == count
    for src in page.images:
        assert src.startswith("data:image/png;base64,")
        image = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).convert("L")
        counts = image.histogram()  # 256 grey levels
        drawn = sum(counts[:200]) / sum(counts)  # lines, text, bars: not a blank canvas
        assert image.width > 200 and image.height > 150 and 0.01 < drawn < 0.9
    assert all(url.startswith("data:") for url in page.urls)  # nothing fetched from a network


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _write_rows(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_a_run_writes_its_report_with_the_best_checkpoints_metrics(tmp_path: Path) -> None:
    train(parse_config(BASE), run_dir=tmp_path / "run")
    page = _read(tmp_path / "run" / "report.html")
    _check_figures(page, 3)  # learning curves, validation metrics, learning rate and task weights
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    shown = {f"{row[0]}/{row[2]}": row[3] for row in page.tables[0][1:]}
    assert shown == {k: f"{v:.4g}" for k, v in results["metrics"].items()}
    facts = dict(page.tables[1][1:])
    assert facts["best step"] == str(results["best_step"]) and facts["steps"] == "30"


def test_weights_are_each_tasks_mean_over_the_steps_that_trained_it_and_lr_follows_its_schedule(
        tmp_path: Path) -> None:
    """Fixed weights: every weight column is the weight itself although `score` and `flag` (80
    labels of 300) are absent from some batches; the step schedule halves lr every 10 steps."""
    config = {**BASE, "balancer": {"name": "fixed", "weights": {"category": 2.0, "score": 0.5, "flag": 1.0}},
              "optimizer": {"lr": 0.01, "scheduler": "step", "decay_every": 10, "decay_factor": 0.5}}
    train(parse_config(config), run_dir=tmp_path / "run")
    rows = _rows(tmp_path / "run" / "metrics.csv")
    assert [float(r["lr"]) for r in rows] == pytest.approx([0.01 * 0.5 ** k for k in (1, 2, 3)])
    for task, weight in {"category": 2.0, "score": 0.5, "flag": 1.0}.items():
        assert [float(r[f"weight/{task}"]) for r in rows] == pytest.approx([weight] * 3)


def test_a_resume_between_evaluations_keeps_the_weight_means_exact(tmp_path: Path) -> None:
    """Resumed at step 15, half-way between evaluations: the row of step 20 averages the weights of
    steps 11-20, as the straight run's does (UW's weights change every step; Adam)."""
    config = {**BASE, "balancer": {"name": "uw"},
              "training": {**BASE["training"], "steps": 20, "checkpoint_every": 5}}
    train(parse_config(config), run_dir=tmp_path / "straight")
    shutil.copytree(tmp_path / "straight", tmp_path / "split")
    train(parse_config(config), run_dir=tmp_path / "split",
          resume=tmp_path / "split" / "checkpoints" / "step-000000015.safetensors")
    straight, split = _rows(tmp_path / "straight" / "metrics.csv"), _rows(tmp_path / "split" / "metrics.csv")
    keys = [k for k in straight[0] if k.startswith(("weight/", "train/", "lr"))]
    assert [[r[k] for k in keys] for r in split] == [[r[k] for k in keys] for r in straight]


def test_a_comparison_report_shows_comparison_csv_and_each_runs_cost(tmp_path: Path) -> None:
    comparison = compare(parse_config(BASE), run_dir=tmp_path / "cmp")
    page = _read(tmp_path / "cmp" / "report.html")
    # change per metric and Δm; validation curves; cost; the multi-task run's three
    _check_figures(page, 6)
    expected = [r for r in _rows(tmp_path / "cmp" / "comparison.csv") if r["task"] != "delta_m"]
    table = page.tables[0][1:]
    assert [(r[0], r[1], r[3], r[4]) for r in table] == [
        (r["task"], r["metric"], f"{float(r['single_task']):.4g}", f"{float(r['multi_task']):.4g}") for r in expected]
    assert f"Δm = {comparison.delta_m:+.2f}%" in (tmp_path / "cmp" / "report.html").read_text()
    costs = {row[0]: row for row in page.tables[1][1:]}
    assert set(costs) == {"multi", "single-category", "single-score", "single-flag"}
    for name, row in costs.items():
        spent = json.loads((tmp_path / "cmp" / name / "results.json").read_text())["cost"]["seconds_per_step"]
        assert row[2] == f"{spent:.4g}"
    assert not (tmp_path / "cmp" / "multi" / "report.html").exists()  # one report for the comparison


def _suite_dir(tmp_path: Path) -> Path:
    """A finished suite written by hand: two main tasks (accuracy up, rmse down), two seeds."""
    root = tmp_path / "bench"
    root.mkdir()
    suite = {"name": "hand", "title": "Hand", "budget": "none", "base": {"data": {"name": "demo"}},
             "methods": [{"label": "ew"}, {"label": "other", "balancer": {"name": "uw"}}], "seeds": [0, 1]}
    (root / "suite.json").write_text(json.dumps(suite))
    rows = [("single-task", 0, "a", 0.80, ""), ("single-task", 0, "b", "", 1.0),
            ("single-task", 1, "a", 0.70, ""), ("single-task", 1, "b", "", 2.0),
            ("ew", 0, "all", 0.88, 0.9), ("ew", 1, "all", 0.77, 1.6),
            ("other", 0, "all", 0.84, 1.1), ("other", 1, "all", 0.63, 2.2)]
    with (root / "results.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["dataset", "method", "seed", "task", "primary", "seconds_per_step", "peak_rss_mb",
                         "a/accuracy", "b/rmse"])
        for method, seed, task, acc, rmse in rows:
            writer.writerow(["default", method, seed, task, "a/accuracy+b/rmse", 0.1, 100, acc, rmse])
    return root


def test_a_suite_report_gives_delta_m_per_method_and_the_trade_off(tmp_path: Path) -> None:
    root = _suite_dir(tmp_path)
    write_report(root)
    page = _read(root / "report.html")
    _check_figures(page, 2)  # Δm bars, Pareto plot
    table = {row[0]: row for row in page.tables[0][1:]}
    # Δm by hand: seed 0 ew: (+10% + 10%)/2 = 10; seed 1 ew: (+10% + 20%)/2 = 15 -> 12.50 ± 3.54
    # other: seed 0 (+5% - 10%)/2 = -2.5; seed 1 (-10% - 10%)/2 = -10 -> -6.25 ± 5.30
    assert table["ew"][3].startswith("12.50 ± 3.54") and table["other"][3].startswith("-6.25 ± 5.30")


def test_suite_figures_mark_a_mean_over_fewer_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A method with one run's metric undefined: its bar and its Pareto point are labelled (1 of 2
    runs), as the table marks its mean, instead of passing for a mean over both seeds."""
    import manytask.report._suite as suite_report

    root = _suite_dir(tmp_path)
    text = (root / "results.csv").read_text().splitlines()
    text = [line.replace(",0.63,2.2", ",,2.2") for line in text]  # "other", seed 1: accuracy undefined
    (root / "results.csv").write_text("\n".join(text) + "\n")
    labels: dict[str, list[str]] = {}
    real_bars, real_pareto = suite_report.bars, suite_report.pareto
    monkeypatch.setattr(suite_report, "bars", lambda names, *a, **k: (labels.setdefault("bars", names),
                                                                       real_bars(names, *a, **k))[1])
    monkeypatch.setattr(suite_report, "pareto", lambda means, *a, **k: (labels.setdefault("pareto", list(means)),
                                                                         real_pareto(means, *a, **k))[1])
    write_report(root)
    assert labels["bars"] == ["ew", "other (1 of 2 runs)"]
    assert labels["pareto"] == ["single-task", "ew", "other (1 of 2 runs)"]


def test_a_panel_without_a_finite_value_says_so_without_a_warning() -> None:
    """Two lines of NaN only (a metric never defined): the panel says "no finite value" and asks
    for no legend (matplotlib warned "No artists with labels found"; warnings are errors here)."""
    figure = panels({"a/auroc": {"single-task": ([1, 2], [math.nan, math.nan]),
                                 "multi-task": ([1, 2], [math.nan, math.nan])}})
    assert [t.get_text() for t in figure.axes[0].texts] == ["no finite value"]
    assert figure.axes[0].get_legend() is None


def test_a_heatmap_of_many_tasks_stays_a_readable_size() -> None:
    """139 tasks (School): the figure is at most 12 inches (it grew 0.55 inch a task, to 79) and
    names every 4th task (139 names overlapped)."""
    names = [f"school{i}" for i in range(139)]
    figure = heatmap(np.random.default_rng(0).normal(size=(139, 139)), names, signed=True, colorbar="affinity")
    assert max(figure.get_size_inches()) <= 13.2
    assert [t.get_text() for t in figure.axes[0].get_xticklabels()] == names[::4]


def test_the_pareto_front_keeps_only_the_points_nothing_dominates() -> None:
    points = {"a": (0.9, 1.0), "b": (0.8, 0.5), "c": (0.7, 0.7), "d": (0.9, 1.2), "e": (math.nan, 0.1)}
    assert pareto_front(points, x_higher=True, y_higher=False) == ["a", "b"]  # c worse than b, d than a
    assert pareto_front(points, x_higher=True, y_higher=True) == ["d"]
    assert pareto_front(points, x_higher=False, y_higher=False) == ["b", "c"]


def test_a_directory_without_a_run_is_named_with_what_was_looked_for(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match=r"holds no run \(metrics.csv, results.json\), comparison"):
        write_report(tmp_path)
    result = CliRunner().invoke(app, ["report", str(tmp_path / "absent")])
    assert result.exit_code == 2 and "No directory" in result.output


def test_a_report_that_fails_leaves_the_run_complete_and_says_how_to_retry(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import manytask.report

    def broken(directory: Path, out: Path | None = None) -> Path:
        raise OSError("disk full")

    monkeypatch.setattr(manytask.report, "write_report", broken)
    result = train(parse_config(BASE), run_dir=tmp_path / "run")
    assert result.test and (tmp_path / "run" / "results.json").is_file()
    said = capsys.readouterr().out
    assert "no report for" in said and "disk full" in said and f"manytask report {tmp_path / 'run'}" in said


def test_the_cli_writes_the_report_where_asked(tmp_path: Path) -> None:
    config = {**BASE, "logging": {"report": False}}
    train(parse_config(config), run_dir=tmp_path / "run")
    assert not (tmp_path / "run" / "report.html").exists()
    result = CliRunner().invoke(app, ["report", str(tmp_path / "run"), "--out", str(tmp_path / "page.html")])
    assert result.exit_code == 0, result.output
    _check_figures(_read(tmp_path / "page.html"), 3)


def test_a_report_on_an_unfinished_run_says_so_and_how_to_continue(tmp_path: Path) -> None:
    """Before the fix the page of a killed run had curves and no result, and said nothing."""
    run = tmp_path / "run"
    train(parse_config(BASE), run_dir=run, report=False)
    (run / "results.json").unlink()  # as a run killed after its evaluation at step 30 leaves it
    text = (write_report(run)).read_text()
    assert "Unfinished run" in text and "its last evaluation is at step 30 of 30" in text
    assert f"manytask train {run / 'config.yaml'} --resume latest" in text
    train(parse_config(BASE), run_dir=tmp_path / "done", report=False)
    assert "Unfinished run" not in write_report(tmp_path / "done").read_text()


def test_an_undefined_delta_m_and_change_read_undefined_not_zero_or_nan(tmp_path: Path) -> None:
    """A comparison whose primary metrics are undefined (NaN in comparison.csv): the page says
    "Δm undefined", and the bar figure marks the undefined changes instead of drawing bars of 0."""
    compare(parse_config(BASE), run_dir=tmp_path / "cmp")
    path = tmp_path / "cmp" / "comparison.csv"
    rows = _rows(path)
    for r in rows:
        r["change_percent"] = "nan"
    _write_rows(path, rows)
    text = write_report(tmp_path / "cmp").read_text()
    assert "Δm undefined" in text and "+nan%" not in text


def test_a_delta_m_over_some_main_tasks_says_over_how_many_and_which_are_left_out(tmp_path: Path) -> None:
    """One main task's primary change undefined: the page's Δm says it covers 2 of 3 main tasks and
    names the one left out (it said only "comparison.md names any task left out")."""
    compare(parse_config(BASE), run_dir=tmp_path / "cmp")
    path = tmp_path / "cmp" / "comparison.csv"
    rows = _rows(path)
    first = next(r for r in rows if r["task"] == "score")  # its primary metric: the first row of the task
    first["change_percent"] = "nan"
    _write_rows(path, rows)
    text = write_report(tmp_path / "cmp").read_text()
    assert f"over 2 of 3 main tasks; undefined for score/{first['metric']}, left out" in text


def test_report_on_a_malformed_results_file_is_one_error_line(tmp_path: Path) -> None:
    train(parse_config({**BASE, "training": {**BASE["training"]}}), run_dir=tmp_path / "run")
    results = tmp_path / "run" / "results.json"
    results.write_text(results.read_text()[:100])
    outcome = CliRunner().invoke(app, ["report", str(tmp_path / "run")])
    assert outcome.exit_code == 2 and "error:" in outcome.output and "Traceback" not in outcome.output


def test_a_run_whose_monitor_was_never_defined_says_the_last_model_was_tested(tmp_path: Path) -> None:
    train(parse_config(BASE), run_dir=tmp_path / "run")
    path = tmp_path / "run" / "results.json"
    results = json.loads(path.read_text())
    results["best_step"] = None
    path.write_text(json.dumps(results))
    text = write_report(tmp_path / "run").read_text()
    assert "the last model was tested" in text and "dashed: the best checkpoint" not in text
