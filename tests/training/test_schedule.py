"""Task schedules: periods, windows and alternating groups decide which tasks train at a step; a
task off at a step is absent (its head does not move, even under Adam); the schedule resumes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from manytask.config import ConfigError, parse_config
from manytask.runs import train
from manytask.runs._build import build_experiment
from manytask.training import CheckpointManager, TaskSchedule, Window


def test_windows_by_hand() -> None:
    assert [s for s in range(12) if Window(every=3, start=2, stop=10).active(s)] == [2, 5, 8]
    assert [s for s in range(4) if Window().active(s)] == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="stop > start"):
        Window(start=5, stop=5)
    with pytest.raises(ValueError, match="every >= 1"):
        Window(every=0)


def test_alternating_groups_round_robin_and_random() -> None:
    schedule = TaskSchedule(["a", "b", "c", "d"], {"d": Window(stop=2)}, [["a"], ["b", "c"]])
    assert [sorted(schedule.active(s)) for s in range(4)] == [["a", "d"], ["b", "c", "d"], ["a"], ["b", "c"]]
    drawn = TaskSchedule(["a", "b"], alternate=[["a"], ["b"]], order="random", seed=3)
    first = [sorted(drawn.active(s)) for s in range(20)]
    assert {tuple(x) for x in first} == {("a",), ("b",)} and first != [["a"], ["b"]] * 10
    assert drawn.active(19) == set(first[19])  # the same step asked twice: the same group
    again = TaskSchedule(["a", "b"], alternate=[["a"], ["b"]], order="random", seed=3)
    assert [sorted(again.active(s)) for s in range(20)] == first  # seeded
    with pytest.raises(ValueError, match="unknown tasks"):
        TaskSchedule(["a"], alternate=[["a"], ["z"]])
    with pytest.raises(ValueError, match="name each task once"):
        TaskSchedule(["a", "b"], alternate=[["a"], ["a", "b"]])


def _config(tmp_path: Path, **training: Any) -> dict[str, Any]:
    return {
        "run_dir": str(tmp_path / "run"),
        "data": {"name": "demo", "n_train": 200, "n_val": 50, "n_test": 50, "batch_size": 32},
        "model": {"encoder": {"hidden": [16]}},
        "optimizer": {"name": "adam", "lr": 0.01},
        "tasks": {"flag": {"every": 3, "start": 1}},
        "training": {"steps": 9, "eval_every": 3, "progress": False, "checkpoint_every": 3, **training},
    }


def _heads_after_each_step(config: dict[str, Any], tmp_path: Path) -> list[dict[str, torch.Tensor]]:
    trainer = build_experiment(parse_config(config), run_dir=tmp_path / "steps").trainer
    snapshots = []
    for step in range(1, config["training"]["steps"] + 1):
        trainer.steps = step
        trainer.fit()
        snapshots.append({n: p.detach().clone() for n, p in trainer.model.named_parameters() if n.startswith("heads.")})
    return snapshots


def test_a_task_off_at_a_step_is_absent_from_it(tmp_path: Path) -> None:
    """flag trains at steps 1, 4, 7 (0-based): its head moves only then; Adam leaves it alone between."""
    snapshots = _heads_after_each_step(_config(tmp_path), tmp_path)
    moved = [i for i in range(1, len(snapshots))
             if not all(torch.equal(a, b) for k, a in snapshots[i].items() if ".flag." in k
                        for b in [snapshots[i - 1][k]])]
    assert moved == [1, 4, 7]
    category = [i for i in range(1, len(snapshots))
                if not all(torch.equal(snapshots[i][k], snapshots[i - 1][k]) for k in snapshots[i] if ".category." in k)]
    assert category == list(range(1, 9))  # the others train every step


def test_alternating_groups_take_turns(tmp_path: Path) -> None:
    config = _config(tmp_path, alternate=[["category"], ["score", "flag"]])
    del config["tasks"]
    snapshots = _heads_after_each_step(config, tmp_path)
    for i in range(1, len(snapshots)):
        changed = {k.split(".")[1] for k in snapshots[i] if not torch.equal(snapshots[i][k], snapshots[i - 1][k])}
        assert changed <= ({"category"} if i % 2 == 0 else {"score", "flag"}) and changed, (i, changed)


def test_a_random_alternation_resumes_exactly(tmp_path: Path) -> None:
    config = _config(tmp_path, alternate=[["category"], ["score"], ["flag"]], alternate_order="random")
    train(parse_config(config), run_dir=tmp_path / "straight")
    split = dict(config, training=dict(config["training"], steps=4))
    train(parse_config(split), run_dir=tmp_path / "split")
    train(parse_config(config), run_dir=tmp_path / "split", resume="latest")
    a = CheckpointManager.load(tmp_path / "straight" / "checkpoints" / "step-000000009.safetensors")["model"]
    b = CheckpointManager.load(tmp_path / "split" / "checkpoints" / "step-000000009.safetensors")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize(("change", "match"), [
    ({"training": {"alternate": [["category"], ["nope"]]}}, r"training.alternate' names unknown tasks \['nope'\]"),
    ({"tasks": {"flag": {"start": 5, "stop": 5}}}, r"tasks.flag': A task schedule needs .*stop > start"),
    ({"training": {"alternate": [["category"], ["category"]]}}, "name each task once"),
])
def test_bad_schedules_are_named(tmp_path: Path, change: dict[str, Any], match: str) -> None:
    config = _config(tmp_path)
    for key, value in change.items():
        config[key] = {**config.get(key, {}), **value}
    with pytest.raises(ConfigError, match=match):
        build_experiment(parse_config(config), run_dir=tmp_path / "bad")
