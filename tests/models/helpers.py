"""Shared pieces of the sharing-scheme tests: a run with a task absent for several steps; the
checks that per-task rows are each task's own and that a checkpoint in an older layout loads."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from manytask.balancing import create_balancer
from manytask.data import MultiSourceLoader, TensorSource
from manytask.models import MultiTaskModel
from manytask.tasks import Task
from manytask.training import Trainer, build_optimizer


def absent_task_trainer(model: MultiTaskModel, tasks: list[Task], balancer: str, steps: int = 8,
                        present_at: tuple[int, ...] = (4, 5, 6, 7)) -> Trainer:
    """Tasks ``a`` (regression), ``b`` (3 classes), ``c`` (2 outputs) on 128 samples of 5 features,
    in order, batches of 16, Adam: ``c`` is labelled in the batches of the steps ``present_at``
    (from 0; by default not in the first four)."""
    torch.manual_seed(0)
    n = 128
    x = torch.randn(n, 5)
    targets = {"a": x[:, 0].clone(), "b": (x[:, 1] > 0).long() + (x[:, 2] > 0).long(), "c": x[:, 3:5].clone()}
    bal = create_balancer(balancer, tasks)
    labelled = torch.isin(torch.arange(n) // 16, torch.tensor(present_at))
    loader = MultiSourceLoader({"train": TensorSource(x, targets, {"c": labelled})}, 16, seed=0)
    loader._orders["train"] = torch.arange(n)  # batches in order
    return Trainer(model, tasks, bal, build_optimizer(model, bal, "adam", 1e-2), loader, steps=steps, progress=False)


def assert_rows_are_each_tasks_own(model: MultiTaskModel, rows: Mapping[str, nn.Parameter], inputs: Tensor) -> None:
    """Row ``t`` of ``rows`` is reached by task ``t``'s output alone (by autograd), and it is task
    ``t``'s parameter, not a shared one (a gradient method gives it the task's plain gradient)."""
    shared = {id(p) for p in model.shared_parameters()}
    out = model(inputs)
    for task, output in out.items():
        grads = torch.autograd.grad(output.sum(), list(rows.values()), retain_graph=True, allow_unused=True)
        assert [name for name, g in zip(rows, grads) if g is not None and bool(g.ne(0).any())] == [task]
        assert id(rows[task]) in {id(p) for p in model.task_parameters(task)}
        assert id(rows[task]) not in shared


def assert_old_layout_loads(model: MultiTaskModel, fresh: MultiTaskModel, prefix: str, old_key: str,
                            old_value: Tensor, inputs: Tensor) -> None:
    """``model``'s state with the keys under ``prefix`` replaced by the one tensor ``old_key`` (the
    layout before they were split per task) loads into ``fresh``, which then gives the same outputs."""
    old = {k: v for k, v in model.state_dict().items() if not k.startswith(prefix)}
    old[old_key] = old_value
    fresh.load_state_dict(old)
    model.eval(), fresh.eval()
    expected, got = model(inputs), fresh(inputs)
    for name, value in expected.items():
        torch.testing.assert_close(got[name], value, rtol=0, atol=0)
