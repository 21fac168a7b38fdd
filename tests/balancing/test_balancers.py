"""Balancers through the backward engine, against values derived by hand or in closed form."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from manytask.balancing import DWA, EW, MGDA, UW, GradNorm, PCGrad, create_balancer
from manytask.balancing._base import Balancer
from manytask.models import HardSharing
from manytask.tasks import Classification, Regression
from manytask.training import BackwardEngine

TASKS = [Regression("a"), Regression("b")]


def run(model: HardSharing, balancer: Balancer, x: torch.Tensor,
        loss: dict[str, object] | None = None, present: list[str] | None = None, step: int = 0) -> torch.Tensor:
    """One engine step; loss per task = sum of the head output (or ``loss[name](out)``)."""
    names = present or list(model.task_names)
    engine = BackwardEngine(model, balancer)
    engine.begin_step()
    out = engine.forward(x, names)
    sums = torch.zeros(len(model.task_names))
    counts = torch.zeros(len(model.task_names))
    for name in names:
        i = model.task_names.index(name)
        fn = (loss or {}).get(name, lambda o: o.sum())
        sums = sums.index_put((torch.tensor([i]),), fn(out[name]).reshape(1))  # type: ignore[operator]
        counts[i] = 1.0
    return engine.backward(sums, counts, step=step)[1]


def linear_problem(g1: list[float], g2: list[float]) -> HardSharing:
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
    return model


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
    model = linear_problem(g1, g2)
    run(model, MGDA(TASKS, level=level), torch.ones(1, 1))
    expected = min_norm_two(torch.tensor(g1), torch.tensor(g2))
    torch.testing.assert_close(model.encoder.weight.grad.squeeze(1), expected, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("level", ["exact", "representation"])
@pytest.mark.parametrize("g1, g2", [([1.0, 0.0], [-1.0, 1.0]), ([1.0, 2.0], [2.0, 1.0])], ids=["conflict", "agree"])
def test_pcgrad_on_a_pair(level: str, g1: list[float], g2: list[float]) -> None:
    model = linear_problem(g1, g2)
    run(model, PCGrad(TASKS, level=level), torch.ones(1, 1))
    expected = pcgrad_two(torch.tensor(g1), torch.tensor(g2))
    torch.testing.assert_close(model.encoder.weight.grad.squeeze(1), expected)


def test_exact_gramian_without_autogram_matches_with_it(caplog: pytest.LogCaptureFixture) -> None:
    """A model that declares no shared modules falls back to the Jacobian, with one log line."""
    model = linear_problem([2.0, 1.0], [-1.0, 0.5])
    model.shared_modules = lambda: []  # type: ignore[method-assign]
    with caplog.at_level("INFO", logger="manytask"):
        run(model, MGDA(TASKS), torch.ones(1, 1))
    assert [r.message for r in caplog.records if "from the Jacobian" in r.message]
    expected = min_norm_two(torch.tensor([2.0, 1.0]), torch.tensor([-1.0, 0.5]))
    torch.testing.assert_close(model.encoder.weight.grad.squeeze(1), expected, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("level", ["exact", "representation"])
def test_heads_get_their_own_unweighted_gradient_under_aggregation(level: str) -> None:
    torch.manual_seed(0)
    model = HardSharing(nn.Linear(3, 4), TASKS)
    x, ya, yb = torch.randn(5, 3), torch.randn(5), torch.randn(5)
    mse = {"a": lambda o: ((o.squeeze(1) - ya) ** 2).mean(), "b": lambda o: ((o.squeeze(1) - yb) ** 2).mean()}
    expected = torch.autograd.grad(mse["a"](model(x)["a"]), model.heads["a"].weight)[0]
    weights = run(model, MGDA(TASKS, level=level), x, mse)
    assert 0 < weights[0] < 1
    torch.testing.assert_close(model.heads["a"].weight.grad, expected)


def test_ew_is_the_sum_of_losses() -> None:
    model = linear_problem([1.0, 2.0], [3.0, -1.0])
    run(model, EW(TASKS), torch.ones(1, 1))
    assert model.encoder.weight.grad.squeeze(1).tolist() == pytest.approx([4.0, 1.0])


def test_uw_weights_and_regulariser_by_hand() -> None:
    tasks = [Regression("r"), Classification("c", num_classes=3)]
    uw = UW(tasks)
    with torch.no_grad():
        uw.log_vars[0].fill_(math.log(4.0))  # sigma^2 = 4 and 1/4
        uw.log_vars[1].fill_(math.log(0.25))
    theta = nn.Parameter(torch.tensor(1.0))
    losses = torch.stack([2.0 * theta, 3.0 * theta])
    total, weights = uw.total(losses, torch.tensor([True, True]), step=0)
    total.backward()
    # Kendall et al. Eq. 10: 1/(2 s_r) L_r + 1/s_c L_c + log sigma_r + log sigma_c
    torch.testing.assert_close(weights.detach(), torch.tensor([1 / 8, 4.0]))
    assert theta.grad.item() == pytest.approx(2.0 / 8 + 3.0 * 4.0)
    # d/ds of c e^{-s} L + s/2 = -c e^{-s} L + 1/2
    assert uw.log_vars[0].grad.item() == pytest.approx(-(1 / 8) * 2.0 + 0.5)
    assert uw.log_vars[1].grad.item() == pytest.approx(-4.0 * 3.0 + 0.5)


def test_uw_absent_task_gets_no_gradient_and_adam_leaves_it() -> None:
    """The defect: one parameter for all log-variances gave an absent task a zero gradient, and
    Adam moved it anyway (6.7e-3 per step)."""
    tasks = [Regression("a"), Regression("b"), Regression("c")]
    uw = UW(tasks)
    optimizer = torch.optim.Adam(uw.parameters(), lr=0.1)
    present = torch.tensor([True, True, True])
    for step in range(6):
        optimizer.zero_grad(set_to_none=True)
        total, _ = uw.total(torch.tensor([1.0, 2.0, 3.0]), present, step=step)
        total.backward()
        optimizer.step()
        if step == 2:
            present = torch.tensor([True, False, True])
            frozen = uw.log_vars[1].detach().clone()
    assert uw.log_vars[1].grad is None
    assert torch.equal(uw.log_vars[1].detach(), frozen)


def test_dwa_weights_by_hand() -> None:
    dwa = DWA(TASKS, temperature=2.0)
    both = torch.tensor([True, True])

    def step(a: float, b: float) -> torch.Tensor:
        return dwa.total(torch.tensor([a, b]), both, step=0)[1]

    torch.testing.assert_close(step(4.0, 2.0), torch.ones(2))  # epoch means: a=3, b=1
    step(2.0, 0.0)
    dwa.on_epoch_end(0)
    torch.testing.assert_close(step(1.0, 1.0), torch.ones(2))  # epoch means: a=1, b=0.5
    step(1.0, 0.0)
    dwa.on_epoch_end(1)
    w = step(5.0, 5.0)
    r = torch.tensor([1.0 / 3.0, 0.5 / 1.0])
    expected = 2 * torch.exp(r / 2) / torch.exp(r / 2).sum()
    torch.testing.assert_close(w, expected)


def test_dwa_recomputes_its_kept_weights_after_a_load_a_reset_and_a_changed_present_mask() -> None:
    """DWA keeps its weights while its history and the present mask repeat; a loaded state, a
    present mask written in place and a reset each give the weights of Eq. 7 at that point."""
    trained, both = DWA(TASKS, temperature=2.0), torch.tensor([True, True])
    for epoch, means in enumerate(((3.0, 1.0), (1.0, 0.5))):
        trained.total(torch.tensor(means), both, step=epoch)
        trained.on_epoch_end(epoch)
    dwa = DWA(TASKS, temperature=2.0)
    assert torch.equal(dwa.total(torch.ones(2), both, step=0)[1], torch.ones(2))  # no history yet
    dwa.load_state_dict(trained.state_dict())
    ratios = torch.tensor([1.0 / 3.0, 0.5])
    torch.testing.assert_close(dwa.total(torch.ones(2), both, step=1)[1], 2 * torch.softmax(ratios / 2, dim=0))
    both[1] = False  # the same tensor, now with task b absent: K = 1 and all of it on a
    torch.testing.assert_close(dwa.total(torch.tensor([1.0, 0.0]), both, step=2)[1], torch.tensor([1.0, 0.0]))
    dwa.reset()
    both[1] = True
    assert torch.equal(dwa.total(torch.ones(2), both, step=3)[1], torch.ones(2))


def gradnorm_problem() -> tuple[HardSharing, nn.Linear]:
    """Last shared layer = theta in R^2; L_a = 3 theta_1, L_b = 1 theta_2 (+ offsets) so that
    ||grad_W L_a|| = 3 and ||grad_W L_b|| = 1."""
    encoder = nn.Linear(1, 2, bias=False)
    model = HardSharing(encoder, TASKS, feature_dim=2)
    for name, g in (("a", [3.0, 0.0]), ("b", [0.0, 1.0])):
        with torch.no_grad():
            model.heads[name].weight.copy_(torch.tensor([g]))
            model.heads[name].bias.zero_()
    return model, encoder


def test_gradnorm_update_by_hand() -> None:
    model, encoder = gradnorm_problem()
    gn = GradNorm(TASKS, alpha=1.0, lr=0.1)
    with torch.no_grad():
        encoder.weight.fill_(1.0)
    offsets = {"a": lambda o: o.sum() + 1.0, "b": lambda o: o.sum() + 3.0}
    run(model, gn, torch.ones(1, 1), offsets)  # L(0) = (4, 4): ratios 1, weights move
    # Step 0: w = (1, 1); G = (3, 1); Gbar = 2; r = (1, 1); target = (2, 2);
    # grad = sign(G - target) * norms = (+3, -1); w' = (1 - 0.3, 1 + 0.1) = (0.7, 1.1); renorm to 2.
    w = torch.tensor([0.7, 1.1])
    torch.testing.assert_close(gn.loss_weights, w * 2 / w.sum())
    assert encoder.weight.grad.squeeze(1).tolist() == pytest.approx([3.0, 1.0])
    # The heads are weighted too (GradNorm trains the network on sum_i w_i L_i).
    assert model.heads["a"].weight.grad.flatten().tolist() == pytest.approx([1.0, 1.0])


def test_gradnorm_trains_heads_and_trunk_on_this_steps_weighted_losses() -> None:
    """Heads are split off (one plain backward through them), then each head's gradient is scaled
    by its task's weight: the same as backpropagating sum_i w_i L_i."""
    model, encoder = gradnorm_problem()
    with torch.no_grad():
        encoder.weight.fill_(1.0)
    gn = GradNorm(TASKS, alpha=1.0, lr=0.1)
    offsets = {"a": lambda o: o.sum() + 1.0, "b": lambda o: o.sum() + 3.0}
    run(model, gn, torch.ones(1, 1), offsets)
    w = gn.loss_weights.clone()  # (0.7, 1.1) * 2 / 1.8, the weights of the next step
    assert not torch.allclose(w, torch.ones(2))
    model.zero_grad()
    assert run(model, gn, torch.ones(1, 1), offsets).tolist() == pytest.approx(w.tolist())
    for i, name in enumerate("ab"):  # dL/d(head weight) = features = (1, 1)
        assert model.heads[name].weight.grad.flatten().tolist() == pytest.approx([w[i].item()] * 2)
        assert model.heads[name].bias.grad.item() == pytest.approx(w[i].item())
    assert encoder.weight.grad.squeeze(1).tolist() == pytest.approx([3.0 * w[0].item(), w[1].item()])


