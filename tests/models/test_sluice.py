"""Sluice networks: α over subspaces and β over stages against a hand computation, one subspace
as a cross-stitch network, the orthogonality constraint against its formula and through the
backward engine (it reads this step's activations)."""

from __future__ import annotations

import pytest
import torch

from manytask.balancing import create_balancer
from manytask.data import MultiSourceLoader, TensorSource
from manytask.models import MLP, CrossStitch, Sluice
from manytask.tasks import Regression
from manytask.training import BackwardEngine, Trainer, build_optimizer

from .helpers import assert_old_layout_loads, assert_rows_are_each_tasks_own

TASKS = [Regression("a"), Regression("b"), Regression("c", num_outputs=2)]


def test_alpha_mixes_subspaces_and_beta_mixes_stages() -> None:
    torch.manual_seed(0)
    model = Sluice(MLP(5, (6, 6)), TASKS, subspaces=2).double()
    with torch.no_grad():
        for alpha in model.alphas:
            alpha.copy_(torch.randn(6, 6))
        for block in model.rows.values():  # the last unit: the rows of each task's two subspaces
            block.copy_(torch.randn(2, 6))
        model.betas["b"].copy_(torch.tensor([0.3, 0.7], dtype=torch.float64))
    x = torch.randn(4, 5, dtype=torch.float64)
    xs, per_stage = [x] * 3, []
    for i, alpha in enumerate([model.alphas[0], torch.cat([model.rows[t.name] for t in TASKS])]):
        outs = [model.columns[t.name].stages[i](h) for t, h in zip(TASKS, xs)]
        parts = [half for o in outs for half in (o[:, :3], o[:, 3:])]  # (task, subspace) order
        mixed = [sum(alpha[u, v] * parts[v] for v in range(6)) for u in range(6)]
        xs = [torch.cat([mixed[2 * t], mixed[2 * t + 1]], dim=1) for t in range(3)]
        per_stage.append(xs)
    out = model(x)
    torch.testing.assert_close(out["a"], model.heads["a"](per_stage[1][0]), rtol=1e-12, atol=1e-12)  # β on the top
    beta = model.betas["b"]
    expected_b = model.heads["b"](beta[0] * per_stage[0][1] + beta[1] * per_stage[1][1])
    torch.testing.assert_close(out["b"], expected_b, rtol=1e-12, atol=1e-12)


def test_one_subspace_with_beta_on_the_top_is_cross_stitch() -> None:
    torch.manual_seed(0)
    sluice = Sluice(MLP(5, (6, 4)), TASKS, subspaces=1, init=(0.8, 0.2))
    torch.manual_seed(0)
    stitched = CrossStitch(MLP(5, (6, 4)), TASKS, init=(0.8, 0.2))
    x = torch.randn(4, 5)
    for name, value in sluice(x).items():
        torch.testing.assert_close(value, stitched(x)[name])


def test_the_last_units_rows_are_the_tasks_own() -> None:
    """The rows of task t's subspaces in the last α unit feed head t alone (through β_t): task
    t's parameter, not a shared one; an old checkpoint with the unit as one matrix loads."""
    torch.manual_seed(0)
    model = Sluice(MLP(5, (6, 6)), TASKS, subspaces=2)
    assert_rows_are_each_tasks_own(model, model.rows, torch.randn(4, 5))
    with torch.no_grad():
        for block in model.rows.values():
            block.add_(torch.randn(2, 6))
    before = torch.cat([model.rows[t.name].detach() for t in TASKS])  # the layout before: one matrix
    assert_old_layout_loads(model, Sluice(MLP(5, (6, 6)), TASKS, subspaces=2), "rows.", "alphas.1", before,
                            torch.randn(3, 5))


def test_orthogonality_is_the_overlap_of_each_layers_subspaces() -> None:
    torch.manual_seed(0)
    model = Sluice(MLP(5, (6, 4)), TASKS, subspaces=2, orthogonality=0.5).double()
    x = torch.randn(7, 5, dtype=torch.float64)
    model(x)
    expected = 0.0
    xs = [x] * 3
    for i, alpha in enumerate([model.alphas[0], torch.cat([model.rows[t.name] for t in TASKS])]):
        outs = [model.columns[t.name].stages[i](h) for t, h in zip(TASKS, xs)]
        half = outs[0].shape[1] // 2
        expected += sum(float((o[:, :half].T @ o[:, half:]).pow(2).sum().detach()) for o in outs)
        parts = torch.stack([p for o in outs for p in (o[:, :half], o[:, half:])])
        mixed = (alpha @ parts.flatten(1)).view_as(parts)
        xs = [torch.cat([mixed[2 * t], mixed[2 * t + 1]], dim=1) for t in range(3)]
    assert model.penalty().item() == pytest.approx(0.5 * expected, rel=1e-10)
    assert model.penalty() is None  # consumed: one constraint per forward
    model.eval()
    model(x)
    assert model.penalty() is None  # evaluation adds no constraint
    with pytest.raises(ValueError, match="not divisible by it"):
        Sluice(MLP(5, (6, 5)), TASKS, subspaces=2)


@pytest.mark.parametrize("balancer", ["ew", "mgda"])
def test_the_constraint_on_activations_goes_through_the_engine(balancer: str) -> None:
    """The penalty reads this step's activations, so the engine backpropagates it before the losses
    free their graph; the shared parameters get the gradient of Σ w_t L_t + penalty, each task's
    own parameters (heads, β) that of its plain loss + penalty (docs/balancing.md)."""
    torch.manual_seed(0)
    model = Sluice(MLP(5, (6, 4)), TASKS, orthogonality=0.1).double()
    engine = BackwardEngine(model, create_balancer(balancer, TASKS))
    x, y = torch.randn(8, 5, dtype=torch.float64), torch.randn(8, 4, dtype=torch.float64)

    def sums(out: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.stack([(out["a"][:, 0] - y[:, 0]).pow(2).sum(), (out["b"][:, 0] - y[:, 1]).pow(2).sum(),
                            (out["c"] - y[:, 2:]).pow(2).sum()])

    engine.begin_step()
    counts = torch.tensor([8.0, 8.0, 16.0])
    _, weights = engine.backward(sums(engine.forward(x, ["a", "b", "c"])), counts, step=0)
    ours = [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in model.parameters()]
    model.zero_grad()
    out = model(x)
    penalty = model.penalty()
    assert penalty is not None
    shared = {id(p) for p in model.shared_parameters()}
    plain = (sums(out) / counts.double()).sum() + penalty
    weighted = (weights.double() * sums(out) / counts.double()).sum() + penalty
    for p, a in zip(model.parameters(), ours):
        (b,) = torch.autograd.grad(weighted if id(p) in shared else plain, [p], retain_graph=True,
                                   allow_unused=True, materialize_grads=True)
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def test_trains_with_adam() -> None:
    torch.manual_seed(0)
    x = torch.randn(64, 5)
    targets = {"a": x[:, 0].clone(), "b": x[:, 1].clone(), "c": x[:, 2:4].clone()}
    model = Sluice(MLP(5, (6, 4)), TASKS, orthogonality=0.01)
    bal = create_balancer("ew", TASKS)
    trainer = Trainer(model, TASKS, bal, build_optimizer(model, bal, "adam", 1e-2),
                      MultiSourceLoader({"train": TensorSource(x, targets)}, 16, seed=0), steps=6, progress=False)
    before = [a.detach().clone() for a in model.alphas]
    trainer.fit()
    assert all(not torch.equal(a, b) for a, b in zip(model.alphas, before))
    assert all(torch.isfinite(p).all() for p in model.parameters())
