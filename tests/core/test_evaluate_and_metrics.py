"""Evaluation uses labelled entries only and matches hand-computed metrics."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from manytask.data import TensorSource
from manytask.evaluation import evaluate
from manytask.models import HardSharing
from manytask.tasks import BinaryClassification, Classification, Regression


class Fixed(nn.Module):
    """Encoder returning the inputs: the heads are set by hand below."""

    out_features = 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def test_metrics_by_hand_with_masks() -> None:
    tasks = [Regression("r"), Classification("c", num_classes=2), BinaryClassification("b")]
    model = HardSharing(Fixed(), tasks)
    with torch.no_grad():
        model.heads["r"].weight.copy_(torch.tensor([[1.0, 0.0]]))
        model.heads["r"].bias.zero_()
        model.heads["c"].weight.copy_(torch.eye(2))
        model.heads["c"].bias.zero_()
        model.heads["b"].weight.copy_(torch.tensor([[1.0, -1.0]]))
        model.heads["b"].bias.zero_()
    x = torch.tensor([[1.0, 0.0], [2.0, 3.0], [0.0, 1.0], [5.0, 0.0]])
    targets = {"r": torch.tensor([0.0, 0.0, 0.0, 1.0]), "c": torch.tensor([0, 1, 0, 0]),
               "b": torch.tensor([1.0, 0.0, 0.0, 1.0])}
    masks = {"r": torch.tensor([True, True, False, False]), "c": torch.tensor([True, True, True, False]),
             "b": torch.zeros(4, dtype=torch.bool)}
    result = evaluate(model, tasks, TensorSource(x, targets, masks), batch_size=3)
    assert result["r/rmse"] == pytest.approx(math.sqrt((1 + 4) / 2))
    assert result["r/mae"] == pytest.approx(1.5)
    assert result["c/accuracy"] == pytest.approx(2 / 3)  # predictions 0, 1, 1 vs 0, 1, 0
    assert math.isnan(result["b/auroc"]) and math.isnan(result["b/loss"])
