"""manytask.lightning: a Lightning fit of a manytask model, tasks and balancer gives the parameters
manytask's own Trainer gives, for a loss weighting across epoch boundaries (DWA) and a gradient
method (MGDA, manual optimisation)."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch

from manytask.config import parse_config
from manytask.lightning import MultiTaskModule, StepLoader
from manytask.runs._build import build_experiment


def _trainer(balancer: str, tmp_path: Path, name: str):  # type: ignore[no-untyped-def]
    config = {"data": {"name": "demo", "n_train": 120, "n_val": 30, "n_test": 30, "batch_size": 32},
              "balancer": {"name": balancer}, "optimizer": {"name": "adam", "lr": 0.01},
              "training": {"steps": 10, "eval_every": 10, "progress": False, "device": "cpu"}}
    return build_experiment(parse_config(config), run_dir=tmp_path / name).trainer


@pytest.mark.parametrize("balancer", ["dwa", "mgda"])
def test_a_lightning_fit_gives_manytasks_parameters(balancer: str, tmp_path: Path) -> None:
    own = _trainer(balancer, tmp_path, "own")
    own.fit()
    theirs = _trainer(balancer, tmp_path, "lightning")
    module = MultiTaskModule(theirs)
    logging.getLogger("lightning").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        L.Trainer(max_steps=10, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                  enable_progress_bar=False, enable_model_summary=False, default_root_dir=str(tmp_path)
                  ).fit(module, StepLoader(theirs.loader))
    assert theirs.step == 10 and own.loader.steps_per_epoch == 4  # two epoch boundaries on the way
    for (name, a), b in zip(own.model.state_dict().items(), theirs.model.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), name
    for (name, a), b in zip(own.balancer.state_dict().items(), theirs.balancer.state_dict().values()):
        if isinstance(a, torch.Tensor):
            assert torch.allclose(a.nan_to_num(), b.nan_to_num(), atol=1e-6), name


def _lightning(max_steps: int, tmp_path: Path, **options: object) -> L.Trainer:
    logging.getLogger("lightning").setLevel(logging.ERROR)
    return L.Trainer(max_steps=max_steps, accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                     enable_model_summary=False, default_root_dir=str(tmp_path), **options)  # type: ignore[arg-type]


def test_a_lightning_checkpoint_resumes_exactly(tmp_path: Path) -> None:
    """Stopped at step 6 (mid-epoch, DWA between its epoch boundaries, a cosine schedule half-way)
    and resumed from Lightning's own checkpoint: the parameters of the straight 10-step fit."""
    def trainer(name: str):  # type: ignore[no-untyped-def]
        config = {"data": {"name": "demo", "n_train": 120, "n_val": 30, "n_test": 30, "batch_size": 32},
                  "balancer": {"name": "dwa"}, "optimizer": {"name": "adam", "lr": 0.01, "scheduler": "cosine"},
                  "training": {"steps": 10, "eval_every": 10, "progress": False, "device": "cpu"}}
        return build_experiment(parse_config(config), run_dir=tmp_path / name).trainer

    straight = trainer("straight")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _lightning(10, tmp_path / "a", enable_checkpointing=False).fit(MultiTaskModule(straight),
                                                                     StepLoader(straight.loader))
        first = trainer("first")
        stopped = _lightning(6, tmp_path / "b", enable_checkpointing=False)
        stopped.fit(MultiTaskModule(first), StepLoader(first.loader))
        stopped.save_checkpoint(tmp_path / "six.ckpt")
        resumed = trainer("resumed")
        _lightning(10, tmp_path / "c", enable_checkpointing=False).fit(
            MultiTaskModule(resumed), StepLoader(resumed.loader), ckpt_path=tmp_path / "six.ckpt")
    assert resumed.step == straight.step == 10
    assert resumed.optimizer.param_groups[0]["lr"] == straight.optimizer.param_groups[0]["lr"]
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), name


def test_callbacks_see_the_start_and_end_of_a_lightning_fit(tmp_path: Path) -> None:
    """The run's callbacks (here the relatedness probe, which needs on_train_start and writes its
    matrices at on_train_end) run under Lightning as under Trainer.fit (it crashed)."""
    from manytask.relatedness import load_matrices

    def trainer(name: str):  # type: ignore[no-untyped-def]
        config = {"data": {"name": "demo", "n_train": 120, "n_val": 30, "n_test": 30, "batch_size": 32},
                  "balancer": {"name": "pcgrad"}, "optimizer": {"name": "adam", "lr": 0.01},
                  "relatedness": {"every": 2},
                  "training": {"steps": 6, "eval_every": 6, "progress": False, "device": "cpu"}}
        return build_experiment(parse_config(config), run_dir=tmp_path / name).trainer

    own = trainer("own")
    own.fit()
    theirs = trainer("lightning")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _lightning(6, tmp_path / "l", enable_checkpointing=False).fit(MultiTaskModule(theirs), StepLoader(theirs.loader))
    mine, lightning = load_matrices(tmp_path / "own"), load_matrices(tmp_path / "lightning")
    assert [m.name for m in mine] == [m.name for m in lightning] and mine
    for a, b in zip(mine, lightning):
        np.testing.assert_allclose(a.values, b.values, rtol=1e-5, atol=1e-7)


def test_the_fit_stops_at_the_runs_steps_whatever_max_steps_says(tmp_path: Path) -> None:
    """The schedules run on training.steps: a Lightning fit allowed more steps (max_steps=-1, the
    default) stops there instead of training on at a learning rate of 0; fewer steps stop early."""
    def trainer(name: str):  # type: ignore[no-untyped-def]
        config = {"data": {"name": "demo", "n_train": 120, "n_val": 30, "n_test": 30, "batch_size": 32},
                  "optimizer": {"name": "adam", "lr": 0.01, "scheduler": "cosine"},
                  "training": {"steps": 5, "eval_every": 5, "progress": False, "device": "cpu"}}
        return build_experiment(parse_config(config), run_dir=tmp_path / name).trainer

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        unlimited = trainer("unlimited")
        _lightning(-1, tmp_path / "u", enable_checkpointing=False, max_epochs=10).fit(
            MultiTaskModule(unlimited), StepLoader(unlimited.loader))
        early = trainer("early")
        _lightning(3, tmp_path / "e", enable_checkpointing=False).fit(MultiTaskModule(early), StepLoader(early.loader))
    assert unlimited.step == 5 and early.step == 3
