"""MMoE: Eqs. 5-6 against a hand computation, one expert as hard sharing, the bag-of-tokens gate,
expert utilisation, and training with T = 3 under Adam with a task absent for several steps."""

from __future__ import annotations

import copy
import csv
from pathlib import Path

import pytest
import torch
from torch import nn

from manytask.config import parse_config
from manytask.models import MLP, HardSharing, MMoE, create_encoder
from manytask.runs import build_experiment, train
from manytask.tasks import Classification, Regression, SequenceLabelling, Task

from .helpers import absent_task_trainer

TASKS: list[Task] = [Regression("a"), Classification("b", num_classes=3), Regression("c", num_outputs=2)]


def test_forward_is_eqs_5_and_6() -> None:
    torch.manual_seed(0)
    model = MMoE(MLP(5, (7, 4)), TASKS, num_experts=3).double()
    x = torch.randn(6, 5, dtype=torch.float64)
    experts = [expert(x) for expert in model.experts.values()]
    out = model(x)
    for task in TASKS:
        linear = model.gates[task.name][1]
        gate = torch.softmax(x @ linear.weight.T + linear.bias, dim=1)  # g^t(x) = softmax(W x)
        mixed = sum(gate[:, e:e + 1] * experts[e] for e in range(3))  # sum_e g_e f_e(x)
        torch.testing.assert_close(out[task.name], model.heads[task.name](mixed), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("encoder", ["mlp", "cnn"])
def test_one_expert_is_hard_sharing(encoder: str) -> None:
    torch.manual_seed(0)
    trunk = MLP(5, (7, 4)) if encoder == "mlp" else create_encoder("cnn", out_features=8, channels=[2, 3])
    mixture = MMoE(trunk, TASKS, num_experts=1)
    hard = HardSharing(copy.deepcopy(mixture.experts["expert0"]), TASKS)
    hard.heads.load_state_dict(mixture.heads.state_dict())
    x = torch.randn(4, 5) if encoder == "mlp" else torch.randn(4, 1, 28, 28)
    ours, theirs = mixture(x), hard(x)
    for task in TASKS:
        torch.testing.assert_close(ours[task.name], theirs[task.name], rtol=0, atol=1e-7)
    sum(o.pow(2).sum() for o in ours.values()).backward()
    sum(o.pow(2).sum() for o in theirs.values()).backward()
    for p, q in zip(mixture.experts["expert0"].parameters(), hard.encoder.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-5, atol=1e-6)


def test_token_gate_is_the_mean_of_the_tokens_columns_without_padding() -> None:
    torch.manual_seed(0)
    encoder = create_encoder("bilstm", vocab_size=30, embedding_dim=8, hidden=4, layers=1)
    tasks = [SequenceLabelling("pos", num_classes=5), Classification("sent", num_classes=2)]
    model = MMoE(encoder, tasks, num_experts=3)
    tokens = torch.tensor([[4, 7, 9, 0, 0], [3, 3, 3, 3, 1]])
    weight = model.gates["sent"].bag.weight
    expected = torch.stack([weight[[4, 7, 9]].mean(0), weight[[3, 3, 3, 3, 1]].mean(0)])  # pad id 0 left out
    torch.testing.assert_close(model.gates["sent"](tokens), expected)
    out = model(tokens)
    assert out["pos"].shape == (2, 5, 5) and out["sent"].shape == (2, 2)


def test_expert_utilisation_is_the_mean_gate_weight_in_training() -> None:
    torch.manual_seed(0)
    model = MMoE(MLP(5, (4,)), TASKS, num_experts=2)
    batches = [torch.randn(3, 5), torch.randn(5, 5)]
    expected = torch.zeros(3, 2)
    for x in batches:
        with torch.no_grad():
            expected += torch.stack([torch.softmax(model.gates[t.name](x), 1).sum(0) for t in TASKS])
        model(x)
    model(x, ["a"])  # a forward of one task counts for that task only
    with torch.no_grad():
        expected[0] += torch.softmax(model.gates["a"](x), 1).sum(0)
        counts = torch.tensor([13.0, 8.0, 8.0])
        torch.testing.assert_close(model.expert_utilisation(), expected / counts[:, None])
        model(x)  # a no-grad forward in training mode (a balancer's recompute) does not count
        model.eval()
        model(torch.randn(4, 5))  # evaluation does not count
        torch.testing.assert_close(model.expert_utilisation(), expected / counts[:, None])
    fresh = MMoE(MLP(5, (4,)), TASKS, num_experts=2)
    fresh.load_state_dict(model.state_dict())  # the statistics resume with the run
    torch.testing.assert_close(fresh.expert_utilisation(), model.expert_utilisation())


def test_gate_size_must_be_known() -> None:
    with pytest.raises(ValueError, match="pass gate_in=<number of input features after flattening>"):
        MMoE(nn.Sequential(nn.Flatten(), nn.Linear(6, 4)), TASKS, feature_dim=4)
    model = MMoE(nn.Sequential(nn.Flatten(), nn.Linear(6, 4)), TASKS, feature_dim=4, gate_in=6)
    assert model(torch.randn(2, 2, 3))["c"].shape == (2, 2)
    with pytest.raises(ValueError, match="num_experts >= 1"):
        MMoE(MLP(5, (4,)), TASKS, num_experts=0)


def test_an_absent_task_leaves_its_utilisation_alone() -> None:
    """Task ``c`` unlabelled for four steps: its gate is not run, so its statistics do not count them."""
    model = MMoE(MLP(5, (8,)), TASKS, num_experts=3)
    trainer = absent_task_trainer(model, TASKS, "ew")
    for _ in range(4):
        trainer._train_step()
    assert model.gated_samples.tolist() == [64.0, 64.0, 0.0]
    for _ in range(4):
        trainer._train_step()
    assert model.gated_samples.tolist() == [128.0, 128.0, 64.0]
    assert torch.allclose(model.expert_utilisation().sum(1), torch.ones(3))


def test_from_a_config() -> None:
    config = parse_config({
        "data": {"name": "demo", "n_train": 64, "n_val": 16, "n_test": 16},
        "model": {"name": "mmoe", "encoder": {"name": "mlp", "hidden": [8]}, "num_experts": 2},
        "training": {"steps": 2, "progress": False},
    })
    model = build_experiment(config).model
    assert isinstance(model, MMoE) and len(model.experts) == 2


def test_a_run_logs_the_expert_utilisation(tmp_path: Path) -> None:
    config = parse_config({
        "data": {"name": "demo", "n_train": 64, "n_val": 16, "n_test": 16},
        "model": {"name": "mmoe", "encoder": {"name": "mlp", "hidden": [8]}, "num_experts": 2},
        "training": {"steps": 4, "eval_every": 2, "progress": False},
    })
    result = train(config, run_dir=tmp_path / "run")
    with (result.run_dir / "metrics.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2
    last = rows[-1]
    assert float(last["model/expert0"]) + float(last["model/expert1"]) == pytest.approx(1.0, abs=1e-6)
    assert float(last["model/category/expert0"]) + float(last["model/category/expert1"]) == pytest.approx(1.0, abs=1e-6)
