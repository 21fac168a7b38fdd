"""Balancers against values derived by hand or in closed form."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from manytask.balancing import DWA, EW, MGDA, UW, GradNorm, PCGrad, StepInfo, create_balancer, forward_for
from manytask.models import HardSharing
from manytask.tasks import Classification, Regression

TASKS = [Regression("a"), Regression("b")]


class Identity(nn.Module):
    out_features = 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def linear_problem(g1: list[float], g2: list[float], level: str = "exact") -> tuple[HardSharing, dict[str, torch.Tensor], StepInfo]:
    """Shared parameter theta in R^2 with losses L_i = g_i . theta, so grad_theta L_i = g_i."""
    encoder = nn.Linear(1, 2, bias=False)
    with torch.no_grad():
        encoder.weight.zero_()
    model = HardSharing(encoder, TASKS, feature_dim=2)
    for name, g in (("a", g1), ("b", g2)):
        head = model.heads[name]
        with torch.no_grad():
            head.weight.copy_(torch.tensor([g]))
            head.bias.zero_()
        head.requires_grad_(False)
    balancer = MGDA(TASKS, level=level)  # only its needs_features matters here
    out, z, task_z = forward_for(balancer, model, torch.ones(1, 1), ["a", "b"])
    losses = {n: out[n].sum() for n in ("a", "b")}
    return model, losses, StepInfo(0, 0, model, z, task_z)


def min_norm_two(g1: torch.Tensor, g2: torch.Tensor) -> torch.Tensor:
    """Sener & Koltun (2018), Algorithm 1: min-norm point of the segment [g1, g2]."""
    alpha = ((g2 - g1) @ g2 / (g1 - g2).pow(2).sum()).clamp(0, 1)
    return alpha * g1 + (1 - alpha) * g2


def pcgrad_two(g1: torch.Tensor, g2: torch.Tensor) -> torch.Tensor:
    """Yu et al. (2020), Algorithm 1 for two tasks (order does not matter for two)."""
    p1, p2 = g1.clone(), g2.clone()
    if g1 @ g2 < 0:
        p1 = g1 - (g1 @ g2) / (g2 @ g2) * g2
        p2 = g2 - (g2 @ g1) / (g1 @ g1) * g1
    return p1 + p2


@pytest.mark.parametrize("level", ["exact", "representation"])
@pytest.mark.parametrize("g1, g2", [([1.0, 0.0], [0.0, 1.0]), ([2.0, 1.0], [-1.0, 0.5]), ([1.0, 1.0], [3.0, 3.5])])
def test_mgda_min_norm_point_of_two_gradients(level: str, g1: list[float], g2: list[float]) -> None:
    model, losses, info = linear_problem(g1, g2, level)
    MGDA(TASKS, level=level, epsilon=1e-9, max_iters=10_000).backward(losses, info)
    expected = min_norm_two(torch.tensor(g1), torch.tensor(g2))
    torch.testing.assert_close(model.encoder.weight.grad.squeeze(1), expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("level", ["exact", "representation"])
@pytest.mark.parametrize("g1, g2", [([1.0, 0.0], [-1.0, 1.0]), ([1.0, 2.0], [2.0, 1.0])], ids=["conflict", "agree"])
def test_pcgrad_on_a_pair(level: str, g1: list[float], g2: list[float]) -> None:
    model, losses, info = linear_problem(g1, g2, level)
    PCGrad(TASKS, level=level).backward(losses, info)
    expected = pcgrad_two(torch.tensor(g1), torch.tensor(g2))
    torch.testing.assert_close(model.encoder.weight.grad.squeeze(1), expected)


def test_pcgrad_non_conflicting_is_the_sum() -> None:
    model, losses, info = linear_problem([1.0, 2.0], [2.0, 1.0])
    PCGrad(TASKS).backward(losses, info)
    torch.testing.assert_close(model.encoder.weight.grad.squeeze(1), torch.tensor([3.0, 3.0]))


def test_exact_aggregation_without_features_matches_with_features() -> None:
    model, losses, _ = linear_problem([2.0, 1.0], [-1.0, 0.5])
    MGDA(TASKS, epsilon=1e-9, max_iters=10_000).backward(losses, StepInfo(0, 0, model, None))
    expected = min_norm_two(torch.tensor([2.0, 1.0]), torch.tensor([-1.0, 0.5]))
    torch.testing.assert_close(model.encoder.weight.grad.squeeze(1), expected, atol=1e-4, rtol=1e-4)


def test_heads_get_their_own_unweighted_gradient_under_aggregation() -> None:
    torch.manual_seed(0)
    model = HardSharing(nn.Linear(3, 4), TASKS)
    x, ya, yb = torch.randn(5, 3), torch.randn(5), torch.randn(5)
    for level in ("exact", "representation"):
        model.zero_grad()
        balancer = MGDA(TASKS, level=level)
        out, z, task_z = forward_for(balancer, model, x, ["a", "b"])
        losses = {"a": ((out["a"].squeeze(1) - ya) ** 2).mean(), "b": ((out["b"].squeeze(1) - yb) ** 2).mean()}
        expected = torch.autograd.grad(losses["a"], model.heads["a"].weight, retain_graph=True)[0]
        balancer.backward(losses, StepInfo(0, 0, model, z, task_z))
        torch.testing.assert_close(model.heads["a"].weight.grad, expected)


def test_ew_is_the_sum_of_losses() -> None:
    theta = nn.Parameter(torch.tensor(2.0))
    model = HardSharing(Identity(), TASKS)
    losses = {"a": theta**2, "b": 3 * theta}
    EW(TASKS).backward(losses, StepInfo(0, 0, model))
    assert theta.grad.item() == pytest.approx(2 * 2.0 + 3)


def test_uw_weights_and_regulariser_by_hand() -> None:
    tasks = [Regression("r"), Classification("c", num_classes=3)]
    uw = UW(tasks)
    with torch.no_grad():
        uw.log_vars.copy_(torch.tensor([math.log(4.0), math.log(0.25)]))  # sigma^2 = 4 and 1/4
    theta = nn.Parameter(torch.tensor(1.0))
    losses = {"r": 2.0 * theta, "c": 3.0 * theta}
    weights = uw.backward(losses, StepInfo(0, 0, HardSharing(Identity(), tasks)))
    # Kendall et al. Eq. 10: 1/(2 s_r) L_r + 1/s_c L_c + log sigma_r + log sigma_c
    torch.testing.assert_close(weights, torch.tensor([1 / 8, 4.0]))
    assert theta.grad.item() == pytest.approx(2.0 / 8 + 3.0 * 4.0)
    # d/ds of c e^{-s} L + s/2 = -c e^{-s} L + 1/2
    expected = torch.tensor([-(1 / 8) * 2.0 + 0.5, -4.0 * 3.0 + 0.5])
    torch.testing.assert_close(uw.log_vars.grad, expected)


def test_dwa_weights_by_hand() -> None:
    dwa = DWA(TASKS, temperature=2.0)
    model = HardSharing(Identity(), TASKS)

    def step(epoch: int, a: float, b: float) -> torch.Tensor:
        theta = nn.Parameter(torch.tensor(1.0))
        return dwa.backward({"a": a * theta, "b": b * theta}, StepInfo(0, epoch, model))

    torch.testing.assert_close(step(0, 4.0, 2.0), torch.ones(2))  # epoch means: a=3, b=1
    step(0, 2.0, 0.0)
    torch.testing.assert_close(step(1, 1.0, 1.0), torch.ones(2))  # epoch means: a=1, b=0.5
    step(1, 1.0, 0.0)
    w = step(2, 5.0, 5.0)
    r = torch.tensor([1.0 / 3.0, 0.5 / 1.0])
    expected = 2 * torch.exp(r / 2) / torch.exp(r / 2).sum()
    torch.testing.assert_close(w, expected)


def test_gradnorm_update_by_hand() -> None:
    # Last shared layer = theta in R^2; L_a = 3 theta_1, L_b = 1 theta_2 (+ offsets) so that
    # ||grad_W L_a|| = 3 and ||grad_W L_b|| = 1.
    encoder = nn.Linear(1, 2, bias=False)
    model = HardSharing(encoder, TASKS, feature_dim=2)
    gn = GradNorm(TASKS, alpha=1.0, lr=0.1)

    def losses(la0: float, lb0: float) -> dict[str, torch.Tensor]:
        z = model.features(torch.ones(1, 1)).squeeze(0)
        return {"a": 3 * z[0] + la0, "b": z[1] + lb0}

    with torch.no_grad():
        encoder.weight.fill_(1.0)
    gn.backward(losses(1.0, 3.0), StepInfo(0, 0, model))  # L(0) = (4, 4): ratios 1, weights move
    # Step 0: w = (1, 1); G = (3, 1); Gbar = 2; r = (1, 1); target = (2, 2);
    # grad = sign(G - target) * norms = (+3, -1); w' = (1 - 0.3, 1 + 0.1) = (0.7, 1.1); renorm to 2.
    w = torch.tensor([0.7, 1.1])
    torch.testing.assert_close(gn.loss_weights, w * 2 / w.sum())
    assert encoder.weight.grad.squeeze(1).tolist() == pytest.approx([3.0, 1.0])


def test_absent_task_changes_no_state() -> None:
    tasks = [Regression("a"), Regression("b"), Regression("c")]
    for name in ("uw", "dwa", "gradnorm"):
        balancer = create_balancer(name, tasks)
        before = {k: v.clone() for k, v in balancer.state_dict().items()}
        theta = nn.Parameter(torch.ones(2))
        encoder = nn.Linear(2, 2)
        m = HardSharing(encoder, tasks)
        z = m.features(theta.unsqueeze(0))
        out = m.forward_heads(z, ["a", "b"])
        balancer.backward({"a": out["a"].sum() ** 2, "b": out["b"].sum() ** 2}, StepInfo(0, 1, m, z))
        after = balancer.state_dict()
        for key, value in before.items():
            if value.ndim == 0:
                continue
            assert torch.equal(value[..., 2], after[key][..., 2]) or (
                torch.isnan(value[..., 2]).all() and torch.isnan(after[key][..., 2]).all()
            ), (name, key)
        assert m.heads["c"].weight.grad is None


def test_unknown_task_loss_is_named() -> None:
    with pytest.raises(KeyError, match="unknown task 'zzz'"):
        EW(TASKS).backward({"zzz": torch.tensor(1.0, requires_grad=True)}, StepInfo(0, 0, HardSharing(Identity(), TASKS)))


@pytest.mark.parametrize("name", ["ew", "uw", "dwa", "gradnorm", "mgda", "pcgrad"])
def test_state_dict_round_trips(name: str) -> None:
    a = create_balancer(name, TASKS)
    b = create_balancer(name, TASKS)
    b.load_state_dict(a.state_dict())
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va.nan_to_num(), vb.nan_to_num())


@pytest.mark.parametrize("bad", [{"level": "bogus"}])
def test_bad_level_is_named(bad: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="'level' parameter of MGDA"):
        MGDA(TASKS, **bad)  # type: ignore[arg-type]