def test_gradnorm_uses_the_weight_matrix_not_the_bias() -> None:
    encoder = nn.Linear(1, 2)
    model = HardSharing(encoder, TASKS, feature_dim=2)
    assert model.last_shared_parameters() == [encoder.weight]


@pytest.mark.parametrize("name, options, expected", [
    ("mlp", {"in_features": 5, "hidden": [8, 6]}, ["encoder.stages.1.0.weight"]),
    ("cnn", {"out_features": 16}, ["encoder.stages.2.2.weight"]),
    ("transformer", {"vocab_size": 30, "dim": 8, "heads": 2, "layers": 2, "feedforward": 16},
     ["encoder.stages.2.layer.linear2.weight"]),  # not the LayerNorm's gain and bias after it
    ("bilstm", {"vocab_size": 30, "embedding_dim": 8, "hidden": 4, "layers": 2},
     [f"encoder.stages.2.{d}_lstm.weight_{k}_l0" for d in ("forward", "backward") for k in ("ih", "hh")]),
])
def test_gradnorm_measures_at_the_last_layers_matrices(name: str, options: dict[str, object],
                                                       expected: list[str]) -> None:
    """Chen et al.'s W on every registered backbone: the last layer's weight matrices (both
    directions of a BiLSTM layer; before, the backward one alone, and a transformer's LayerNorm)."""
    from manytask.models import create_encoder

    model = HardSharing(create_encoder(name, **options), TASKS)
    names = {id(p): n for n, p in model.named_parameters()}
    assert [names[id(p)] for p in model.last_shared_parameters()] == expected


