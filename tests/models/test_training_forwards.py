"""What a model keeps from its training forwards covers every forward of a step and nothing else.

A trainer step runs one forward per input group (the batch's tasks, then each view's), and some
balancers run a no-grad forward after the optimizer step (FAMO's recompute): sluice's subspace
constraint and DSelect-k's entropy must sum the groups' terms (the dataset tasks' term was dropped),
and MMoE's utilisation statistics must not count the recompute."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from manytask.config import parse_config
from manytask.runs import build_experiment


def _experiment(model: dict[str, Any], tmp_path: Path, balancer: str = "ew", view: bool = True) -> Any:
    raw: dict[str, Any] = {
        "seed": 0, "data": {"name": "demo", "batch_size": 16}, "model": model, "balancer": {"name": balancer},
        "optimizer": {"name": "adam", "lr": 1e-3},
        "training": {"steps": 3 if not view else 1, "eval_every": 3, "checkpoint_every": 0, "progress": False},
        "logging": {"report": False}}
    if view:
        raw["tasks"] = {"denoise": {"view": "reconstruct", "kind": "regression", "num_outputs": 20}}
        raw["views"] = {"reconstruct": {"noise": 0.1}}
    return build_experiment(parse_config(raw), run_dir=tmp_path)


@pytest.mark.parametrize("model", [
    {"name": "sluice", "orthogonality": 1.0, "encoder": {"name": "mlp", "hidden": [8, 8]}},
    {"name": "mmoe", "gate": "dselect", "num_experts": 4, "entropy": 0.1, "encoder": {"name": "mlp", "hidden": [8]}},
])
def test_the_penalty_sums_the_forwards_of_every_input_group(model: dict[str, Any], tmp_path: Path) -> None:
    experiment = _experiment(model, tmp_path)
    net, trainer = experiment.model, experiment.trainer
    seen: dict[str, float] = {}
    backward = trainer.engine.backward

    def check(sums: torch.Tensor, counts: torch.Tensor, *, step: int) -> Any:
        groups = trainer.step_groups
        assert [names for _, names, _, _ in groups] == [["category", "score", "flag"], ["denoise"]]
        left = net.penalty()  # what the trainer's two forwards left
        terms = []
        for inputs, names, _, _ in groups:  # each group's term alone (no dropout: the same numbers)
            net(inputs, names)
            terms.append(float(net.penalty().detach()))
        assert min(terms) > 0
        seen["expected"], seen["left"] = sum(terms), float(left.detach())
        for inputs, names, _, _ in groups:  # leave the step's terms as the trainer's forwards had them
            net(inputs, names)
        return backward(sums, counts, step=step)

    trainer.engine.backward = check  # type: ignore[method-assign]
    trainer.fit()
    assert seen["left"] == pytest.approx(seen["expected"], rel=1e-5)


def test_a_group_forwarded_twice_before_the_penalty_counts_once(tmp_path: Path) -> None:
    """A loop that never asks for the penalty keeps one term per group, not one per forward."""
    experiment = _experiment({"name": "sluice", "orthogonality": 1.0, "encoder": {"name": "mlp", "hidden": [8, 8]}},
                             tmp_path, view=False)
    net = experiment.model
    x = torch.randn(6, 20)
    net(x)
    once = float(net.penalty().detach())
    net(x), net(x)
    assert float(net.penalty().detach()) == pytest.approx(once)
    with torch.no_grad():
        net(x)
    assert net.penalty() is None  # a no-grad forward leaves no term


def test_expert_utilisation_counts_training_forwards_only(tmp_path: Path) -> None:
    """3 steps of batch 16: the same gated samples per task with or without FAMO's no-grad
    recompute after each step (it counted each present task's rows twice)."""
    counted = {}
    for balancer in ("ew", "famo"):
        experiment = _experiment({"name": "mmoe", "num_experts": 2, "encoder": {"name": "mlp", "hidden": [8]}},
                                 tmp_path / balancer, balancer=balancer, view=False)
        experiment.trainer.fit()
        counted[balancer] = experiment.model.gated_samples.tolist()
    assert counted["ew"][0] == 48.0  # the first task is labelled in every batch
    assert counted["famo"] == counted["ew"]
