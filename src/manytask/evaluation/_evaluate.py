"""Evaluate a multi-task model on a source: per-task loss and metrics over labelled entries."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import cast

import torch
from torch import Tensor
from torchmetrics import Metric, MetricCollection
from torchmetrics.wrappers import MultitaskWrapper
from torchmetrics.wrappers.abstract import WrapperMetric

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
    shard: tuple[int, int] | None = None,
) -> dict[str, float]:
    """Metrics of ``model`` on ``source`` as ``{"<task>/<metric>": value, "<task>/loss": value}``.

    Every metric and loss is computed over the labelled entries only. A task that names a view
    is scored on the view of each batch (batch ``k``'s generator seeded with
    ``seed * 1000003 + k``, so every evaluation sees the same masks, whoever computes the batch).
    A metric that is undefined — a task with no label in ``source``, AUROC where the labelled
    targets hold one class only, or any metric of a task whose predictions are not all finite (a
    diverged model: torchmetrics would turn NaN scores into class 0 and an arbitrary AUROC) — is
    NaN (never a number like 0), and :func:`undefined_metrics` names them. The model's training mode is restored.

    ``shard=(rank, world)`` (data-parallel evaluation, ``torch.distributed`` initialised): this
    process computes batches ``rank, rank + world, ...``; every process then receives every
    batch's labelled predictions (``all_gather_object``) and updates the metrics in batch order,
    so each returns the numbers one process would, bit for bit — a task a rank's share never
    labels needs no special case, which a synchronisation of metric states would. In one
    process each batch goes into the metrics as soon as it is computed: nothing is kept.

    The metrics are held by one :class:`torchmetrics.wrappers.MultitaskWrapper` (a
    ``MetricCollection`` per task). What a task's metrics receive (the metric input contract):

    - the labelled entries: ``Task.predictions`` of the selected outputs (``[N, ...]``) and the
      labelled targets (``[N, ...]``); or
    - for a token-level task with a metric that reads whole sentences (``MetricInfo.sequences``,
      e.g. chunk F1): one row per sentence, predictions ``[B, L, C]`` and targets ``[B, L]`` with
      ``-1`` on unlabelled tokens, so that chunks never cross sentences. The task's other
      metrics then receive that task's labelled tokens, as above.
    """
    was_training = model.training
    model.eval()
    views = _views(tasks, views)
    by_name = {t.name: t for t in tasks}
    plain = [t.name for t in tasks if t.view is None and t.name in source.tasks]
    scored = [t for t in tasks if t.view is not None or t.name in source.tasks]  # the others have no label
    # One update per task and batch goes to the task's collection: MultitaskWrapper.update needs
    # every task in every call, and a batch may label only some tasks (torchmetrics' accuracy and
    # F1 refuse an empty update).
    metrics = MultitaskWrapper({t.name: _task_metrics(t) for t in scored}).to(device)
    for metric in metrics.modules():  # whoever computed a batch, every process updates with all of them
        if isinstance(metric, Metric):
            metric.sync_on_compute = metric._to_sync = False
    sentences = {t.name for t in scored if _reads_sentences(t)}
    starts = list(range(0, len(source), batch_size))
    rank, world = shard if shard is not None else (0, 1)
    records: list[_Record] = []
    loss_sum = {t.name: 0.0 for t in tasks}
    count = {t.name: 0 for t in tasks}  # labelled entries
    elements = {t.name: 0 for t in tasks}  # loss elements (an entry with K regression outputs has K)
    classes: dict[str, Tensor] = {}  # binary tasks: labelled positives and negatives per label
    nonfinite: set[str] = set()  # tasks with a NaN or infinite prediction: every metric undefined

    def fold(record: _Record) -> None:
        """Add one task's part of one batch to the metrics and the sums (in batch order)."""
        _, name, (predictions, truth, *tokens), total, numel, labelled_count, class_counts = record
        if name in nonfinite or not all(bool(torch.isfinite(p).all()) for p in (predictions, *tokens)):
            nonfinite.add(name)
        elif tokens:  # a CRF's sentence metrics read the Viterbi path, its token metrics the marginals
            for metric in _of(metrics, name).values():
                metric.update(tokens[0] if isinstance(metric, _LabelledTokens) else predictions, truth)
        else:
            _of(metrics, name).update(predictions, truth)
        loss_sum[name] += total
        elements[name] += numel
        count[name] += labelled_count
        if class_counts is not None:
            classes[name] = classes[name] + class_counts if name in classes else class_counts

    try:
        for k in range(rank, len(starts), world):
            batch = source.batch(torch.arange(starts[k], min(starts[k] + batch_size, len(source)))).to(device)
            generator = torch.Generator().manual_seed(seed * 1_000_003 + k)
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
                    if labelled.shape[0] == 0:  # a view may mask nothing in a batch
                        continue
                    losses = task.loss_function(output, task.loss_target(labelled))
                    update: tuple[Tensor, ...]
                    if name in sentences:
                        update = (task.predictions(outputs[name]), target.masked_fill(~mask, -1))
                        if getattr(task, "crf", False):  # the posterior marginals, for the per-token metrics
                            update += (task.predictions(task.entries(outputs[name], target)[0]),)
                    else:
                        update = (task.predictions(output), labelled)
                    counts = (_class_counts(labelled.reshape(len(labelled), -1))
                              if isinstance(task, BinaryClassification) else None)
                    record = (k, name, update, float(losses.sum()), losses.numel(), labelled.shape[0], counts)
                    if world > 1:
                        records.append(record)  # kept for the gather
                    else:
                        fold(record)  # one process: nothing kept from batch to batch
    finally:
        model.train(was_training)
    if world > 1:
        import torch.distributed as dist

        shared: list[list[_Record] | None] = [None] * world
        mine = [(k, n, tuple(x.cpu() for x in u), s, e, c, cc) for k, n, u, s, e, c, cc in records]
        dist.all_gather_object(shared, mine)
        for k, n, u, s_, e, c, cc in sorted((r for part in shared for r in part or []), key=lambda r: r[0]):
            fold((k, n, tuple(x.to(device) for x in u), s_, e, c, cc))  # stable sort: batch order
    results: dict[str, float] = {}
    for task in tasks:
        seen = count[task.name] > 0
        one_class = task.name in classes and bool((classes[task.name] == 0).any())
        for name in task.metrics:
            defined = seen and not (name == "auroc" and one_class) and task.name not in nonfinite
            results[f"{task.name}/{name}"] = float(_of(metrics, task.name)[name].compute()) if defined else math.nan
        results[f"{task.name}/loss"] = loss_sum[task.name] / elements[task.name] if seen else math.nan
    return results


