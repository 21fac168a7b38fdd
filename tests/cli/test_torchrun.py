"""``torchrun --nproc_per_node=2 -m manytask train``: the same run as one process, rank 0 writing
it alone, and a resume on another number of ranks continuing it."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

CONFIG = {
    "data": {"name": "demo", "n_train": 200, "n_val": 50, "n_test": 100, "labelled_fraction": 0.3, "batch_size": 32},
    "model": {"encoder": {"hidden": [16]}},
    "balancer": {"name": "mgda"},
    "optimizer": {"name": "adam", "lr": 0.01},
    "training": {"steps": 16, "eval_every": 8, "progress": False},
}


def _manytask(*args: str, ranks: int = 1) -> subprocess.CompletedProcess[str]:
    launcher = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={ranks}", "-m", "manytask"] \
        if ranks > 1 else [sys.executable, "-m", "manytask"]
    done = subprocess.run([*launcher, *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _metrics(run: Path) -> dict[str, float]:
    return {k: v for k, v in json.loads((run / "results.json").read_text())["metrics"].items() if v is not None}


def _close(a: dict[str, float], b: dict[str, float]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert math.isclose(a[key], b[key], rel_tol=1e-4, abs_tol=1e-5), (key, a[key], b[key])


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("torchrun") / "config.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    return path


def test_two_ranks_train_the_run_one_process_trains(config: Path, tmp_path: Path) -> None:
    one = _manytask("train", str(config), "--run-dir", str(tmp_path / "one"))
    two = _manytask("train", str(config), "--run-dir", str(tmp_path / "two"), ranks=2)
    _close(_metrics(tmp_path / "two"), _metrics(tmp_path / "one"))
    assert two.stdout.count("Run directory:") == 1  # rank 0 reports; rank 1 says nothing
    assert "Best step" in one.stdout
    with (tmp_path / "two" / "metrics.csv").open() as handle:
        steps = [row["step"] for row in csv.DictReader(handle)]
    assert steps == ["8", "16"]  # one row per evaluation: rank 0 writes the log alone
    assert sorted(p.name for p in (tmp_path / "two" / "checkpoints").iterdir()) == \
        sorted(p.name for p in (tmp_path / "one" / "checkpoints").iterdir())


def test_a_run_of_two_ranks_resumes_in_one_process(config: Path, tmp_path: Path) -> None:
    straight = tmp_path / "straight"
    _manytask("train", str(config), "--run-dir", str(straight))
    split = tmp_path / "split"
    _manytask("train", str(config), "--run-dir", str(split), "--set", "training.steps=8", ranks=2)
    resumed = _manytask("train", str(config), "--run-dir", str(split), "--resume", "latest")
    _close(_metrics(split), _metrics(straight))
    assert "on 1 rank(s); the checkpoint was written by 2" in resumed.stderr


def test_compare_on_two_ranks_writes_its_table_once(config: Path, tmp_path: Path) -> None:
    two = _manytask("compare", str(config), "--run-dir", str(tmp_path / "two"), ranks=2)
    one = _manytask("compare", str(config), "--run-dir", str(tmp_path / "one"))
    assert two.stdout.count("Δm") == 1  # rank 0 prints the table
    rows = [line.split("|")[4:6] for line in (tmp_path / "two" / "comparison.md").read_text().splitlines()[2:]
            if line.startswith("| ")]
    expected = [line.split("|")[4:6] for line in (tmp_path / "one" / "comparison.md").read_text().splitlines()[2:]
                if line.startswith("| ")]
    for ours, theirs in zip(rows, expected, strict=True):
        for a, b in zip(ours, theirs):
            assert math.isclose(float(a), float(b), rel_tol=1e-3, abs_tol=1e-4), (ours, theirs)
    assert "Δm" in one.stdout


def test_bench_is_refused_under_torchrun(tmp_path: Path) -> None:
    suite = Path(__file__).resolve().parents[2] / "benchmarks" / "smoke.yaml"
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "-m", "manytask",
                           "bench", str(suite), "--runs-dir", str(tmp_path), "--no-docs"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode != 0 and "start it without torchrun" in done.stderr


@pytest.mark.parametrize("command", ["relate", "fit-linear"])
def test_one_process_commands_are_refused_under_torchrun(command: str, monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Path) -> None:
    """What torchrun sets (WORLD_SIZE): relate and fit-linear name the problem before writing."""
    from typer.testing import CliRunner

    from manytask.cli import app

    monkeypatch.setenv("WORLD_SIZE", "2")
    (tmp_path / "c.yaml").write_text("run_dir: " + str(tmp_path / "r") + "\n")
    result = CliRunner().invoke(app, [command, str(tmp_path / "c.yaml")])
    assert result.exit_code == 2 and "start it without torchrun" in result.output
    assert not (tmp_path / "r").exists()
