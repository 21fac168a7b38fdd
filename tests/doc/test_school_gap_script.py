"""``benchmarks/school_gap.py`` fits its baselines on one Zhang & Li split and renders its section."""

from __future__ import annotations

import math

import numpy as np
import pytest

from .benchmark_scripts import load_script

script = load_script("school_gap")
ROOT = script.shared_data()
needs_data = pytest.mark.skipif(
    not (ROOT / "school" / "zhang_li_cikm2019_splits").is_dir(),
    reason=f"shared data absent: no school/zhang_li_cikm2019_splits/ under {ROOT}",
)


@needs_data
def test_one_split_with_tiny_models() -> None:
    result = script.run(ROOT, 1, fast=True)
    assert set(result["methods"]) == set(script.METHODS)
    for scores in result["methods"].values():
        assert 5 < scores["rmse"][0] < 15 and 5 < scores["pooled"][0] < 15
        assert scores["stale"] == scores["rmse"]  # on split 1, the split-1 model is the honest one
    assert 0 <= result["seen_fraction"][0] < 0.5 and 0.5 < result["school_identified"] <= 1
    md = script.to_markdown(result, "python benchmarks/school_gap.py --splits 1", 0.1)
    assert md.count("\n| ") == len(script.METHODS) + len(script.THEIR_CODE) + 2  # header, methods, theirs, README
    assert "Findings" in md and "nan" not in md.split("Findings")[1]


def test_metrics_on_a_toy() -> None:
    y, pred, task = np.array([1.0, 3.0, 0.0, 0.0]), np.array([0.0, 0.0, 0.0, 2.0]), np.array([0, 0, 1, 1])
    assert math.isclose(script.mean_task_rmse(y, pred, task), (math.sqrt(5) + math.sqrt(2)) / 2)
    assert math.isclose(script.pooled_rmse(y, pred), math.sqrt(14 / 4))


def test_seen_rows_are_those_equal_to_a_training_row_in_every_column() -> None:
    train = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    test = np.array([[1.0, 2.0, 3.0], [1.0, 2.0, 4.0], [4.0, 5.0, 6.0]])
    assert script.seen_mask(train, test).tolist() == [True, False, True]
