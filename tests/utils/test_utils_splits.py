"""``split_indices`` / ``split_groups``: seeded, disjoint, covering, at least one training row."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from manytask._utils import split_groups, split_indices


@pytest.mark.parametrize(
    ("n", "val", "test", "sizes"),
    [
        (10, 0.2, 0.1, (7, 2, 1)),
        (7, 0.5, 0.0, (3, 4, 0)),
        (1, 0.5, 0.4, (1, 0, 0)),  # the one row stays in training
        (0, 0.1, 0.1, (0, 0, 0)),
    ],
)
def test_sizes_cover_and_sorted(
    n: int, val: float, test: float, sizes: tuple[int, int, int]
) -> None:
    parts = split_indices(n, val, test, seed=3)
    assert tuple(len(p) for p in parts) == sizes
    assert all(p.dtype == torch.long and bool((p[1:] > p[:-1]).all()) for p in parts)
    assert sorted(torch.cat(parts).tolist()) == list(range(n))


def test_seeded() -> None:
    a, b = split_indices(50, 0.2, 0.2, seed=1), split_indices(50, 0.2, 0.2, seed=1)
    c = split_indices(50, 0.2, 0.2, seed=2)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not all(torch.equal(x, y) for x, y in zip(a, c))


def test_groups_are_split_alike() -> None:
    groups = np.repeat([5, 7, 9], [10, 20, 3])
    train, val, test = split_groups(groups, 0.2, 0.3, seed=0)
    assert sorted(torch.cat([train, val, test]).tolist()) == list(range(33))
    for g, n in ((5, 10), (7, 20), (9, 3)):
        counts = [int((groups[p.numpy()] == g).sum()) for p in (train, val, test)]
        n_test = min(round(n * 0.3), n - 1)
        assert counts == [n - n_test - min(round(n * 0.2), n - 1 - n_test), counts[1], n_test]
        assert counts[0] >= 1


@pytest.mark.parametrize(
    ("val", "test", "match"),
    [
        (1.0, 0.0, "'val_fraction' parameter must be in"),
        (0.0, -0.1, "'test_fraction'"),
        (0.6, 0.5, "must be < 1"),
    ],
)
def test_bad_fractions(val: float, test: float, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        split_indices(10, val, test, seed=0)
    with pytest.raises(ValueError, match=match):
        split_groups(np.zeros(10), val, test, seed=0)
