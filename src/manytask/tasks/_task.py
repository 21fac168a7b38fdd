"""Tasks: what one head predicts, how it is scored, and which role it plays."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "Task",
    "Classification",
    "BinaryClassification",
    "Regression",
    "SequenceLabelling",
    "TargetError",
]

Role = Literal["main", "auxiliary"]
UncertaintyForm = Literal["regression", "classification"]


class TargetError(ValueError):
    """A batch's target or mask does not fit its task (shape, dtype or value range)."""


@dataclass(frozen=True)
class Task(ABC):
    """One task: a name, a head, a loss, metrics and a role.

    Args:
        name: Key of the task in every per-task dict (targets, masks, outputs, losses).
        role: ``"main"`` tasks are the ones we care about (they get single-task baselines and
            count in Δm); ``"auxiliary"`` tasks are trained only to help the main ones.
        metrics: Metric names (see ``manytask.metrics``); the first is the task's primary metric.
        head_hidden: Width of a hidden layer in the head; 0 gives a linear head.
    """

    name: str
    role: Role = "main"
    metrics: tuple[str, ...] = ()
    head_hidden: int = 0

    kind: ClassVar[str]
    uncertainty_form: ClassVar[UncertaintyForm]

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name:
            raise ValueError(f"Task name must be non-empty and contain no '/'. Got {self.name!r}.")
        if self.role not in ("main", "auxiliary"):
            raise ValueError(
                f"Task {self.name!r}: role must be 'main' or 'auxiliary'. Got {self.role!r}."
            )
        if not self.metrics:
            object.__setattr__(self, "metrics", self.default_metrics)

    @property
    @abstractmethod
    def out_features(self) -> int:
        """Size of the head's last dimension."""

    @property
    @abstractmethod
    def default_metrics(self) -> tuple[str, ...]:
        """Metrics used when none are given."""

    def make_head(self, in_features: int) -> nn.Module:
        """A fresh head mapping ``[..., in_features]`` to ``[..., out_features]``."""
        if self.head_hidden:
            return nn.Sequential(
                nn.Linear(in_features, self.head_hidden),
                nn.ReLU(),
                nn.Linear(self.head_hidden, self.out_features),
            )
        return nn.Linear(in_features, self.out_features)

    def select(self, output: Tensor, target: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """The labelled entries of ``output`` and ``target`` (``mask`` is a prefix of their dims)."""
        output = self._align(output, target)
        return output[mask], target[mask]

    def loss(self, output: Tensor, target: Tensor, mask: Tensor | None) -> Tensor:
        """Mean loss over the labelled entries only (the caller ensures there is at least one).

        ``mask=None`` means every entry is labelled.
        """
        if mask is None:
            return self._loss(self._align(output, target), target)
        return self._loss(*self.select(output, target, mask))

    @abstractmethod
    def _loss(self, output: Tensor, target: Tensor) -> Tensor: ...

    def predictions(self, output: Tensor) -> Tensor:
        """What metrics receive: probabilities for classification, values for regression."""
        return output

    def _align(self, output: Tensor, target: Tensor) -> Tensor:
        return output

    def check(self, target: Tensor, mask: Tensor) -> None:
        """Raise :class:`TargetError` naming this task if ``target``/``mask`` do not fit it."""
        if mask.dtype != torch.bool:
            raise TargetError(
                f"Task {self.name!r}: mask must be a bool tensor, got dtype {mask.dtype}. "
                "Use True where the sample has a label for this task."
            )
        if tuple(mask.shape) != tuple(target.shape[: mask.ndim]):
            raise TargetError(
                f"Task {self.name!r}: mask of shape {tuple(mask.shape)} does not match target of "
                f"shape {tuple(target.shape)}; the mask must have one entry per sample "
                f"(shape {tuple(target.shape[:1])}) or per labelled element."
            )
        self._check_target(target, mask)

    @abstractmethod
    def _check_target(self, target: Tensor, mask: Tensor) -> None: ...

    def _fail(self, problem: str, fix: str) -> TargetError:
        return TargetError(f"Task {self.name!r} ({self.kind}): {problem}. {fix}")


def _check_int_range(task: Task, target: Tensor, mask: Tensor, high: int, what: str) -> None:
    if target.dtype not in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
        raise task._fail(
            f"targets must be integer class indices, got dtype {target.dtype}",
            "Convert them with `.long()`.",
        )
    labelled = target[mask]
    if labelled.numel() and (int(labelled.min()) < 0 or int(labelled.max()) >= high):
        raise task._fail(
            f"labelled targets must lie in [0, {high - 1}] ({what}), got values in "
            f"[{int(labelled.min())}, {int(labelled.max())}]",
            "Check the label encoding, or mark missing labels with mask=False.",
        )


@dataclass(frozen=True)
class Classification(Task):
    """Multi-class classification: output ``[B, C]`` logits, target ``[B]`` class indices."""

    num_classes: int = field(default=2, kw_only=True)
    kind: ClassVar[str] = "classification"
    uncertainty_form: ClassVar[UncertaintyForm] = "classification"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_classes < 2:
            raise ValueError(f"Task {self.name!r}: num_classes must be >= 2, got {self.num_classes}.")

    @property
    def out_features(self) -> int:
        return self.num_classes

    @property
    def default_metrics(self) -> tuple[str, ...]:
        return ("accuracy",)

    def _loss(self, output: Tensor, target: Tensor) -> Tensor:
        return F.cross_entropy(output, target.long())

    def predictions(self, output: Tensor) -> Tensor:
        return output.softmax(dim=-1)

    def _check_target(self, target: Tensor, mask: Tensor) -> None:
        if target.ndim != 1:
            raise self._fail(
                f"targets must have shape [batch], got {tuple(target.shape)}",
                "Pass one class index per sample (not one-hot vectors).",
            )
        _check_int_range(self, target, mask, self.num_classes, f"num_classes={self.num_classes}")


@dataclass(frozen=True)
class SequenceLabelling(Classification):
    """Per-token classification: output ``[B, L, C]``, target ``[B, L]``, mask ``[B, L]``."""

    kind: ClassVar[str] = "sequence_labelling"

    def _check_target(self, target: Tensor, mask: Tensor) -> None:
        if target.ndim != 2 or mask.ndim != 2:
            raise self._fail(
                f"targets and masks must have shape [batch, length], got target "
                f"{tuple(target.shape)} and mask {tuple(mask.shape)}",
                "Pad sequences to a common length and set mask=False on padding.",
            )
        _check_int_range(self, target, mask, self.num_classes, f"num_classes={self.num_classes}")


@dataclass(frozen=True)
class BinaryClassification(Task):
    """Binary or multi-label classification: output ``[B, K]`` logits, target ``[B, K]`` in {0, 1}.

    With ``num_labels=1`` the target may also be ``[B]``.
    """

    num_labels: int = field(default=1, kw_only=True)
    kind: ClassVar[str] = "binary"
    uncertainty_form: ClassVar[UncertaintyForm] = "classification"

    @property
    def out_features(self) -> int:
        return self.num_labels

    @property
    def default_metrics(self) -> tuple[str, ...]:
        return ("auroc", "accuracy")

    def _align(self, output: Tensor, target: Tensor) -> Tensor:
        return output.squeeze(-1) if target.ndim == output.ndim - 1 else output

    def _loss(self, output: Tensor, target: Tensor) -> Tensor:
        return F.binary_cross_entropy_with_logits(output, target.to(output.dtype))

    def predictions(self, output: Tensor) -> Tensor:
        return output.sigmoid()

    def _check_target(self, target: Tensor, mask: Tensor) -> None:
        if not (
            (target.ndim == 1 and self.num_labels == 1)
            or (target.ndim == 2 and target.shape[1] == self.num_labels)
        ):
            raise self._fail(
                f"targets must have shape [batch, {self.num_labels}]"
                + (" or [batch]" if self.num_labels == 1 else "")
                + f", got {tuple(target.shape)}",
                "Pass one 0/1 value per label and set num_labels to the number of labels.",
            )
        labelled = target[mask]
        if labelled.numel() and not bool(((labelled == 0) | (labelled == 1)).all()):
            raise self._fail("labelled targets must be 0 or 1",
                             "Binarise the labels, or mark missing ones with mask=False.")


@dataclass(frozen=True)
class Regression(Task):
    """Regression with one or more outputs: output ``[B, K]``, target ``[B, K]`` (or ``[B]``)."""

    num_outputs: int = field(default=1, kw_only=True)
    kind: ClassVar[str] = "regression"
    uncertainty_form: ClassVar[UncertaintyForm] = "regression"

    @property
    def out_features(self) -> int:
        return self.num_outputs

    @property
    def default_metrics(self) -> tuple[str, ...]:
        return ("rmse", "mae")

    def _align(self, output: Tensor, target: Tensor) -> Tensor:
        return output.squeeze(-1) if target.ndim == output.ndim - 1 else output

    def _loss(self, output: Tensor, target: Tensor) -> Tensor:
        return F.mse_loss(output, target.to(output.dtype))

    def _check_target(self, target: Tensor, mask: Tensor) -> None:
        if not target.is_floating_point():
            raise self._fail(f"targets must be floating point, got dtype {target.dtype}",
                             "Convert them with `.float()`.")
        if not (
            (target.ndim == 1 and self.num_outputs == 1)
            or (target.ndim == 2 and target.shape[1] == self.num_outputs)
        ):
            raise self._fail(
                f"targets must have shape [batch, {self.num_outputs}]"
                + (" or [batch]" if self.num_outputs == 1 else "")
                + f", got {tuple(target.shape)}",
                "Set num_outputs to the number of target columns.",
            )
        labelled = target[mask]
        if labelled.numel() and not bool(torch.isfinite(labelled).all()):
            raise self._fail("labelled targets contain NaN or inf",
                             "Mark missing values with mask=False.")
