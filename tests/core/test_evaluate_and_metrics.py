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


def test_metrics_are_held_by_a_multitask_wrapper(monkeypatch: pytest.MonkeyPatch) -> None:
    """One torchmetrics MultitaskWrapper holds a MetricCollection per scored task (style guide §4)."""
    from torchmetrics import MetricCollection
    from torchmetrics.wrappers import MultitaskWrapper

    import manytask.evaluation._evaluate as module

    built: list[MultitaskWrapper] = []

    class Spy(MultitaskWrapper):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]
            built.append(self)

    monkeypatch.setattr(module, "MultitaskWrapper", Spy)
    tasks = [Regression("r"), Classification("c", num_classes=2, metrics=("accuracy", "macro_f1")),
             BinaryClassification("absent")]
    model = HardSharing(Fixed(), tasks)
    source = TensorSource(torch.randn(5, 2), {"r": torch.randn(5), "c": torch.tensor([0, 1, 0, 1, 1])})
    result = evaluate(model, tasks, source)
    assert len(built) == 1
    collections = dict(built[0].task_metrics.items())
    assert list(collections) == ["r", "c"]  # "absent" has no target in the source: nothing to hold
    assert all(isinstance(c, MetricCollection) for c in collections.values())
    held = collections["c"]
    assert isinstance(held, MetricCollection) and list(held.keys()) == ["accuracy", "macro_f1"]
    assert math.isnan(result["absent/auroc"]) and not math.isnan(result["c/macro_f1"])


def test_a_token_task_mixes_sentence_and_token_metrics() -> None:
    """chunk F1 reads sentences; the same task's accuracy reads its labelled tokens only."""
    from manytask.metrics import ChunkTagging

    tags = ("O", "B-NP", "I-NP", "B-VP", "I-VP")

    class Tagger(nn.Module):  # predicts fixed tags (one-hot logits) for sentence i, whatever its tokens
        out_features = len(tags)
        layout = "sequence"

        def __init__(self, predicted: torch.Tensor) -> None:
            super().__init__()
            self.predicted = predicted

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return nn.functional.one_hot(self.predicted[x[:, 0]], len(tags)).float() * 10

    def ids(rows: list[list[str]]) -> torch.Tensor:
        return torch.tensor([[tags.index(t) for t in row] for row in rows])

    task = ChunkTagging("chunk", tags=tags, metrics=("chunk_f1", "accuracy"))
    model = HardSharing(Tagger(ids([["B-NP", "B-VP"], ["I-VP", "B-NP"]])), [task])
    model.heads["chunk"] = nn.Identity()
    gold = ids([["B-NP", "O"], ["O", "B-NP"]])
    mask = torch.tensor([[True, True], [True, False]])  # the last token is unlabelled
    source = TensorSource(torch.arange(2)[:, None].expand(2, 2), {"chunk": gold}, masks={"chunk": mask})
    result = evaluate(model, [task], source)
    # accuracy over the 3 labelled tokens: B-NP=B-NP, B-VP!=O, I-VP!=O -> 1/3
    assert result["chunk/accuracy"] == pytest.approx(1 / 3)
    # chunks (conlleval, per sentence, the unlabelled token left out): gold NP(0,0) | none;
    # predicted NP(0,0), VP(1,1) | VP(0,0): 1 correct of 3 predicted, of 1 true -> F1 = 2 (1/3)(1) / (4/3) = 1/2
    assert result["chunk/chunk_f1"] == pytest.approx(1 / 2)


def test_a_view_that_labels_nothing_in_a_batch_is_skipped_there() -> None:
    """A view task whose view masks nothing in one batch: that batch adds nothing (it made the
    loss NaN and crashed torchmetrics' accuracy on an empty update)."""
    from manytask.data import Inputs
    from manytask.views import View, ViewBatch

    class FirstRows(View):  # labels the first 3 samples of the source (batch_size 3: the first batch only)
        def __init__(self) -> None:
            self.seen = 0

        def __call__(self, inputs: Inputs, *, generator: torch.Generator) -> ViewBatch:
            assert isinstance(inputs, torch.Tensor)
            mask = torch.arange(self.seen, self.seen + len(inputs)) < 3
            self.seen += len(inputs)
            return ViewBatch(inputs, (inputs[:, 0] > 0).long(), mask)

    tasks = [Classification("sign", num_classes=2, view="first_rows")]
    model = HardSharing(Fixed(), tasks)
    with torch.no_grad():
        model.heads["sign"].weight.copy_(torch.tensor([[-1.0, 0.0], [1.0, 0.0]]))
        model.heads["sign"].bias.zero_()
    x = torch.tensor([[1.0, 0.0], [-2.0, 0.0], [0.5, 0.0], [3.0, 0.0], [-1.0, 0.0]])
    result = evaluate(model, tasks, TensorSource(x, {}), batch_size=3, views={"first_rows": FirstRows()})
    assert result["sign/accuracy"] == 1.0  # the logits (-x0, x0) pick the sign of x0
    expected = torch.nn.functional.cross_entropy(x[:3] @ torch.tensor([[-1.0, 1.0], [0.0, 0.0]]),
                                                 (x[:3, 0] > 0).long())
    assert result["sign/loss"] == pytest.approx(float(expected))


def test_one_process_folds_each_batch_into_the_metrics_before_the_next_forward(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing is kept from batch to batch in one process (a pixel-level task's predictions on a
    large validation set would otherwise all be held until the end): each batch's update to the
    metrics comes before the next batch's forward pass."""
    import manytask.evaluation._evaluate as module

    events: list[str] = []
    tasks = [Regression("r")]
    model = HardSharing(Fixed(), tasks)
    model.register_forward_hook(lambda *_: events.append("forward"))
    of = module._of
    monkeypatch.setattr(module, "_of", lambda metrics, name: (events.append("update"), of(metrics, name))[1])
    x = torch.randn(10, 2)
    evaluate(model, tasks, TensorSource(x, {"r": torch.randn(10)}), batch_size=3)
    assert events[:8] == ["forward", "update"] * 4  # (then the metrics' compute reads them)
