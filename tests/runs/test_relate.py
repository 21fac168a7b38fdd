"""manytask relate as a user runs it: the matrices, the transfer gains recomputed from the pair
runs' own results, the groups, and the report."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from manytask.cli import app
from manytask.config import parse_config
from manytask.relatedness import best_groups, load_matrices
from manytask.runs import relate
from manytask.tasks import Regression

CONFIG = {"data": {"name": "demo", "n_train": 300, "n_val": 60, "n_test": 60},
          "training": {"steps": 20, "eval_every": 10, "progress": False}, "relatedness": {"every": 2, "groups": 2}}


@pytest.mark.report
def test_pairs_give_transfer_gains_from_their_own_results_and_the_groups_follow(tmp_path: Path) -> None:
    relation = relate(parse_config(CONFIG), run_dir=tmp_path / "rel", pairs=True)
    root = tmp_path / "rel"
    names = ["category", "score", "flag"]
    primary = {"category": ("accuracy", 1.0), "score": ("rmse", -1.0), "flag": ("accuracy", 1.0)}
    gain = {m.name: m for m in load_matrices(root)}["transfer_gain"]
    for i, acting in enumerate(names):
        for j, affected in enumerate(names):
            if i == j:
                assert math.isnan(gain.values[i, j])
                continue
            pair = root / f"pair-{'+'.join(sorted([acting, affected], key=names.index))}"
            metric, sign = primary[affected]
            together = json.loads((pair / "results.json").read_text())["metrics"][f"{affected}/{metric}"]
            alone = json.loads((root / f"single-{affected}" / "results.json").read_text())["metrics"][
                f"{affected}/{metric}"]
            assert gain.values[i, j] == pytest.approx(100 * sign * (together - alone) / abs(alone), rel=1e-5)
    saved = json.loads((root / "relatedness" / "groups.json").read_text())
    for name in ("tag_affinity", "transfer_gain", "gradient_cosine"):
        matrix = {m.name: m for m in load_matrices(root)}[name]
        chosen, _ = best_groups(matrix.values, 2)
        assert saved["groups"][name] == [[names[i] for i in g] for g in chosen] == relation.groups[name]
    assert -1 <= saved["rank_correlation"] <= 1
    page = (root / "report.html").read_text()
    assert page.count("<img") >= 5 + 3  # five heat maps, then the multi-task run's figures
    assert "Transfer gain from pair runs" in page and "recommended 2 groups" in page


def test_the_command_prints_partners_and_groups(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({**CONFIG, "logging": {"report": False}}))
    result = CliRunner().invoke(app, ["relate", str(tmp_path / "c.yaml"), "--run-dir", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    assert "Lookahead affinity (TAG):" in result.output and "Groups from tag_affinity:" in result.output
    assert not (tmp_path / "r" / "relatedness" / "transfer_gain.csv").exists()  # no pairs asked for
    again = CliRunner().invoke(app, ["relate", str(tmp_path / "c.yaml"), "--run-dir", str(tmp_path / "r")])
    assert again.exit_code == 2 and "already holds a run" in again.output
    values = {m.name: m.values for m in load_matrices(tmp_path / "r")}
    assert np.isfinite(values["tag_affinity"]).all()


def test_a_resume_keeps_the_finished_runs_and_trains_the_rest(tmp_path: Path) -> None:
    config = parse_config({**CONFIG, "logging": {"report": False}})
    relate(config, run_dir=tmp_path / "r")
    written = (tmp_path / "r" / "multi" / "results.json").stat().st_mtime_ns
    relation = relate(config, run_dir=tmp_path / "r", pairs=True, resume=True)
    assert (tmp_path / "r" / "multi" / "results.json").stat().st_mtime_ns == written  # not trained again
    assert "transfer_gain" in {m.name for m in relation.matrices}
    other = parse_config({**CONFIG, "logging": {"report": False}, "optimizer": {"lr": 0.5}})
    with pytest.raises(Exception, match="Cannot resume"):
        relate(other, run_dir=tmp_path / "r", pairs=True, resume=True)


def test_too_many_pair_runs_are_refused_before_any_training(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Thirty tasks (School-sized problems have 139): 465 runs is refused at once, naming the count."""
    from manytask.runs import _relate

    tasks = [Regression(f"t{k}") for k in range(30)]
    monkeypatch.setattr(_relate, "load_data", lambda config: None)
    monkeypatch.setattr(_relate, "select_tasks", lambda config, data: tasks)
    with pytest.raises(ValueError, match="30 tasks is 465 training runs"):
        relate(parse_config(CONFIG), run_dir=tmp_path / "r", pairs=True)
    assert not (tmp_path / "r" / "multi").exists()
