"""Nash-MTL against cvxpy (the paper's convex problem on the gradients), the two-task closed form,
the bargaining condition G α = 1/α, and per-task autograd gradients through the backward engine."""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest
import torch
from torch import nn

from manytask.balancing import NashMTL, create_balancer
from manytask.models import HardSharing
from manytask.tasks import Regression
from manytask.training import BackwardEngine

TASKS = [Regression("a"), Regression("b"), Regression("c")]
ALL = torch.tensor([True, True, True])


def nash(t: int = 3, **options: object) -> NashMTL:
    return NashMTL([Regression(f"t{i}") for i in range(t)], max_norm=0.0, **options).double()  # type: ignore[arg-type]


def weights(jacobian: np.ndarray, **options: object) -> np.ndarray:
    t = jacobian.shape[0]
    gramian = torch.tensor(jacobian @ jacobian.T)
    return nash(t, **options).gramian_weights(gramian, torch.ones(t), torch.ones(t, dtype=torch.bool), step=0).numpy()


def cvxpy_nash(jacobian: np.ndarray, eps: float = 0.0) -> np.ndarray:
    """argmin ½||Jᵀα||² + ½ eps Σ ||g_i||² α_i² - Σ log α_i, written on the gradients, solved at unit
    scale by CLARABEL (exponential cone)."""
    scale = np.linalg.norm(jacobian, axis=1).mean()
    j = jacobian / scale
    alpha = cp.Variable(j.shape[0])
    penalty = 0.5 * eps * cp.sum(cp.multiply((j**2).sum(1), cp.square(alpha)))
    problem = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(j.T @ alpha) + penalty - cp.sum(cp.log(alpha))))
    problem.solve(solver=cp.CLARABEL, tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10)
    assert problem.status == cp.OPTIMAL
    return np.asarray(alpha.value) / scale  # (G/s²) β = 1/β  <=>  G (β/s) = s/β


def ill_conditioned(rng: np.random.Generator, t: int, p: int, smallest: float) -> np.ndarray:
    u, _ = np.linalg.qr(rng.normal(size=(t, t)))
    v, _ = np.linalg.qr(rng.normal(size=(p, p)))
    return (u * np.geomspace(smallest, 1, t)) @ v[:t]


def cases() -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    out = [(f"random T={t}", rng.normal(size=(t, 2 * t))) for t in (2, 3, 5, 8)]
    out += [(f"ill-conditioned T={t}", ill_conditioned(rng, t, t + 2, 1e-3)) for t in (3, 5)]
    out.append(("task scales 1e-3..1e3", rng.normal(size=(4, 8)) * np.array([[1e-3], [1.0], [1e2], [1e3]])))
    j = rng.normal(size=(2, 6))
    out.append(("rank-deficient g3 = g1 + g2", np.vstack([j, j.sum(0)])))  # singular, bounded
    return out


CASES = cases()


@pytest.mark.parametrize("jacobian", [j for _, j in CASES], ids=[n for n, _ in CASES])
def test_weights_equal_cvxpy_and_satisfy_g_alpha_equals_one_over_alpha(jacobian: np.ndarray) -> None:
    ours = weights(jacobian, eps=0.0)
    np.testing.assert_allclose(ours, cvxpy_nash(jacobian), rtol=1e-5)
    gramian = jacobian @ jacobian.T
    np.testing.assert_allclose(ours * (gramian @ ours), 1.0, rtol=1e-8)  # g_iᵀ d = 1/α_i
    update = ours @ jacobian
    assert update @ update == pytest.approx(jacobian.shape[0], rel=1e-8)  # ||d||² = αᵀGα = T


@pytest.mark.parametrize("name", ["opposite gradients", "8 gradients in R^3", "ill-conditioned 1e-6"])
def test_singular_problems_solve_the_documented_regularised_problem(name: str) -> None:
    """G α = 1/α has no solution when a non-negative combination of the gradients vanishes; the
    default eps solves (G + eps diag G) α = 1/α, checked against cvxpy on the same problem."""
    rng = np.random.default_rng(1)
    g = rng.normal(size=20)
    jacobian = {"opposite gradients": np.stack([g, -g]), "8 gradients in R^3": rng.normal(size=(8, 3)),
                "ill-conditioned 1e-6": ill_conditioned(rng, 5, 7, 1e-6)}[name]
    ours = weights(jacobian)  # eps=1e-6
    np.testing.assert_allclose(ours, cvxpy_nash(jacobian, eps=1e-6), rtol=1e-4)
    regularised = jacobian @ jacobian.T + 1e-6 * np.diag((jacobian**2).sum(1))
    np.testing.assert_allclose(ours * (regularised @ ours), 1.0, rtol=1e-6)


