"""Chunk-level precision, recall and F1 as conlleval defines them (CoNLL-2000 chunking).

A *chunk* is a maximal span of tokens with one type, read from per-token tags in the BIO
scheme of CoNLL-2000 (``B-NP``, ``I-NP``, ``O``). A predicted chunk is correct only when a
true chunk has exactly the same first token, last token and type. Precision = correct /
predicted chunks, recall = correct / true chunks, F1 = 2PR / (P + R); each is 0 when its
denominator is 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torchmetrics
from torch import Tensor

from ..tasks import SequenceLabelling, Task
from ._metrics import _register

__all__ = ["ChunkF1", "ChunkTagging", "chunk_f1", "chunks"]


@dataclass(frozen=True)
class ChunkTagging(SequenceLabelling):
    """A per-token tagging task whose classes are chunk tags (``B-X``, ``I-X``, ``O``).

    It is a :class:`~manytask.tasks.SequenceLabelling` task that also knows the tag of each
    class index, which the ``chunk_f1`` metric needs to read chunks from predicted classes.

    Args:
        tags: The tag of each class index; ``num_classes`` defaults to ``len(tags)``.

    Examples:
        >>> task = ChunkTagging("chunk", tags=("O", "B-NP", "I-NP"), metrics=("chunk_f1",))
        >>> task.num_classes
        3
    """

    tags: tuple[str, ...] = field(default=(), kw_only=True)
    num_classes: int = field(default=0, kw_only=True)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tags", tuple(self.tags))
        if not self.tags:
            raise ValueError(f"Task {self.name!r}: ChunkTagging needs its tag list ('tags').")
        if self.num_classes == 0:
            object.__setattr__(self, "num_classes", len(self.tags))
        if self.num_classes != len(self.tags):
            raise ValueError(
                f"Task {self.name!r}: num_classes must equal the number of tags "
                f"({len(self.tags)}). "
                f"Got {self.num_classes}."
            )
        if len(set(self.tags)) != len(self.tags):
            raise ValueError(f"Task {self.name!r}: tags must be unique. Got {list(self.tags)}.")
        for tag in self.tags:
            _split(tag)
        super().__post_init__()


def _split(tag: str) -> tuple[str, str]:
    """``"B-NP"`` -> ``("B", "NP")``; ``"O"`` -> ``("O", "")``, as conlleval splits tags."""
    if tag == "O":
        return "O", ""
    prefix, sep, kind = tag.partition("-")
    if prefix not in ("B", "I") or (sep and not kind):
        raise ValueError(f"Chunk tag {tag!r} is not 'O' or of the form 'B-TYPE' or 'I-TYPE'.")
    return prefix, kind


def _ends(prev: str, prev_type: str, tag: str, kind: str) -> bool:
    """Conlleval's endOfChunk (BIO tags): whether a chunk ended at the previous token."""
    if prev in ("B", "I") and tag in ("B", "O"):
        return True
    return prev != "O" and prev_type != kind


def _starts(prev: str, prev_type: str, tag: str, kind: str) -> bool:
    """Conlleval's startOfChunk (BIO tags): whether a chunk starts at the current token."""
    if tag == "B" or (tag == "I" and prev == "O"):
        return True
    return tag != "O" and prev_type != kind


def chunks(tags: Sequence[str]) -> list[tuple[int, int, str]]:
    """The chunks of one tag sequence as ``(first, last, type)``, token indices inclusive.

    Follows conlleval: ``B-X`` always starts a chunk; ``I-X`` continues a chunk of type ``X``
    and starts a new one after ``O`` or after a chunk of another type; ``O`` is outside.

    Examples:
        >>> chunks(["B-NP", "I-NP", "O", "I-VP", "B-PP"])
        [(0, 1, 'NP'), (3, 3, 'VP'), (4, 4, 'PP')]
    """
    found: list[tuple[int, int, str]] = []
    prev, prev_type, start = "O", "", -1
    for i, tag in enumerate(tags):
        cur, kind = _split(tag)
        if start >= 0 and _ends(prev, prev_type, cur, kind):
            found.append((start, i - 1, prev_type))
            start = -1
        if _starts(prev, prev_type, cur, kind):
            start = i
        prev, prev_type = cur, kind
    if start >= 0:
        found.append((start, len(tags) - 1, prev_type))
    return found


def _counts(true_tags: Sequence[str], pred_tags: Sequence[str]) -> tuple[int, int, int]:
    if len(true_tags) != len(pred_tags):
        raise ValueError(
            f"A sentence has {len(true_tags)} true tags but {len(pred_tags)} predicted tags; "
            "give one predicted tag per token."
        )
    true_chunks, pred_chunks = set(chunks(true_tags)), set(chunks(pred_tags))
    return len(true_chunks & pred_chunks), len(pred_chunks), len(true_chunks)


