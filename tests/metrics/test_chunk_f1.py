"""Chunk-level F1 (conlleval) on hand-made sentences, with the counts worked out by hand."""

from __future__ import annotations

import pytest
import torch

from manytask.metrics import create_metric, higher_is_better
from manytask.metrics._chunk_f1 import ChunkF1, ChunkTagging, chunk_f1, chunks
from manytask.tasks import SequenceLabelling


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        ([], []),
        (["O", "O"], []),
        (["B-NP", "I-NP", "I-NP"], [(0, 2, "NP")]),
        # B- always starts a new chunk, even after the same type.
        (["B-NP", "B-NP", "I-NP"], [(0, 0, "NP"), (1, 2, "NP")]),
        # I- after O starts a chunk (conlleval is lenient about ill-formed BIO).
        (["O", "I-NP", "I-NP", "O"], [(1, 2, "NP")]),
        # I- of another type starts a new chunk; a sentence-initial I- starts one too.
        (["I-VP", "I-NP", "I-NP", "B-PP"], [(0, 0, "VP"), (1, 2, "NP"), (3, 3, "PP")]),
        # A chunk running to the end of the sentence is closed there.
        (["B-NP", "O", "B-VP", "I-VP"], [(0, 0, "NP"), (2, 3, "VP")]),
    ],
)
def test_chunks(tags: list[str], expected: list[tuple[int, int, str]]) -> None:
    assert chunks(tags) == expected


def test_chunk_f1_on_hand_made_sentences() -> None:
    # Sentence 1 "He reckons the current account deficit":
    #   gold chunks: NP(0,0) VP(1,1) NP(2,5)                       -> 3
    #   predicted:   NP(0,0) VP(1,1) NP(2,3) NP(4,5)               -> 4, correct 2
    # Sentence 2 "will narrow to only #":
    #   gold chunks: VP(0,1) PP(2,2) NP(3,4)                       -> 3
    #   predicted:   VP(0,1) PP(2,2) NP(3,3)   ("#" tagged O)      -> 3, correct 2
    gold = [
        ["B-NP", "B-VP", "B-NP", "I-NP", "I-NP", "I-NP"],
        ["B-VP", "I-VP", "B-PP", "B-NP", "I-NP"],
    ]
    pred = [
        ["B-NP", "B-VP", "B-NP", "I-NP", "B-NP", "I-NP"],
        ["B-VP", "I-VP", "B-PP", "B-NP", "O"],
    ]
    precision, recall, f1 = chunk_f1(gold, pred)
    assert precision == pytest.approx(4 / 7)  # 4 correct of 7 predicted
    assert recall == pytest.approx(4 / 6)  # 4 correct of 6 true
    assert f1 == pytest.approx(2 * (4 / 7) * (4 / 6) / (4 / 7 + 4 / 6))  # = 8/13
    assert f1 == pytest.approx(8 / 13)


def test_type_must_match_and_span_must_be_exact() -> None:
    # Same span, wrong type; and right type, span one token too long.
    assert chunk_f1([["B-NP", "I-NP"]], [["B-VP", "I-VP"]]) == (0.0, 0.0, 0.0)
    assert chunk_f1([["B-NP", "I-NP", "O"]], [["B-NP", "I-NP", "I-NP"]]) == (0.0, 0.0, 0.0)


def test_perfect_and_empty() -> None:
    assert chunk_f1([["B-NP", "O", "B-VP"]], [["B-NP", "O", "B-VP"]]) == (1.0, 1.0, 1.0)
    assert chunk_f1([["O"]], [["O"]]) == (0.0, 0.0, 0.0)
    # Predicting nothing: precision 0 by convention (conlleval prints 0.00), recall 0.
    assert chunk_f1([["B-NP"]], [["O"]]) == (0.0, 0.0, 0.0)


def test_chunks_do_not_cross_sentences() -> None:
    # As two sentences, the predicted "I-NP" starts its own chunk (correct); read as one
    # sentence it would extend the previous NP chunk.
    gold = [["B-NP"], ["B-NP"]]
    pred = [["B-NP"], ["I-NP"]]
    assert chunk_f1(gold, pred) == (1.0, 1.0, 1.0)
    assert chunk_f1([gold[0] + gold[1]], [pred[0] + pred[1]]) == (0.0, 0.0, 0.0)


