"""Proximal operators and projections against cvxpy and their defining properties."""

from __future__ import annotations

import numpy as np
import pytest

from manytask.linear._prox import (
    project_capped_simplex,
    project_cmtl_set,
    project_l1_ball,
    prox_group_l2,
    prox_group_linf,
    prox_l1,
    prox_squared_l1,
    prox_squared_trace,
    prox_trace,
)

cp = pytest.importorskip("cvxpy")


def _cvx_prox(v: np.ndarray, penalty) -> np.ndarray:  # noqa: ANN001
    x = cp.Variable(v.shape)
    cp.Problem(cp.Minimize(penalty(x) + 0.5 * cp.sum_squares(x - v))).solve(solver=cp.CLARABEL)
    return x.value


V = np.random.default_rng(0).normal(size=(4, 6))
TAU = 0.7


@pytest.mark.parametrize(
    "ours, theirs",
    [
        (lambda v: prox_l1(v, TAU), lambda x: TAU * cp.sum(cp.abs(x))),
        (
            lambda v: prox_group_l2(v, TAU, axis=0),
            lambda x: TAU * sum(cp.norm(x[:, j], 2) for j in range(V.shape[1])),
        ),
        (
            lambda v: prox_group_l2(v, TAU, axis=1),
            lambda x: TAU * sum(cp.norm(x[i, :], 2) for i in range(V.shape[0])),
        ),
        (
            lambda v: prox_group_linf(v, TAU, axis=0),
            lambda x: TAU * sum(cp.norm(x[:, j], "inf") for j in range(V.shape[1])),
        ),
        (lambda v: prox_trace(v, TAU), lambda x: TAU * cp.normNuc(x)),
    ],
    ids=["l1", "l21_features", "l21_tasks", "l1inf", "trace"],
)
def test_prox_matches_cvxpy(ours, theirs) -> None:  # noqa: ANN001
    np.testing.assert_allclose(ours(V), _cvx_prox(V, theirs), atol=1e-6)


def test_l1_ball_projection() -> None:
    rng = np.random.default_rng(1)
    v = rng.normal(size=(5, 7)) * 3
    p = project_l1_ball(v, 2.0)
    assert np.allclose(np.abs(p).sum(axis=1), 2.0)
    inside = v / (np.abs(v).sum(axis=1, keepdims=True)) * 0.5
    np.testing.assert_array_equal(project_l1_ball(inside, 2.0), inside)
    x = cp.Variable(7)
    cp.Problem(cp.Minimize(cp.sum_squares(x - v[0])), [cp.norm(x, 1) <= 2.0]).solve()
    np.testing.assert_allclose(p[0], x.value, atol=1e-6)


@pytest.mark.parametrize("total", [0.0, 1.0, 2.5, 5.0])
def test_capped_simplex_projection(total: float) -> None:
    v = np.array([2.0, -1.0, 0.3, 0.9, 0.5])
    p = project_capped_simplex(v, total)
    x = cp.Variable(5)
    cons = [x >= 0, x <= 1, cp.sum(x) == total]
    cp.Problem(cp.Minimize(cp.sum_squares(x - v)), cons).solve()
    np.testing.assert_allclose(p, x.value, atol=1e-6)


def test_cmtl_set_projection() -> None:
    rng = np.random.default_rng(2)
    A = rng.normal(size=(5, 5))
    M = project_cmtl_set(A + A.T, 2.0)
    ev = np.linalg.eigvalsh(M)
    assert np.trace(M) == pytest.approx(2.0) and ev.min() > -1e-10 and ev.max() < 1 + 1e-10
    X = cp.Variable((5, 5), symmetric=True)
    cons = [X >> 0, np.eye(5) - X >> 0, cp.trace(X) == 2]
    cp.Problem(cp.Minimize(cp.sum_squares(X - (A + A.T))), cons).solve(solver=cp.CLARABEL)
    np.testing.assert_allclose(M, X.value, atol=1e-5)


@pytest.mark.parametrize("seed", range(6))
def test_squared_l1_and_squared_trace_prox_match_cvxpy(seed: int) -> None:
    """Prox of ``tau/2 (sum_i |x_i|)^2`` and of ``tau/2 ||X||_*^2`` (MTRL's penalty with Omega
    minimised out), on random points and thresholds from nearly none to nearly everything: the
    point cvxpy finds (to its accuracy, ~1e-6 on the nuclear norm) and an objective no higher."""
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(4, 6)) * rng.uniform(0.5, 3.0)
    tau = float(10 ** rng.uniform(-2, 0.5))
    cases = [
        (v[0], prox_squared_l1, lambda x: np.abs(x).sum(), cp.norm1),
        (v, prox_squared_trace, lambda x: np.linalg.svd(x, compute_uv=False).sum(), cp.normNuc),
    ]
    for point, ours, norm, cvx_norm in cases:
        theirs = _cvx_prox(point, lambda x: tau / 2 * cp.square(cvx_norm(x)))  # noqa: B023
        mine = ours(point, tau)
        np.testing.assert_allclose(mine, theirs, atol=1e-5)
        value = tau / 2 * norm(mine) ** 2 + 0.5 * np.sum((mine - point) ** 2)
        assert value <= tau / 2 * norm(theirs) ** 2 + 0.5 * np.sum((theirs - point) ** 2) + 1e-9
