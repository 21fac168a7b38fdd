"""Exact aggregation takes the T per-task gradients of the trunk in one batched backward."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from manytask.balancing import StepInfo, create_balancer, forward_for
from manytask.models import HardSharing
from manytask.tasks import Regression

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


@pytest.mark.parametrize("name, level", [("mgda", "exact"), ("pcgrad", "exact"), ("mgda", "representation")])
def test_trunk_backward_runs_once_for_all_tasks(name: str, level: str) -> None:
    tasks = [Regression(f"t{i}") for i in range(5)]
    model = HardSharing(Trunk(), tasks)
    balancer = create_balancer(name, tasks, level=level)
    out, z, task_z = forward_for(balancer, model, torch.randn(8, 3), [t.name for t in tasks])
    losses = {n: o.pow(2).mean() for n, o in out.items()}
    CALLS["backward"] = 0
    balancer.backward(losses, StepInfo(0, 0, model, z, task_z))
    assert CALLS["backward"] == 1  # not one per task
    assert model.encoder.linear.weight.grad is not None
