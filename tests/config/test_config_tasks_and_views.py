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


def test_a_run_of_some_tasks_may_leave_out_the_one_that_reads_a_view(tmp_path: Path) -> None:
    """relate's and compare's runs of one or two tasks: the view is configured for a task they
    leave out, which is not a stray views section."""
    cfg = config(tmp_path, tasks={"inpaint": {"view": "masked_cells", "level": "pixel"}},
                 views={"masked_cells": {"cell": 7}})
    experiment = build_experiment(cfg, only=["category"])  # type: ignore[arg-type]
    assert [t.name for t in experiment.tasks] == ["category"] and not experiment.trainer.views


def test_an_unknown_task_without_a_view_is_still_an_unknown_task(tmp_path: Path) -> None:
    cfg = config(tmp_path, tasks={"scor": {"role": "main"}})
    with pytest.raises(ConfigError, match="names unknown task 'scor'"):
        build_experiment(cfg)  # type: ignore[arg-type]


def test_regression_targets_are_standardised_with_training_statistics(tmp_path: Path) -> None:
    """Issue 9: raw targets made losses differ by orders of magnitude between tasks."""
    import numpy as np

    cfg = config(tmp_path, training={"steps": 5, "progress": False})
    experiment = build_experiment(cfg)  # type: ignore[arg-type]
    score = next(t for t in experiment.tasks if t.name == "score")
    values = np.concatenate([s.targets["score"][s.masks["score"]].numpy() for s in experiment.data.train.values()
                             if "score" in s.targets])
    assert score.target_mean == pytest.approx((values.mean(),), rel=1e-6)  # labelled training rows only
    assert score.target_std == pytest.approx((values.std(),), rel=1e-6)
    cfg = config(tmp_path, data={**copy.deepcopy(DEMO_CONFIG)["data"], "standardize_targets": False})
    raw = build_experiment(cfg)  # type: ignore[arg-type]
    assert next(t for t in raw.tasks if t.name == "score").target_mean is None


def test_standardised_loss_and_original_scale_metrics_by_hand() -> None:
    import torch

    from manytask.tasks import Regression

    task = Regression("r", num_outputs=2, target_mean=(1.0, 10.0), target_std=(2.0, 5.0))
    output, target = torch.tensor([[0.5, -1.0]]), torch.tensor([[3.0, 10.0]])
    # standardised targets (1.0, 0.0): squared errors 0.25 and 1.0
    assert task.mean_loss(output, target, None).item() == pytest.approx((0.25 + 1.0) / 2)
    assert task.predictions(output).tolist() == [[2.0, 5.0]]  # 0.5*2+1, -1*5+10
    single = Regression("s", target_mean=(3.0,), target_std=(2.0,))
    assert single.mean_loss(torch.tensor([[1.0]]), torch.tensor([5.0]), None).item() == 0.0
    with pytest.raises(ValueError, match="target_std must be > 0"):
        Regression("bad", target_mean=(0.0,), target_std=(0.0,))


def test_compare_with_a_configured_view_trains_its_baselines(tmp_path: Path) -> None:
    """The defect: compare's single-task baselines leave the view task out, and its views
    section then stopped the first of them ("no task names this view")."""
    from manytask.runs import compare

    cfg = config(tmp_path, data={"name": "demo", "n_train": 200, "n_val": 40, "n_test": 40},
                 tasks={"recon": {"view": "reconstruct", "kind": "regression", "num_outputs": 20,
                                  "role": "auxiliary"}},
                 views={"reconstruct": {"noise": 0.1}}, training={"steps": 10, "eval_every": 10, "progress": False})
    comparison = compare(cfg)  # type: ignore[arg-type]
    assert {r.task for r in comparison.rows} == {"category", "score", "flag"}


def test_a_view_task_whose_outputs_do_not_fit_the_views_targets_is_named(tmp_path: Path) -> None:
    """The defect: 16 outputs for a view that reconstructs 20 inputs trained with a broadcasting
    loss and a warning; now a config error before training, naming the task."""
    cfg = config(tmp_path, data={"name": "demo", "n_train": 200, "n_val": 40, "n_test": 40},
                 tasks={"recon": {"view": "reconstruct", "kind": "regression", "num_outputs": 16, "role": "auxiliary"}},
                 training={"steps": 5, "progress": False})
    with pytest.raises(ConfigError, match=r"tasks.recon': the targets view 'reconstruct' makes do not fit"):
        build_experiment(cfg)  # type: ignore[arg-type]
