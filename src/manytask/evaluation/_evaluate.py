"""Evaluate a multi-task model on a source: per-task loss and metrics over labelled entries."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from ..data import Source
from ..metrics import METRICS, create_metric
from ..models import MultiTaskModel
from ..tasks import BinaryClassification, Task
from ..views import View, create_view

__all__ = ["evaluate", "undefined_metrics"]


@torch.no_grad()
def evaluate(
    model: MultiTaskModel,
    tasks: Sequence[Task],
    source: Source,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
    views: Mapping[str, View] | None = None,
    seed: int = 0,
) -> dict[str, float]:
    """Metrics of ``model`` on ``source`` as ``{"<task>/<metric>": value, "<task>/loss": value}``.

    Every metric and loss is computed over the labelled entries only. A task that names a view
    is scored on the view of each batch (its generator seeded by ``seed``, so every evaluation
    sees the same masks). A metric that is undefined — a task with no label in ``source``, or
    AUROC where the labelled targets hold one class only — is NaN (never a number like 0), and
    :func:`undefined_metrics` names them. Token-level metrics that read whole sentences (chunk
    F1) get them, with ``-1`` on unlabelled tokens. The model's training mode is restored.
    """
    was_training = model.training
    model.eval()
    views = _views(tasks, views)
    generator = torch.Generator().manual_seed(seed)
    metrics = {t.name: {m: create_metric(m, t).to(device) for m in t.metrics} for t in tasks}
    sequences = {m for t in tasks for m in t.metrics if METRICS.create(m).sequences and t.level == "token"}
    loss_sum = {t.name: 0.0 for t in tasks}
    count = {t.name: 0 for t in tasks}
    classes: dict[str, Tensor] = {}  # binary tasks: labelled positives and negatives per label
    plain = [t.name for t in tasks if t.view is None and t.name in source.tasks]
    by_name = {t.name: t for t in tasks}
    try:
        for start in range(0, len(source), batch_size):
            batch = source.batch(torch.arange(start, min(start + batch_size, len(source)))).to(device)
            groups = []
            present = [t for t in plain if bool(batch.masks[t].any())]
            if present:
                groups.append((batch.inputs, present, batch.targets, batch.masks))
            for name, view in views.items():
                viewed = view(batch.inputs, generator=generator)
                names = [t.name for t in tasks if t.view == name]
                groups.append((viewed.inputs, names, {t: viewed.target for t in names},
                               {t: viewed.mask for t in names}))
            for inputs, names, targets, masks in groups:
                outputs = model(inputs, names)
                for name in names:
                    task, target, mask = by_name[name], targets[name], masks[name]
                    output, labelled = task.select(outputs[name], target, mask)
                    n = int(mask.sum())
                    loss_sum[name] += float(task._loss(output, labelled)) * n
                    count[name] += n
                    preds = task.predictions(output)
                    for metric_name, metric in metrics[name].items():
                        if metric_name in sequences:
                            metric.update(task.predictions(outputs[name]), target.masked_fill(~mask, -1))
                        else:
                            metric.update(preds, labelled)
                    if isinstance(task, BinaryClassification):
                        counts = _class_counts(labelled.reshape(len(labelled), -1))
                        classes[name] = classes[name] + counts if name in classes else counts
    finally:
        model.train(was_training)
    results: dict[str, float] = {}
    for task in tasks:
        seen = count[task.name] > 0
        for name, metric in metrics[task.name].items():
            defined = seen and not (name == "auroc" and task.name in classes and bool((classes[task.name] == 0).any()))
            results[f"{task.name}/{name}"] = float(metric.compute()) if defined else math.nan
        results[f"{task.name}/loss"] = loss_sum[task.name] / count[task.name] if seen else math.nan
    return results


def undefined_metrics(results: Mapping[str, float]) -> list[str]:
    """The ``"<task>/<metric>"`` keys of :func:`evaluate`'s results that are undefined (NaN)."""
    return [key for key, value in results.items() if math.isnan(value)]


def _class_counts(labels: Tensor) -> Tensor:
    """``[2, K]``: labelled positives and negatives of each of ``K`` labels."""
    positives = labels.to(torch.long).sum(0)
    return torch.stack([positives, labels.shape[0] - positives]).cpu()


def _views(tasks: Sequence[Task], views: Mapping[str, View] | None) -> dict[str, View]:
    named = sorted({t.view for t in tasks if t.view is not None})
    given = dict(views or {})
    return {name: given[name] if name in given else create_view(name) for name in named}
