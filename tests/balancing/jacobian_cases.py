"""Seeded Jacobians ``[T, P]`` for the Gramian aggregators' tests: random, ill-conditioned,
rank-deficient and widely scaled, each with a name for the test id."""

from __future__ import annotations

import numpy as np
import torch

from manytask.balancing import GramianBalancer


def ill_conditioned(rng: np.random.Generator, t: int, p: int, smallest: float) -> np.ndarray:
    """Singular values from ``smallest`` to 1 (geometric)."""
    u, _ = np.linalg.qr(rng.normal(size=(t, t)))
    v, _ = np.linalg.qr(rng.normal(size=(p, p)))
    return (u * np.geomspace(smallest, 1, t)) @ v[:t]


def full_rank_cases(seed: int = 0) -> list[tuple[str, np.ndarray]]:
    """Linearly independent rows. Ill-conditioned down to singular values 1e-5 (Gramian
    eigenvalues 1e-10, well above the rank tolerance T·eps·λ_max of a float64 Gramian)."""
    rng = np.random.default_rng(seed)
    cases = [(f"random T={t}", rng.normal(size=(t, 2 * t))) for t in (2, 3, 5, 8)]
    cases += [(f"ill-conditioned T={t}", ill_conditioned(rng, t, t + 3, 1e-5)) for t in (3, 5)]
    cases.append(("norms 1e-3..1e3 T=4", rng.normal(size=(4, 9)) * np.array([[1e-3], [1.0], [1e3], [10.0]])))
    g = rng.normal(size=12)
    cases.append(("nearly anti-parallel T=3", np.stack([g, -g + 1e-3 * rng.normal(size=12), rng.normal(size=12)])))
    return cases


def rank_deficient_cases(seed: int = 1) -> list[tuple[str, np.ndarray]]:
    """Linearly dependent rows: more tasks than dimensions, a sum of two rows, a duplicate."""
    rng = np.random.default_rng(seed)
    cases = [("T=5 P=3", rng.normal(size=(5, 3))), ("T=4 P=2", rng.normal(size=(4, 2)))]
    a, b = rng.normal(size=(2, 10))
    cases.append(("g3 = g1 + g2", np.stack([a, b, a + b])))
    cases.append(("duplicate task", np.stack([a, a, b])))
    return cases


def weights_of(balancer: GramianBalancer, jacobian: np.ndarray, *, step: int = 0,
               dtype: torch.dtype = torch.float64) -> np.ndarray:
    """The balancer's weights for the Gramian of ``jacobian``, every task present."""
    gramian = torch.tensor(jacobian @ jacobian.T, dtype=dtype)
    t = jacobian.shape[0]
    out = balancer.gramian_weights(gramian, torch.ones(t, dtype=dtype), torch.ones(t, dtype=torch.bool), step=step)
    assert out.dtype == dtype and out.shape == (t,)
    assert torch.isfinite(out).all()
    return out.double().numpy()