def test_opposite_gradients_give_a_vanishing_update_with_weights_of_order_eps_to_minus_half() -> None:
    g = np.random.default_rng(2).normal(size=10)
    ours = weights(np.stack([g, -3 * g]), eps=1e-6)
    # closed form, with b_i = ||g_i|| α_i and C = [[1, -1], [-1, 1]]: b_1 = b_2 = b, (1 + eps - 1) b = 1/b
    np.testing.assert_allclose(ours * np.linalg.norm(np.stack([g, 3 * g]), axis=1), 1e3, rtol=1e-8)
    assert np.linalg.norm(ours @ np.stack([g, -3 * g])) < 1e-9 * np.linalg.norm(g) * ours.max()


@pytest.mark.parametrize("jacobian", [np.array([[1.0, 0.0], [-1.0, 0.0]]),
                                      np.array([[1.0, 0.0], [-0.5, 0.75**0.5], [-0.5, -(0.75**0.5)]])],
                         ids=["opposite", "three at 120 degrees"])
@pytest.mark.parametrize("max_iter", [5, 100])
def test_unbounded_problem_without_eps_raises_naming_the_method_and_step(jacobian: np.ndarray, max_iter: int) -> None:
    """With eps=0 and a vanishing non-negative combination of the gradients, the weights diverge:
    Newton's iterates grow until the Newton matrix is numerically singular (ValueError) or
    max_iter runs out (RuntimeError); either names the method, the step and the fix."""
    t = jacobian.shape[0]
    balancer = nash(t, eps=0.0, max_iter=max_iter)
    with pytest.raises(RuntimeError if max_iter == 5 else (ValueError, RuntimeError),
                       match="NashMTL at step 7.*eps"):
        balancer.gramian_weights(torch.tensor(jacobian @ jacobian.T), torch.ones(t), torch.ones(t, dtype=torch.bool),
                                 step=7)


def test_singular_gradients_in_a_half_space_have_an_exact_solution() -> None:
    """8 gradients in R^3 that all lie in one half-space: G is singular (rank 3) but no
    non-negative combination vanishes, so G α = 1/α holds exactly with eps=0."""
    rng = np.random.default_rng(3)
    jacobian = rng.normal(size=(8, 3))
    jacobian[:, 0] = np.abs(jacobian[:, 0]) + 0.1
    ours = weights(jacobian, eps=0.0)
    np.testing.assert_allclose(ours * (jacobian @ jacobian.T @ ours), 1.0, rtol=1e-8)
    np.testing.assert_allclose(ours, cvxpy_nash(jacobian), rtol=1e-5)


def test_not_converging_in_max_iter_raises() -> None:
    jacobian = np.random.default_rng(4).normal(size=(3, 6)) * np.array([[1e-3], [1.0], [1e3]])
    with pytest.raises(RuntimeError, match=r"NashMTL at step 0: Newton's method did not converge in 1 iter"):
        weights(jacobian, max_iter=1)


def test_a_gramian_that_is_not_psd_is_refused() -> None:
    with pytest.raises(ValueError, match="not positive semi-definite"):
        nash(2).gramian_weights(torch.tensor([[1.0, 3.0], [3.0, 1.0]], dtype=torch.float64), torch.ones(2),
                                torch.ones(2, dtype=torch.bool), step=0)


