"""benchmarks/linear_sarcos_mnist_usps.py: the SARCOS test rows exclude the training inputs."""

from __future__ import annotations

import numpy as np
import pytest

from manytask.data.datasets._sarcos_arrays import load_sarcos_subsample, load_sarcos_test

from .benchmark_scripts import load_script

bench = load_script("linear_sarcos_mnist_usps")


def test_a_training_input_printed_differently_is_not_a_test_row() -> None:
    rng = np.random.default_rng(0)
    train = rng.normal(scale=50.0, size=(200, 21))
    fresh = rng.normal(scale=50.0, size=(30, 21))
    reprinted = train[:40] + rng.uniform(-1e-14, 1e-14, size=(40, 21)) * np.abs(train[:40])
    close_but_new = train[40:50] + 1e-3
    keep = bench.unseen_rows(train, np.concatenate([reprinted, fresh, close_but_new]))
    np.testing.assert_array_equal(keep, [False] * 40 + [True] * 40)


def test_no_kept_sarcos_test_row_lies_near_a_training_input() -> None:
    try:
        sub, test = load_sarcos_subsample(bench.DATA_ROOT), load_sarcos_test(bench.DATA_ROOT)
    except FileNotFoundError:
        pytest.skip("SARCOS files not in ../shared/data")
    from scipy.spatial import cKDTree

    keep = bench.unseen_rows(sub.X, test.X)
    dist, _ = cKDTree(sub.X).query(test.X[keep])
    # the nearest distinct row is 0.069 away; copies of training rows are within 1e-14
    assert dist.min() > 1e-3
    assert keep.sum() == 3865


def test_rows_scored_on_different_test_sets_are_refused() -> None:
    row = {"rmse": 1.0, "nmse": 0.1, "params": {}, "n_test": 10}
    with pytest.raises(ValueError, match="different sizes"):
        bench.sarcos_markdown({"ridge": row, "lasso": {**row, "n_test": 12}}, "cmd", 1.0)
