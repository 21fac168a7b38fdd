"""Learning to branch: the tree the logits encode against a hand computation, Gumbel-softmax
parents in training, the learned structure in words and in the run directory."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from manytask.config import parse_config
from manytask.models import MLP, Independent, LearnedBranching
from manytask.runs import train
from manytask.tasks import Classification, Regression

from .helpers import assert_old_layout_loads, assert_rows_are_each_tasks_own

TASKS = [Regression("a"), Classification("b", num_classes=3), Regression("c", num_outputs=2)]


def test_evaluation_follows_the_most_likely_parents() -> None:
    torch.manual_seed(0)
    model = LearnedBranching(MLP(5, (6, 4, 3)), TASKS, branches=[2, 3, 3]).double().eval()
    with torch.no_grad():
        model.parents[0].copy_(torch.tensor([[0.0, 2.0], [3.0, 0.0], [0.0, 1.0]]))  # stage 2 reads n1, n0, n1
        for task, row in zip(TASKS, [[0.0, 0.0, 5.0], [0.0, 5.0, 0.0], [5.0, 0.0, 0.0]]):  # leaves: n2, n1, n0
            model.leaf_parents[task.name].copy_(torch.tensor(row))
    x = torch.randn(4, 5, dtype=torch.float64)
    first = [node(x) for node in model.nodes[0]]
    second = [model.nodes[1][i](first[p]) for i, p in enumerate([1, 0, 1])]
    leaves = [model.nodes[2][i](second[p]) for i, p in enumerate([2, 1, 0])]
    out = model(x)
    for task, leaf in zip(TASKS, leaves):
        torch.testing.assert_close(out[task.name], model.heads[task.name](leaf), rtol=0, atol=0)
    assert model.structure() == [[1, 0, 1], [2, 1, 0]]
    assert model.structure_report().splitlines() == [
        "stage 1: 2 node(s) reading the inputs", "stage 2: n0 <- n1, n1 <- n0, n2 <- n1", "stage 3: a <- n2, b <- n1, c <- n0"]


def test_training_mixes_parents_by_gumbel_softmax_and_learns_the_logits() -> None:
    torch.manual_seed(0)
    model = LearnedBranching(MLP(5, (6, 4)), TASKS, temperature=0.5)
    x = torch.randn(4, 5)
    torch.manual_seed(7)
    out = model(x)
    torch.manual_seed(7)  # the same draw, by hand
    logits = torch.stack([model.leaf_parents[t.name] for t in TASKS])  # [3 leaves, 1 parent]
    weights = torch.nn.functional.gumbel_softmax(logits, tau=0.5, dim=-1)
    parent = model.nodes[0][0](x)  # one first-stage node: every child reads it whatever the weights
    for i, task in enumerate(TASKS):
        leaf = model.nodes[1][i](weights[i, 0] * parent)
        torch.testing.assert_close(out[task.name], model.heads[task.name](leaf))
    sum(o.sum() for o in out.values()).backward()
    assert all(row.grad is not None for row in model.leaf_parents.values())


def test_the_leaves_parent_logits_are_the_tasks_own() -> None:
    """Row t of the leaves' logits chooses what task t's leaf reads: task t's parameter (a
    gradient method gives it the task's own gradient); an old checkpoint with one matrix loads."""
    torch.manual_seed(0)
    model = LearnedBranching(MLP(5, (6, 4, 3)), TASKS, branches=[2, 3, 3])
    assert_rows_are_each_tasks_own(model, model.leaf_parents, torch.randn(4, 5))
    assert id(model.parents[0]) in {id(p) for p in model.shared_parameters()}
    with torch.no_grad():
        for row in model.leaf_parents.values():
            row.add_(torch.randn(3))
    before = torch.stack([model.leaf_parents[t.name].detach() for t in TASKS])  # the layout before: one matrix
    fresh = LearnedBranching(MLP(5, (6, 4, 3)), TASKS, branches=[2, 3, 3])
    assert_old_layout_loads(model, fresh, "leaf_parents.", "parents.1", before, torch.randn(3, 5))
    assert fresh.structure() == model.structure()


def test_one_stage_gives_independent_leaves() -> None:
    torch.manual_seed(0)
    model = LearnedBranching(torch.nn.Linear(5, 4), TASKS, feature_dim=4)
    torch.manual_seed(0)
    independent = Independent(torch.nn.Linear(5, 4), TASKS, feature_dim=4)
    x = torch.randn(3, 5)
    for name, value in model(x).items():
        torch.testing.assert_close(value, independent(x)[name])
    assert model.structure() == []


def test_bad_options_are_named() -> None:
    with pytest.raises(ValueError, match=r"the last equal to the 3 tasks. Got \[1, 2\]"):
        LearnedBranching(MLP(5, (6, 4)), TASKS, branches=[1, 2])
    with pytest.raises(ValueError, match="temperature must be > 0"):
        LearnedBranching(MLP(5, (6, 4)), TASKS, temperature=0.0)


def test_a_run_saves_the_learned_structure(tmp_path: Path) -> None:
    config = parse_config({
        "data": {"name": "demo", "n_train": 64, "n_val": 16, "n_test": 16},
        "model": {"name": "branching", "encoder": {"name": "mlp", "hidden": [8, 6]}},
        "training": {"steps": 4, "eval_every": 2, "progress": False},
    })
    result = train(config, run_dir=tmp_path / "run")
    text = (result.run_dir / "structure.txt").read_text()
    assert text.startswith("stage 1: 1 node(s) reading the inputs\nstage 2: category <- n0, score <- n0, flag <- n0")
