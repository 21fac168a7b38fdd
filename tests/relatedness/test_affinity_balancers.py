"""TaskAffinity under every kind of balancer and optimizer: the numbers are those of the step's
own gradients, written out by hand here, whatever route the engine takes (heads on detached
features for the gradient methods), each shared parameter steps at its own group's rate, and a
task whose gradient is zero relates to nothing that step."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from manytask import HardSharing, MultiSourceLoader, Regression, TensorSource, Trainer, create_balancer
from manytask.models import CrossStitch
from manytask.relatedness import TaskAffinity
from manytask.training import Evaluation

NAMES = ("a", "b", "c")


def _data(n: int = 48, d: int = 4) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(n, d, generator=generator)
    return x, {"a": x[:, 0], "b": x[:, 0] + x[:, 1], "c": -x[:, 2] * x[:, 3]}


def _hand(model: nn.Module, x: torch.Tensor, targets: dict[str, torch.Tensor],
          lrs: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """Cosines of the three tasks' gradients on the shared parameters, and Fifty et al.'s
    Z[i, j] = 1 - L_j(θ - η g_i) / L_j(θ) with each shared tensor stepped at its own rate."""
    shared = [p for p in model.shared_parameters() if p.requires_grad]

    def losses(m: nn.Module) -> torch.Tensor:
        outputs = m(x, list(NAMES))
        return torch.stack([((outputs[t].squeeze(-1) - targets[t]) ** 2).mean() for t in NAMES])

    grads = [torch.autograd.grad(loss, shared, allow_unused=True, retain_graph=True) for loss in losses(model)]
    flat = torch.stack([torch.cat([(g if g is not None else torch.zeros_like(p)).flatten()
                                   for g, p in zip(row, shared)]) for row in grads]).double()
    norms = flat.norm(dim=1)
    cosine = (flat @ flat.T / (norms[:, None] * norms[None, :])).numpy()
    with torch.no_grad():
        model.eval()
        before = losses(model).double()
        affinity = np.zeros((3, 3))
        for i, row in enumerate(grads):
            moved = copy.deepcopy(model)
            moved_shared = [p for p in moved.shared_parameters() if p.requires_grad]
            for p, g, lr in zip(moved_shared, row, lrs):
                if g is not None:
                    p -= lr * g
            affinity[i] = (1 - losses(moved).double() / before).numpy()
        model.train()
    return cosine, affinity


def _probe(model: nn.Module, balancer: str, optimizer: torch.optim.Optimizer) -> TaskAffinity:
    """One step of training with the probe measuring it; returns the probe."""
    x, targets = _data()
    tasks = [Regression(t) for t in NAMES]
    probe = TaskAffinity(every=1)
    Trainer(model, tasks, create_balancer(balancer, tasks), optimizer,
            MultiSourceLoader({"t": TensorSource(x, targets)}, batch_size=len(x), seed=0), steps=1,
            evaluation=Evaluation(None, every=1), progress=False, callbacks=[probe]).fit()
    return probe


def _hard_sharing() -> HardSharing:
    torch.manual_seed(0)
    tasks = [Regression(t) for t in NAMES]
    return HardSharing(nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 6), nn.Tanh()), tasks, feature_dim=6)


@pytest.mark.parametrize("balancer", ["ew", "pcgrad", "mgda", "upgrad", "gradnorm"])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_the_numbers_are_the_steps_gradients_whatever_the_balancer(balancer: str, optimizer: str) -> None:
    """Gradient methods run the heads on detached copies of the shared features; the probe's
    gradients must still reach the shared parameters (they were all zero)."""
    model = _hard_sharing()
    x, targets = _data()
    cosine, affinity = _hand(copy.deepcopy(model), x, targets, [0.05] * 4)
    opt = (torch.optim.SGD(model.parameters(), lr=0.05) if optimizer == "sgd"
           else torch.optim.Adam(model.parameters(), lr=0.05))
    measured = {m.name: m.values for m in _probe(model, balancer, opt).matrices()}
    off = ~np.eye(3, dtype=bool)
    np.testing.assert_allclose(measured["gradient_cosine"][off], cosine[off], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(measured["tag_affinity"], affinity, rtol=1e-4, atol=1e-6)
    assert np.abs(measured["tag_affinity"]).max() > 1e-3  # not the all-zero matrix


def test_each_shared_parameter_steps_at_its_own_groups_rate() -> None:
    """Cross-stitch units are shared parameters in their own optimizer group (``alpha_lr_scale``):
    the lookahead moves them at that group's rate, not the first group's."""
    torch.manual_seed(0)
    tasks = [Regression(t) for t in NAMES]
    model = CrossStitch(nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 5), nn.Tanh()), tasks, feature_dim=5)
    unit_ids = {id(p) for p in model.units.parameters()}
    groups = [{"params": [p for p in model.parameters() if id(p) not in unit_ids], "lr": 0.01},
              {"params": list(model.units.parameters()), "lr": 1.0}]
    lrs = [1.0 if id(p) in unit_ids else 0.01 for p in model.shared_parameters() if p.requires_grad]
    x, targets = _data()
    _, affinity = _hand(copy.deepcopy(model), x, targets, lrs)
    measured = {m.name: m.values for m in _probe(model, "ew", torch.optim.SGD(groups)).matrices()}
    np.testing.assert_allclose(measured["tag_affinity"], affinity, rtol=1e-4, atol=1e-6)


def test_a_task_whose_gradient_is_zero_relates_to_nothing_that_step() -> None:
    """A task that does not reach the shared parameters (here: its head's weight is zero and
    frozen, as an adversary's reversal at strength 0) has no cosine or norm ratio; they stay
    undefined (NaN) rather than 0 and 1e30, and the other pair is measured as usual."""
    model = _hard_sharing()
    head = model.heads["c"]
    nn.init.zeros_(head.weight)
    head.weight.requires_grad_(False)
    probe = _probe(model, "ew", torch.optim.SGD(model.parameters(), lr=0.05))
    measured = {m.name: m.values for m in probe.matrices()}
    for name in ("gradient_cosine", "gradient_conflict", "gradient_norm_ratio"):
        assert np.isnan(measured[name][[0, 1, 2, 2], [2, 2, 0, 1]]).all(), name
        assert np.isfinite(measured[name][0, 1]), name


def test_the_representation_level_leaves_training_as_it_was_with_dropout_and_batch_norm() -> None:
    """At the representation level (heads on the graph) the probe runs the shared part once
    more: that forward must neither draw from the dropout stream nor move the batch-norm
    statistics (it did both, so a run with the probe trained differently)."""

    def run(probe: bool) -> list[torch.Tensor]:
        torch.manual_seed(0)
        tasks = [Regression(t) for t in NAMES]
        encoder = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.3))
        model = HardSharing(encoder, tasks, feature_dim=8)
        x, targets = _data()
        callbacks = [TaskAffinity(every=2, lookahead=False, level="representation")] if probe else []
        Trainer(model, tasks, create_balancer("ew", tasks), torch.optim.Adam(model.parameters(), lr=0.01),
                MultiSourceLoader({"t": TensorSource(x, targets)}, batch_size=16, seed=0), steps=6,
                evaluation=Evaluation(None, every=6), progress=False, callbacks=callbacks).fit()
        return [t.detach().clone() for t in (*model.parameters(), *model.buffers())]

    for with_probe, without in zip(run(True), run(False)):
        assert torch.equal(with_probe, without)
