"""DSelect-k: the smooth step against its cubic and its limits, selectors as products over the
experts' bits, settled selectors picking single experts, and MMoE with the gate."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from manytask.models import MLP, DSelectK, HardSharing, MMoE, smooth_step
from manytask.tasks import Regression


def test_smooth_step_is_the_cubic_between_flat_ends() -> None:
    gamma = 2.0
    t = torch.linspace(-2.0, 2.0, 81, dtype=torch.float64, requires_grad=True)
    s = smooth_step(t, gamma)
    inside = t.abs() < gamma / 2
    expected = -2 / gamma**3 * t**3 + 3 / (2 * gamma) * t + 0.5
    torch.testing.assert_close(s[inside], expected[inside])
    assert torch.all(s[t <= -1] == 0) and torch.all(s[t >= 1] == 1)
    slope = torch.autograd.grad(s.sum(), t)[0]
    assert slope[t.detach().abs() >= 1].abs().max() == 0  # flat outside; continuous derivative at ±γ/2
    assert smooth_step(torch.tensor([-1.0 + 1e-6, 1.0 - 1e-6]), gamma).tolist() == pytest.approx([0.0, 1.0], abs=1e-5)


def test_a_selector_is_the_product_over_the_experts_bits() -> None:
    gate = DSelectK(nn.Identity(), num_experts=8, k=1, gamma=1.0)
    z = torch.tensor([[[0.1, -0.3, 0.2]]], dtype=torch.float32)
    s = smooth_step(z[0, 0], 1.0)
    by_hand = torch.tensor([
        (s[0] if e & 1 else 1 - s[0]) * (s[1] if e & 2 else 1 - s[1]) * (s[2] if e & 4 else 1 - s[2]) for e in range(8)])
    torch.testing.assert_close(gate.selectors(z)[0, 0], by_hand)
    assert gate.selectors(z).sum().item() == pytest.approx(1.0)


def test_settled_selectors_pick_at_most_k_experts() -> None:
    gate = DSelectK(nn.Identity(), num_experts=4, k=2, gamma=1.0)
    for signs in itertools.product([-5.0, 5.0], repeat=4):  # every z outside the ramp
        numbers = torch.tensor([[*signs, 0.3, -0.1]])
        weights = gate(numbers)[0]
        picked = [int(signs[0] > 0) + 2 * int(signs[1] > 0), int(signs[2] > 0) + 2 * int(signs[3] > 0)]
        alpha = torch.softmax(torch.tensor([0.3, -0.1]), 0)
        expected = torch.zeros(4)
        for i, e in enumerate(picked):
            expected[e] += alpha[i]
        torch.testing.assert_close(weights, expected)
        assert int((weights > 0).sum()) <= 2


def test_bad_options_are_named() -> None:
    with pytest.raises(ValueError, match="needs a power of 2 experts"):
        DSelectK(nn.Identity(), num_experts=6, k=2)
    with pytest.raises(ValueError, match="k >= 1 and gamma > 0"):
        DSelectK(nn.Identity(), num_experts=4, k=0)
    with pytest.raises(ValueError, match="gate must be 'softmax' or 'dselect'"):
        MMoE(MLP(4, (8,)), [Regression("a")], gate="topk")


def test_mmoe_with_a_settled_one_expert_gate_is_that_experts_hard_sharing() -> None:
    torch.manual_seed(0)
    tasks = [Regression("a"), Regression("b")]
    model = MMoE(MLP(4, (6,)), tasks, num_experts=4, gate="dselect", k=1)
    with torch.no_grad():  # z = (+big, -big): expert 1 (bits 1, 0) for every input
        for name in ("a", "b"):
            linear = model.gates[name].summary[1]
            linear.weight.zero_()
            linear.bias.copy_(torch.tensor([50.0, -50.0, 0.0]))
    hard = HardSharing(model.experts["expert1"], tasks)
    hard.heads.load_state_dict(model.heads.state_dict())
    x = torch.randn(5, 4)
    for name, value in model(x).items():
        torch.testing.assert_close(value, hard(x)[name])
    assert model.expert_utilisation()[:, 1].tolist() == pytest.approx([1.0, 1.0])
