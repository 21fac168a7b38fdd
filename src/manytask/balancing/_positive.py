"""The check of methods that take the logarithm of the losses (GLS, SI, FAMO)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["check_positive"]


def check_positive(owner: str, losses: Tensor, present: Tensor, task_names: Sequence[str], hint: str, *,
                   step: int) -> None:
    """Raise ``ValueError`` naming the step and the first present task whose loss is <= 0.

    Only when every present loss is finite: a NaN or infinite loss is left to the backward
    engine, which names it (``NonFiniteError``) before anything is applied.
    """
    bad = present & (losses <= 0)
    if not bool(bad.any()):  # (a NaN is not <= 0: the common case takes three ops and one sync)
        return
    if bool((torch.isfinite(losses) | ~present).all()):
        i = int(bad.nonzero()[0])
        raise ValueError(f"{owner} takes the logarithm of each loss, so every loss must be > 0, but at step {step} "
                         f"task {task_names[i]!r} has loss {losses[i].item()!r}. {hint}")
