"""Gramian aggregation runs one batched trunk backward for all tasks — except where the per-task
parameter gradients are smaller than the per-task layer-output gradients (then one plain
backward per task is both the lighter and, measured, the faster route)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from manytask.balancing import create_balancer
from manytask.models import HardSharing
from manytask.tasks import Regression
from manytask.training import BackwardEngine

CALLS = {"backward": 0}


class CountedTanh(torch.autograd.Function):
    """tanh whose backward counts its calls; under vmap one call handles every row."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[torch.Tensor], output: torch.Tensor) -> None:
        ctx.save_for_backward(output)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        CALLS["backward"] += 1
        (y,) = ctx.saved_tensors
        return grad * (1 - y * y)


class Trunk(nn.Module):
    out_features = 6

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return CountedTanh.apply(self.linear(x))


@pytest.mark.parametrize("name, level, batch, calls", [
    ("mgda", "exact", 2, 1), ("pcgrad", "exact", 2, 1), ("mgda", "representation", 8, 1),
    ("mgda", "exact", 8, 1),  # 24 parameters < 8 x 6 outputs, but few: one batched backward still
    ("mgda", "exact", 6000, 5),  # 24 parameters < 6000 x 6 >= PER_TASK_FROM outputs: one backward per task
])
def test_trunk_backward_runs_once_for_all_tasks(name: str, level: str, batch: int, calls: int) -> None:
    """Exact (a linear trunk): one vmapped pass gives the per-layer Gramians and the update;
    representation: the Gramian needs the heads only, so the trunk is traversed once, weighted."""
    tasks = [Regression(f"t{i}") for i in range(5)]
    model = HardSharing(Trunk(), tasks)
    engine = BackwardEngine(model, create_balancer(name, tasks, level=level))
    for step in range(2):  # the first exact step also checks the linear-layer engine against autograd
        engine.begin_step()
        out = engine.forward(torch.randn(batch, 3), [t.name for t in tasks])
        sums = torch.stack([o.pow(2).mean() for o in out.values()])
        CALLS["backward"] = 0
        engine.backward(sums, torch.ones(5), step=step)
    assert CALLS["backward"] == calls
    assert model.encoder.linear.weight.grad is not None
