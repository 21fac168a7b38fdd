"""Evaluate a multi-task model on a source: per-task loss and metrics over labelled entries."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ..data import Source
from ..metrics import create_metric
from ..models import MultiTaskModel
from ..tasks import Task

__all__ = ["evaluate"]


@torch.no_grad()
def evaluate(
    model: MultiTaskModel,
    tasks: Sequence[Task],
    source: Source,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
) -> dict[str, float]:
    """Metrics of ``model`` on ``source`` as ``{"<task>/<metric>": value, "<task>/loss": value}``.

    Every metric and loss is computed over the labelled entries only; a task with no label in
    ``source`` gets NaN. The model's training mode is restored afterwards.
    """
    was_training = model.training
    model.eval()
    metrics = {t.name: {m: create_metric(m, t).to(device) for m in t.metrics} for t in tasks}
    loss_sum = {t.name: 0.0 for t in tasks}
    count = {t.name: 0 for t in tasks}
    names = [t.name for t in tasks if t.name in source.tasks]
    try:
        for start in range(0, len(source), batch_size):
            batch = source.batch(torch.arange(start, min(start + batch_size, len(source)))).to(device)
            present = [t for t in names if bool(batch.masks[t].any())]
            if not present:
                continue
            outputs = model(batch.inputs, present)
            for task in tasks:
                if task.name not in present:
                    continue
                target, mask = batch.targets[task.name], batch.masks[task.name]
                output, labelled = task.select(outputs[task.name], target, mask)
                n = int(mask.sum())
                loss_sum[task.name] += float(task._loss(output, labelled)) * n
                count[task.name] += n
                preds = task.predictions(output)
                for metric in metrics[task.name].values():
                    metric.update(preds, labelled)
    finally:
        model.train(was_training)
    results: dict[str, float] = {}
    for task in tasks:
        seen = count[task.name] > 0
        for name, metric in metrics[task.name].items():
            results[f"{task.name}/{name}"] = float(metric.compute()) if seen else math.nan
        results[f"{task.name}/loss"] = loss_sum[task.name] / count[task.name] if seen else math.nan
    return results
