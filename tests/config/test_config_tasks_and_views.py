"""Config-level tasks: overrides of loss and role, view tasks, views' options, monitors."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from manytask.config import ConfigError, parse_config
from manytask.demos import DEMO_CONFIG
from manytask.runs import build_experiment


def config(tmp_path: Path, **sections: object) -> object:
    raw = copy.deepcopy(DEMO_CONFIG)
    raw["run_dir"] = str(tmp_path)
    raw.update(sections)
    return parse_config(raw)


def test_a_monitor_naming_an_unknown_task_is_an_error_not_replaced(tmp_path: Path) -> None:
    """The defect: a configured monitor naming an unknown task was replaced by the default."""
    cfg = config(tmp_path, training={"steps": 5, "monitor": "scor/rmse", "progress": False})
    with pytest.raises(ConfigError, match="Unknown monitor metric 'scor/rmse'.*Did you mean 'score/rmse'"):
        build_experiment(cfg)  # type: ignore[arg-type]


def test_loss_and_role_overrides(tmp_path: Path) -> None:
    cfg = config(tmp_path, tasks={"score": {"loss": "huber", "role": "adversarial"}},
                 training={"steps": 5, "progress": False})
    experiment = build_experiment(cfg)  # type: ignore[arg-type]
    score = next(t for t in experiment.tasks if t.name == "score")
    assert score.loss == "huber" and score.role == "adversarial"
    from manytask.models import GradientReversal

    assert isinstance(experiment.model.heads["score"][0], GradientReversal)


def test_unknown_loss_is_named(tmp_path: Path) -> None:
    cfg = config(tmp_path, tasks={"score": {"loss": "hubber"}})
    with pytest.raises(ConfigError, match="tasks.score.*unknown loss 'hubber'"):
        build_experiment(cfg)  # type: ignore[arg-type]


def test_a_view_task_needs_a_known_view_and_options(tmp_path: Path) -> None:
    cfg = config(tmp_path, tasks={"inpaint": {"view": "masked_celss", "level": "pixel"}})
    with pytest.raises(ConfigError, match="Unknown view 'masked_celss'. Did you mean 'masked_cells'"):
        build_experiment(cfg)  # type: ignore[arg-type]
    cfg = config(tmp_path, tasks={"inpaint": {"view": "masked_cells", "level": "pixel"}},
                 views={"masked_cells": {"cel": 7}})
    with pytest.raises(ConfigError, match="Unknown option 'cel' for view 'masked_cells'. Did you mean 'cell'"):
        build_experiment(cfg)  # type: ignore[arg-type]
    cfg = config(tmp_path, views={"masked_cells": {"cell": 7}})
    with pytest.raises(ConfigError, match="views.masked_cells.*no task names this view"):
        build_experiment(cfg)  # type: ignore[arg-type]


def test_an_unknown_task_without_a_view_is_still_an_unknown_task(tmp_path: Path) -> None:
    cfg = config(tmp_path, tasks={"scor": {"role": "main"}})
    with pytest.raises(ConfigError, match="names unknown task 'scor'"):
        build_experiment(cfg)  # type: ignore[arg-type]
