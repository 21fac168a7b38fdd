"""The ``manytask`` command through Typer's CliRunner."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from manytask._registry import OptionsError, UnknownNameError
from manytask.cli import app
from manytask.config import ConfigError
from manytask.tasks import TargetError
from manytask.training import CheckpointError

runner = CliRunner()
SMALL = ["--set", "training.steps=30", "--set", "training.eval_every=10", "--set", "data.n_train=200",
         "--set", "data.n_test=100", "--set", "data.n_val=50", "--set", "model.encoder.hidden=[16]"]


def write_config(tmp_path: Path, **extra: object) -> Path:
    config = {"run_dir": str(tmp_path / "run"), "data": {"name": "demo", "labelled_fraction": 0.2}}
    config.update(extra)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_list_shows_every_kind() -> None:
    result = runner.invoke(app, ["list"])
    assert result.exit_code == 0, result.output
    for word in ("models:", "hps", "balancers:", "mgda", "samplers:", "annealed", "datasets:", "demo", "metrics:", "rmse"):
        assert word in result.output
    assert runner.invoke(app, ["list", "balancers"]).output.startswith("balancers:")
    bad = runner.invoke(app, ["list", "balancer"])
    assert bad.exit_code == 2 and "Unknown kind 'balancer'" in bad.output and "Did you mean 'balancers'" in bad.output


def test_list_summaries_are_plain_text() -> None:
    """Summaries come from docstrings written for reST: no roles, literals or LaTeX reach the terminal."""
    output = runner.invoke(app, ["list"]).output
    for markup in (":math:", ":class:", "``", "\\"):
        assert markup not in output, [line for line in output.splitlines() if markup in line]


@pytest.mark.report
def test_train_writes_a_run_directory_and_resumes(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    result = runner.invoke(app, ["train", str(config), *SMALL])
    assert result.exit_code == 0, result.output
    run = tmp_path / "run"
    assert (run / "config.yaml").is_file() and (run / "results.json").is_file()
    assert f"Report: {run / 'report.html'}" in result.output and (run / "report.html").stat().st_size > 10_000
    rows = read_rows(run / "metrics.csv")
    assert [r["step"] for r in rows] == ["10", "20", "30"]
    assert {"val/category/accuracy", "val/score/rmse", "train/flag/loss"} <= set(rows[0])
    results = json.loads((run / "results.json").read_text())
    assert results["split"] == "test" and results["cost"]["seconds_per_step"] > 0
    assert results["cost"]["peak_memory_mb"] > 50
    assert yaml.safe_load((run / "config.yaml").read_text())["training"]["steps"] == 30

    more = runner.invoke(app, ["train", str(config), *SMALL, "--set", "training.steps=40", "--resume", "latest"])
    assert more.exit_code == 0, more.output
    assert [r["step"] for r in read_rows(run / "metrics.csv")] == ["10", "20", "30", "40"]


def test_compare_prints_delta_m(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    result = runner.invoke(app, ["compare", str(config), *SMALL])
    assert result.exit_code == 0, result.output
    assert "Δm =" in result.output and "| score | rmse | lower |" in result.output
    for name in ("single-category", "single-score", "single-flag", "multi"):
        assert (tmp_path / "run" / name / "results.json").is_file()
    assert (tmp_path / "run" / "comparison.csv").read_text().splitlines()[-1].startswith("delta_m")


def test_bad_config_fails_before_training(tmp_path: Path) -> None:
    config = write_config(tmp_path, balancer={"name": "mgdaa"})
    result = runner.invoke(app, ["train", str(config)])
    assert result.exit_code == 2
    assert "Unknown balancer 'mgdaa'. Did you mean 'mgda'" in result.output
    assert not (tmp_path / "run").exists()
    missing = runner.invoke(app, ["train", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 2 and "does not exist" in missing.output


def test_demo_command_runs_small(tmp_path: Path) -> None:
    result = runner.invoke(app, ["demo", "--run-dir", str(tmp_path), *SMALL])
    assert result.exit_code == 0, result.output
    assert "Δm =" in result.output and (tmp_path / "comparison.md").is_file()
    again = runner.invoke(app, ["demo", "--run-dir", str(tmp_path), *SMALL])  # its own earlier run: replaced
    assert again.exit_code == 0, again.output


def test_the_demo_does_not_replace_another_run(tmp_path: Path) -> None:
    """Before the fix the demo deleted whatever run its directory held, without --overwrite."""
    (tmp_path / "config.yaml").write_text("data: {name: table}\n")
    (tmp_path / "results.json").write_text("{}")
    result = runner.invoke(app, ["demo", "--run-dir", str(tmp_path), *SMALL])
    assert result.exit_code == 2 and "holds a run that is not the demo's" in result.output
    assert (tmp_path / "config.yaml").read_text() == "data: {name: table}\n" and (tmp_path / "results.json").exists()


def test_list_shows_balancer_metadata_and_views() -> None:
    from typer.testing import CliRunner

    from manytask.cli._app import app

    out = CliRunner().invoke(app, ["list", "balancers"]).output
    assert "paper: Sener & Koltun 2018" in out and "needs: gramian; levels: exact, representation" in out
    assert "needs: losses" in out and "stateful: yes" in out
    assert "masked_cells" in CliRunner().invoke(app, ["list", "views"]).output


def _raise(error: BaseException) -> object:
    def run(*args: object, **kwargs: object) -> None:
        raise error

    return run


@pytest.mark.parametrize(
    ("error", "line"),
    [
        (ConfigError("Config key 'training.steps': must be > 0."), "error: Config key 'training.steps': must be > 0."),
        (UnknownNameError("Unknown balancer 'x'. Did you mean 'ew'?"), "error: Unknown balancer 'x'. Did you mean 'ew'?"),
        (OptionsError("Option 'size' of model 'mlp': bad."), "error: Option 'size' of model 'mlp': bad."),
        (TargetError("Task 'a': targets must be 0 or 1."), "error: Task 'a': targets must be 0 or 1."),
        (CheckpointError("Checkpoint x is corrupt."), "error: Checkpoint x is corrupt."),
    ],
)
def test_the_projects_own_errors_are_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               error: Exception, line: str) -> None:
    import manytask.runs as runs

    monkeypatch.setattr(runs, "train", _raise(error))
    result = runner.invoke(app, ["train", str(write_config(tmp_path))])
    assert result.exit_code == 2 and result.output == line + "\n"


@pytest.mark.parametrize("error", [ValueError("an internal value"), KeyError("an internal key"),
                                   TypeError("an internal type")])
def test_other_errors_keep_their_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           error: Exception) -> None:
    """The defect: every ValueError/KeyError became a one-line "user error", hiding bugs."""
    import manytask.runs as runs

    monkeypatch.setattr(runs, "train", _raise(error))
    monkeypatch.setattr(runs, "compare", _raise(error))
    for command in ("train", "compare"):
        result = runner.invoke(app, [command, str(write_config(tmp_path))])
        assert result.exit_code == 1 and result.exception is error, result.output
        assert "error:" not in result.output


def test_train_lists_auxiliary_tasks_apart(tmp_path: Path) -> None:
    config = write_config(tmp_path, tasks={"flag": {"role": "auxiliary"}})
    result = runner.invoke(app, ["train", str(config), *SMALL])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if not line.startswith("manytask: step")]  # progress
    header = lines.index("  auxiliary tasks:")
    assert all("flag/" not in line for line in lines[:header])
    assert [line for line in lines[header + 1:] if line.startswith("  test/")] == [
        line for line in lines if line.startswith("  test/flag/")]


def test_explain_prints_a_components_paper_options_and_docs() -> None:
    result = runner.invoke(app, ["explain", "mgda"])
    assert result.exit_code == 0, result.output
    assert "mgda (balancer)" in result.output and "Sener & Koltun 2018" in result.output
    assert "level (default 'exact')" in result.output and "min-norm point" in result.output
    view = runner.invoke(app, ["explain", "masked_cells"])
    assert "each_cell (default False)" in view.output
    wrong = runner.invoke(app, ["explain", "mgdaa"])
    assert wrong.exit_code == 2 and "Did you mean 'mgda'" in wrong.output
    upper = runner.invoke(app, ["explain", "MGDA"])
    assert upper.exit_code == 2 and "Did you mean 'mgda'" in upper.output and "hps" not in upper.output
