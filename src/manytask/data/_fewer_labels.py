"""Few labels, many unlabelled samples: keep the labels of a seeded subset of the training rows."""

from __future__ import annotations

import dataclasses

import torch

from ._dataset import MultiTaskData
from ._source import TensorSource

__all__ = ["keep_labels"]


def keep_labels(data: MultiTaskData, fraction: float | None = None, samples: int | None = None,
                seed: int = 0) -> MultiTaskData:
    """``data`` with only some training rows labelled: each training source ``name`` keeps the
    rows of a seeded random subset (``fraction`` of its rows, at least one, or ``samples`` of
    them) with their labels for every task; the other rows lose their labels (masks False) and
    form the source ``name/unlabelled``, read only by the tasks that read views
    (semi-supervised training). Validation and test sources are unchanged.

    Args:
        data: The dataset.
        fraction: Share of each training source's rows that keep their labels, in (0, 1].
        samples: Number of rows that keep their labels in each training source (all, if fewer).
        seed: Seed of the subset (the same subset for the same seed, whatever the tasks).
    """
    if (fraction is None) == (samples is None):
        raise ValueError("keep_labels needs exactly one of fraction and samples (data.keep_labels: {fraction: 0.1} "
                         "or {samples: 100}).")
    if fraction is not None and not 0 < fraction <= 1:
        raise ValueError(f"keep_labels fraction must be in (0, 1]. Got {fraction!r}.")
    if samples is not None and samples < 1:
        raise ValueError(f"keep_labels samples must be >= 1. Got {samples!r}.")
    sources = {}
    for index, (name, source) in enumerate(data.train.items()):
        if not isinstance(source, TensorSource):
            raise ValueError(f"Training source {name!r} is a {type(source).__name__}; fewer labels need in-memory "
                             "sources (TensorSource).")
        n = len(source)
        count = min(n, samples) if samples is not None else max(1, round(n * float(fraction)))  # type: ignore[arg-type]
        generator = torch.Generator().manual_seed(seed * 1_000_003 + index)
        keep = torch.zeros(n, dtype=torch.bool)
        keep[torch.randperm(n, generator=generator)[:count]] = True
        sources[name] = source.subset(keep.nonzero().squeeze(1))
        if count < n:
            rest = source.subset((~keep).nonzero().squeeze(1), f"{source.name}/unlabelled")
            masks = {task: torch.zeros_like(mask) for task, mask in rest.masks.items()}
            sources[f"{name}/unlabelled"] = TensorSource(rest.inputs, rest.targets, masks, rest.name)
    kept = {name: s for name, s in sources.items() if not name.endswith("/unlabelled")}
    lost = [t.name for t in data.tasks if any(bool(s.masks[t.name].any()) for s in data.train.values()
                                                  if isinstance(s, TensorSource) and t.name in s.masks)
            and not any(bool(s.masks[t.name].any()) for s in kept.values() if t.name in s.masks)]
    if lost:
        rows = sum(len(s) for s in kept.values())
        raise ValueError(f"keep_labels kept {rows} training row(s), and none of them is labelled for task(s) "
                         f"{lost}, which would never train; keep more rows (a larger samples or fraction).")
    return dataclasses.replace(data, train=sources)
