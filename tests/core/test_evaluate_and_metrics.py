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


class _Lookup(nn.Module):
    """Row i's output is ``outputs[task][i]`` (the inputs are row indices)."""

    def __init__(self, outputs: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self.outputs = outputs

    def forward(self, inputs: torch.Tensor, tasks: list[str] | None = None) -> dict[str, torch.Tensor]:
        return {t: self.outputs[t][inputs] for t in (tasks or self.outputs)}


@pytest.mark.parametrize("mask", ["none", "per image", "per pixel"])
def test_pixel_classification_is_scored_per_pixel_whatever_the_mask(mask: str) -> None:
    """With no mask (every pixel labelled) or one flag per image, the metrics got [N, H, W, C] and
    read H as the class axis: accuracy 0.2562 for scikit-learn's 0.2250 (H = C), a crash (H != C),
    a NaN AUROC for a binary task. Every layout must give scikit-learn's numbers over the pixels."""
    from sklearn.metrics import accuracy_score, roc_auc_score

    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(20, 4, 6, 5, generator=generator)  # [B, C, H, W]
    labels = torch.randint(0, 4, (20, 6, 5), generator=generator)
    scores = torch.randn(20, 1, 6, 5, generator=generator)
    binary = torch.randint(0, 2, (20, 6, 5), generator=generator).float()
    binary[:, 0, 0] = 0.0  # a position that is background in every image
    tasks = [Classification("seg", num_classes=4, level="pixel", metrics=("accuracy",)),
             BinaryClassification("fg", level="pixel", metrics=("auroc",))]
    targets = {"seg": labels, "fg": binary}
    masks = None if mask == "none" else {
        t: torch.ones(20, dtype=torch.bool) if mask == "per image" else torch.ones(20, 6, 5, dtype=torch.bool)
        for t in targets}
    source = TensorSource(torch.arange(20), targets, masks)
    source.check(tasks)
    got = evaluate(_Lookup({"seg": logits, "fg": scores}), tasks, source, batch_size=7)
    assert got["seg/accuracy"] == pytest.approx(accuracy_score(labels.flatten(), logits.argmax(1).flatten()))
    assert got["fg/auroc"] == pytest.approx(roc_auc_score(binary.flatten(), scores.flatten()), abs=1e-6)


def test_a_mask_per_output_is_refused_with_the_way_out() -> None:
    """A [B, K] mask on a sample-level task with K outputs passed the checks, then crashed in the
    metrics (multi-label) or standardised the outputs by position (perfect predictions: RMSE 81.6)."""
    from manytask.tasks import TargetError

    source = TensorSource(torch.arange(6), {"r": torch.randn(6, 3)}, {"r": torch.ones(6, 3, dtype=torch.bool)})
    with pytest.raises(TargetError, match=r"mask of shape \(6, 3\) flags single outputs.*one flag per sample "
                                          r"\(shape \(6,\)\), for all of its outputs. Split outputs"):
        source.check([Regression("r", num_outputs=3)])


def test_nan_predictions_give_undefined_metrics_not_numbers() -> None:
    """A diverged model's NaN logits came out as accuracy = the share of class 0 (argmax of NaN)
    and an arbitrary AUROC (0.375-0.696); only the loss was NaN."""
    from manytask.evaluation import undefined_metrics

    generator = torch.Generator().manual_seed(0)
    outputs = {"c": torch.randn(12, 3, generator=generator), "b": torch.randn(12, 1, generator=generator)}
    outputs["c"][5] = math.nan  # one row of one batch
    outputs["b"][:] = math.nan
    tasks = [Classification("c", num_classes=3, metrics=("accuracy", "auroc")), BinaryClassification("b")]
    targets = {"c": torch.randint(0, 3, (12,), generator=generator), "b": (torch.arange(12) % 2).float()}
    source = TensorSource(torch.arange(12), targets)
    got = evaluate(_Lookup(outputs), tasks, source, batch_size=4)
    assert sorted(undefined_metrics(got)) == ["b/accuracy", "b/auroc", "b/loss", "c/accuracy", "c/auroc", "c/loss"]


def test_a_token_task_without_a_mask_is_told_which_mask_to_give() -> None:
    """The refusal spoke of a [6] mask the user never passed (the TensorSource made it)."""
    from manytask.tasks import SequenceLabelling, TargetError

    source = TensorSource(torch.arange(6), {"pos": torch.randint(0, 3, (6, 5))})
    with pytest.raises(TargetError, match=r"one flag per sentence \(6,\) \(a TensorSource given no mask for it "
                                          r"makes one\)\. Pass masks=\{'pos': tokens != padding\}"):
        source.check([SequenceLabelling("pos", num_classes=3)])
