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


def test_the_entropy_regulariser_is_lambda_times_the_selectors_entropy() -> None:
    """Against the entropy written out with numpy on the selectors' distributions: the mean over
    the examples of Σ_i H(r(z^(i))); exact zeros (settled bits) count 0, not NaN."""
    import numpy as np

    gate = DSelectK(nn.Identity(), num_experts=4, k=2, gamma=1.0, entropy=0.01)
    numbers = torch.tensor([[0.1, -0.2, 5.0, 0.3, 0.0, 0.0], [-0.4, 0.2, 0.05, -5.0, 1.0, -1.0]], dtype=torch.float64)
    gate(numbers)
    r = gate.selectors(numbers[:, :4].unflatten(1, (2, 2))).numpy()  # [B, k, n]
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.where(r > 0, r * np.log(r), 0.0).sum(axis=(1, 2))
    assert gate.regulariser is not None and gate.regulariser.item() == pytest.approx(0.01 * h.mean(), rel=1e-10)
    grad = torch.autograd.grad(gate(numbers.requires_grad_()).sum() + gate.regulariser, numbers)[0]  # type: ignore[operator]
    assert bool(torch.isfinite(grad).all())  # settled bits: finite, not NaN (xlogy at 0)
    gate.eval()
    gate(numbers)
    assert gate.regulariser is None  # evaluation adds nothing
    with pytest.raises(ValueError, match="entropy weight must be >= 0"):
        DSelectK(nn.Identity(), num_experts=4, k=1, entropy=-1.0)
    with pytest.raises(ValueError, match="set gate: dselect"):
        MMoE(MLP(4, (6,)), [Regression("a")], entropy=0.1)


def test_mmoe_penalty_counts_only_the_gates_of_this_steps_tasks() -> None:
    torch.manual_seed(0)
    tasks = [Regression("a"), Regression("b"), Regression("c")]
    model = MMoE(MLP(4, (6,)), tasks, num_experts=4, gate="dselect", k=2, entropy=0.1)
    x = torch.randn(5, 4)
    model(x, ["a", "c"])
    a, c = model.gates["a"].regulariser, model.gates["c"].regulariser
    assert model.gates["b"].regulariser is None and a is not None and c is not None
    penalty = model.penalty()
    assert penalty is not None and penalty.item() == pytest.approx((a + c).item())
    assert model.penalty() is None  # taken once: no graph kept past the step
    plain = MMoE(MLP(4, (6,)), tasks, num_experts=4, gate="dselect", k=2)
    plain(x)
    assert plain.penalty() is None


def test_the_regulariser_settles_the_selectors_sooner_through_the_trainer() -> None:
    """Same data, seed and steps under Adam: with the entropy term the gates' selectors end with a
    lower mean entropy than without it (what the regulariser is for)."""
    from manytask.balancing import create_balancer
    from manytask.data import MultiSourceLoader, TensorSource
    from manytask.training import Trainer, build_optimizer

    def final_entropy(weight: float) -> float:
        torch.manual_seed(0)
        x = torch.randn(256, 4)
        targets = {"a": x[:, 0] * 2, "b": x[:, 1] - x[:, 2], "c": x.sum(1)}
        tasks = [Regression(n) for n in targets]
        model = MMoE(MLP(4, (8,)), tasks, num_experts=4, gate="dselect", k=2, entropy=weight)
        balancer = create_balancer("ew", tasks)
        Trainer(model, tasks, balancer, build_optimizer(model, balancer, "adam", 1e-2),
                MultiSourceLoader({"train": TensorSource(x, targets)}, 32, seed=0), steps=150, progress=False).fit()
        gate = model.gates["a"]
        with torch.no_grad():
            numbers = gate.summary(x)
            r = gate.selectors(numbers[:, : gate.k * gate.bits].unflatten(1, (gate.k, gate.bits)))
            return float(-torch.special.xlogy(r, r).sum((1, 2)).mean())

    assert final_entropy(1.0) < 0.7 * final_entropy(0.0)  # 0.18 against 0.35 here


def test_dselect_options_with_the_softmax_gate_are_refused() -> None:
    """Before the fix ``{name: mmoe, gamma: 5, k: 3}`` with the default softmax gate was accepted
    and ignored."""
    tasks = [Regression("a"), Regression("b")]
    for options in ({"k": 3}, {"gamma": 5.0}):
        with pytest.raises(ValueError, match="k and gamma are DSelect-k's options: set gate: dselect"):
            MMoE(MLP(4, (8,)), tasks, **options)  # type: ignore[arg-type]
    model = MMoE(MLP(4, (8,)), tasks, num_experts=4, gate="dselect", k=3, gamma=5.0)
    assert model(torch.randn(2, 4))["a"].shape == (2, 1)
    from manytask.models import MODELS

    assert isinstance(MODELS.create("mmoe", encoder=MLP(4, (8,)), tasks=tasks), MMoE)  # the registry's defaults
    with pytest.raises(ValueError, match="k and gamma are DSelect-k's options"):
        MODELS.create("mmoe", encoder=MLP(4, (8,)), tasks=tasks, k=3)
