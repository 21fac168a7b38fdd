"""`min_norm_weights` against independent solvers (cvxpy/OSQP, scipy SLSQP), the two-task closed
form of Sener & Koltun (2018), Algorithm 1, hand-solved geometries and the KKT conditions."""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest
import torch
from scipy.optimize import minimize

import manytask.balancing._min_norm as min_norm_module
from manytask.balancing._min_norm import min_norm_weights

TOL = 1e-9  # min_norm_weights' default: KKT to TOL * max_i G_ii


def cvxpy_min_norm(jacobian: np.ndarray) -> float:
    """min ||Jᵀα||² over the simplex, written on the gradients (not the Gramian), by OSQP with
    solution polishing. CLARABEL was tried first and stopped 1e-8 (relative to the scale) above
    the optimum on nearly anti-parallel gradients, so it is not used."""
    alpha = cp.Variable(jacobian.shape[0])
    objective = cp.Minimize(cp.sum_squares(jacobian.T @ alpha))
    problem = cp.Problem(objective, [alpha >= 0, cp.sum(alpha) == 1])
    problem.solve(solver=cp.OSQP, eps_abs=1e-13, eps_rel=1e-13, max_iter=200_000, polishing=True)
    assert problem.status == cp.OPTIMAL
    return float(problem.value)


def ill_conditioned(rng: np.random.Generator, t: int, p: int, smallest: float = 1e-8) -> np.ndarray:
    u, _ = np.linalg.qr(rng.normal(size=(t, t)))
    v, _ = np.linalg.qr(rng.normal(size=(p, p)))
    return (u * np.geomspace(smallest, 1, t)) @ v[:t]  # singular values smallest .. 1


def jacobians() -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    cases = [(f"random T={t}", rng.normal(size=(t, 2 * t))) for t in (2, 3, 5, 8, 20)]
    cases += [(f"ill-conditioned T={t}", ill_conditioned(rng, t, t + 2)) for t in (3, 5, 8, 20)]
    for t, p in [(8, 3), (20, 5)]:
        cases.append((f"rank-deficient T={t} P={p}", rng.normal(size=(t, p))))
    g = rng.normal(size=50)
    cases.append(("anti-parallel T=2", np.stack([g, -g + 1e-4 * rng.normal(size=50)])))
    others = rng.normal(size=(3, 50))
    cases.append(("anti-parallel T=5", np.stack([g, -g + 1e-4 * rng.normal(size=50), *others])))
    cases += [(f"scale 1e{e}", 10.0 ** (e / 2) * rng.normal(size=(5, 10))) for e in (-12, 12)]
    # every task in the support (G⁻¹1 > 0): the closed form answers
    cases += [(f"near-orthogonal T={t}", rng.normal(size=(t, 40 * t)) + 0.3 * rng.normal(size=40 * t)) for t in (3, 32)]
    return cases


CASES = jacobians()