@pytest.mark.parametrize("rho", [-0.9, -0.3, 0.0, 0.5, 0.99])
def test_two_tasks_closed_form(rho: float) -> None:
    """α_i = 1 / (||g_i|| sqrt(1 + ρ)), ρ the cosine (by hand from α_1 (Gα)_1 = α_2 (Gα)_2 = 1)."""
    norms = np.array([0.02, 30.0])
    gramian = np.outer(norms, norms) * np.array([[1.0, rho], [rho, 1.0]])
    alpha = nash(2, eps=0.0).gramian_weights(torch.tensor(gramian), torch.ones(2), torch.ones(2, dtype=torch.bool),
                                             step=0)
    np.testing.assert_allclose(alpha.numpy(), 1 / (norms * np.sqrt(1 + rho)), rtol=1e-10)


def test_scaling_one_gradient_divides_its_weight_and_keeps_the_update() -> None:
    jacobian = np.random.default_rng(5).normal(size=(3, 7))
    base = weights(jacobian)
    for c in (1e-4, 1e5):
        scaled = jacobian * np.array([[1.0], [c], [1.0]])
        ours = weights(scaled)
        np.testing.assert_allclose(ours, base / np.array([1.0, c, 1.0]), rtol=1e-8)
        np.testing.assert_allclose(ours @ scaled, base @ jacobian, rtol=1e-8, atol=1e-12)  # Newton's tol


def test_a_zero_gradient_gets_weight_zero_and_the_others_are_solved_alone() -> None:
    jacobian = np.random.default_rng(6).normal(size=(3, 5))
    with_zero = np.vstack([jacobian[:1], np.zeros((1, 5)), jacobian[1:2]])
    ours = weights(with_zero)
    assert ours[1] == 0
    np.testing.assert_allclose(ours[[0, 2]], weights(jacobian[:2]), rtol=1e-12)


def test_max_norm_clips_the_update_norm_read_off_the_gramian() -> None:
    jacobian = np.random.default_rng(7).normal(size=(3, 6))
    gramian = torch.tensor(jacobian @ jacobian.T)
    for max_norm, expected in ((1.0, 1.0), (0.5, 0.5), (10.0, np.sqrt(3)), (0.0, np.sqrt(3))):
        balancer = NashMTL(TASKS, max_norm=max_norm, eps=0.0).double()
        alpha = balancer.gramian_weights(gramian, torch.ones(3), ALL, step=0).numpy()
        assert np.linalg.norm(alpha @ jacobian) == pytest.approx(expected, rel=1e-8)
        np.testing.assert_allclose(balancer.weights.numpy(), weights(jacobian, eps=0.0), rtol=1e-10)  # unclipped


def test_state_warm_start_reuse_absent_tasks_and_reset() -> None:
    rng = np.random.default_rng(8)
    balancer = nash(3, update_weights_every=3)
    jacobians = [rng.normal(size=(3, 6)) for _ in range(5)]
    first = balancer.gramian_weights(torch.tensor(jacobians[0] @ jacobians[0].T), torch.ones(3), ALL, step=0)
    np.testing.assert_allclose(first.numpy(), weights(jacobians[0]), rtol=1e-9)  # warm start from 1 = cold start
    np.testing.assert_array_equal(balancer.weights.numpy(), first.numpy())
    present = torch.tensor([True, False, True])
    j = jacobians[1][[0, 2]]
    changed = balancer.gramian_weights(torch.tensor(j @ j.T), torch.ones(3), present, step=1)
    np.testing.assert_allclose(changed.numpy(), weights(j), rtol=1e-9)  # another set of tasks: solved, not reused
    assert balancer.weights[1] == first[1]  # the absent task's entry is untouched
    j = jacobians[2][[0, 2]]
    reused = balancer.gramian_weights(torch.tensor(j @ j.T), torch.ones(3), present, step=2)
    np.testing.assert_array_equal(reused.numpy(), changed.numpy())  # the same set: reused, whatever the Gramian
    j = jacobians[3][[0, 2]]
    solved = balancer.gramian_weights(torch.tensor(j @ j.T), torch.ones(3), present, step=3)
    np.testing.assert_allclose(solved.numpy(), weights(j), rtol=1e-9)  # re-solved at call 3, warm-started
    assert int(balancer.calls) == 4
    balancer.reset()
    assert balancer.weights.tolist() == [1.0, 1.0, 1.0] and int(balancer.calls) == 0
    assert not bool(balancer.solved_for.any())


