"""logging.tensorboard: the scalars a run writes, read back with TensorBoard's own event reader."""

from __future__ import annotations

from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from manytask.config import ConfigError, parse_config
from manytask.runs import train

CONFIG = {
    "data": {"name": "demo", "n_train": 200, "n_val": 50, "n_test": 50},
    "balancer": {"name": "uw"},
    "training": {"steps": 20, "eval_every": 10, "progress": False},
    "logging": {"tensorboard": True, "every": 5},
}


def _scalars(run: Path) -> dict[str, list[tuple[int, float]]]:
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_losses_weights_lr_step_time_and_validation_metrics(tmp_path: Path) -> None:
    train(parse_config(CONFIG), run_dir=tmp_path / "run")
    scalars = _scalars(tmp_path / "run")
    assert {"loss/category", "weight/category", "lr", "time/step_s", "val/category/accuracy",
            "val/score/rmse"} <= set(scalars)
    assert [step for step, _ in scalars["lr"]] == [5, 10, 15, 20]
    assert [step for step, _ in scalars["val/category/accuracy"]] == [10, 20]
    metrics = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    header, last = metrics[0].split(","), metrics[-1].split(",")
    logged = float(last[header.index("val/category/accuracy")])
    assert abs(scalars["val/category/accuracy"][-1][1] - logged) < 1e-6  # the same number as metrics.csv


def test_a_resumed_run_drops_the_events_after_its_step(tmp_path: Path) -> None:
    short = {**CONFIG, "training": {**CONFIG["training"], "steps": 10}}
    train(parse_config(short), run_dir=tmp_path / "run")
    train(parse_config(CONFIG), run_dir=tmp_path / "run", resume="latest")
    steps = [step for step, _ in _scalars(tmp_path / "run")["lr"]]
    assert steps == [5, 10, 15, 20]  # no duplicate step


def test_bad_options_are_named() -> None:
    with pytest.raises(ConfigError, match="logging.every"):
        parse_config({**CONFIG, "logging": {"tensorboard": True, "every": 0}})


def test_a_missing_tensorboard_package_names_the_logging_section(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if not installed
    with pytest.raises(ConfigError) as error:
        train(parse_config(CONFIG), run_dir=tmp_path / "run")
    assert str(error.value).startswith("Config key 'logging.tensorboard'") and "'training'" not in str(error.value)
    assert 'pip install "manytask[tensorboard]"' in str(error.value)
