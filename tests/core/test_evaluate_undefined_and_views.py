"""evaluate: undefined metrics are NaN (never 0), and view tasks are scored on their views."""

from __future__ import annotations

import math

import torch
from torch import nn

from manytask.data import TensorSource
from manytask.evaluation import evaluate, undefined_metrics
from manytask.models import Backbone, FeatureInfo, HardSharing
from manytask.tasks import BinaryClassification, Regression
from manytask.views import MaskedCells


def test_auroc_without_a_positive_is_undefined_not_zero() -> None:
    """Issue 9: a binary task with no positive in the validation split got AUROC 0.0."""
    tasks = [BinaryClassification("rare"), BinaryClassification("common")]
    model = HardSharing(nn.Linear(3, 4), tasks, feature_dim=4)
    x = torch.randn(12, 3)
    targets = {"rare": torch.zeros(12), "common": (torch.arange(12) % 2).float()}
    results = evaluate(model, tasks, TensorSource(x, targets))
    assert math.isnan(results["rare/auroc"]) and not math.isnan(results["rare/accuracy"])
    assert 0 <= results["common/auroc"] <= 1
    assert undefined_metrics(results) == ["rare/auroc"]


def test_a_task_without_labels_is_undefined() -> None:
    tasks = [BinaryClassification("a"), BinaryClassification("b")]
    model = HardSharing(nn.Linear(3, 4), tasks, feature_dim=4)
    source = TensorSource(torch.randn(6, 3), {"a": (torch.arange(6) % 2).float(), "b": torch.zeros(6)},
                          masks={"b": torch.zeros(6, dtype=torch.bool)})
    assert sorted(undefined_metrics(evaluate(model, tasks, source))) == ["b/accuracy", "b/auroc", "b/loss"]


def test_view_tasks_are_scored_on_their_view_deterministically() -> None:
    torch.manual_seed(0)
    tasks = [BinaryClassification("label"), Regression("inpaint", level="pixel", view="masked_cells")]
    backbone = Backbone([nn.Conv2d(1, 4, 3, padding=1)], [FeatureInfo(4, "map")])
    model = HardSharing(backbone, tasks)
    images = torch.rand(10, 1, 8, 8)
    source = TensorSource(images, {"label": (torch.arange(10) % 2).float()})
    views = {"masked_cells": MaskedCells(cell=2, fraction=0.5)}
    first = evaluate(model, tasks, source, batch_size=4, views=views)
    assert first == evaluate(model, tasks, source, batch_size=4, views=views)
    # the inpainting RMSE by hand: batch k's view drawn by a generator seeded with seed * 1000003 + k
    errors = []
    with torch.no_grad():
        for k, start in enumerate(range(0, 10, 4)):
            generator = torch.Generator().manual_seed(0 * 1_000_003 + k)
            viewed = views["masked_cells"](images[start:start + 4], generator=generator)
            out = model(viewed.inputs, ["inpaint"])["inpaint"]
            errors.append((out - viewed.target).movedim(1, -1)[viewed.mask].flatten())
    assert math.isclose(first["inpaint/rmse"], torch.cat(errors).pow(2).mean().sqrt().item(), rel_tol=1e-5)
