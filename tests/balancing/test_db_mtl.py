"""DB-MTL against LibMTL's DB_MTL update written out in numpy, the scale invariance of log losses,
the positivity check, absent tasks and the lazily created average through state_dict / reset."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from manytask.balancing import DBMTL, create_balancer
from manytask.models import HardSharing
from manytask.tasks import Regression
from manytask.training import BackwardEngine

TASKS = [Regression("a"), Regression("b"), Regression("c")]
ALL = torch.ones(3, dtype=torch.bool)


def trajectory(seed: int, steps: int, p: int = 6) -> list[tuple[np.ndarray, np.ndarray]]:
    """(Jacobian of the losses [3, p], losses [3]) per step, losses 1e-3 .. 1e3."""
    rng = np.random.default_rng(seed)
    scales = np.array([1e-3, 1.0, 1e3])
    return [(rng.normal(size=(3, p)) * scales[:, None], scales * rng.uniform(0.5, 2.0, size=3)) for _ in range(steps)]


def libmtl(steps: list[tuple[np.ndarray, np.ndarray]], beta: float = 0.9, beta_sigma: float = 0.0,
           eps: float = 0.0) -> list[np.ndarray]:
    """LibMTL DB_MTL.backward: grad_buffer = g + β/step^σ (grad_buffer - g), g = ∇log(L + eps);
    α = max ||buffer|| / ||buffer_i||; update Σ α_i buffer_i (their +1e-8 in α left out)."""
    buffer, out = np.zeros_like(steps[0][0]), []
    for step, (jacobian, losses) in enumerate(steps, start=1):
        g = jacobian / (losses + eps)[:, None]
        buffer = g + beta / step**beta_sigma * (buffer - g)
        norms = np.linalg.norm(buffer, axis=1)
        out.append((norms.max() / norms) @ buffer)
    return out


def run(balancer: DBMTL, steps: list[tuple[np.ndarray, np.ndarray]], present: torch.Tensor = ALL) -> list[torch.Tensor]:
    keep = present.numpy()
    return [balancer.aggregate(torch.tensor(j[keep]), torch.tensor(np.where(keep, losses, 0.0)), present, step=s)
            for s, (j, losses) in enumerate(steps)]


@pytest.mark.parametrize("options", [{}, {"beta": 0.5, "beta_sigma": 0.5}, {"beta": 0.0}, {"eps": 1e-8}])
def test_updates_equal_libmtl(options: dict[str, float]) -> None:
    steps = trajectory(0, 6)
    for ours, expected in zip(run(DBMTL(TASKS, **options).double(), steps), libmtl(steps, **options)):
        np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-12)


def test_every_task_contributes_the_largest_norm_and_scaling_a_loss_changes_nothing() -> None:
    steps = trajectory(1, 4)
    base = DBMTL(TASKS).double()
    scaled = DBMTL(TASKS).double()
    c = np.array([1e-4, 1.0, 1e4])
    for jacobian, losses in steps:  # loss c L has gradient c ∇L: the same ∇log L
        u = base.aggregate(torch.tensor(jacobian), torch.tensor(losses), ALL, step=0)
        v = scaled.aggregate(torch.tensor(c[:, None] * jacobian), torch.tensor(c * losses), ALL, step=0)
        np.testing.assert_allclose(v.numpy(), u.numpy(), rtol=1e-12, atol=1e-15)
    norms = base.tracked.norm(dim=1)  # type: ignore[union-attr]
    alpha = norms.max() / norms
    assert torch.allclose((alpha[:, None] * base.tracked).norm(dim=1), norms.max())  # type: ignore[operator]


def test_a_task_with_a_zero_average_contributes_nothing() -> None:
    jacobian = np.array([[1.0, 2.0], [0.0, 0.0], [0.0, 3.0]])
    out = DBMTL(TASKS, beta=0.0).double().aggregate(torch.tensor(jacobian), torch.ones(3, dtype=torch.float64), ALL,
                                                    step=0)
    np.testing.assert_allclose(out.numpy(), np.array([1.0, 2.0]) * 3 / np.sqrt(5) + [0.0, 3.0], rtol=1e-12)  # max norm 3


def test_non_positive_losses_are_refused_before_any_state_changes() -> None:
    balancer = DBMTL(TASKS).double()
    jacobian = torch.ones(3, 4, dtype=torch.float64)
    with pytest.raises(ValueError, match="DB-MTL takes the logarithm.*task 'b' has loss 0.0.*eps"):
        balancer.aggregate(jacobian, torch.tensor([1.0, 0.0, 2.0], dtype=torch.float64), ALL, step=0)
    assert balancer.tracked is None and balancer.counts.tolist() == [0, 0, 0]
    with_eps = DBMTL(TASKS, eps=1e-8).double()
    with_eps.aggregate(jacobian, torch.tensor([1.0, 0.0, 2.0], dtype=torch.float64), ALL, step=0)
    with pytest.raises(ValueError, match=r"DB-MTL \(eps=1e-08: loss \+ eps\).*task 'b'"):
        with_eps.aggregate(jacobian, torch.tensor([1.0, -1.0, 2.0], dtype=torch.float64), ALL, step=1)


def test_absent_task_keeps_its_average_and_count_and_state_round_trips() -> None:
    steps = trajectory(2, 6)
    balancer = DBMTL(TASKS, beta=0.5, beta_sigma=0.5).double()
    fresh_state = {k: v.clone() for k, v in balancer.state_dict().items()}
    assert "tracked" not in fresh_state
    run(balancer, steps[:2])
    kept = balancer.tracked[2].clone()  # type: ignore[index]
    present = torch.tensor([True, True, False])
    run(balancer, steps[2:4], present)
    assert torch.equal(balancer.tracked[2], kept) and balancer.counts.tolist() == [4, 4, 2]  # type: ignore[index]

    resumed = DBMTL(TASKS, beta=0.5, beta_sigma=0.5).double()
    resumed.load_state_dict(balancer.state_dict())
    for a, b in zip(run(balancer, steps[4:]), run(resumed, steps[4:])):
        assert torch.equal(a, b)
    balancer.reset()
    assert balancer.tracked is None
    torch.testing.assert_close(balancer.state_dict(), fresh_state, rtol=0, atol=0)


def test_through_the_engine_rows_are_the_gradients_of_the_log_losses() -> None:
    """One step with β = 0: the trunk gets Σ_i (max_j n_j / n_i) ∇log L_i with n_i = ||∇log L_i||,
    from per-task autograd gradients; the heads get their plain ∇L_i."""
    torch.manual_seed(0)
    model = HardSharing(nn.Sequential(nn.Linear(4, 5), nn.Tanh()), TASKS, feature_dim=5).double()
    x = torch.randn(10, 4, dtype=torch.float64)
    y = torch.randn(10, 3, dtype=torch.float64) * torch.tensor([1e-2, 1.0, 1e2], dtype=torch.float64)
    out = model(x, list(model.task_names))
    losses = [((out[n].squeeze(1) - y[:, i]) ** 2).mean() for i, n in enumerate(model.task_names)]
    trunk = list(model.encoder.parameters())
    rows = torch.stack([torch.cat([g.flatten() for g in torch.autograd.grad(loss.log(), trunk, retain_graph=True)])
                        for loss in losses])
    norms = rows.norm(dim=1)
    expected = (norms.max() / norms) @ rows
    head = model.heads["b"]
    assert isinstance(head, nn.Linear)
    head_b = torch.autograd.grad(losses[1], head.weight)[0]

    engine = BackwardEngine(model, create_balancer("db-mtl", TASKS, beta=0.0).double())
    engine.begin_step()
    out = engine.forward(x, list(model.task_names))
    sums = torch.stack([((out[n].squeeze(1) - y[:, i]) ** 2).sum() for i, n in enumerate(model.task_names)])
    engine.backward(sums, torch.full((3,), 10.0, dtype=torch.float64), step=0)
    torch.testing.assert_close(torch.cat([p.grad.flatten() for p in trunk if p.grad is not None]), expected)
    torch.testing.assert_close(head.weight.grad, head_b)


@pytest.mark.parametrize("option, value", [("beta", 1.0), ("beta", -0.1), ("beta_sigma", -1.0), ("eps", -1e-8)])
def test_invalid_options_are_refused(option: str, value: float) -> None:
    with pytest.raises(ValueError, match=f"'{option}' parameter of DBMTL"):
        DBMTL(TASKS, **{option: value})  # type: ignore[arg-type]
