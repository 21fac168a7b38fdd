"""Multiclass AUROC is the macro average of the one-vs-rest AUROCs of the classes the targets
hold, computed here by the rank (Mann-Whitney) formula; with fewer than two classes it is
undefined (NaN), never 0."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import rankdata

from manytask.metrics import create_metric
from manytask.tasks import Classification


def _one_vs_rest(scores: np.ndarray, positive: np.ndarray) -> float:
    """P(score of a positive > score of a negative), ties counting one half."""
    ranks = rankdata(scores)
    n_pos, n_neg = positive.sum(), (~positive).sum()
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _metric(preds: torch.Tensor, target: torch.Tensor, num_classes: int, split: int = 2) -> float:
    metric = create_metric("auroc", Classification("c", num_classes=num_classes))
    for p, t in zip(preds.tensor_split(split), target.tensor_split(split)):  # over several updates
        metric.update(p, t)
    return float(metric.compute())


def test_a_class_absent_from_the_targets_is_left_out_of_the_average() -> None:
    generator = torch.Generator().manual_seed(0)
    preds = torch.softmax(torch.randn(40, 3, generator=generator), dim=1)
    target = torch.randint(0, 2, (40,), generator=generator)  # classes 0 and 1; class 2 never
    expected = np.mean([_one_vs_rest(preds[:, c].numpy(), target.numpy() == c) for c in (0, 1)])
    assert _metric(preds, target, 3) == pytest.approx(expected, rel=1e-6)


def test_every_class_present_is_the_plain_macro_average() -> None:
    generator = torch.Generator().manual_seed(1)
    preds = torch.softmax(torch.randn(60, 4, generator=generator), dim=1)
    target = torch.arange(60) % 4
    expected = np.mean([_one_vs_rest(preds[:, c].numpy(), target.numpy() == c) for c in range(4)])
    assert _metric(preds, target, 4) == pytest.approx(expected, rel=1e-6)


def test_one_class_only_is_undefined() -> None:
    preds = torch.softmax(torch.randn(10, 3), dim=1)
    assert math.isnan(_metric(preds, torch.zeros(10, dtype=torch.long), 3))

