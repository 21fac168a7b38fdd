"""Optimizers with per-task learning rates, and learning-rate schedules."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

import torch
from torch import nn

from ..models import MultiTaskModel

__all__ = ["build_optimizer", "build_scheduler"]

OptimizerName = Literal["adam", "adamw", "sgd"]


def build_optimizer(
    model: MultiTaskModel,
    extra: nn.Module | None = None,
    name: OptimizerName = "adam",
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    momentum: float = 0.9,
    task_lr: Mapping[str, float] | None = None,
    shared_lr: float | None = None,
) -> torch.optim.Optimizer:
    """An optimizer with per-task learning rates.

    Parameter groups: ``"default"`` (shared parameters and tasks without their own rate),
    ``"shared"`` (the shared parameters, when ``shared_lr`` gives them their own rate),
    ``"task:<name>"`` for each task in ``task_lr``, ``"model:<label>"`` for each of the model's
    :meth:`~manytask.models.MultiTaskModel.scaled_parameters` (at ``lr`` times its scale), and
    ``"balancer"`` for learned weights.
    Adam and AdamW use PyTorch's fused kernel where every parameter allows it (floating point,
    on CPU or CUDA).

    Args:
        model: The model; groups come from ``shared_parameters`` and ``task_parameters``.
        extra: Another module with trainable parameters (e.g. UW's log-variances), at ``lr``.
        name: ``"adam"``, ``"adamw"`` or ``"sgd"``.
        lr: Learning rate of the shared parameters (and of tasks not in ``task_lr``).
        weight_decay: Weight decay of every group.
        momentum: SGD momentum.
        task_lr: Learning rate of each task's own parameters, by task name.
        shared_lr: Learning rate of the shared parameters (fine-tuning a pretrained trunk
            slower than the heads); None: ``lr``.
    """
    task_lr = dict(task_lr or {})
    unknown = sorted(set(task_lr) - set(model.task_names))
    if unknown:
        raise KeyError(f"task_lr names unknown tasks {unknown}; the tasks are {list(model.task_names)}.")
    shared = [p for p in (*model.shared_parameters(), *model.spare_parameters()) if p.requires_grad]
    default = shared if shared_lr is None else []
    groups: list[dict[str, Any]] = [{"params": default, "lr": lr, "name": "default"}]
    if shared_lr is not None:
        groups.append({"params": shared, "lr": shared_lr, "name": "shared"})
    for task in model.task_names:
        params = [p for p in model.task_parameters(task) if p.requires_grad]
        if task in task_lr:
            groups.append({"params": params, "lr": task_lr[task], "name": f"task:{task}"})
        else:
            default += params  # one group for everything at the default rate: less per-step work
    for label, scaled, scale in model.scaled_parameters():
        moved = {id(p) for p in scaled}
        for group in groups:
            group["params"] = [p for p in group["params"] if id(p) not in moved]
        groups.append({"params": [p for p in scaled if p.requires_grad], "lr": lr * scale, "name": f"model:{label}"})
    if extra is not None:
        params = [p for p in extra.parameters() if p.requires_grad]
        if params:
            groups.append({"params": params, "lr": lr, "name": "balancer"})
    seen = {id(p) for g in groups for p in g["params"]}
    missing = [n for n, p in model.named_parameters() if p.requires_grad and id(p) not in seen]
    if missing:
        raise ValueError(f"Parameters {missing[:5]} are neither shared nor task-specific; "
                         "the model's shared_parameters()/task_parameters()/spare_parameters() must cover them.")
    groups = [g for g in groups if g["params"]]
    # PyTorch's fused Adam kernel: one pass per tensor instead of ~8 ops (4x faster on CPU).
    fused = all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for g in groups for p in g["params"])
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr, weight_decay=weight_decay, fused=fused)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay, fused=fused)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, weight_decay=weight_decay, momentum=momentum)
    raise ValueError(f"Unknown optimizer {name!r}; choose 'adam', 'adamw' or 'sgd'.")


def build_scheduler(
    optimizer: torch.optim.Optimizer,
    name: Literal["constant", "cosine", "step"],
    total_steps: int,
    warmup_steps: int = 0,
    decay_every: int | None = None,
    decay_factor: float = 0.1,
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up for ``warmup_steps``, then: ``constant``; ``cosine`` decay to 0 at
    ``total_steps``; or ``step``: the learning rate times ``decay_factor`` after every
    ``decay_every`` steps (Sener & Koltun's MultiMNIST schedule is 0.85 every 10 epochs).

    Examples:
        >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        >>> scheduler = build_scheduler(opt, "step", 100, decay_every=10, decay_factor=0.5)
        >>> [scheduler.lr_lambdas[0](s) for s in (0, 9, 10, 25)]
        [1.0, 1.0, 0.5, 0.25]
    """
    if name not in ("constant", "cosine", "step"):
        raise ValueError(f"Unknown scheduler {name!r}; choose 'constant', 'cosine' or 'step'.")
    if name == "step" and (decay_every is None or decay_every < 1):
        raise ValueError("The 'step' scheduler needs decay_every (steps between decays, >= 1), e.g. "
                         "optimizer: {scheduler: step, decay_every: 1960, decay_factor: 0.85}.")
    if not 0.0 < decay_factor <= 1.0:
        raise ValueError(f"decay_factor must be in (0, 1]; got {decay_factor!r}.")

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        if name == "constant":
            return 1.0
        if name == "step":
            return float(decay_factor ** ((step - warmup_steps) // decay_every))  # type: ignore[operator]
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
