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


def test_a_seeded_subset_of_rows_keeps_every_label() -> None:
    data = _data()
    fewer = keep_labels(data, fraction=0.25, seed=3)
    source = fewer.train["train"]
    assert isinstance(source, TensorSource)
    kept = source.masks["a"]
    assert int(kept.sum()) == 10  # a quarter of 40 rows
    assert torch.equal(source.masks["b"], kept & (torch.arange(40) % 2 == 0))  # never more than before
    assert torch.equal(source.masks["tags"], kept[:, None].expand(40, 5))  # token masks by row
    assert torch.equal(keep_labels(data, fraction=0.25, seed=3).train["train"].masks["a"], kept)  # seeded
    assert not torch.equal(keep_labels(data, fraction=0.25, seed=4).train["train"].masks["a"], kept)
    assert len(source) == 40 and fewer.val is data.val  # the unlabelled rows stay; validation is untouched


def test_a_number_of_rows() -> None:
    assert int(keep_labels(_data(), samples=7).train["train"].masks["a"].sum()) == 7
    assert bool(keep_labels(_data(), samples=1000).train["train"].masks["a"].all())


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
    for name, source in fewer.train.items():
        before = full.train[name]
        assert isinstance(source, TensorSource) and isinstance(before, TensorSource)
        for task, mask in source.masks.items():
            assert int(mask.sum()) <= int(before.masks[task].sum())
        assert sum(int(m.any()) for m in torch.stack(list(source.masks.values())).T) <= round(0.1 * len(source))