def test_gradnorm_zero_first_loss_waits_for_a_positive_one() -> None:
    """The defect: a first loss of exactly 0 made the ratio infinite and sign(NaN) = 0 hid it."""
    gn = GradNorm(TASKS, alpha=1.0, lr=0.1)
    gramian = torch.diag(torch.tensor([9.0, 1.0]))
    both = torch.tensor([True, True])
    gn.gramian_weights(gramian, torch.tensor([0.0, 2.0]), both, step=0)
    assert math.isnan(gn.initial_losses[0].item()) and gn.initial_losses[1].item() == 2.0
    assert gn.loss_weights.tolist() == [1.0, 1.0]  # one ready task: its weight renormalises to itself
    gn.gramian_weights(gramian, torch.tensor([4.0, 2.0]), both, step=1)
    assert gn.initial_losses.tolist() == [4.0, 2.0]
    assert torch.isfinite(gn.loss_weights).all() and gn.loss_weights.sum().item() == pytest.approx(2.0)


def test_wrong_number_of_losses_is_named() -> None:
    with pytest.raises(ValueError, match=r"losses must have shape \[2\], got \[3\]"):
        EW(TASKS).total(torch.ones(3), torch.ones(3, dtype=torch.bool), step=0)


@pytest.mark.parametrize("bad", [{"level": "bogus"}, {"level": "last_shared"}])
def test_bad_level_is_named(bad: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="'level' parameter of MGDA"):
        MGDA(TASKS, **bad)  # type: ignore[arg-type]


def test_aggregation_without_shared_parameters_is_refused() -> None:
    from manytask.models import Independent

    model = Independent(nn.Linear(2, 3), TASKS, feature_dim=3)
    with pytest.raises(ValueError, match="shares none; use a loss weighting"):
        BackwardEngine(model, create_balancer("mgda", TASKS))


@pytest.mark.parametrize("name", ["si", "gls", "db-mtl", "famo"])
def test_a_zero_loss_is_refused_with_the_step_named(name: str) -> None:
    """The log-loss methods refuse a loss of 0; the message named the task but not the step, so a
    failure deep in a run (fit() raised it bare) could not be placed."""
    tasks = [Regression("a"), Regression("b"), Regression("c")]
    balancer = create_balancer(name, tasks)
    losses = torch.tensor([0.5, -1.0 if name == "famo" else 0.0, 2.0])  # FAMO adds eps: below 0 then
    present = torch.tensor([True, True, True])
    with pytest.raises(ValueError, match=r"at step 7 task 'b' has loss"):
        if name == "db-mtl":
            balancer.aggregate(torch.ones(3, 4), losses, present, step=7)
        else:
            balancer.weights(losses, present, step=7)