#: One task's part of one batch: batch index, task, the metric update (predictions, targets, and a
#: CRF's posterior marginals for its per-token metrics), loss
#: sum, loss elements, labelled entries, and a binary task's label counts.
_Record = tuple[int, str, tuple[Tensor, ...], float, int, int, "Tensor | None"]


def undefined_metrics(results: Mapping[str, float]) -> list[str]:
    """The ``"<task>/<metric>"`` keys of :func:`evaluate`'s results that are undefined (NaN)."""
    return [key for key, value in results.items() if math.isnan(value)]


class _LabelledTokens(WrapperMetric):
    """Feeds ``metric`` the labelled tokens of sentences: ``preds [B, L, ...]``, ``target [B, L]``
    with ``-1`` where unlabelled become ``preds [N, ...]`` and ``target [N]``."""

    def __init__(self, metric: Metric) -> None:
        super().__init__()
        self.metric = metric

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Pass the labelled tokens (``target >= 0``) on to the wrapped metric."""
        labelled = target >= 0
        self.metric.update(preds[labelled], target[labelled])

    def compute(self) -> Tensor:
        """The wrapped metric's value."""
        return self.metric.compute()

    def reset(self) -> None:
        """Reset the wrapped metric."""
        self.metric.reset()
        super().reset()


def _of(metrics: MultitaskWrapper, task: str) -> MetricCollection:
    """The collection of ``task``'s metrics in ``metrics``."""
    return cast(MetricCollection, metrics.task_metrics[task])


def _reads_sentences(task: Task) -> bool:
    """Whether ``task``'s metrics receive whole sentences (see :func:`evaluate`)."""
    return task.level == "token" and any(METRICS.create(m).sequences for m in task.metrics)


def _task_metrics(task: Task) -> MetricCollection:
    """A fresh collection of ``task``'s metrics, keyed by metric name, taking the task's inputs."""
    sentences = _reads_sentences(task)
    built: dict[str, Metric | MetricCollection] = {}
    for name in task.metrics:
        metric = create_metric(name, task)
        built[name] = _LabelledTokens(metric) if sentences and not METRICS.create(name).sequences else metric
    return MetricCollection(built, compute_groups=False)


def _class_counts(labels: Tensor) -> Tensor:
    """``[2, K]``: labelled positives and negatives of each of ``K`` labels."""
    positives = labels.to(torch.long).sum(0)
    return torch.stack([positives, labels.shape[0] - positives]).cpu()


def _views(tasks: Sequence[Task], views: Mapping[str, View] | None) -> dict[str, View]:
    named = sorted({t.view for t in tasks if t.view is not None})
    given = dict(views or {})
    return {name: given[name] if name in given else create_view(name) for name in named}
