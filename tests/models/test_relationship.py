"""Relationship networks: the closed-form task covariance against the known minimum of
tr(Wᵀ Ω⁻¹ W), the penalty against numpy, the learned correlations on constructed weights, and the
alternation (Ω updated in training, fixed in evaluation)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from manytask.config import parse_config
from manytask.models import MLP, RelationshipNetwork, task_covariance
from manytask.runs import build_experiment
from manytask.tasks import Regression

TASKS = [Regression("a"), Regression("b"), Regression("c")]


def objective(weights: np.ndarray, omega: np.ndarray) -> float:
    return float(np.trace(weights.T @ np.linalg.inv(omega) @ weights))


def test_closed_form_attains_the_minimum_over_trace_one_covariances() -> None:
    """min over Ω ≻ 0, tr Ω = 1 of tr(Wᵀ Ω⁻¹ W) is (tr (W Wᵀ)^½)², attained at the closed form."""
    rng = np.random.default_rng(0)
    weights = rng.normal(size=(4, 9))
    omega = task_covariance(torch.from_numpy(weights), eps=0.0).numpy()
    assert np.trace(omega) == pytest.approx(1.0)
    minimum = np.sqrt(np.linalg.eigvalsh(weights @ weights.T)).sum() ** 2
    assert objective(weights, omega) == pytest.approx(minimum, rel=1e-9)
    for _ in range(20):  # any other trace-one covariance does worse
        a = rng.normal(size=(4, 4))
        other = a @ a.T + 0.1 * np.eye(4)
        assert objective(weights, other / np.trace(other)) >= minimum * (1 - 1e-12)


def test_related_columns_show_in_the_correlation() -> None:
    """Rows a = b and c orthogonal to them: W Wᵀ's root is block-diagonal, so corr(a, b) = 1, corr(a, c) = 0."""
    model = RelationshipNetwork(MLP(2, (3,)), TASKS, strength=1.0).double()
    with torch.no_grad():
        shared_row = torch.tensor([1.0, 0.0], dtype=torch.float64)
        for name, row in (("a", shared_row), ("b", shared_row), ("c", torch.tensor([0.0, 1.0], dtype=torch.float64))):
            linear = model.columns[name].stages[0][1]
            linear.weight.copy_(torch.stack([row, row, row]))
    model.penalty()
    correlation = model.task_correlation()
    assert correlation[0, 1].item() == pytest.approx(1.0, abs=2e-3)  # not exactly 1: eps keeps Ω invertible
    assert correlation[0, 2].item() == pytest.approx(0.0, abs=1e-9)


def test_penalty_against_numpy_and_the_alternation() -> None:
    torch.manual_seed(0)
    model = RelationshipNetwork(MLP(4, (5, 3)), TASKS, task_stages=2, strength=0.3).double()
    names = [n for n, p in model.columns["a"].named_parameters() if p.ndim >= 2]
    assert len(names) == 2  # both linear stages are per task
    value = model.penalty().item()
    expected = 0.0
    for name in names:
        weights = np.stack([dict(model.columns[t.name].named_parameters())[name].detach().numpy().ravel()
                            for t in TASKS])
        vals, vecs = np.linalg.eigh(weights @ weights.T)
        omega = (vecs * np.sqrt(np.clip(vals, 0, None) + 1e-6)) @ vecs.T
        expected += objective(weights, omega / np.trace(omega))
    assert value == pytest.approx(0.3 * expected, rel=1e-9)
    model.eval()
    frozen = [b.clone() for b in model.buffers()]
    with torch.no_grad():
        for p in model.columns.parameters():
            p.mul_(2.0)
    model.penalty()  # evaluation mode reads the covariances, it does not update them
    assert all(torch.equal(a, b) for a, b in zip(frozen, model.buffers()))


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="task_stages must be between 1 and the backbone's 2 stage"):
        RelationshipNetwork(MLP(4, (5, 3)), TASKS, task_stages=3)
    with pytest.raises(ValueError, match="strength must be >= 0"):
        RelationshipNetwork(MLP(4, (5, 3)), TASKS, strength=-1.0)
    model = RelationshipNetwork(MLP(4, (5, 3)), TASKS, strength=0.0)
    assert model.penalty() is None and model.shared is not None


def test_from_a_config() -> None:
    config = parse_config({
        "data": {"name": "demo", "n_train": 64, "n_val": 16, "n_test": 16},
        "model": {"name": "relationship", "encoder": {"name": "mlp", "hidden": [8, 6]}, "strength": 0.01},
        "training": {"steps": 3, "progress": False},
    })
    experiment = build_experiment(config)
    for _ in range(3):
        experiment.trainer._train_step()
    correlation = experiment.model.task_correlation()
    assert correlation.shape == (3, 3) and torch.allclose(correlation.diagonal(), torch.ones(3))


def test_the_learned_correlations_are_logged_as_diagnostics() -> None:
    torch.manual_seed(0)
    model = RelationshipNetwork(MLP(4, (5, 3)), TASKS, strength=0.1)
    model.penalty()
    logged = model.diagnostics()
    assert set(logged) == {"corr/a/b", "corr/a/c", "corr/b/c"}
    assert logged["corr/a/b"] == pytest.approx(float(model.task_correlation()[0, 1]))
