"""Pretrain, then fine-tune: a run starts from another run's weights (a task added later gets a
fresh head), optionally with the shared trunk frozen or at its own learning rate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from manytask.config import ConfigError, parse_config
from manytask.runs import train
from manytask.runs._build import build_experiment
from manytask.training import CheckpointManager, load_matching_weights, resolve_weights


def _config(**sections: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "data": {"name": "demo", "n_train": 96, "n_val": 32, "n_test": 16},
        "model": {"name": "hps", "encoder": {"name": "mlp", "hidden": [8]}},
        "training": {"steps": 6, "eval_every": 3, "progress": False},
    }
    for key, value in sections.items():
        config[key] = {**config.get(key, {}), **value} if isinstance(value, dict) else value
    return config


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run on two of the demo's three tasks."""
    run_dir = tmp_path_factory.mktemp("pretrain") / "run"
    train(parse_config(_config(include_tasks=["category", "score"])), run_dir=run_dir)
    return run_dir


def test_a_new_task_gets_a_fresh_head_and_the_rest_is_loaded(pretrained: Path, tmp_path: Path) -> None:
    best = CheckpointManager.load(pretrained / "checkpoints" / "best.safetensors")["model"]
    experiment = build_experiment(parse_config(_config(training={"init_from": str(pretrained)})), run_dir=tmp_path)
    state = experiment.model.state_dict()
    for key, value in best.items():
        assert torch.equal(state[key], value), key
    fresh = build_experiment(parse_config(_config()), run_dir=tmp_path / "fresh").model.state_dict()
    flag = [k for k in state if k.startswith("heads.flag")]
    assert flag and all(torch.equal(state[k], fresh[k]) for k in flag)  # as a run without init_from draws it
    assert resolve_weights(pretrained) == pretrained / "checkpoints" / "best.safetensors"


def test_freezing_the_trunk_trains_only_the_heads(pretrained: Path, tmp_path: Path) -> None:
    config = parse_config(_config(training={"init_from": str(pretrained), "freeze": "shared"}))
    result = train(config, run_dir=tmp_path / "run")
    best = CheckpointManager.load(pretrained / "checkpoints" / "best.safetensors")["model"]
    after = CheckpointManager.load(result.run_dir / "checkpoints" / "best.safetensors")["model"]
    trunk = [k for k in best if k.startswith("encoder")]
    assert trunk and all(torch.equal(after[k], best[k]) for k in trunk)
    assert not all(torch.equal(after[k], best[k]) for k in best if k.startswith("heads.category"))


def test_the_trunk_can_have_its_own_learning_rate(pretrained: Path, tmp_path: Path) -> None:
    config = parse_config(_config(training={"init_from": str(pretrained)}, optimizer={"lr": 0.01, "shared_lr": 0.001}))
    experiment = build_experiment(config, run_dir=tmp_path)
    groups = {g["name"]: g for g in experiment.trainer.optimizer.param_groups}
    assert groups["shared"]["lr"] == 0.001 and groups["default"]["lr"] == 0.01
    assert {id(p) for p in groups["shared"]["params"]} == {id(p) for p in experiment.model.shared_parameters()}


def test_bad_starts_are_named(pretrained: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist; name a run directory"):
        build_experiment(parse_config(_config(training={"init_from": str(tmp_path / "nowhere")})), run_dir=tmp_path)
    wider = _config(training={"init_from": str(pretrained)}, model={"encoder": {"name": "mlp", "hidden": [16]}})
    with pytest.raises(ConfigError, match=r"does not fit this model \(encoder.*\(8, 20\) in the checkpoint"):
        build_experiment(parse_config(wider), run_dir=tmp_path)
    empty = tmp_path / "empty_run"
    empty.mkdir()
    with pytest.raises(ConfigError, match="has no checkpoint"):
        build_experiment(parse_config(_config(training={"init_from": str(empty)})), run_dir=tmp_path)
    frozen = _config(training={"init_from": str(pretrained), "freeze": "shared"}, balancer={"name": "mgda"})
    with pytest.raises(ConfigError, match="freeze: shared leaves 'mgda' no shared gradient"):
        build_experiment(parse_config(frozen), run_dir=tmp_path)


def test_load_matching_weights_reports_what_it_did(pretrained: Path, tmp_path: Path) -> None:
    model = build_experiment(parse_config(_config()), run_dir=tmp_path).model
    report = load_matching_weights(model, pretrained)
    assert any(k.startswith("encoder") for k in report.loaded)
    assert {k.split(".")[1] for k in report.fresh} == {"flag"} and report.ignored == ()


def test_a_trunk_that_only_one_side_has_is_refused(pretrained: Path, tmp_path: Path) -> None:
    """Before the fix a deeper trunk took the checkpoint's first layer and kept a fresh second one,
    and a shallower one dropped the checkpoint's second layer, silently (with ``freeze: shared`` a
    part-pretrained trunk stayed that way)."""
    deeper = _config(training={"init_from": str(pretrained)}, model={"encoder": {"name": "mlp", "hidden": [8, 8]}})
    with pytest.raises(ConfigError, match=r"does not fit this model \(encoder\.[^:]*: here, not in the checkpoint"):
        build_experiment(parse_config(deeper), run_dir=tmp_path / "deeper")
    deep_run = tmp_path / "deep"
    train(parse_config(_config(model={"encoder": {"name": "mlp", "hidden": [8, 8]}})), run_dir=deep_run, report=False)
    with pytest.raises(ConfigError, match=r"does not fit this model \(encoder\.[^:]*: in the checkpoint, not here"):
        build_experiment(parse_config(_config(training={"init_from": str(deep_run)})), run_dir=tmp_path / "shallow")


def test_the_cli_says_what_init_from_loaded(pretrained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Before the fix the summary went to a logger ``manytask train`` never shows."""
    train(parse_config(_config(training={"init_from": str(pretrained)})), run_dir=tmp_path / "run", report=False)
    out = capsys.readouterr().out
    assert f"started from {pretrained / 'checkpoints' / 'best.safetensors'}" in out
    assert "fresh (heads.flag" in out and "0 ignored (none)" in out


def test_a_resume_does_not_read_init_from(pretrained: Path, tmp_path: Path) -> None:
    """Before the fix a fine-tuned run could not resume once its source was moved, and the path
    could not be changed on resume either."""
    source = tmp_path / "source"
    (source / "checkpoints").mkdir(parents=True)
    (source / "checkpoints" / "best.safetensors").write_bytes(
        (pretrained / "checkpoints" / "best.safetensors").read_bytes())
    run_dir = tmp_path / "run"
    config = _config(training={"init_from": str(source), "steps": 3})
    train(parse_config(config), run_dir=run_dir, report=False)
    (source / "checkpoints" / "best.safetensors").unlink()
    longer = parse_config(_config(training={"init_from": str(source), "steps": 6}))
    assert train(longer, resume="latest", run_dir=run_dir, report=False).train.steps == 6
    moved = parse_config(_config(training={"init_from": str(tmp_path / "elsewhere"), "steps": 6}))
    train(moved, resume="latest", run_dir=run_dir, report=False)


def test_a_corrupt_start_says_what_helps_here(pretrained: Path, tmp_path: Path) -> None:
    """Before the fix the message said to resume from an earlier checkpoint: nothing is resumed here."""
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match=r"init_from: Checkpoint .*broken.safetensors is corrupt.*Start from another "
                                          r"checkpoint of that run") as caught:
        build_experiment(parse_config(_config(training={"init_from": str(broken)})), run_dir=tmp_path / "run")
    assert "resume" not in str(caught.value)
