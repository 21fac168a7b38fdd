"""Soft sharing: the l2 penalty against an explicit sum over pairs, the trace norm against numpy's
SVD, finite-difference gradients, zero strength as independent columns through the trainer, and
the penalty pulling the columns together."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from manytask.balancing import create_balancer
from manytask.config import parse_config
from manytask.data import MultiSourceLoader, TensorSource
from manytask.models import MLP, Independent, SoftSharing
from manytask.runs import build_experiment
from manytask.tasks import Regression
from manytask.training import BackwardEngine, Trainer, build_optimizer

TASKS = [Regression("a"), Regression("b"), Regression("c")]


def columns(model: SoftSharing) -> list[list[torch.Tensor]]:
    return [[p.detach() for p in column.parameters()] for column in model.encoders.values()]


def test_l2_is_the_sum_over_pairs_of_squared_distances() -> None:
    torch.manual_seed(0)
    model = SoftSharing(MLP(4, (5, 3)), TASKS, penalty="l2", strength=0.3).double()
    cols = columns(model)
    expected = sum(float((p - q).pow(2).sum()) for a, b in itertools.combinations(cols, 2) for p, q in zip(a, b))
    assert model.penalty().item() == pytest.approx(0.3 * expected, rel=1e-12)


def test_trace_is_the_sum_of_singular_values_per_parameter() -> None:
    torch.manual_seed(0)
    model = SoftSharing(MLP(4, (5, 3)), TASKS, penalty="trace", strength=0.2).double()
    expected = sum(np.linalg.svd(np.stack([p.numpy().ravel() for p in tensors]), compute_uv=False).sum()
                   for tensors in zip(*columns(model)))
    assert model.penalty().item() == pytest.approx(0.2 * expected, rel=1e-12)


class _Penalty(torch.nn.Module):
    """``model.penalty()`` as a forward, so that torch.func can call it with other parameters."""

    def __init__(self, model: SoftSharing) -> None:
        super().__init__()
        self.model = model

    def forward(self) -> torch.Tensor:
        value = self.model.penalty()
        assert value is not None
        return value


@pytest.mark.parametrize("kind", ["l2", "trace"])
def test_penalty_gradient_by_finite_differences(kind: str) -> None:
    torch.manual_seed(0)
    wrapper = _Penalty(SoftSharing(MLP(3, (2,)), TASKS, penalty=kind, strength=0.5).double())
    names = [n for n, _ in wrapper.named_parameters() if ".encoders." in f".{n}"]
    values = tuple(wrapper.get_parameter(n).detach().clone().requires_grad_() for n in names)

    def penalty(*tensors: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(wrapper, dict(zip(names, tensors)), args=(), strict=False)

    assert torch.autograd.gradcheck(penalty, values)


def _trainer(model: SoftSharing | Independent, steps: int = 6) -> Trainer:
    torch.manual_seed(1)
    x = torch.randn(96, 4)
    targets = {"a": x[:, 0].clone(), "b": x[:, 1] - x[:, 0], "c": x.sum(1)}
    bal = create_balancer("ew", TASKS)
    loader = MultiSourceLoader({"train": TensorSource(x, targets, {"c": torch.arange(96) >= 48})}, 16, seed=0)
    return Trainer(model, TASKS, bal, build_optimizer(model, bal, "adam", 1e-2), loader, steps=steps, progress=False)


def test_zero_strength_trains_as_independent_columns() -> None:
    torch.manual_seed(0)
    soft = SoftSharing(MLP(4, (6,)), TASKS, strength=0.0)
    torch.manual_seed(0)
    independent = Independent(MLP(4, (6,)), TASKS)
    assert soft.penalty() is None
    for model in (soft, independent):
        trainer = _trainer(model)
        for _ in range(6):
            trainer._train_step()
    for p, q in zip(soft.parameters(), independent.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


@pytest.mark.parametrize("kind", ["l2", "trace"])
def test_the_penalty_pulls_the_columns_together(kind: str) -> None:
    def spread(model: SoftSharing) -> float:
        return sum(float((p - q).norm()) for a, b in itertools.combinations(columns(model), 2) for p, q in zip(a, b))

    results = {}
    for strength in (0.0, 0.5):
        torch.manual_seed(0)
        model = SoftSharing(MLP(4, (6,)), TASKS, penalty=kind, strength=strength)
        start = spread(model)
        trainer = _trainer(model, steps=30)
        for _ in range(30):
            trainer._train_step()
        results[strength] = spread(model) / start
    assert results[0.5] < results[0.0] - 0.05


def test_gradient_methods_name_the_missing_shared_parameters() -> None:
    model = SoftSharing(MLP(4, (6,)), TASKS)
    with pytest.raises(ValueError, match="SoftSharing shares none; use a loss weighting such as 'ew'"):
        BackwardEngine(model, create_balancer("mgda", TASKS))


def test_bad_options_are_named() -> None:
    with pytest.raises(ValueError, match="penalty must be 'l2' or 'trace'"):
        SoftSharing(MLP(4, (6,)), TASKS, penalty="l1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="strength must be >= 0"):
        SoftSharing(MLP(4, (6,)), TASKS, strength=-1.0)


def test_from_a_config() -> None:
    config = parse_config({
        "data": {"name": "demo", "n_train": 64, "n_val": 16, "n_test": 16},
        "model": {"name": "soft", "encoder": {"name": "mlp", "hidden": [8]}, "penalty": "trace", "strength": 0.01},
        "training": {"steps": 2, "progress": False},
    })
    model = build_experiment(config).model
    assert isinstance(model, SoftSharing) and model.kind == "trace" and model.penalty() is not None
