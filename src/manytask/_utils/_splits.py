"""Seeded train / validation / test splits of row indices."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = ["split_groups", "split_indices"]


def _check_fractions(val_fraction: float, test_fraction: float) -> None:
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 <= value < 1:
            raise ValueError(f"The {name!r} parameter must be in [0, 1). Got {value}.")
    if val_fraction + test_fraction >= 1:
        raise ValueError(
            "val_fraction + test_fraction must be < 1 so that some rows are left for training. "
            f"Got {val_fraction} + {test_fraction}."
        )


def split_indices(
    n: int, val_fraction: float, test_fraction: float, seed: int
) -> tuple[Tensor, Tensor, Tensor]:
    """A seeded random split of ``range(n)`` into sorted train / val / test index tensors.

    ``round(n * fraction)`` rows go to validation and to test, but at least one row stays in
    training (test is served first).

    Example:
        >>> train, val, test = split_indices(10, 0.2, 0.1, seed=0)
        >>> len(train), len(val), len(test)
        (7, 2, 1)
    """
    _check_fractions(val_fraction, test_fraction)
    order = np.random.default_rng(seed).permutation(n)
    n_test = min(round(n * test_fraction), max(n - 1, 0))
    n_val = min(round(n * val_fraction), max(n - 1 - n_test, 0))
    parts = (order[n_val + n_test :], order[:n_val], order[n_val : n_val + n_test])
    train, val, test = (torch.as_tensor(np.sort(p), dtype=torch.long) for p in parts)
    return train, val, test


def split_groups(
    groups: np.ndarray, val_fraction: float, test_fraction: float, seed: int
) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`split_indices` within each group (e.g. each task), so every group is split alike.

    Each group gets its own seed, spawned from ``seed``; a group keeps at least one training row.
    """
    _check_fractions(val_fraction, test_fraction)
    parts: tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]] = ([], [], [])
    values = np.unique(groups)
    seeds = np.random.SeedSequence(seed).spawn(len(values))
    for value, sub in zip(values, seeds):
        rows = np.flatnonzero(groups == value)
        sub_seed = int(sub.generate_state(1)[0])
        for part, idx in zip(
            parts, split_indices(len(rows), val_fraction, test_fraction, sub_seed)
        ):
            part.append(rows[idx.numpy()])
    train, val, test = (
        torch.as_tensor(
            np.sort(np.concatenate(p)) if p else np.zeros(0, np.int64), dtype=torch.long
        )
        for p in parts
    )
    return train, val, test
