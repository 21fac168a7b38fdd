"""FAMO against Algorithm 1 by hand, torch.optim.Adam on the logits, and torchjd's FAMO."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torchjd.scalarization import FAMO as TorchJDFAMO

from manytask.balancing import FAMO, create_balancer
from manytask.tasks import Regression

TASKS = [Regression("a"), Regression("b"), Regression("c")]
ALL = torch.tensor([True, True, True])


def trajectory(seed: int, steps: int, dtype: torch.dtype = torch.float64) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(loss before, loss after) per step, ill-conditioned across tasks (1e-3 .. 1e3)."""
    g = torch.Generator().manual_seed(seed)
    scale = torch.tensor([1e-3, 1.0, 1e3], dtype=dtype)
    return [(scale * (0.5 + torch.rand(3, generator=g, dtype=dtype)),
             scale * (0.5 + torch.rand(3, generator=g, dtype=dtype))) for _ in range(steps)]


def softmax_vjp(logits: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """J_softmax^T delta by autograd (not the closed form the class uses)."""
    xi = logits.detach().clone().requires_grad_()
    return torch.autograd.grad(torch.softmax(xi, 0), xi, grad_outputs=delta)[0]


def test_weights_give_the_gradient_of_c_sum_z_log_l() -> None:
    balancer = FAMO(TASKS).double()
    with torch.no_grad():
        balancer.logits.copy_(torch.tensor([0.3, -0.2, 0.5]))
    theta = torch.tensor([0.7, 1.3, 2.0], dtype=torch.float64, requires_grad=True)
    losses = theta ** 2
    total, weights = balancer.total(losses, ALL, step=0)
    (ours,) = torch.autograd.grad(total, theta)
    z = torch.softmax(torch.tensor([0.3, -0.2, 0.5], dtype=torch.float64), 0)
    shifted = losses.detach() + 1e-8
    c = 1 / (z / shifted).sum()
    (expected,) = torch.autograd.grad((c * z * torch.log(theta ** 2 + 1e-8)).sum(), theta)
    torch.testing.assert_close(ours, expected)
    assert weights.sum().item() == pytest.approx(1.0)  # a convex combination of the task gradients


def test_first_step_weights_are_proportional_to_one_over_the_loss() -> None:
    _, weights = FAMO(TASKS).double().total(torch.tensor([1.0, 2.0, 4.0], dtype=torch.float64), ALL, step=0)
    torch.testing.assert_close(weights, torch.tensor([4 / 7, 2 / 7, 1 / 7], dtype=torch.float64))


def test_sgd_is_algorithm_1_by_hand() -> None:
    """xi <- xi - beta (J_z^T delta + gamma xi), in numpy."""
    beta, gamma = 0.1, 0.01
    balancer = FAMO(TASKS, lr=beta, weight_decay=gamma, optimizer="sgd").double()
    xi = np.zeros(3)
    for old, new in trajectory(0, 6):
        balancer.total(old, ALL, step=0)
        balancer.on_after_optimizer_step(old, ALL, step=0, recompute=lambda new=new: new)
        z = np.exp(xi) / np.exp(xi).sum()
        jacobian = np.diag(z) - np.outer(z, z)
        delta = np.log(old.numpy() + 1e-8) - np.log(new.numpy() + 1e-8)
        xi = xi - beta * (jacobian.T @ delta + gamma * xi)
    np.testing.assert_allclose(balancer.logits.numpy(), xi, rtol=1e-10, atol=1e-14)


def test_adam_is_torch_adam_on_the_logits() -> None:
    balancer = FAMO(TASKS, lr=0.05, weight_decay=1e-2).double()
    xi = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    adam = torch.optim.Adam([xi], lr=0.05, weight_decay=1e-2)
    for old, new in trajectory(1, 8):
        balancer.on_after_optimizer_step(old, ALL, step=0, recompute=lambda new=new: new)
        xi.grad = softmax_vjp(xi, torch.log(old + 1e-8) - torch.log(new + 1e-8))
        adam.step()
    torch.testing.assert_close(balancer.logits, xi.detach(), rtol=1e-12, atol=1e-14)
    assert balancer.steps.tolist() == [8, 8, 8]


def test_matches_torchjd_famo_over_several_steps() -> None:
    ours, theirs = FAMO(TASKS), TorchJDFAMO(3)
    for old, new in trajectory(2, 6, torch.float32):
        values = old.clone().requires_grad_()
        (expected,) = torch.autograd.grad(theirs(values), values)
        _, weights = ours.total(old, ALL, step=0)
        torch.testing.assert_close(weights, expected)
        theirs.update(new)
        ours.on_after_optimizer_step(old, ALL, step=0, recompute=lambda new=new: new)
        torch.testing.assert_close(ours.logits, theirs._w.detach())


def test_a_task_that_improves_more_loses_weight() -> None:
    balancer = FAMO(TASKS)
    old = torch.tensor([1.0, 1.0, 1.0])
    balancer.on_after_optimizer_step(old, ALL, step=0, recompute=lambda: torch.tensor([0.5, 1.0, 1.0]))
    _, weights = balancer.total(old, ALL, step=1)
    assert weights[0] < weights[1] == weights[2]


class Recompute:
    def __init__(self, value: torch.Tensor) -> None:
        self.value, self.calls = value, 0

    def __call__(self) -> torch.Tensor:
        self.calls += 1
        return self.value


def test_absent_task_keeps_logit_and_moments_and_the_softmax_skips_it() -> None:
    balancer = FAMO(TASKS).double()
    for old, new in trajectory(3, 3):
        balancer.on_after_optimizer_step(old, ALL, step=0, recompute=lambda new=new: new)
    frozen = {k: v[2].clone() for k, v in balancer.state_dict().items()}
    present = torch.tensor([True, True, False])
    for old, new in trajectory(4, 4):
        old[2] = new[2] = 0.0  # an absent task's loss is 0: it must never be read
        _, weights = balancer.total(old, present, step=0)
        z = torch.softmax(balancer.logits[:2], 0)
        expected = (z / (old[:2] + 1e-8)) / (z / (old[:2] + 1e-8)).sum()
        torch.testing.assert_close(weights, torch.cat([expected, torch.zeros(1, dtype=torch.float64)]))
        balancer.on_after_optimizer_step(old, present, step=0, recompute=lambda new=new: new)
    for key, value in balancer.state_dict().items():
        assert torch.equal(value[2], frozen[key]), key
    assert balancer.steps.tolist() == [7, 7, 3]


def test_recompute_runs_only_with_two_or_more_present_tasks() -> None:
    balancer = FAMO(TASKS, weight_decay=0.1).double()
    with torch.no_grad():
        balancer.logits.fill_(1.0)
    recompute = Recompute(torch.ones(3, dtype=torch.float64))
    balancer.on_after_optimizer_step(torch.ones(3), torch.tensor([False, False, False]), step=0, recompute=recompute)
    assert recompute.calls == 0 and balancer.steps.tolist() == [0, 0, 0]
    balancer.on_after_optimizer_step(torch.ones(3), torch.tensor([False, True, False]), step=0, recompute=recompute)
    assert recompute.calls == 0
    # one present task: the softmax term vanishes; Adam's first step on grad = gamma * xi moves it by -lr
    assert balancer.logits.tolist() == pytest.approx([1.0, 1.0 - 0.025, 1.0])
    balancer.on_after_optimizer_step(torch.ones(3), torch.tensor([True, True, False]), step=0, recompute=recompute)
    assert recompute.calls == 1


def test_a_bad_recomputed_loss_raises_and_changes_nothing() -> None:
    balancer = FAMO(TASKS)
    before = {k: v.clone() for k, v in balancer.state_dict().items()}
    with pytest.raises(ValueError, match="recomputed loss of task 'b'"):
        balancer.on_after_optimizer_step(torch.ones(3), ALL, step=0,
                                         recompute=lambda: torch.tensor([1.0, math.nan, 1.0]))
    with pytest.raises(ValueError, match="task 'c'"):
        balancer.on_after_optimizer_step(torch.ones(3), ALL, step=0, recompute=lambda: torch.tensor([1.0, 1.0, -1.0]))
    for key, value in balancer.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_min_losses_shift_the_losses_and_a_loss_below_its_bound_raises() -> None:
    balancer = create_balancer("famo", TASKS, min_losses={"a": 0.5, "b": 0.0, "c": 1.0})
    _, weights = balancer.total(torch.tensor([1.0, 1.0, 2.0], dtype=torch.float64), ALL, step=0)
    torch.testing.assert_close(weights, torch.tensor([0.4, 0.2, 0.2], dtype=torch.float64) / 0.8, rtol=1e-6, atol=0)
    with pytest.raises(ValueError, match="task 'c' .* lower min_losses"):
        balancer.total(torch.tensor([1.0, 1.0, 0.5]), ALL, step=0)


def test_the_logits_step_ignores_the_scale_of_a_loss() -> None:
    logits = []
    for c in (1.0, 1e3):
        balancer = FAMO(TASKS, eps=0.0).double()
        for old, new in trajectory(5, 4):
            scale = torch.tensor([1.0, c, 1.0], dtype=torch.float64)
            balancer.on_after_optimizer_step(old * scale, ALL, step=0, recompute=lambda new=new, s=scale: new * s)
        logits.append(balancer.logits.clone())
    torch.testing.assert_close(logits[1], logits[0], rtol=1e-9, atol=1e-12)


def test_reset_and_bad_options() -> None:
    balancer = FAMO(TASKS)
    for old, new in trajectory(6, 2, torch.float32):
        balancer.on_after_optimizer_step(old, ALL, step=0, recompute=lambda new=new: new)
    balancer.reset()
    assert all(not v.any() for v in balancer.state_dict().values())
    with pytest.raises(ValueError, match="'lr' parameter of FAMO"):
        FAMO(TASKS, lr=-1.0)
    with pytest.raises(ValueError, match="'optimizer' parameter of FAMO"):
        FAMO(TASKS, optimizer="rmsprop")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'min_losses' parameter of FAMO"):
        FAMO(TASKS, min_losses=[0.0])
