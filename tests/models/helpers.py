"""A run with a task absent for several steps, for the sharing-scheme tests."""

from __future__ import annotations

import torch

from manytask.balancing import create_balancer
from manytask.data import MultiSourceLoader, TensorSource
from manytask.models import MultiTaskModel
from manytask.tasks import Task
from manytask.training import Trainer, build_optimizer


def absent_task_trainer(model: MultiTaskModel, tasks: list[Task], balancer: str, steps: int = 8) -> Trainer:
    """Tasks ``a`` (regression), ``b`` (3 classes), ``c`` (2 outputs) on 128 samples of 5 features,
    in order, batches of 16, Adam: ``c`` has no label in the first 64 samples, so it is absent from
    the first four steps."""
    torch.manual_seed(0)
    n = 128
    x = torch.randn(n, 5)
    targets = {"a": x[:, 0].clone(), "b": (x[:, 1] > 0).long() + (x[:, 2] > 0).long(), "c": x[:, 3:5].clone()}
    bal = create_balancer(balancer, tasks)
    loader = MultiSourceLoader({"train": TensorSource(x, targets, {"c": torch.arange(n) >= 64})}, 16, seed=0)
    loader._orders["train"] = torch.arange(n)  # batches in order
    return Trainer(model, tasks, bal, build_optimizer(model, bal, "adam", 1e-2), loader, steps=steps, progress=False)
