"""A run directory belongs to one run (issue 9): no mixing, no half-checked resumes."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from manytask.cli._app import app
from manytask.config import apply_overrides, parse_config
from manytask.demos import DEMO_CONFIG
from manytask.runs import RunDirError, compare, train


def config(tmp_path: Path, *overrides: str):  # type: ignore[no-untyped-def]
    raw = apply_overrides(copy.deepcopy(DEMO_CONFIG), [f"run_dir={tmp_path}", "training.steps=20",
                                                      "training.eval_every=10", "training.progress=false",
                                                      *overrides])
    return parse_config(raw)


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_fresh_run_into_a_run_directory_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    """The defect: re-running mixed two runs (old step checkpoints evicted the new ones, and a
    later --resume latest continued the old run)."""
    train(config(tmp_path, "training.steps=30"))
    before = snapshot(tmp_path)
    with pytest.raises(RunDirError, match=r"already holds a run \(config.yaml, metrics.csv, results.json, "
                                          r"checkpoints, tasks.json\).*--resume latest.*--run-dir.*--overwrite"):
        train(config(tmp_path))
    assert snapshot(tmp_path) == before


def test_an_overwrite_whose_config_does_not_build_keeps_the_old_run(tmp_path: Path) -> None:
    """--overwrite deleted the old run before the experiment was built: a config that parses but
    cannot train (MGDA at the representation of a model with no shared features) left an empty
    directory. The old run goes only once the new experiment is built."""
    from manytask.config import ConfigError

    train(config(tmp_path))
    before = snapshot(tmp_path)
    with pytest.raises(ConfigError, match="CrossStitch has none; use level='exact'"):
        train(config(tmp_path, "model.name=cross_stitch", "balancer.name=mgda", "balancer.level=representation"),
              overwrite=True)
    assert snapshot(tmp_path) == before


def test_overwrite_deletes_the_old_run_first(tmp_path: Path) -> None:
    train(config(tmp_path, "training.steps=30"))
    (tmp_path / "notes.txt").write_text("mine")
    train(config(tmp_path), overwrite=True)
    steps = sorted(p.name for p in (tmp_path / "checkpoints").glob("step-*"))
    assert steps == ["step-000000010.safetensors", "step-000000020.safetensors"]  # none of the old run's
    assert (tmp_path / "notes.txt").read_text() == "mine"  # not a run's file: kept
    resumed = train(config(tmp_path, "training.steps=30"), resume="latest")
    assert resumed.train.steps == 30 and resumed.train.steps_run == 10


@pytest.mark.parametrize("change, key", [
    ("optimizer.lr=0.01", r"optimizer.lr: 0.001 -> 0.01"),
    ("seed=5", r"seed: 0 -> 5"),
    ("balancer.name=mgda", r"balancer.name: 'ew' -> 'mgda'"),
])
def test_a_resume_that_changes_the_run_is_refused_before_writing(tmp_path: Path, change: str, key: str) -> None:
    """The defect: a new lr was ignored while config.yaml recorded it; a new seed re-split the
    data; a changed balancer gave a cryptic error; a refused resume had overwritten config.yaml."""
    train(config(tmp_path))
    before = snapshot(tmp_path)
    with pytest.raises(RunDirError, match=key):
        train(config(tmp_path, change, "training.steps=30"), resume="latest")
    assert snapshot(tmp_path) == before


def test_resuming_a_finished_run_keeps_its_cost(tmp_path: Path) -> None:
    """The defect: resuming a finished run rewrote seconds per step as 0.0."""
    train(config(tmp_path))
    cost = json.loads((tmp_path / "results.json").read_text())["cost"]
    train(config(tmp_path), resume="latest")
    assert json.loads((tmp_path / "results.json").read_text())["cost"] == cost
    assert cost["seconds_per_step"] > 0


def test_a_run_started_before_a_config_key_existed_resumes(tmp_path: Path) -> None:
    """The defect: this release added `logging.report`, `relatedness` and `linear`; a run whose
    config.yaml predates them was refused ("relatedness.every: None -> 0"). A key missing from
    the old config counts as its default; set to another value, it is still a change."""
    import yaml

    train(config(tmp_path))
    written = yaml.safe_load((tmp_path / "config.yaml").read_text())
    for key in ("relatedness", "linear"):
        written.pop(key)
    written["logging"].pop("report")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(written))
    train(config(tmp_path, "training.steps=30"), resume="latest")
    with pytest.raises(RunDirError, match="relatedness.every"):
        (tmp_path / "config.yaml").write_text(yaml.safe_dump(written))
        train(config(tmp_path, "training.steps=40", "relatedness.every=5"), resume="latest")


def test_nothing_to_resume_is_named(tmp_path: Path) -> None:
    with pytest.raises(RunDirError, match="Nothing to resume.*no config.yaml"):
        train(config(tmp_path), resume="latest")


def test_compare_into_a_comparison_is_refused(tmp_path: Path) -> None:
    compare(config(tmp_path, "training.steps=10"))
    before = snapshot(tmp_path)
    with pytest.raises(RunDirError, match="already holds a run"):
        compare(config(tmp_path, "training.steps=10"))
    assert snapshot(tmp_path) == before


def test_cli_offers_the_ways_out(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    import yaml

    path.write_text(yaml.safe_dump(config(tmp_path / "run").model_dump(mode="json")))
    runner = CliRunner()
    assert runner.invoke(app, ["train", str(path)]).exit_code == 0
    refused = runner.invoke(app, ["train", str(path)])
    assert refused.exit_code == 2 and "--overwrite" in refused.output
    assert runner.invoke(app, ["train", str(path), "--overwrite"]).exit_code == 0


@pytest.mark.parametrize(("extra", "stretched"), [
    (["optimizer.scheduler=cosine"], "the cosine learning rate follow"),
    (["tasks.flag.role=adversarial"], "the reversal ramp of 'flag' follow"),
    (["data.sampler.name=annealed"], "the annealed sampler's schedule follow"),
    ([], None),
])
def test_a_resume_that_changes_the_length_names_what_it_stretches(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                  extra: list[str], stretched: str | None) -> None:
    """Before the fix raising training.steps on resume silently rescaled the cosine learning rate
    and Ganin's reversal ramp: the run differed from one trained that long from the start."""
    train(config(tmp_path, "training.steps=10", "logging.report=false", *extra))
    capsys.readouterr()
    train(config(tmp_path, "training.steps=20", "logging.report=false", *extra), resume="latest")
    out = capsys.readouterr().out
    if stretched is None:
        assert "training.steps changes" not in out
    else:
        assert "training.steps changes from 10 to 20 on this resume" in out and stretched in out


