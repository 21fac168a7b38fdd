"""The batched non-negative QP behind UPGrad and DualProj: each row checked by its KKT certificate
and against Lawson & Hanson's NNLS (scipy), on both of its routes (batched active set, and NNLS
for what the active set does not settle)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import nnls

from manytask.balancing._gramian_linalg import _free_set_solves, nonnegative_qp, psd_root

from .jacobian_cases import full_rank_cases, ill_conditioned, rank_deficient_cases


def scipy_rows(g: np.ndarray, u: np.ndarray) -> np.ndarray:
    """argmin_{x >= 0} ||R x + R u_k||² per row, by scipy's NNLS (one problem at a time)."""
    root = psd_root(g)
    return np.stack([nnls(root, -root @ row, maxiter=1000)[0] for row in u])


def assert_kkt(g: np.ndarray, u: np.ndarray, x: np.ndarray) -> None:
    """x >= 0, λ = G (x + u) >= 0 and x ⊙ λ = 0 certify the minimum of (x + u)ᵀ G (x + u)."""
    lam = (x + u) @ g
    scale = 1.0 + np.abs(x).max() + np.abs(u).max()
    assert (x >= 0).all()
    assert (lam >= -1e-8 * scale).all()
    assert np.abs(x * lam).max() <= 1e-8 * scale ** 2


def conflicting(rng: np.random.Generator, t: int, p: int) -> np.ndarray:
    """Gradients in two groups that pull against each other (many conflicting pairs)."""
    j = rng.normal(size=(t, p))
    j[: t // 2] -= 0.7 * j[t // 2 :].mean(0) * np.sqrt(t)
    return j


CASES = [(n, j @ j.T) for n, j in full_rank_cases() + rank_deficient_cases()]
CASES += [(f"conflicting T={t}", (lambda j: j @ j.T)(conflicting(np.random.default_rng(t), t, 3 * t))) for t in (16, 40)]
CASES.append(("ill-conditioned T=24", (lambda j: j @ j.T)(ill_conditioned(np.random.default_rng(5), 24, 30, 1e-5))))


@pytest.mark.parametrize("g", [g for _, g in CASES], ids=[n for n, _ in CASES])
def test_every_row_is_certified_and_matches_scipy(g: np.ndarray) -> None:
    t = len(g)
    u = np.vstack([np.eye(t), np.full((1, t), 1.0 / t)])  # UPGrad's rows and DualProj's
    x = nonnegative_qp(g, u)
    assert_kkt(g, u, x)
    expected = scipy_rows(g, u)
    # the minimiser's image J x is unique even where x is not (rank-deficient G): compare objectives
    objective = np.einsum("ki,ij,kj->k", x + u, g, x + u)
    reference = np.einsum("ki,ij,kj->k", expected + u, g, expected + u)
    np.testing.assert_allclose(objective, reference, rtol=1e-9, atol=1e-12 * np.abs(g).max())
    if np.linalg.eigvalsh(g)[0] > 1e-8 * np.abs(g).max():  # unique minimiser
        np.testing.assert_allclose(x, expected, atol=1e-7 * (1 + np.abs(expected).max()))


def test_rows_the_active_set_leaves_unsettled_are_finished_by_nnls() -> None:
    """With one round most rows are unsettled (their first guess is wrong); NNLS finishes them
    to the same answer as the full active-set run."""
    g = (lambda j: j @ j.T)(conflicting(np.random.default_rng(0), 30, 60))
    u = np.eye(30)
    one_round = nonnegative_qp(g, u, max_rounds=1)
    assert_kkt(g, u, one_round)
    np.testing.assert_allclose(one_round, nonnegative_qp(g, u), atol=1e-9)


def test_no_conflict_needs_no_solve() -> None:
    """Non-negative G: every u = e_i already has λ = G e_i >= 0, so x = 0."""
    j = np.abs(np.random.default_rng(2).normal(size=(6, 8)))
    np.testing.assert_array_equal(nonnegative_qp(j @ j.T, np.eye(6)), np.zeros((6, 6)))


@pytest.mark.parametrize("t", [1, 5, 40])
def test_free_set_solves_match_one_solve_per_row(t: int) -> None:
    """The gathered, padded batch gives each row's G_FF x_F = -b_F (0 off F), rows with an empty
    free set included, as solving each row's own system does."""
    rng = np.random.default_rng(t)
    j = rng.standard_normal((t, 3 * t + 2))
    g = j @ j.T
    b = rng.standard_normal((7, t))
    free = rng.random((7, t)) < 0.5
    free[0] = False  # nothing free
    free[1] = True  # everything free
    xs = _free_set_solves(g, b, free)
    for row in range(7):
        expected = np.zeros(t)
        f = free[row]
        if f.any():
            expected[f] = -np.linalg.solve(g[np.ix_(f, f)], b[row, f])
        np.testing.assert_allclose(xs[row], expected, rtol=1e-9, atol=1e-9)
