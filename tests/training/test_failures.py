"""Bad input and crashes: clear errors, and nothing already written is lost."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

import manytask.training._checkpoint as checkpoint_module
from manytask.data import EmptySourceError, MultiSourceLoader, TensorSource
from manytask.tasks import Classification, Regression, TargetError
from manytask.training import CheckpointError, CheckpointManager, NonFiniteLossError

from .helpers import make_trainer


def test_crash_mid_write_keeps_previous_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    trainer = make_trainer(tmp_path, 7)
    trainer.fit()
    good = tmp_path / "checkpoints" / "step-000000007.safetensors"
    before = good.read_bytes()

    def crash(tensors: dict, path: str, metadata: dict) -> None:
        Path(path).write_bytes(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint_module, "save_file", crash)
    with pytest.raises(KeyboardInterrupt):
        CheckpointManager(tmp_path / "checkpoints").save(trainer.state_dict(), 8)
    assert good.read_bytes() == before
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["best.safetensors", good.name]
    assert CheckpointManager.load(good)["step"] == 7


def test_corrupt_checkpoint_is_named(tmp_path: Path) -> None:
    path = tmp_path / "step-000000001.safetensors"
    path.write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError, match="corrupt.*earlier step"):
        CheckpointManager.load(path)


def test_missing_checkpoint_is_named(tmp_path: Path) -> None:
    trainer = make_trainer(tmp_path, 5)
    with pytest.raises(CheckpointError, match="No checkpoint to resume from"):
        trainer.fit(resume="latest")
    with pytest.raises(CheckpointError, match="does not exist"):
        trainer.fit(resume=tmp_path / "nope.safetensors")


def test_checkpoint_of_other_tasks_is_refused(tmp_path: Path) -> None:
    trainer = make_trainer(tmp_path, 7)
    trainer.fit()
    state = CheckpointManager.load(tmp_path / "checkpoints" / "step-000000007.safetensors")
    state["tasks"] = ["x"]
    CheckpointManager(tmp_path / "other").save(state, 7)
    with pytest.raises(CheckpointError, match="written for tasks"):
        make_trainer(tmp_path, 14).fit(resume=tmp_path / "other" / "step-000000007.safetensors")


def test_nan_loss_stops_naming_task_and_step_and_keeps_checkpoint(tmp_path: Path) -> None:
    trainer = make_trainer(tmp_path, 30)
    trainer.steps = 14
    trainer.fit()
    saved = sorted((tmp_path / "checkpoints").iterdir())
    contents = {p: p.read_bytes() for p in saved}
    trainer = make_trainer(tmp_path, 30)
    trainer.load(tmp_path / "checkpoints" / "step-000000014.safetensors")
    for source in trainer.loader.sources.values():
        if "score" in source.targets:
            source.targets["score"][:] = 1e30  # finite targets whose squared error overflows
    with pytest.raises(NonFiniteLossError, match=r"At step \d+: The loss of task 'score' is (inf|nan).*step-000000014"):
        trainer.fit()
    assert {p: p.read_bytes() for p in sorted((tmp_path / "checkpoints").iterdir())} == contents


@pytest.mark.parametrize(
    "task, target, mask, match",
    [
        (Classification("c", num_classes=3), torch.tensor([0, 5]), torch.tensor([True, True]), r"'c'.*\[0, 2\]"),
        (Classification("c", num_classes=3), torch.tensor([0.0, 1.0]), torch.tensor([True, True]), "integer class"),
        (Classification("c", num_classes=3), torch.tensor([[0], [1]]), torch.tensor([True, True]), r"shape \[batch\]"),
        (Regression("r", num_outputs=2), torch.zeros(2, 3), torch.tensor([True, True]), r"\[batch, 2\]"),
        (Regression("r"), torch.tensor([1.0, float("nan")]), torch.tensor([True, True]), "NaN"),
        (Regression("r"), torch.zeros(2), torch.tensor([True, True, False]), "mask of shape"),
        (Regression("r"), torch.zeros(2), torch.tensor([1, 1]), "bool"),
    ],
)
def test_target_errors_name_the_task(task, target, mask, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(TargetError, match=match):
        task.check(target, mask)


def test_unlabelled_garbage_is_allowed() -> None:
    Classification("c", num_classes=3).check(torch.tensor([0, -100]), torch.tensor([True, False]))
    Regression("r").check(torch.tensor([1.0, float("nan")]), torch.tensor([True, False]))


def test_empty_source_is_refused() -> None:
    with pytest.raises(EmptySourceError, match="no samples"):
        TensorSource(torch.zeros(0, 3), {"r": torch.zeros(0)})
    with pytest.raises(EmptySourceError, match="at least one training source"):
        MultiSourceLoader({}, 4)


def test_mask_length_mismatch_in_source_is_named() -> None:
    with pytest.raises(ValueError, match="mask of task 'r'"):
        TensorSource(torch.zeros(4, 3), {"r": torch.zeros(4)}, {"r": torch.ones(3, dtype=torch.bool)})


def test_bad_targets_in_a_source_fail_before_training(tmp_path: Path) -> None:
    from manytask.balancing import EW
    from manytask.models import HardSharing
    from manytask.training import Checkpointing, Trainer, build_optimizer

    tasks = [Classification("c", num_classes=3)]
    source = TensorSource(torch.zeros(4, 2), {"c": torch.tensor([0, 1, 7, 2])}, name="mine")
    model = HardSharing(torch.nn.Linear(2, 3), tasks, feature_dim=3)
    with pytest.raises(TargetError, match=r"Data source 'mine': Task 'c'.*\[0, 2\].*got values in \[0, 7\]"):
        Trainer(model, tasks, EW(tasks), build_optimizer(model), MultiSourceLoader({"s": source}, 2), steps=1,
                checkpoints=Checkpointing(tmp_path), progress=False)
    assert not any(tmp_path.iterdir())


def test_mean_monitor_averages_main_tasks(tmp_path: Path) -> None:
    trainer = make_trainer(tmp_path, 7)
    trainer.monitor = "mean/loss"
    trainer._check_monitor()
    value = trainer._monitored({"category/loss": 1.0, "score/loss": 3.0, "flag/loss": float("nan")})
    assert value == 2.0
    trainer.monitor = "mean/bogus"
    with pytest.raises(ValueError, match="Unknown monitor metric 'mean/bogus'"):
        trainer._check_monitor()


def test_early_stopping_and_best_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import manytask.training._trainer as trainer_module

    accuracies = iter([0.5, 0.7, 0.6, 0.65, 0.9])  # best at the 2nd evaluation (step 14)

    def scripted(*args: object, **kwargs: object) -> dict[str, float]:
        return {"category/accuracy": next(accuracies), "category/loss": 1.0}

    monkeypatch.setattr(trainer_module, "evaluate", scripted)
    trainer = make_trainer(tmp_path, 70, eval_every=7)
    trainer.evaluation = dataclasses.replace(trainer.evaluation, patience=2)
    trainer.checkpoint_every = 0  # only best checkpoints
    result = trainer.fit()
    assert result.stopped_early and result.steps == 28  # evaluations at 21 and 28 did not improve
    assert (result.best_step, result.best_value) == (14, 0.7)
    assert CheckpointManager.load(tmp_path / "checkpoints" / "best.safetensors")["step"] == 14
    rows = (tmp_path / "metrics.csv").read_text().splitlines()[1:]
    assert [r.split(",")[0] for r in rows] == ["7", "14", "21", "28"]
