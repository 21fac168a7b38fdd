"""manytask relate refuses what it cannot do before it deletes or trains anything, never reads back
a run trained with another config, recommends no groups from a matrix that measured no pair, and
leaves in ``relatedness/`` only what this invocation measured."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from manytask.config import ConfigError, parse_config
from manytask.relatedness import TaskMatrix, load_matrices
from manytask.runs import RunDirError, relate
from manytask.tasks import Regression

CONFIG: dict[str, Any] = {"data": {"name": "demo", "n_train": 300, "n_val": 60, "n_test": 60},
                          "training": {"steps": 20, "eval_every": 10, "progress": False},
                          "relatedness": {"every": 2, "groups": 2}, "logging": {"report": False}}


def _config(**changes: Any) -> Any:
    """CONFIG with ``section={key: value}`` changes merged in."""
    merged = {key: dict(value) for key, value in CONFIG.items()}
    for section, values in changes.items():
        merged[section] = {**merged.get(section, {}), **values} if isinstance(values, dict) else values
    return parse_config(merged)


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One finished relate (no pairs), copied by each test that changes it."""
    root = tmp_path_factory.mktemp("finished") / "rel"
    relate(_config(), run_dir=root)
    return root


def _copy(finished: Path, tmp_path: Path) -> Path:
    shutil.copytree(finished, tmp_path / "rel")
    return tmp_path / "rel"


@pytest.mark.parametrize("section, change, said", [
    ("training", {"steps": 40}, "training.steps: 20 -> 40"),
    ("training", {"patience": 3}, "training.patience: None -> 3"),
    ("training", {"eval_every": 5}, "training.eval_every: 10 -> 5"),
])
def test_a_resume_refuses_a_run_trained_with_another_budget(finished: Path, tmp_path: Path, section: str,
                                                            change: dict[str, Any], said: str) -> None:
    """A train resume may change the budget (it trains on); relate only reads the finished run back."""
    root = _copy(finished, tmp_path)
    results = (root / "multi" / "results.json").read_text()
    with pytest.raises(RunDirError, match="Cannot resume") as caught:
        relate(_config(**{section: change}), run_dir=root, resume=True)
    assert said in str(caught.value) and "--overwrite" in str(caught.value) and "--run-dir" in str(caught.value)
    assert (root / "multi" / "results.json").read_text() == results


def test_a_resume_accepts_what_leaves_the_results_alone(finished: Path, tmp_path: Path) -> None:
    root = _copy(finished, tmp_path)
    relation = relate(_config(training={"checkpoint_every": 7}, data={"eval_batch_size": 17}), run_dir=root,
                      resume=True)
    assert "tag_affinity" in {m.name for m in relation.matrices}


def test_an_overwrite_refused_for_too_few_tasks_keeps_the_old_run(finished: Path, tmp_path: Path) -> None:
    root = _copy(finished, tmp_path)
    with pytest.raises(ValueError, match="at least two tasks"):
        relate(_config(include_tasks=["category"]), run_dir=root, overwrite=True)
    assert (root / "multi" / "results.json").is_file() and (root / "relatedness" / "groups.json").is_file()


@pytest.mark.parametrize(("model", "said"), [
    ({"name": "independent"}, "this model shares none"),
    ({"name": "cross_stitch"}, "needs one shared representation; CrossStitch has none"),
])
def test_an_overwrite_the_probe_refuses_keeps_the_old_run(finished: Path, tmp_path: Path, model: dict[str, Any],
                                                          said: str) -> None:
    """--overwrite deleted every finished run before the probe looked at the model; the refusal
    came after, with a half-written multi/ left."""
    root = _copy(finished, tmp_path)
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    level = {"level": "representation"} if model["name"] == "cross_stitch" else {}
    with pytest.raises(ConfigError, match=f"Config section 'relatedness': .*{said}"):
        relate(_config(model=model, relatedness=level), run_dir=root, overwrite=True)
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before


def test_resume_and_overwrite_together_are_refused(finished: Path, tmp_path: Path) -> None:
    """--overwrite was ignored under --resume, whose refusal then advised passing --overwrite."""
    with pytest.raises(RunDirError, match="--resume keeps the finished runs and --overwrite deletes them"):
        relate(_config(), run_dir=_copy(finished, tmp_path), resume=True, overwrite=True)


