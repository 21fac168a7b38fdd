"""End-of-run summaries say over how many tasks a mean or Δm is taken (issue 9)."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

import manytask.runs._compare as compare_module
from manytask.config import apply_overrides, parse_config
from manytask.demos import DEMO_CONFIG
from manytask.runs import RunResult, compare
from manytask.training import TrainResult


def fake(test: dict[str, float], primary: tuple[str, ...] = ()) -> RunResult:
    return RunResult(TrainResult(1, None, None, None, False), test, "test", Path("."), primary)


def test_mean_primary_leaves_out_undefined_tasks() -> None:
    result = fake({"a/auroc": 0.8, "b/auroc": math.nan, "c/auroc": 0.6}, ("a/auroc", "b/auroc", "c/auroc"))
    mean, undefined = result.mean_primary()
    assert mean == pytest.approx(0.7) and undefined == ["b/auroc"]


def test_delta_m_names_the_tasks_it_leaves_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 9: a task with no test rows made Δm print +nan%."""
    values = {"single-category": 0.8, "single-score": 1.0, "single-flag": math.nan}

    def train(config: object, data: object = None, only: list[str] | None = None, run_dir: Path | None = None,
              **_: object) -> RunResult:
        if only:  # single-task run of one task
            name = only[0]
            metric = {"category": "accuracy", "score": "rmse", "flag": "auroc"}[name]
            return fake({f"{name}/{m}": values[f"single-{name}"] for m in ("accuracy", "rmse", "mae", "auroc")}
                        | {f"{name}/{metric}": values[f"single-{name}"]})
        return fake({"category/accuracy": 0.88, "score/rmse": 0.5, "score/mae": 0.4, "flag/accuracy": 0.9,
                     "flag/auroc": 0.9})

    monkeypatch.setattr(compare_module, "train", train)
    config = parse_config(apply_overrides(copy.deepcopy(DEMO_CONFIG), [f"run_dir={tmp_path}"]))
    comparison = compare(config)
    assert comparison.undefined == ("flag/accuracy",)
    assert comparison.delta_m == pytest.approx(100 * (0.1 + 0.5) / 2)  # (0.88-0.8)/0.8 and (1-0.5)/1
    assert "over 2 of 3 main tasks; undefined for flag/accuracy, left out" in comparison.table()


def test_train_prints_the_mean_over_main_tasks(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import manytask.runs as runs
    from manytask.cli._app import app

    monkeypatch.setattr(runs, "train", lambda *a, **k: fake({"a/auroc": 0.8, "b/auroc": math.nan},
                                                             ("a/auroc", "b/auroc")))
    path = tmp_path / "c.yaml"
    path.write_text("training: {steps: 1}\n")
    out = CliRunner().invoke(app, ["train", str(path)]).output
    assert "test/mean/auroc: 0.8000 (over 1 of 2 main tasks; undefined for b/auroc)" in out


def test_a_baseline_of_zero_is_left_out_of_delta_m_and_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The defect: a single-task value of 0 raised ZeroDivisionError after every model was trained."""
    values = {"category": 0.8, "score": 0.0, "flag": 0.5}

    def train(config: object, data: object = None, only: list[str] | None = None, run_dir: Path | None = None,
              **_: object) -> RunResult:
        if only:
            return fake({f"{only[0]}/{m}": values[only[0]] for m in ("accuracy", "rmse", "mae", "auroc")})
        return fake({"category/accuracy": 0.88, "score/rmse": 0.5, "score/mae": 0.4, "flag/accuracy": 0.9,
                     "flag/auroc": 0.9})

    monkeypatch.setattr(compare_module, "train", train)
    comparison = compare(parse_config(apply_overrides(copy.deepcopy(DEMO_CONFIG), [f"run_dir={tmp_path}"])))
    assert comparison.undefined == ("score/rmse",)
    assert comparison.delta_m == pytest.approx(100 * (0.1 + 0.8) / 2)  # (0.88-0.8)/0.8 and (0.9-0.5)/0.5
    table = comparison.table()
    assert "| score | rmse | lower | 0.0000 | 0.5000 | undefined |" in table
    assert "over 2 of 3 main tasks; undefined for score/rmse, left out" in table
