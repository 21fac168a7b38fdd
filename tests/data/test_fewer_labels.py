"""Few labels, many unlabelled samples: a seeded subset of the training rows keeps its labels."""

from __future__ import annotations

import pytest
import torch

from manytask.config import ConfigError, parse_config
from manytask.data import MultiTaskData, TensorSource, keep_labels
from manytask.runs._build import load_data
from manytask.tasks import Regression, SequenceLabelling


def _data() -> MultiTaskData:
    n = 40
    partly = torch.arange(n) % 2 == 0  # task b was labelled on even rows only
    tokens = torch.ones(n, 5, dtype=torch.bool)
    source = TensorSource(torch.randn(n, 3), {"a": torch.randn(n), "b": torch.randn(n), "tags": torch.zeros(n, 5).long()},
                          {"b": partly, "tags": tokens}, "train")
    tasks = (Regression("a"), Regression("b"), SequenceLabelling("tags", num_classes=2))
    return MultiTaskData(tasks, {"train": source}, val=source)


def test_a_seeded_subset_of_rows_keeps_every_label_and_the_rest_is_an_unlabelled_source() -> None:
    data = _data()
    original = data.train["train"]
    assert isinstance(original, TensorSource)
    fewer = keep_labels(data, fraction=0.25, seed=3)
    source, rest = fewer.train["train"], fewer.train["train/unlabelled"]
    assert isinstance(source, TensorSource) and isinstance(rest, TensorSource)
    assert len(source) == 10 and len(rest) == 30  # a quarter of 40 rows keeps its labels
    rows = [int(torch.nonzero((original.inputs == row).all(1))[0]) for row in source.inputs]  # type: ignore[union-attr]
    others = [int(torch.nonzero((original.inputs == row).all(1))[0]) for row in rest.inputs]  # type: ignore[union-attr]
    assert sorted(rows + others) == list(range(40))  # every row once
    for task in ("a", "b", "tags"):  # the kept rows keep their labels and targets as they were
        assert torch.equal(source.masks[task], original.masks[task][rows])
        assert torch.equal(source.targets[task], original.targets[task][rows])
        assert not bool(rest.masks[task].any())  # the others have none
    again = keep_labels(data, fraction=0.25, seed=3).train["train"]
    assert torch.equal(again.inputs, source.inputs)  # type: ignore[arg-type]  # seeded
    assert not torch.equal(keep_labels(data, fraction=0.25, seed=4).train["train"].inputs, source.inputs)  # type: ignore[arg-type]
    assert fewer.val is data.val  # validation is untouched


def test_a_number_of_rows() -> None:
    assert len(keep_labels(_data(), samples=7).train["train"]) == 7
    everything = keep_labels(_data(), samples=1000).train
    assert list(everything) == ["train"] and len(everything["train"]) == 40  # nothing left unlabelled


def test_bad_requests_are_named() -> None:
    with pytest.raises(ValueError, match="exactly one of fraction and samples"):
        keep_labels(_data(), fraction=0.5, samples=3)
    with pytest.raises(ValueError, match=r"fraction must be in \(0, 1\]"):
        keep_labels(_data(), fraction=1.5)
    with pytest.raises(ConfigError, match="keep_labels.fraction"):
        parse_config({"data": {"name": "demo", "keep_labels": {"fraction": 0.0}}})
    with pytest.raises(ConfigError, match="exactly one of fraction and samples"):
        load_data(parse_config({"data": {"name": "demo", "keep_labels": {}}}))


def test_from_a_config() -> None:
    config = parse_config({"data": {"name": "demo", "n_train": 200, "keep_labels": {"fraction": 0.1}}})
    full = load_data(parse_config({"data": {"name": "demo", "n_train": 200}}))
    fewer = load_data(config)
    for name, before in full.train.items():
        kept, rest = fewer.train[name], fewer.train[f"{name}/unlabelled"]
        assert len(kept) == round(0.1 * len(before)) and len(kept) + len(rest) == len(before)


def test_keeping_no_labelled_row_of_a_task_is_refused() -> None:
    """Before the fix the task kept no label, never trained, and its untrained head was scored as
    a main result. Task b is labelled on even rows only; one kept row is odd for this seed."""
    data = _data()
    with pytest.raises(ValueError, match=r"keep_labels kept 1 training row\(s\), and none of them is labelled for "
                                         r"task\(s\) \['b'\].*keep more rows"):
        keep_labels(data, samples=1, seed=next(s for s in range(50) if _first_kept_is_odd(s)))
    with pytest.raises(ConfigError, match="Config section 'data': keep_labels kept 5 training row"):
        load_data(parse_config({"data": {"name": "demo", "n_train": 200, "keep_labels": {"samples": 5}}}))


def _first_kept_is_odd(seed: int) -> bool:
    generator = torch.Generator().manual_seed(seed * 1_000_003)
    return int(torch.randperm(40, generator=generator)[0]) % 2 == 1
