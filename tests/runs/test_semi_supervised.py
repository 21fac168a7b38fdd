"""Few labels plus many unlabelled rows: the view tasks read the unlabelled rows, the supervised
tasks never see them, and a run resumes drawing the same batches."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from manytask.config import parse_config
from manytask.data import Batch, TensorSource
from manytask.data._batch import concat_batches
from manytask.runs._build import build_experiment


def _config(**keep: Any) -> dict[str, Any]:
    return {
        "data": {"name": "demo", "n_train": 200, "n_val": 50, "n_test": 50, "batch_size": 16,
                 "labelled_fraction": 1.0, "keep_labels": {"fraction": 0.1, **keep}},
        "tasks": {"autoencode": {"view": "reconstruct", "kind": "regression", "num_outputs": 20, "role": "auxiliary"}},
        "training": {"steps": 4, "eval_every": 4, "progress": False},
    }


def _rows_drawn(config: dict[str, Any], tmp_path: Path, steps: int) -> tuple[set[bytes], set[bytes], list[Batch]]:
    """The input rows the loader draws in ``steps`` batches, and the labelled training rows."""
    experiment = build_experiment(parse_config(config), run_dir=tmp_path)
    labelled = {row.numpy().tobytes() for name, s in experiment.data.train.items() if not name.endswith("unlabelled")
                for row in s.inputs}  # type: ignore[union-attr]
    batches = [experiment.trainer.loader.next()[1] for _ in range(steps)]
    drawn = {row.numpy().tobytes() for b in batches for row in b.inputs}  # type: ignore[union-attr]
    return drawn, labelled, batches


def test_the_view_tasks_read_the_unlabelled_rows(tmp_path: Path) -> None:
    """Before the fix the loader kept only the 10 % labelled rows: the view never saw the rest."""
    drawn, labelled, _ = _rows_drawn(_config(), tmp_path, steps=40)
    assert len(labelled) == 20
    assert len(drawn - labelled) > 100  # most of the 180 unlabelled rows, drawn in whole batches


def test_without_a_view_the_unlabelled_rows_are_left_out(tmp_path: Path) -> None:
    config = _config()
    del config["tasks"]
    drawn, labelled, _ = _rows_drawn(config, tmp_path, steps=20)
    assert drawn <= labelled


def test_unlabelled_rows_beside_every_labelled_batch(tmp_path: Path) -> None:
    drawn, labelled, batches = _rows_drawn(_config(unlabelled_batch_size=8), tmp_path, steps=6)
    for batch in batches:
        assert len(batch) == 16 + 8 or len(batch) == 4 + 8  # a labelled batch (20 rows: 16, then 4) and 8 more
        head = len(batch) - 8
        assert all(row.numpy().tobytes() in labelled for row in batch.inputs[:head])  # type: ignore[index]
        assert not any(row.numpy().tobytes() in labelled for row in batch.inputs[head:])  # type: ignore[index]
        for mask in batch.masks.values():
            assert not bool(mask[head:].any())  # no label on the appended rows
    assert len(drawn - labelled) == 6 * 8


def test_a_resumed_loader_draws_the_same_batches(tmp_path: Path) -> None:
    straight = build_experiment(parse_config(_config(unlabelled_batch_size=8)), run_dir=tmp_path / "a").trainer.loader
    resumed = build_experiment(parse_config(_config(unlabelled_batch_size=8)), run_dir=tmp_path / "b").trainer.loader
    for _ in range(5):
        straight.next()
        resumed.next()
    state = resumed.state_dict()
    again = build_experiment(parse_config(_config(unlabelled_batch_size=8)), run_dir=tmp_path / "c").trainer.loader
    again.load_state_dict(state)
    for _ in range(20):
        a, b = straight.next()[1], again.next()[1]
        assert torch.equal(a.inputs, b.inputs)  # type: ignore[arg-type]


def test_a_run_trains_on_both(tmp_path: Path) -> None:
    """Through the trainer, the view reads each labelled batch with the unlabelled rows beside it,
    while the supervised tasks' masks cover the labelled rows only."""
    trainer = build_experiment(parse_config(_config(unlabelled_batch_size=8)), run_dir=tmp_path).trainer
    view, seen = trainer.views["reconstruct"], []

    def recording(inputs: torch.Tensor, *, generator: torch.Generator) -> Any:
        seen.append(len(inputs))
        return view(inputs, generator=generator)

    trainer.views["reconstruct"] = recording  # type: ignore[assignment]
    assert trainer.fit().steps_run == 4
    assert seen[:4] == [16 + 8, 4 + 8, 16 + 8, 4 + 8]  # 20 labelled rows: batches of 16, then 4
    assert seen[4:] == [50]  # then the evaluation, on the 50 validation rows


def test_concatenating_batches_fills_a_task_one_side_lacks() -> None:
    a = TensorSource(torch.ones(3, 2), {"x": torch.ones(3), "y": torch.ones(3, 4)}, {"y": torch.ones(3, 4).bool()})
    b = TensorSource(torch.zeros(2, 2), {"x": torch.full((2,), 5.0)}, {"x": torch.tensor([True, False])})
    both = concat_batches(a.batch(torch.arange(3)), b.batch(torch.arange(2)))
    assert both.inputs.shape == (5, 2)  # type: ignore[union-attr]
    assert both.targets["x"].tolist() == [1, 1, 1, 5, 5] and both.masks["x"].tolist() == [True] * 3 + [True, False]
    assert both.targets["y"].shape == (5, 4) and both.masks["y"].sum() == 12 and not bool(both.masks["y"][3:].any())
    assert both.full == frozenset()  # x is not full in b, y is absent from it
    assert both.present() == {"x", "y"}