def _compute(correct: float, predicted: float, true: float) -> tuple[float, float, float]:
    precision = correct / predicted if predicted else 0.0
    recall = correct / true if true else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def chunk_f1(
    true_tags: Sequence[Sequence[str]], pred_tags: Sequence[Sequence[str]]
) -> tuple[float, float, float]:
    """Chunk-level ``(precision, recall, f1)`` over sentences, as fractions in [0, 1].

    conlleval reports the same numbers in percent. Chunks never cross sentences.

    Args:
        true_tags: One list of gold tags per sentence.
        pred_tags: One list of predicted tags per sentence, aligned with ``true_tags``.

    Examples:
        >>> chunk_f1([["B-NP", "I-NP", "B-VP"]], [["B-NP", "I-NP", "B-NP"]])
        (0.5, 0.5, 0.5)
    """
    if len(true_tags) != len(pred_tags):
        raise ValueError(
            f"Got {len(true_tags)} true sentences but {len(pred_tags)} predicted sentences."
        )
    correct = predicted = true = 0
    for gold, pred in zip(true_tags, pred_tags):
        c, p, t = _counts(gold, pred)
        correct, predicted, true = correct + c, predicted + p, true + t
    return _compute(correct, predicted, true)


class ChunkF1(torchmetrics.Metric):
    """Chunk-level F1 (conlleval) accumulated over batches of labelled tokens.

    ``update(preds, target)`` takes one batch of **sentences**: ``preds [B, L, C]`` class
    probabilities (or ``[B, L]`` class indices) and ``target [B, L]`` class indices, with
    ``-1`` on unlabelled positions (padding), which are skipped. Each row is one sentence, so
    chunks never cross sentences and the count is conlleval's exactly. (The evaluation loop
    passes token-level tasks' outputs this way.) A flat ``preds [N, C]`` / ``target [N]`` is
    read as one sentence.

    Args:
        tags: The tag of each class index (``"O"``, ``"B-NP"``, ``"I-NP"``, ...).

    Examples:
        >>> metric = ChunkF1(["O", "B-NP", "I-NP"])
        >>> metric.update(torch.tensor([1, 2, 0]), torch.tensor([1, 2, 0]))
        >>> float(metric.compute())
        1.0
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    correct: Tensor
    predicted: Tensor
    true: Tensor

    def __init__(self, tags: Sequence[str], **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        tags = tuple(tags)
        if not tags:
            raise ValueError("The 'tags' parameter of ChunkF1 must list the tag of each class.")
        for tag in tags:
            _split(tag)
        self.tags = tags
        for name in ("correct", "predicted", "true"):
            self.add_state(name, default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Count the chunks of a batch of sentences (rows; ``-1`` targets are skipped).

        Args:
            preds: ``[B, L, C]`` class probabilities or ``[B, L]`` indices (``[N, C]``/``[N]``: one sentence).
            target: ``[B, L]`` class indices, ``-1`` where unlabelled (``[N]``: one sentence).
        """
        if target.ndim == 2:
            if preds.ndim == 3:
                preds = preds.argmax(dim=-1)
            if preds.shape != target.shape:
                raise ValueError(f"ChunkF1: expected preds [B, L, C] (or [B, L]) and target [B, L]. "
                                 f"Got preds {tuple(preds.shape)} and target {tuple(target.shape)}.")
            for row_pred, row_true in zip(preds, target):
                labelled = row_true >= 0
                self.update(row_pred[labelled], row_true[labelled])
            return
        if preds.ndim == 2:
            if preds.shape[1] != len(self.tags):
                raise ValueError(
                    f"ChunkF1: preds must have one column per tag ({len(self.tags)}). "
                    f"Got shape {tuple(preds.shape)}."
                )
            preds = preds.argmax(dim=1)
        if preds.ndim != 1 or target.ndim != 1 or preds.shape[0] != target.shape[0]:
            raise ValueError(
                "ChunkF1: expected preds [N, C] (or [N]) and target [N] for the same N tokens. "
                f"Got preds {tuple(preds.shape)} and target {tuple(target.shape)}."
            )
        high = len(self.tags)
        for what, values in (("preds", preds), ("target", target)):
            if values.numel() and (int(values.min()) < 0 or int(values.max()) >= high):
                raise ValueError(f"ChunkF1: {what} class indices must lie in [0, {high - 1}].")
        true_tags = [self.tags[i] for i in target.tolist()]
        pred_tags = [self.tags[i] for i in preds.tolist()]
        c, p, t = _counts(true_tags, pred_tags)
        self.correct += c
        self.predicted += p
        self.true += t

    def compute(self) -> Tensor:
        """Chunk-level F1 in [0, 1] (0 when there is no chunk)."""
        _, _, f1 = _compute(float(self.correct), float(self.predicted), float(self.true))
        return torch.tensor(f1)


@_register("chunk_f1", True, "Chunk-level F1 of BIO tags (conlleval: exact span and type).", sequences=True)
def _chunk_f1(task: Task) -> torchmetrics.Metric:
    if not isinstance(task, ChunkTagging):  # ValueError, as for every metric/task mismatch
        raise ValueError(  # noqa: TRY004
            f"Metric 'chunk_f1' needs the tag of each class: task {task.name!r} must be a "
            "ChunkTagging task (manytask.metrics.ChunkTagging(name, tags=...)), "
            f"got {type(task).__name__}."
        )
    return ChunkF1(task.tags)
