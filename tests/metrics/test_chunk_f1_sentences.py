"""Chunk F1 reads sentences, so it equals conlleval exactly (the flattened form could raise it)."""

from __future__ import annotations

import random

import pytest
import torch
from torch import nn

from manytask.data import TensorSource
from manytask.evaluation import evaluate
from manytask.metrics import ChunkF1, ChunkTagging
from manytask.models import HardSharing

TAGS = ("O", "B-NP", "I-NP", "B-VP", "I-VP")


def spans(tags: list[str]) -> set[tuple[int, int, str]]:
    """conlleval's BIO chunks, written independently: a chunk starts at B-X, or at I-X after O or
    after another type; it continues over I-X of the same type."""
    found, start, kind = set(), None, None
    for i, tag in enumerate([*tags, "O"]):
        prefix, _, typ = tag.partition("-")
        continues = prefix == "I" and start is not None and typ == kind
        if start is not None and not continues:
            found.add((start, i - 1, kind))
            start = None
        if prefix in ("B", "I") and not continues:
            start, kind = i, typ
    return found


def reference_f1(gold: list[list[str]], pred: list[list[str]]) -> float:
    """conlleval by hand: chunks per sentence, correct = same span and type."""
    correct = predicted = true = 0
    for g, p in zip(gold, pred):
        gs, ps = spans(g), spans(p)
        correct, predicted, true = correct + len(gs & ps), predicted + len(ps), true + len(gs)
    precision, recall = correct / predicted, correct / true
    return 2 * precision * recall / (precision + recall)


def as_ids(sentences: list[list[str]], length: int) -> torch.Tensor:
    out = torch.full((len(sentences), length), -1)
    for i, s in enumerate(sentences):
        out[i, : len(s)] = torch.tensor([TAGS.index(t) for t in s])
    return out


def test_the_reported_example_is_two_thirds() -> None:
    """The defect: gold [[B-NP, O], [O, B-NP]] vs [[B-NP, B-VP], [I-VP, B-NP]] gave 0.800."""
    gold = [["B-NP", "O"], ["O", "B-NP"]]
    pred = [["B-NP", "B-VP"], ["I-VP", "B-NP"]]
    metric = ChunkF1(TAGS)
    metric.update(as_ids(pred, 2), as_ids(gold, 2))
    assert float(metric.compute()) == pytest.approx(2 / 3)  # 2 correct of 3 predicted, 2 true


def test_random_padded_batches_match_the_per_sentence_reference() -> None:
    rng = random.Random(0)
    gold, pred = [], []
    for _ in range(40):
        n = rng.randint(1, 9)
        gold.append([rng.choice(TAGS) for _ in range(n)])
        pred.append([rng.choice(TAGS) for _ in range(n)])
    metric = ChunkF1(TAGS)
    for start in range(0, 40, 7):  # batches of padded sentences
        metric.update(as_ids(pred[start:start + 7], 9), as_ids(gold[start:start + 7], 9))
    assert float(metric.compute()) == pytest.approx(reference_f1(gold, pred))


def test_evaluate_passes_sentences_to_chunk_f1() -> None:
    class Fixed(nn.Module):  # outputs one-hot logits of fixed predicted tags, whatever the input
        out_features = len(TAGS)
        layout = "sequence"

        def __init__(self, predicted: torch.Tensor) -> None:
            super().__init__()
            self.predicted = predicted
            self.dummy = nn.Parameter(torch.zeros(()))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return nn.functional.one_hot(self.predicted[x[:, 0]], len(TAGS)).float() * 10 + self.dummy

    gold = [["B-NP", "O"], ["O", "B-NP"]]
    pred = [["B-NP", "B-VP"], ["I-VP", "B-NP"]]
    task = ChunkTagging("chunk", tags=TAGS, metrics=("chunk_f1",))
    model = HardSharing(Fixed(as_ids(pred, 2)), [task])
    model.heads["chunk"] = nn.Identity()
    ids = torch.arange(2)[:, None].expand(2, 2)
    source = TensorSource(ids, {"chunk": as_ids(gold, 2).clamp(min=0)}, masks={"chunk": torch.ones(2, 2, dtype=torch.bool)})
    assert evaluate(model, [task], source)["chunk/chunk_f1"] == pytest.approx(2 / 3)
