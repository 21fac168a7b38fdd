"""Configs: unknown keys, wrong types and unknown names are named before training starts."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from manytask.config import (
    ConfigError,
    apply_overrides,
    load_config,
    parse_config,
)
from manytask.demos import DEMO_CONFIG
from manytask.runs import build_experiment, check_config

REPO = Path(__file__).resolve().parents[2]


def cfg(**changes: object) -> dict:
    raw = copy.deepcopy(DEMO_CONFIG)
    return apply_overrides(raw, [f"{k}={v}" for k, v in changes.items()])


def test_examples_match_and_validate() -> None:
    assert yaml.safe_load((REPO / "examples" / "demo.yaml").read_text()) == DEMO_CONFIG
    for path in sorted((REPO / "examples").glob("*.yaml")):  # fit-linear reads the same configs
        config = load_config(path)
        check_config(config)


@pytest.mark.parametrize(
    "raw, match",
    [
        ({"training": {"stepz": 5}}, r"Unknown key 'training.stepz'. Did you mean 'training.steps'"),
        ({"trainig": {}}, r"Unknown key 'trainig'. Did you mean 'training'"),
        ({"training": {"steps": "many"}}, r"Key 'training.steps': .*integer.*'many'"),
        ({"training": {"steps": -1}}, r"Key 'training.steps': .*greater than 0"),
        ({"optimizer": {"name": "adamm"}}, r"Key 'optimizer.name'"),
        ({"tasks": {"score": {"rol": "main"}}}, r"Unknown key 'tasks.score.rol'"),
    ],
)
def test_schema_errors_name_the_key(raw: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        parse_config(raw)


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"balancer.name": "mgdaa"}, r"'balancer': Unknown balancer 'mgdaa'. Did you mean 'mgda'"),
        ({"balancer.levl": "exact", "balancer.name": "mgda"}, r"Unknown option 'levl' for balancer 'mgda'. Did you mean 'level'"),
        ({"model.encoder.name": "mpl"}, r"Unknown encoder 'mpl'. Did you mean 'mlp'"),
        ({"model.encoder.hidden": "wide"}, r"Option 'hidden' of encoder 'mlp'"),
        ({"data.name": "demoo"}, r"Unknown dataset 'demoo'. Did you mean 'demo'"),
        ({"data.sampler.name": "temprature"}, r"Did you mean 'temperature'"),
        ({"balancer.tasks": "[a]"}, r"Unknown option 'tasks' for balancer 'ew'"),
    ],
)
def test_registered_names_and_options_are_checked(changes: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        check_config(parse_config(cfg(**changes)))


def test_unknown_task_names_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"'tasks.scor' names unknown task 'scor'. Did you mean 'score'"):
        build_experiment(parse_config(cfg(**{"tasks.scor.lr": 0.1})), run_dir=tmp_path)
    with pytest.raises(ConfigError, match="Unknown monitor metric 'score/acc'"):
        build_experiment(parse_config(cfg(**{"training.monitor": "score/acc"})), run_dir=tmp_path)


def test_overrides_parse_yaml_values() -> None:
    raw = apply_overrides({}, ["training.steps=5", "model.encoder.hidden=[8, 8]", "balancer.name=uw"])
    assert raw == {"training": {"steps": 5}, "model": {"encoder": {"hidden": [8, 8]}}, "balancer": {"name": "uw"}}
    with pytest.raises(ConfigError, match="key.subkey=value"):
        apply_overrides({}, ["training.steps"])


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("training: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping of sections"):
        load_config(listy)


def test_per_task_overrides_apply(tmp_path: Path) -> None:
    raw = cfg(**{"tasks.flag.role": "auxiliary", "tasks.score.lr": 0.5, "tasks.score.head_hidden": 8})
    experiment = build_experiment(parse_config(raw), run_dir=tmp_path)
    roles = {t.name: t.role for t in experiment.tasks}
    assert roles == {"category": "main", "score": "main", "flag": "auxiliary"}
    groups = {g["name"]: g["lr"] for g in experiment.trainer.optimizer.param_groups}
    assert groups["task:score"] == 0.5 and groups["default"] == 0.001
    assert len(experiment.model.heads["score"]) == 3  # Linear, ReLU, Linear


def test_head_dropout_and_the_step_schedule_from_the_config(tmp_path: Path) -> None:
    raw = cfg(**{"tasks.score.head_hidden": 8, "tasks.score.head_dropout": 0.5, "optimizer.scheduler": "step",
                 "optimizer.decay_every": 3, "optimizer.decay_factor": 0.5})
    experiment = build_experiment(parse_config(raw), run_dir=tmp_path)
    head = experiment.model.heads["score"]
    assert [type(m).__name__ for m in head] == ["Linear", "ReLU", "Dropout", "Linear"] and head[2].p == 0.5
    scheduler = experiment.trainer.scheduler
    assert [scheduler.lr_lambdas[0](s) for s in (0, 2, 3, 5, 6, 9)] == [1.0, 1.0, 0.5, 0.5, 0.25, 0.125]


def test_step_schedule_without_decay_every_and_head_dropout_without_a_hidden_layer_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'optimizer'.*needs decay_every"):
        build_experiment(parse_config(cfg(**{"optimizer.scheduler": "step"})), run_dir=tmp_path)
    with pytest.raises(ConfigError, match="tasks.score.*head_dropout must be in \\[0, 1\\) and needs a hidden layer"):
        build_experiment(parse_config(cfg(**{"tasks.score.head_dropout": 0.3})), run_dir=tmp_path)


@pytest.mark.parametrize(("optimizer", "match"), [
    ({"name": "adam", "momentum": 0.5}, r"momentum is read only with name: sgd \(this is 'adam'"),
    ({"scheduler": "constant", "decay_every": 5}, r"decay_every is read only with scheduler: step"),
    ({"scheduler": "cosine", "decay_factor": 0.5}, r"decay_factor is read only with scheduler: step"),
])
def test_optimizer_options_the_choice_does_not_read_are_refused(optimizer: dict, match: str) -> None:
    """Before the fix they were accepted and ignored; a saved config (every key, defaults) still loads."""
    with pytest.raises(ConfigError, match=match):
        parse_config({"optimizer": optimizer})
    parse_config({"optimizer": parse_config({}).optimizer.model_dump()})
    parse_config({"optimizer": {"name": "sgd", "momentum": 0.5, "scheduler": "step", "decay_every": 5}})