@pytest.mark.parametrize(
    ("gold", "pred", "match"),
    [
        ([["B-NP"]], [["B-NP"], ["O"]], "2 predicted sentences"),
        ([["B-NP", "O"]], [["B-NP"]], "2 true tags but 1 predicted"),
        ([["B-NP", "X-NP"]], [["B-NP", "O"]], "'X-NP' is not"),
    ],
)
def test_chunk_f1_errors(gold: list[list[str]], pred: list[list[str]], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        chunk_f1(gold, pred)


TAGS = ["O", "B-NP", "I-NP", "B-VP", "I-VP", "B-PP", "I-PP"]


def _ids(tags: list[str]) -> torch.Tensor:
    return torch.tensor([TAGS.index(t) for t in tags])


def test_metric_matches_function_on_flattened_batches() -> None:
    gold = [
        ["B-NP", "B-VP", "B-NP", "I-NP", "I-NP", "I-NP"],
        ["B-VP", "I-VP", "B-PP", "B-NP", "I-NP"],
    ]
    pred = [
        ["B-NP", "B-VP", "B-NP", "I-NP", "B-NP", "I-NP"],
        ["B-VP", "I-VP", "B-PP", "B-NP", "O"],
    ]
    metric = ChunkF1(TAGS)
    # One batch per sentence, with probabilities [N, C] as manytask passes them.
    for g, p in zip(gold, pred):
        probs = torch.nn.functional.one_hot(_ids(p), len(TAGS)).float() * 0.9 + 0.01
        metric.update(probs, _ids(g))
    assert float(metric.compute()) == pytest.approx(8 / 13)
    # Both sentences flattened into one batch (row-major): same counts here, since no
    # sentence starts with I-.
    metric.reset()
    metric.update(_ids(pred[0] + pred[1]), _ids(gold[0] + gold[1]))
    assert float(metric.compute()) == pytest.approx(chunk_f1(gold, pred)[2])


def test_metric_documented_limitation() -> None:
    # A predicted sentence-initial I-NP right after a predicted NP chunk is merged with it when
    # the sentences arrive in one flattened batch; conlleval (per sentence) would not merge.
    gold = [["B-NP"], ["B-NP"]]
    pred = [["B-NP"], ["I-NP"]]
    metric = ChunkF1(TAGS)
    metric.update(_ids(pred[0] + pred[1]), _ids(gold[0] + gold[1]))
    assert float(metric.compute()) == 0.0  # merged: one wrong chunk NP(0,1)
    assert chunk_f1(gold, pred)[2] == 1.0  # exact conlleval
    # Sentences in separate updates are never merged.
    metric.reset()
    for g, p in zip(gold, pred):
        metric.update(_ids(p), _ids(g))
    assert float(metric.compute()) == 1.0


def test_metric_errors() -> None:
    metric = ChunkF1(TAGS)
    with pytest.raises(ValueError, match="one column per tag"):
        metric.update(torch.zeros(3, 2), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="same N tokens"):
        metric.update(torch.zeros(3, dtype=torch.long), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\[0, 6\]"):
        metric.update(torch.tensor([7]), torch.tensor([0]))
    with pytest.raises(ValueError, match="'tags' parameter"):
        ChunkF1([])


def test_registered_metric_needs_chunk_tagging() -> None:
    task = ChunkTagging("chunk", tags=tuple(TAGS), metrics=("chunk_f1", "accuracy"))
    assert task.num_classes == len(TAGS)
    metric = create_metric("chunk_f1", task)
    assert isinstance(metric, ChunkF1) and metric.tags == tuple(TAGS)
    assert higher_is_better("chunk_f1")
    with pytest.raises(ValueError, match="must be a ChunkTagging task"):
        create_metric("chunk_f1", SequenceLabelling("pos", num_classes=5))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, "needs its tag list"),
        ({"tags": ("O", "B-NP"), "num_classes": 3}, "num_classes must equal"),
        ({"tags": ("O", "O", "B-NP")}, "unique"),
        ({"tags": ("O", "NP")}, "'NP' is not"),
    ],
)
def test_chunk_tagging_validation(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ChunkTagging("chunk", **kwargs)  # type: ignore[arg-type]


def test_docstring_examples() -> None:
    import doctest

    import manytask.metrics._chunk_f1 as module

    result = doctest.testmod(module, extraglobs={"torch": torch}, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 4 and result.failed == 0
