"""A Hugging Face datasets.Dataset as a source: the same data as the table it would be as a file,
missing values as absent labels, saved datasets from a config, and what it cannot read named."""

from __future__ import annotations

from pathlib import Path

import datasets
import pytest
import torch

from manytask.config import parse_config
from manytask.data.datasets import TableError, from_hf_dataset, table
from manytask.runs._build import build_experiment

ROWS = {
    "age": [30.0, 40.0, 50.0, None, 35.0, 61.0, 45.0, 52.0, 23.0, 38.0],
    "city": ["paris", "rome", "paris", "oslo", None, "rome", "paris", "oslo", "rome", "paris"],
    "churn": [1, None, 0, 1, 0, None, 1, 0, 1, 0],
    "spend": [1.5, 2.5, None, 4.0, 5.5, 6.0, None, 2.0, 3.0, 1.0],
}
TASKS = {"churn": {"kind": "binary"}, "spend": {"kind": "regression", "role": "auxiliary"}}


def test_the_same_data_as_the_table_of_the_same_rows(tmp_path: Path) -> None:
    rows = datasets.Dataset.from_dict(ROWS)
    ours = from_hf_dataset(rows, "rows", tasks=TASKS, seed=3)
    lines = ["age,city,churn,spend"] + [",".join("" if v is None else (str(int(v)) if k == "churn" else str(v))
                                                 for k, v in zip(ROWS, row)) for row in zip(*ROWS.values())]
    (tmp_path / "rows.csv").write_text("\n".join(lines) + "\n")
    file = table(path=str(tmp_path / "rows.csv"), tasks=TASKS, seed=3)
    a, b = ours.train["rows"], file.train["rows"]
    assert torch.equal(a.inputs, b.inputs)  # type: ignore[arg-type]
    for task in ("churn", "spend"):
        assert torch.equal(a.masks[task], b.masks[task]) and torch.equal(a.targets[task], b.targets[task])
    assert ours.input_info["feature_names"] == file.input_info["feature_names"]
    assert not bool(a.masks["churn"].all())  # None is no label


def test_a_saved_dataset_from_a_config(tmp_path: Path) -> None:
    datasets.DatasetDict({"train": datasets.Dataset.from_dict(ROWS)}).save_to_disk(str(tmp_path / "saved"))
    config = {"data": {"name": "huggingface", "path": str(tmp_path / "saved"), "split": "train", "tasks": TASKS,
                       "batch_size": 4},
              "training": {"steps": 2, "eval_every": 2, "progress": False}}
    assert build_experiment(parse_config(config), run_dir=tmp_path / "run").trainer.fit().steps_run == 2
    del config["data"]["split"]
    with pytest.raises(TableError, match=r"holds the splits \['train'\]; choose one with the 'split' option"):
        build_experiment(parse_config(config), run_dir=tmp_path / "run2")


def test_what_a_table_cannot_read_is_named() -> None:
    nested = datasets.Dataset.from_dict({**ROWS, "tokens": [[1, 2]] * 10})
    with pytest.raises(TableError, match=r"columns \['tokens'\] hold lists"):
        from_hf_dataset(nested, tasks=TASKS)
    data = from_hf_dataset(nested, tasks=TASKS, inputs=["age", "city"])  # flat columns named: fine
    assert data.input_info["in_features"] == 4
    with pytest.raises(TableError, match="pick a split"):
        from_hf_dataset(datasets.DatasetDict({"train": nested}), tasks=TASKS)
