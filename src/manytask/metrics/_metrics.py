"""Per-task metrics by name, each with its direction (higher or lower is better).

Metrics are torchmetrics objects (update / compute / reset, DDP-reducible); they receive the
labelled entries of a task's predictions (``Task.predictions``) and targets.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import torch
import torchmetrics
import torchmetrics.classification as tmc
import torchmetrics.regression as tmr
from torch import Tensor

from .._registry import Registry
from ..tasks import BinaryClassification, Classification, Regression, Task

__all__ = ["MetricInfo", "METRICS", "create_metric", "higher_is_better", "list_metrics"]


@dataclass(frozen=True)
class MetricInfo:
    """How to build a metric for a task, and whether higher values are better."""

    name: str
    higher_is_better: bool
    build: Callable[[Task], torchmetrics.Metric]
    #: For token-level tasks: receives whole sentences (``[B, L, ...]``, target ``-1`` where
    #: unlabelled) instead of the flattened labelled tokens, so that it can read each sentence
    #: on its own (see :func:`manytask.evaluation.evaluate` for the whole input contract).
    sequences: bool = False


METRICS: Registry[MetricInfo] = Registry("metric")


def _register(name: str, higher: bool, summary: str,
              sequences: bool = False) -> Callable[[Callable[[Task], torchmetrics.Metric]], None]:
    def decorator(build: Callable[[Task], torchmetrics.Metric]) -> None:
        info = MetricInfo(name, higher, build, sequences)
        METRICS.register(name, summary)(lambda: info)

    return decorator


def _unsupported(name: str, task: Task) -> ValueError:
    return ValueError(f"Metric {name!r} does not apply to task {task.name!r} of kind {task.kind!r}.")


@_register("accuracy", True, "Fraction of correct predictions (per label for binary tasks).")
def _accuracy(task: Task) -> torchmetrics.Metric:
    if isinstance(task, Classification):
        return tmc.MulticlassAccuracy(num_classes=task.num_classes, average="micro")
    if isinstance(task, BinaryClassification):
        if task.num_labels == 1:
            return tmc.BinaryAccuracy()
        return tmc.MultilabelAccuracy(num_labels=task.num_labels, average="micro")
    raise _unsupported("accuracy", task)


@_register("macro_f1", True, "F1 averaged over classes (labels) with equal weight; one binary label: its F1.")
def _macro_f1(task: Task) -> torchmetrics.Metric:
    if isinstance(task, Classification):
        return tmc.MulticlassF1Score(num_classes=task.num_classes, average="macro")
    if isinstance(task, BinaryClassification):
        if task.num_labels == 1:
            return tmc.BinaryF1Score()
        return tmc.MultilabelF1Score(num_labels=task.num_labels, average="macro")
    raise _unsupported("macro_f1", task)


@_register("auroc", True, "Area under the ROC curve (macro over labels).")
def _auroc(task: Task) -> torchmetrics.Metric:
    if isinstance(task, BinaryClassification):
        if task.num_labels == 1:
            return tmc.BinaryAUROC()
        return tmc.MultilabelAUROC(num_labels=task.num_labels, average="macro")
    if isinstance(task, Classification):
        return _PresentClassesAUROC(num_classes=task.num_classes)
    raise _unsupported("auroc", task)


class _PresentClassesAUROC(tmc.MulticlassAUROC):
    """Macro one-vs-rest AUROC over the classes the targets hold (a class never seen has no
    positives: its AUROC is undefined, and torchmetrics' macro average would count it as 0);
    NaN with fewer than two classes."""

    seen: Tensor

    def __init__(self, num_classes: int) -> None:
        super().__init__(num_classes=num_classes, average="none")
        self.add_state("seen", torch.zeros(num_classes), dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor) -> None:
        super().update(preds, target)
        self.seen += torch.bincount(target.flatten(), minlength=self.num_classes)[:self.num_classes].to(self.seen)

    def compute(self) -> Tensor:  # type: ignore[override]
        present = self.seen > 0
        if int(present.sum()) < 2:
            return torch.tensor(float("nan"))
        return cast(Tensor, super().compute())[present].mean()


def _regression_only(name: str, task: Task) -> None:
    if not isinstance(task, Regression):
        raise _unsupported(name, task)


@_register("rmse", False, "Root mean squared error over all labelled outputs.")
def _rmse(task: Task) -> torchmetrics.Metric:
    _regression_only("rmse", task)
    return tmr.MeanSquaredError(squared=False)


@_register("mse", False, "Mean squared error over all labelled outputs.")
def _mse(task: Task) -> torchmetrics.Metric:
    _regression_only("mse", task)
    return tmr.MeanSquaredError()


@_register("mae", False, "Mean absolute error over all labelled outputs.")
def _mae(task: Task) -> torchmetrics.Metric:
    _regression_only("mae", task)
    return tmr.MeanAbsoluteError()


def create_metric(name: str, task: Task) -> torchmetrics.Metric:
    """A fresh metric ``name`` for ``task``; an unknown name lists the close matches."""
    return METRICS.create(name).build(task)


def higher_is_better(name: str) -> bool:
    """Whether larger values of metric ``name`` are better."""
    return METRICS.create(name).higher_is_better


def list_metrics(pattern: str = "*") -> list[str]:
    """Registered metric names matching ``pattern``."""
    return METRICS.names(pattern)