@pytest.mark.parametrize("route", ["nnls", "wolfe"])
@pytest.mark.parametrize("jacobian", [j for _, j in CASES], ids=[n for n, _ in CASES])
def test_objective_equals_cvxpy_and_kkt_holds(jacobian: np.ndarray, route: str,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Both routes: the NNLS reduction (tried first), and Wolfe's algorithm (where the NNLS answer
    fails the KKT test; forced here)."""
    if route == "wolfe":
        monkeypatch.setattr(min_norm_module, "_by_nnls", lambda g, tol: None)
    gramian = jacobian @ jacobian.T
    scale = np.diag(gramian).max()
    alpha = min_norm_weights(torch.tensor(gramian)).numpy()
    assert (alpha >= 0).all() and alpha.sum() == pytest.approx(1.0, abs=1e-12)
    value = alpha @ gramian @ alpha
    optimum = cvxpy_min_norm(jacobian / np.sqrt(scale)) * scale  # solved at unit scale
    # Convexity: f(α) - f* <= 2 (αᵀGα - min_i (Gα)_i) <= 2 TOL s, so the objective is within that of
    # the optimum (and within 1e-7 relative where the optimum is not ~0).
    assert value >= optimum - 1e-7 * optimum - 1e-14 * scale
    assert value <= optimum + 1e-7 * optimum + 2 * TOL * scale
    # KKT of the simplex QP, computed here: (Gα)_i >= αᵀGα for every i.
    assert ((gramian @ alpha) >= value - TOL * scale).all()


def slsqp_min_norm(gramian: np.ndarray) -> float:
    t = gramian.shape[0]
    simplex = {"type": "eq", "fun": lambda a: a.sum() - 1, "jac": lambda a: np.ones(t)}
    result = minimize(lambda a: a @ gramian @ a, np.full(t, 1 / t), jac=lambda a: 2 * gramian @ a,
                      method="SLSQP", bounds=[(0, None)] * t, constraints=[simplex],
                      options={"ftol": 1e-15, "maxiter": 500})
    assert result.success
    return float(result.fun)


@pytest.mark.parametrize("t, p", [(3, 4), (5, 10), (8, 6)])
def test_objective_equals_scipy_slsqp(t: int, p: int) -> None:
    jacobian = np.random.default_rng(t).normal(size=(t, p))
    gramian = jacobian @ jacobian.T
    alpha = min_norm_weights(torch.tensor(gramian)).numpy()
    assert alpha @ gramian @ alpha == pytest.approx(slsqp_min_norm(gramian), rel=1e-7)


@pytest.mark.parametrize("g1, g2", [
    ([1.0, 0.0], [0.0, 1.0]),     # orthogonal: α = 1/2
    ([2.0, 1.0], [-1.0, 0.5]),    # obtuse: interior α
    ([1.0, 1.0], [3.0, 3.5]),     # g1 is the min-norm point: α = 1 (clipped)
    ([4.0, -1.0], [0.5, 0.2]),    # g2 is the min-norm point: α = 0 (clipped)
    ([1.0, 2.0], [-1.0, -2.001]), # nearly anti-parallel
])
def test_two_tasks_match_algorithm_1(g1: list[float], g2: list[float]) -> None:
    a, b = np.array(g1), np.array(g2)
    alpha = np.clip((b - a) @ b / ((a - b) @ (a - b)), 0, 1)  # Sener & Koltun (2018), Algorithm 1
    jacobian = np.stack([a, b])
    weights = min_norm_weights(torch.tensor(jacobian @ jacobian.T))
    np.testing.assert_allclose(weights.numpy(), [alpha, 1 - alpha], atol=1e-12)


def test_random_two_tasks_match_algorithm_1() -> None:
    rng = np.random.default_rng(2)
    for _ in range(20):
        a, b = rng.normal(size=(2, 7))
        alpha = np.clip((b - a) @ b / ((a - b) @ (a - b)), 0, 1)
        weights = min_norm_weights(torch.tensor(np.stack([a, b]) @ np.stack([a, b]).T))
        np.testing.assert_allclose(weights.numpy(), [alpha, 1 - alpha], atol=1e-12)


def gramian_of(*gradients: list[float]) -> torch.Tensor:
    jacobian = torch.tensor(gradients, dtype=torch.float64)
    return jacobian @ jacobian.T


def test_a_gradient_inside_the_hull_gets_no_weight() -> None:
    # (1, 2) lies inside the triangle (3, 1), (-1, 1), (1, 4); the min-norm point (0, 1) is
    # 1/4 (3, 1) + 3/4 (-1, 1) on the opposite edge.
    weights = min_norm_weights(gramian_of([3.0, 1.0], [-1.0, 1.0], [1.0, 2.0], [1.0, 4.0]))
    np.testing.assert_allclose(weights.numpy(), [0.25, 0.75, 0.0, 0.0], atol=1e-12)


def test_origin_inside_the_hull() -> None:
    # 0 = 1/2 (1, 0) + 1/4 (-1, 1) + 1/4 (-1, -1): Pareto-stationary, norm 0.
    weights = min_norm_weights(gramian_of([1.0, 0.0], [-1.0, 1.0], [-1.0, -1.0]))
    np.testing.assert_allclose(weights.numpy(), [0.5, 0.25, 0.25], atol=1e-12)


def test_a_vertex_is_the_optimum() -> None:
    # g1 = (1, 0) has g1ᵀg_i >= |g1|² for every i, so the min-norm point is g1 itself.
    weights = min_norm_weights(gramian_of([1.0, 0.0], [1.5, 5.0], [2.0, -3.0]))
    np.testing.assert_allclose(weights.numpy(), [1.0, 0.0, 0.0], atol=1e-12)


def test_one_task_and_zero_gramian() -> None:
    assert min_norm_weights(torch.tensor([[4.0]])).tolist() == [1.0]
    assert min_norm_weights(torch.zeros(1, 1)).tolist() == [1.0]
    # G = 0: every point of the simplex is optimal; the weights are uniform.
    assert min_norm_weights(torch.zeros(4, 4)).tolist() == pytest.approx([0.25] * 4)


@pytest.mark.parametrize("bad, match", [
    (torch.zeros(2, 3), r"\[T, T\].*got shape \[2, 3\]"),
    (torch.ones(3), r"\[T, T\].*got shape \[3\]"),
    (torch.zeros(0, 0), r"\[T, T\].*got shape \[0, 0\]"),
    (torch.tensor([[1.0, 2.0], [0.0, 1.0]]), r"symmetric Gramian \[T, T\].*non-symmetric \[2, 2\]"),
    (torch.tensor([[float("nan"), 0.0], [0.0, 1.0]]), "NaN or infinite"),
    (torch.tensor([[1.0, float("inf")], [float("inf"), 1.0]]), "NaN or infinite"),
])
def test_bad_gramians_are_named(bad: torch.Tensor, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        min_norm_weights(bad)


def test_integer_gramian_is_refused() -> None:
    with pytest.raises(TypeError, match="floating-point"):
        min_norm_weights(torch.eye(2, dtype=torch.int64))


def test_float32_in_float32_out_and_input_untouched() -> None:
    jacobian = torch.randn(5, 9, generator=torch.Generator().manual_seed(3))
    gramian = jacobian @ jacobian.T
    before = gramian.clone()
    weights = min_norm_weights(gramian)
    assert weights.dtype == torch.float32 and weights.shape == (5,)
    assert torch.equal(gramian, before)
    exact = min_norm_weights(gramian.double()).numpy()
    np.testing.assert_allclose(weights.numpy(), exact, atol=1e-6)


def test_tiny_tolerances_return_instead_of_cycling() -> None:
    """Below float64's reach (tol = 0) the solver stops where rounding stops the decrease; it used
    to cycle until max_iter and raise on several of these."""
    rng = np.random.default_rng(4)
    for _ in range(20):
        t = int(rng.integers(3, 25))
        jacobian = ill_conditioned(rng, t, t + 2, smallest=1e-12)
        gramian = jacobian @ jacobian.T
        alpha = min_norm_weights(torch.tensor(gramian), tol=0.0).numpy()
        assert (alpha >= 0).all() and alpha.sum() == pytest.approx(1.0, abs=1e-12)
        assert ((gramian @ alpha) >= alpha @ gramian @ alpha - TOL * np.diag(gramian).max()).all()


def _cvxpy_value(gramian: np.ndarray) -> float:
    x = cp.Variable(gramian.shape[0])
    problem = cp.Problem(cp.Minimize(cp.quad_form(x, cp.psd_wrap(gramian))), [x >= 0, cp.sum(x) == 1])
    problem.solve(solver=cp.CLARABEL)
    return float(problem.value)


def test_five_tasks_beat_the_frank_wolfe_it_replaces() -> None:
    """The defect: torchjd's Frank-Wolfe (eps 1e-3, 100 iterations) ended up to 36 % above the
    minimum norm on nearly anti-parallel gradients."""
    from torchjd.aggregation import MGDAWeighting

    rng = np.random.default_rng(1)
    g = rng.normal(size=30)
    jac = np.stack([g, -g + 0.05 * rng.normal(size=30), *rng.normal(size=(3, 30))])
    gramian = torch.tensor(jac @ jac.T)
    exact = min_norm_weights(gramian)
    frank_wolfe = MGDAWeighting(epsilon=1e-3, max_iters=100)(gramian)
    value = lambda w: float(w @ gramian @ w)  # noqa: E731
    assert value(exact) == pytest.approx(_cvxpy_value(gramian.numpy()), rel=1e-6, abs=1e-10)
    assert value(exact) < value(frank_wolfe)


def test_the_nnls_route_answers_well_posed_problems_and_wolfe_the_rest(monkeypatch: pytest.MonkeyPatch) -> None:
    """The NNLS answer is used when it passes the KKT test; a failing one goes to Wolfe's algorithm."""
    gramian = torch.tensor(CASES[3][1] @ CASES[3][1].T)  # random T=8
    calls = []
    original = min_norm_module._by_nnls
    monkeypatch.setattr(min_norm_module, "_by_nnls", lambda g, tol: calls.append(1) or original(g, tol))
    first = min_norm_weights(gramian)
    assert calls == [1]
    wrong = np.full(8, 1 / 8)  # the centroid: not the minimum here, so it fails the KKT test
    monkeypatch.setattr(min_norm_module, "nnls", lambda e, f, maxiter: (wrong * 2, 0.0))
    torch.testing.assert_close(min_norm_weights(gramian), first, atol=1e-9, rtol=0)


def test_a_positive_definite_gramian_with_every_task_in_the_support_is_solved_in_closed_form(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """G⁻¹1 > 0: α = G⁻¹1 / 1ᵀG⁻¹1, without the NNLS; G⁻¹1 with a negative entry: the NNLS."""
    jacobian = dict(CASES)["near-orthogonal T=32"]
    gramian = jacobian @ jacobian.T
    inverse_ones = np.linalg.solve(gramian, np.ones(32))
    assert (inverse_ones > 0).all()
    monkeypatch.setattr(min_norm_module, "nnls", lambda *args, **kwargs: pytest.fail("NNLS called"))
    alpha = min_norm_weights(torch.tensor(gramian)).numpy()
    np.testing.assert_allclose(alpha, inverse_ones / inverse_ones.sum(), rtol=1e-10, atol=0)
    conflicting = dict(CASES)["anti-parallel T=5"]
    gramian = conflicting @ conflicting.T
    assert not (np.linalg.solve(gramian, np.ones(5)) > 0).all()
    with pytest.raises(pytest.fail.Exception, match="NNLS called"):
        min_norm_weights(torch.tensor(gramian))

