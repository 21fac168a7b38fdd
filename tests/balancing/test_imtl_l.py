"""IMTL-L against its objective sum_i (e^{s_i} L_i - s_i), by hand and against torchjd's IMTLL."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torchjd.scalarization import IMTLL as TorchJDIMTLL

from manytask.balancing import IMTLL, create_balancer
from manytask.tasks import Regression

TASKS = [Regression("a"), Regression("b"), Regression("c")]
ALL = torch.tensor([True, True, True])


def _set(balancer: IMTLL, values: list[float]) -> None:
    with torch.no_grad():
        for p, v in zip(balancer.log_scales, values):
            p.fill_(v)


def test_objective_and_gradients_by_hand() -> None:
    balancer = IMTLL(TASKS).double()
    s = [math.log(2.0), 0.0, -1.0]
    _set(balancer, s)
    theta = nn.Parameter(torch.tensor(1.5, dtype=torch.float64))
    losses = torch.stack([theta, 2 * theta, theta ** 2])  # dL/dtheta = 1, 2, 2 theta
    total, weights = balancer.total(losses, ALL, step=0)
    total.backward()
    L = [1.5, 3.0, 2.25]
    assert total.item() == pytest.approx(sum(math.exp(si) * li - si for si, li in zip(s, L)))
    torch.testing.assert_close(weights.detach(), torch.tensor([2.0, 1.0, math.exp(-1)], dtype=torch.float64))
    assert theta.grad.item() == pytest.approx(2.0 * 1 + 1.0 * 2 + math.exp(-1) * 3.0)
    for p, si, li in zip(balancer.log_scales, s, L):  # d/ds (e^s L - s) = e^s L - 1
        assert p.grad.item() == pytest.approx(math.exp(si) * li - 1)


def test_matches_torchjd_imtll_when_every_task_is_present() -> None:
    s = torch.tensor([0.3, -0.7, 1.1])
    ours, theirs = IMTLL(TASKS), TorchJDIMTLL(3)
    _set(ours, s.tolist())
    with torch.no_grad():
        theirs.log_scale.copy_(s)
    base = torch.tensor([0.5, 2.0, 30.0])
    l1, l2 = base.clone().requires_grad_(), base.clone().requires_grad_()
    total, _ = ours.total(l1, ALL, step=0)
    expected = theirs(l2)
    total.backward()
    expected.backward()
    torch.testing.assert_close(total, expected)
    torch.testing.assert_close(l1.grad, l2.grad)
    torch.testing.assert_close(torch.stack([p.grad for p in ours.log_scales]), theirs.log_scale.grad)


def test_scales_converge_to_equal_scaled_losses() -> None:
    """Gradient descent on s with fixed losses: e^{s_i} L_i -> 1 for every task (s_i -> -log L_i)."""
    balancer = IMTLL(TASKS)
    optimizer = torch.optim.SGD(balancer.parameters(), lr=0.05)
    losses = torch.tensor([0.5, 4.0, 20.0])
    for _ in range(400):
        optimizer.zero_grad()
        balancer.total(losses, ALL, step=0)[0].backward()
        optimizer.step()
    scaled = torch.stack([torch.exp(p.detach()) for p in balancer.log_scales]) * losses
    torch.testing.assert_close(scaled, torch.ones(3), atol=1e-3, rtol=0)


def test_absent_task_gets_no_gradient_and_adam_leaves_it() -> None:
    balancer = IMTLL(TASKS)
    optimizer = torch.optim.Adam(balancer.parameters(), lr=0.1)
    present = ALL
    for step in range(6):
        optimizer.zero_grad(set_to_none=True)
        total, weights = balancer.total(torch.tensor([1.0, 2.0, 3.0]), present, step=step)
        total.backward()
        optimizer.step()
        if step == 2:
            present = torch.tensor([True, False, True])
            frozen = balancer.log_scales[1].detach().clone()
    assert weights[1] == 0
    assert balancer.log_scales[1].grad is None
    assert torch.equal(balancer.log_scales[1].detach(), frozen)
    assert balancer.log_scales[0].detach() != frozen  # the others kept learning


def test_reset_and_init() -> None:
    balancer = create_balancer("imtl-l", TASKS, init=0.5)
    _set(balancer, [1.0, 2.0, 3.0])  # type: ignore[arg-type]
    balancer.reset()
    assert [p.item() for p in balancer.log_scales] == [0.5, 0.5, 0.5]  # type: ignore[union-attr]