def test_pairs_on_a_model_without_one_representation_and_without_validation(tmp_path: Path,
                                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """relate --pairs trained every run, then crashed: on MMoE (and nine other schemes) in the
    representation similarity (model.features), and without a validation split on the missing
    best checkpoint; nothing of relatedness/ was written. Now the RSA is left out, with a line
    that says why, or read from the last checkpoint, as the runs were tested."""
    relation = relate(_config(model={"name": "mmoe"}), run_dir=tmp_path / "mmoe", pairs=True)
    assert "No representation similarity: MMoE has no one shared representation" in capsys.readouterr().out
    assert {"transfer_gain", "tag_affinity"} <= {m.name for m in relation.matrices}
    assert "representation_similarity" not in {m.name for m in relation.matrices}
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 2))
    rows = ["x0,x1,a,b"] + [f"{u:.5f},{v:.5f},{u + v:.5f},{u - 2 * v:.5f}" for u, v in x]
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    table = {"name": "table", "path": str(tmp_path / "t.csv"), "inputs": ["x0", "x1"], "val_fraction": 0.0,
             "tasks": {"a": {"kind": "regression"}, "b": {"kind": "regression"}}}
    relation = relate(parse_config({**CONFIG, "data": table}), run_dir=tmp_path / "noval", pairs=True)
    assert "representation_similarity" in {m.name for m in relation.matrices}


def test_an_overwrite_refused_for_too_many_pair_runs_keeps_the_old_run(finished: Path, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from manytask.runs import _relate

    root = _copy(finished, tmp_path)
    monkeypatch.setattr(_relate, "select_tasks", lambda config, data: [Regression(f"t{k}") for k in range(30)])
    with pytest.raises(ValueError, match="30 tasks is 465 training runs"):
        relate(_config(), run_dir=root, pairs=True, overwrite=True)
    assert (root / "multi" / "results.json").is_file()


def test_linear_on_tasks_fit_linear_cannot_fit_is_refused_before_any_training(tmp_path: Path) -> None:
    """The demo's category task is multi-class: fit-linear fits one output per task."""
    with pytest.raises(ConfigError, match="one output per task.*category"):
        relate(_config(), run_dir=tmp_path / "rel", linear=True)
    assert not (tmp_path / "rel" / "multi").exists()


def _no_pair_measured(root: Path) -> Any:
    """Each task trains alone in its own steps: no batch holds two tasks, no pair is measured."""
    tasks = {"category": {"stop": 7}, "score": {"start": 7, "stop": 14}, "flag": {"start": 14}}
    return relate(_config(tasks=tasks), run_dir=root)


def test_no_groups_from_a_matrix_that_measured_no_pair(tmp_path: Path) -> None:
    relation = _no_pair_measured(tmp_path / "rel")
    affinity = {m.name: m for m in relation.matrices}["tag_affinity"]
    assert not np.isfinite(affinity.values[~np.eye(3, dtype=bool)]).any()
    assert "tag_affinity" not in relation.groups and "no pair" in relation.no_groups["tag_affinity"]
    assert "Groups from tag_affinity" not in relation.summary()
    assert "No groups from tag_affinity" in relation.summary()
    saved = json.loads((tmp_path / "rel" / "relatedness" / "groups.json").read_text())
    assert "tag_affinity" not in saved["groups"] and "no pair" in saved["no_groups"]["tag_affinity"]
    assert "No groups from tag_affinity" in (tmp_path / "rel" / "relatedness" / "summary.txt").read_text()


@pytest.mark.report
def test_the_report_says_why_a_matrix_recommends_no_groups(tmp_path: Path) -> None:
    from manytask.report import write_report

    page = write_report(_no_pair_measured(tmp_path / "rel").run_dir).read_text()
    assert "none: The matrix has no finite entry off the diagonal" in page


def test_a_resume_without_pairs_leaves_no_matrix_of_the_earlier_pairs(finished: Path, tmp_path: Path) -> None:
    """What an earlier ``--pairs`` wrote (here stand-ins) is gone after a relate that measured none."""
    root = _copy(finished, tmp_path)
    for name in ("transfer_gain", "representation_similarity"):
        TaskMatrix(name, name, "", ("category", "score", "flag"), np.zeros((3, 3))).save(root)
    relation = relate(_config(), run_dir=root, resume=True)
    names = {m.name for m in relation.matrices}
    assert {m.name for m in load_matrices(root)} == names and "transfer_gain" not in names
    assert not (root / "relatedness" / "transfer_gain.csv").exists()
    assert sorted(p.name for p in (root / "relatedness").iterdir()) == sorted(
        [f"{n}.{s}" for n in names for s in ("csv", "json")] + ["groups.json", "summary.txt"])
