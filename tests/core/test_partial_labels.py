"""Partial labels: losses over labelled entries only; absent tasks get no loss and no gradient."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from manytask.balancing import EW
from manytask.data import MultiSourceLoader, TensorSource
from manytask.models import HardSharing
from manytask.tasks import BinaryClassification, Classification, Regression, SequenceLabelling
from manytask.training import Trainer, build_optimizer


def test_losses_average_over_labelled_entries_only() -> None:
    out = torch.tensor([[1.0], [2.0], [3.0], [100.0]])
    target = torch.tensor([0.0, 0.0, 0.0, float("nan")])
    mask = torch.tensor([True, False, True, False])
    assert Regression("r").mean_loss(out, target, mask).item() == (1.0 + 9.0) / 2

    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0], [5.0, -5.0]])
    labels = torch.tensor([0, 1, -100])
    mask = torch.tensor([True, True, False])
    expected = F.cross_entropy(logits[:2], labels[:2])
    torch.testing.assert_close(Classification("c").mean_loss(logits, labels, mask), expected)


def test_per_token_and_per_label_masks() -> None:
    logits = torch.randn(2, 3, 4)
    tags = torch.tensor([[1, 2, 0], [3, 0, 0]])
    mask = torch.tensor([[True, True, False], [True, False, False]])
    expected = F.cross_entropy(torch.stack([logits[0, 0], logits[0, 1], logits[1, 0]]), torch.tensor([1, 2, 3]))
    torch.testing.assert_close(SequenceLabelling("pos", num_classes=4).mean_loss(logits, tags, mask), expected)

    out = torch.tensor([[0.0, 1.0], [2.0, -1.0]])
    labels = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    mask = torch.tensor([[True, False], [False, True]])
    expected = F.binary_cross_entropy_with_logits(torch.tensor([0.0, -1.0]), torch.tensor([1.0, 1.0]))
    torch.testing.assert_close(BinaryClassification("b", num_labels=2).mean_loss(out, labels, mask), expected)


@pytest.mark.parametrize("loss", ["mse", "l1", "huber"])
def test_regression_loss_terms_by_hand(loss: str) -> None:
    """The built-in losses are reduced by their kernel; check the (sum, count) against the
    per-entry formulas over a [B, 2]-output task with a per-entry mask."""
    out = torch.tensor([[0.5, -1.0], [3.0, 2.0], [0.0, 0.2]], dtype=torch.float64)
    target = torch.tensor([[0.0, 1.0], [0.0, 2.5], [9.0, 0.0]], dtype=torch.float64)
    mask = torch.tensor([[True, True], [True, False], [False, True]])
    diff = [0.5, -2.0, 3.0, 0.2]  # the labelled entries, row by row
    per_entry = {"mse": lambda d: d * d, "l1": abs, "huber": lambda d: 0.5 * d * d if abs(d) < 1 else abs(d) - 0.5}[loss]
    total, count = Regression("r", num_outputs=2, loss=loss).loss_terms(out, target, mask)
    assert count == 4
    assert total.item() == pytest.approx(sum(per_entry(d) for d in diff))
    total, count = Regression("r", num_outputs=2, loss=loss).loss_terms(out, target, None)
    assert count == 6


def test_classification_loss_terms_by_hand() -> None:
    """Cross-entropy sums -log softmax of the labelled rows; BCE sums -log sigmoid(±x)."""
    logits = torch.tensor([[[2.0, 0.0, 1.0], [0.0, 0.0, 0.0]], [[1.0, 3.0, -1.0], [5.0, 5.0, 5.0]]])
    tags = torch.tensor([[0, 2], [1, 1]])
    mask = torch.tensor([[True, False], [True, True]])
    def nll(row: list[float], k: int) -> float:
        return -row[k] + math.log(sum(math.exp(v) for v in row))
    expected = nll([2.0, 0.0, 1.0], 0) + nll([1.0, 3.0, -1.0], 1) + nll([5.0, 5.0, 5.0], 1)
    total, count = SequenceLabelling("pos", num_classes=3).loss_terms(logits, tags, mask)
    assert (count, total.item()) == (3, pytest.approx(expected, rel=1e-6))
    total, count = Classification("c", num_classes=3).loss_terms(logits[:, 0], tags[:, 0], None)
    assert (count, total.item()) == (2, pytest.approx(nll([2.0, 0.0, 1.0], 0) + nll([1.0, 3.0, -1.0], 1), rel=1e-6))

    out = torch.tensor([[0.0], [2.0], [-1.0]])
    labels = torch.tensor([1.0, 0.0, 1.0])
    total, count = BinaryClassification("b").loss_terms(out, labels, None)
    expected = math.log(2) + math.log(1 + math.exp(2.0)) + math.log(1 + math.exp(1.0))
    assert (count, total.item()) == (3, pytest.approx(expected, rel=1e-6))


def test_absent_task_gets_no_gradient_and_no_optimizer_update() -> None:
    tasks = [Regression("a"), Regression("b")]
    x = torch.randn(8, 3)
    mask_b = torch.zeros(8, dtype=torch.bool)  # task b never labelled in this source
    source = TensorSource(x, {"a": torch.randn(8), "b": torch.randn(8)}, {"b": mask_b})
    model = HardSharing(nn.Linear(3, 4), tasks)
    head_b = model.heads["b"].weight.detach().clone()
    optimizer = build_optimizer(model, None, "adam", lr=0.1)
    trainer = Trainer(model, tasks, EW(tasks), optimizer, MultiSourceLoader({"s": source}, 4), steps=3, progress=False)
    trainer.fit()
    assert torch.equal(model.heads["b"].weight, head_b)
    assert model.heads["b"].weight.grad is None
    assert all(id(p) not in {id(q) for q in optimizer.state} or not optimizer.state[p]
               for p in model.heads["b"].parameters())
