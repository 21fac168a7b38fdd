"""Under gradient aggregation every task-specific parameter gets the plain gradient of its own
loss (docs/balancing.md), on every scheme: the defect was that schemes without one shared
representation (MTAN, PLE, cross-stitch, ...) gave each head w_i times it, so a task MGDA weighted
0 had a frozen head."""

from __future__ import annotations

import tempfile
from typing import Any

import pytest
import torch

from manytask.config import parse_config
from manytask.runs._build import build_experiment


def _config(model: str, balancer: dict[str, Any]) -> dict[str, Any]:
    return {"seed": 0,
            "data": {"name": "demo", "n_train": 120, "n_val": 30, "n_test": 30, "labelled_fraction": 1.0,
                     "batch_size": 32},
            "model": {"name": model, "encoder": {"name": "mlp", "hidden": [16, 16]}},
            "balancer": balancer, "optimizer": {"name": "sgd", "lr": 1e-12, "momentum": 0.0},
            "training": {"steps": 1, "eval_every": 1, "progress": False, "checkpoint_every": 0},
            "logging": {"report": False}}


@pytest.mark.parametrize("model", ["mtan", "ple", "cross_stitch", "mmoe", "hps"])
@pytest.mark.parametrize("balancer", [{"name": "mgda", "level": "exact"}, {"name": "upgrad", "level": "exact"}])
def test_each_task_specific_parameter_gets_its_own_losss_plain_gradient(model: str, balancer: dict[str, Any]) -> None:
    config = parse_config(_config(model, balancer))
    trained = build_experiment(config, run_dir=tempfile.mkdtemp())
    twin = build_experiment(config, run_dir=tempfile.mkdtemp())  # same seed: same weights, same first batch
    _, batch = twin.trainer.loader.next()
    names = list(twin.trainer.tasks)
    outputs = twin.model(batch.inputs, names)
    expected = {}
    for name, task in twin.trainer.tasks.items():
        total, count = task.loss_terms(outputs[name], batch.targets[name], None)
        own = [p for p in twin.model.task_parameters(name) if p.requires_grad]
        expected[name] = torch.autograd.grad(total / count, own, retain_graph=True)
    trained.trainer.fit()  # the gradients stay in .grad; the weights move by ~1e-12
    weights = trained.trainer.last_weights
    assert weights is not None and not torch.allclose(weights, weights.mean())  # the weights differ
    for name in names:
        got = [p.grad for p in trained.model.task_parameters(name) if p.requires_grad]
        for g, e in zip(got, expected[name], strict=True):
            assert g is not None and torch.allclose(g, e, atol=1e-6, rtol=1e-5), (model, name)


@pytest.mark.parametrize("model", ["sluice", "cross_stitch", "mtan"])
def test_the_exact_gramian_covers_every_shared_parameter(model: str) -> None:
    """Before the fix sluice's exact Gramian left out its α units (mixed in forward, outside any
    module, where autogram's hooks cannot see them): 27 % off J Jᵀ, and MGDA's weights with it."""
    config = parse_config(_config(model, {"name": "mgda", "level": "exact"}))
    trained = build_experiment(config, run_dir=tempfile.mkdtemp())
    twin = build_experiment(config, run_dir=tempfile.mkdtemp())
    seen: dict[str, torch.Tensor] = {}
    solve = trained.balancer.gramian_weights

    def spy(gramian: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        seen["gramian"] = gramian.detach().clone()
        return solve(gramian, *args, **kwargs)

    trained.balancer.gramian_weights = spy  # type: ignore[method-assign]
    _, batch = twin.trainer.loader.next()
    outputs = twin.model(batch.inputs, list(twin.trainer.tasks))
    shared = [p for p in twin.model.shared_parameters() if p.requires_grad]
    rows = []
    for name, task in twin.trainer.tasks.items():
        total, count = task.loss_terms(outputs[name], batch.targets[name], None)
        rows.append(torch.cat([g.flatten() for g in torch.autograd.grad(total / count, shared, retain_graph=True)]))
    jacobian = torch.stack(rows)
    trained.trainer.fit()
    assert torch.allclose(seen["gramian"].to(jacobian), jacobian @ jacobian.T, rtol=1e-4, atol=1e-7)
