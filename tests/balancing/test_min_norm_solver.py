"""The exact min-norm solver against cvxpy, the two-task closed form and the KKT conditions."""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest
import torch

from manytask.balancing import min_norm_weights


def reference(gramian: np.ndarray) -> float:
    x = cp.Variable(gramian.shape[0])
    problem = cp.Problem(cp.Minimize(cp.quad_form(x, cp.psd_wrap(gramian))), [x >= 0, cp.sum(x) == 1])
    problem.solve(solver=cp.CLARABEL, tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12)
    return float(problem.value)


def jacobians() -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    cases = []
    for t, p in [(3, 10), (5, 20), (8, 30), (20, 50)]:
        cases.append((f"random T={t}", rng.normal(size=(t, p))))
        cases.append((f"ill-conditioned T={t}", rng.normal(size=(t, p)) * np.logspace(-4, 0, t)[:, None]))
    cases.append(("rank-deficient T=8 P=3", rng.normal(size=(8, 3))))
    g = rng.normal(size=40)
    cases.append(("nearly anti-parallel", np.stack([g, -g + 1e-3 * rng.normal(size=40), rng.normal(size=40)])))
    cases.append(("tiny scale", 1e-6 * rng.normal(size=(5, 12))))
    cases.append(("huge scale", 1e6 * rng.normal(size=(5, 12))))
    return cases


@pytest.mark.parametrize("name, jacobian", jacobians(), ids=[n for n, _ in jacobians()])
def test_objective_equals_cvxpy_and_kkt_holds(name: str, jacobian: np.ndarray) -> None:
    gramian = jacobian @ jacobian.T
    scale = np.abs(np.diag(gramian)).max()
    alpha = min_norm_weights(torch.tensor(gramian)).numpy()
    assert (alpha >= 0).all() and alpha.sum() == pytest.approx(1.0, abs=1e-12)
    value = alpha @ gramian @ alpha
    assert value <= reference(gramian / scale) * scale + 1e-8 * scale  # cvxpy on the unit-scale problem
    # Optimality of the simplex QP: (G a)_i >= a'Ga for every i.
    assert ((gramian @ alpha) >= value - 1e-8 * scale).all()


@pytest.mark.parametrize("g1, g2", [([1.0, 0.0], [0.0, 1.0]), ([2.0, 1.0], [-1.0, 0.5]), ([1.0, 1.0], [3.0, 3.5])])
def test_two_tasks_match_algorithm_1(g1: list[float], g2: list[float]) -> None:
    a, b = np.array(g1), np.array(g2)
    alpha = np.clip((b - a) @ b / ((a - b) @ (a - b)), 0, 1)  # Sener & Koltun (2018), Algorithm 1
    weights = min_norm_weights(torch.tensor(np.stack([a, b]) @ np.stack([a, b]).T))
    np.testing.assert_allclose(weights.numpy(), [alpha, 1 - alpha], atol=1e-12)


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
    assert value(exact) == pytest.approx(reference(gramian.numpy()), rel=1e-6, abs=1e-10)
    assert value(exact) < value(frank_wolfe)


def test_limit_cases() -> None:
    assert min_norm_weights(torch.tensor([[4.0]])).tolist() == [1.0]
    assert min_norm_weights(torch.zeros(3, 3)).tolist() == pytest.approx([1 / 3] * 3)
    # One gradient inside the hull of the others is not the answer; the origin is reachable here.
    jac = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]])
    weights = min_norm_weights(jac @ jac.T)
    assert float(weights @ (jac @ jac.T) @ weights) == pytest.approx(0.0, abs=1e-12)
    g32 = torch.eye(2, dtype=torch.float32)
    assert min_norm_weights(g32).dtype == torch.float32
    before = g32.clone()
    min_norm_weights(g32)
    assert torch.equal(before, g32)


@pytest.mark.parametrize("bad, match", [
    (torch.zeros(2, 3), r"square Gramian \[T, T\].*\[2, 3\]"),
    (torch.tensor([[1.0, 2.0], [0.0, 1.0]]), "non-symmetric"),
    (torch.tensor([[float("nan"), 0.0], [0.0, 1.0]]), "NaN or infinite"),
])
def test_bad_gramians_are_named(bad: torch.Tensor, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        min_norm_weights(bad)