def test_a_task_that_returns_between_solves_gets_a_weight_solved_with_it_not_a_stale_one() -> None:
    """update_weights_every = 4; task c (gradient 100x the others) absent at the solve of call 0 and
    present at call 1. Its stored weight is the initial 1, where Nash's is about 1/100: reusing it
    would let c's gradient dominate the update. The update of call 1 must be cvxpy's solution for
    all three tasks."""
    rng = np.random.default_rng(3)
    jacobian = rng.normal(size=(3, 8)) * np.array([[1.0], [1.0], [100.0]])
    balancer = nash(3, update_weights_every=4)
    ab = jacobian[:2]
    balancer.gramian_weights(torch.tensor(ab @ ab.T), torch.ones(3), torch.tensor([True, True, False]), step=0)
    alpha = balancer.gramian_weights(torch.tensor(jacobian @ jacobian.T), torch.ones(3), ALL, step=1).numpy()
    np.testing.assert_allclose(alpha, cvxpy_nash(jacobian, eps=1e-6), rtol=1e-5)
    assert alpha[2] < 0.05


def test_a_checkpoint_without_solved_for_solves_at_the_next_call() -> None:
    balancer = nash(3, update_weights_every=5)
    state = {k: v for k, v in balancer.state_dict().items() if k != "solved_for"}
    state["calls"] = torch.tensor(2)
    balancer.load_state_dict(state)
    gramian = torch.tensor([[4.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 9.0]], dtype=torch.float64)
    alpha = balancer.gramian_weights(gramian, torch.ones(3), ALL, step=2)
    np.testing.assert_allclose(alpha.numpy(), [0.5, 1.0, 1 / 3], rtol=1e-5)  # orthogonal: α_i = 1 / ||g_i||


def test_update_through_the_engine_is_the_nash_combination_of_autograd_gradients() -> None:
    """End to end: per-task trunk gradients from one autograd call each, α from cvxpy, then
    Σ α_i g_i (clipped to max_norm) against the trunk's .grad after the engine's step."""
    torch.manual_seed(0)
    model = HardSharing(nn.Sequential(nn.Linear(4, 5), nn.Tanh()), TASKS, feature_dim=5).double()
    x, y = torch.randn(12, 4, dtype=torch.float64), torch.randn(12, 3, dtype=torch.float64) * torch.tensor([0.01, 1, 100])
    out = model(x, list(model.task_names))
    losses = [((out[n].squeeze(1) - y[:, i]) ** 2).mean() for i, n in enumerate(model.task_names)]
    trunk = list(model.encoder.parameters())
    jacobian = torch.stack([torch.cat([g.flatten() for g in torch.autograd.grad(loss, trunk, retain_graph=True)])
                            for loss in losses]).numpy()
    alpha = cvxpy_nash(jacobian, eps=1e-6)
    expected = alpha @ jacobian
    expected = expected * min(1.0, 0.5 / np.linalg.norm(expected))

    balancer = create_balancer("nash-mtl", TASKS, max_norm=0.5).double()
    engine = BackwardEngine(model, balancer)
    engine.begin_step()
    out = engine.forward(x, list(model.task_names))
    sums = torch.stack([((out[n].squeeze(1) - y[:, i]) ** 2).sum() for i, n in enumerate(model.task_names)])
    engine.backward(sums, torch.full((3,), 12.0, dtype=torch.float64), step=0)
    np.testing.assert_allclose(torch.cat([p.grad.flatten() for p in trunk if p.grad is not None]).numpy(), expected,
                               rtol=1e-5, atol=1e-5 * np.abs(expected).max())  # cvxpy's accuracy, on the update's scale


@pytest.mark.parametrize("option, value, match", [
    ("level", "last_shared", "'level' parameter of NashMTL"),
    ("max_norm", -1.0, "'max_norm' parameter of NashMTL"),
    ("update_weights_every", 0, "'update_weights_every' parameter of NashMTL"),
    ("eps", float("nan"), "'eps' parameter of NashMTL"),
    ("tol", 0.0, "'tol' parameter of NashMTL"),
    ("max_iter", 0, "'max_iter' parameter of NashMTL"),
])
def test_invalid_options_are_refused(option: str, value: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        NashMTL(TASKS, **{option: value})  # type: ignore[arg-type]