def test_overwrite_deletes_what_predict_export_and_a_learned_structure_left(tmp_path: Path) -> None:
    """Before the fix an old run's predictions.csv, evaluation.csv, model.pt2 and structure.txt
    survived --overwrite beside the new run."""
    train(config(tmp_path, "logging.report=false"))
    leftovers = ["predictions.csv", "evaluation.csv", "model.pt2", "structure.txt"]
    for name in leftovers:
        (tmp_path / name).write_text("old run")
    with pytest.raises(RunDirError, match="predictions.csv"):
        train(config(tmp_path, "logging.report=false"))
    train(config(tmp_path, "logging.report=false"), overwrite=True)
    assert not [n for n in leftovers if (tmp_path / n).exists()]


def test_the_saved_config_names_the_directory_the_run_is_in(tmp_path: Path) -> None:
    """Before the fix config.yaml kept the config's run_dir when --run-dir differed, so training
    from it with --resume continued the other run."""
    elsewhere = tmp_path / "elsewhere"
    train(config(tmp_path / "named", "logging.report=false"), run_dir=elsewhere)
    saved = yaml.safe_load((elsewhere / "config.yaml").read_text())
    assert saved["run_dir"] == str(elsewhere)
    resumed = train(parse_config(saved | {"training": saved["training"] | {"steps": 30}}), resume="latest")
    assert resumed.run_dir == elsewhere and resumed.train.steps_run == 10
    assert not (tmp_path / "named").exists()


def test_a_resume_shorter_than_its_checkpoint_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    """Before the fix it said nothing and config.yaml recorded 10 steps for a model trained 20."""
    train(config(tmp_path, "logging.report=false"))
    before = snapshot(tmp_path)
    with pytest.raises(RunDirError, match=r"training.steps: 10: its checkpoint is at step 20 already. Resume with "
                                          r"training.steps >= 20"):
        train(config(tmp_path, "training.steps=10", "logging.report=false"), resume="latest")
    assert snapshot(tmp_path) == before
    assert train(config(tmp_path, "logging.report=false"), resume="latest").train.steps_run == 0


def test_compare_offers_only_the_ways_out_it_has_and_its_runs_can_be_retrained(tmp_path: Path) -> None:
    """Before the fix compare's refusal offered --resume latest, which compare does not take, and a
    single-task run's config.yaml was the multi-task one (retraining it trained every task; resuming
    it failed on the checkpoint's task list)."""
    cfg = config(tmp_path, "logging.report=false", "training.steps=10")
    compare(cfg)
    with pytest.raises(RunDirError, match="already holds a run") as caught:
        compare(cfg)
    assert "--resume" not in str(caught.value) and "--overwrite" in str(caught.value)
    single = tmp_path / "single-score"
    saved = yaml.safe_load((single / "config.yaml").read_text())
    assert saved["include_tasks"] == ["score"] and saved["run_dir"] == str(single)
    longer = parse_config(saved | {"training": saved["training"] | {"steps": 20}})
    resumed = train(longer, resume="latest")
    assert resumed.run_dir == single and resumed.train.steps_run == 10 and set(resumed.test) == {
        k for k in resumed.test if k.startswith("score/")}
