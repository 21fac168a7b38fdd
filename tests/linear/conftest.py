"""Small seeded multi-task problems shared by the linear tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pytest


@dataclass(frozen=True)
class Problem:
    """A multi-input problem: rows of ``X`` belong to the tasks in ``task``."""

    X: np.ndarray
    y: np.ndarray
    task: np.ndarray
    n_tasks: int


def make_problem(
    *, n: int = 45, d: int = 5, n_tasks: int = 3, logistic: bool = False, seed: int = 0
) -> Problem:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    task = np.arange(n) % n_tasks
    W = rng.normal(size=(d,)) + 0.5 * rng.normal(size=(n_tasks, d))
    z = np.einsum("ij,ij->i", X, W[task]) + rng.normal(size=n_tasks)[task]
    if logistic:
        y = np.where(z + rng.logistic(size=n) > 0, 1, -1)
    else:
        y = z + 0.5 * rng.normal(size=n)
    return Problem(X, y, task, n_tasks)


@pytest.fixture
def problem() -> Callable[..., Problem]:
    """Factory of seeded problems: ``problem(n=, d=, n_tasks=, logistic=, seed=)``."""
    return make_problem


@pytest.fixture(autouse=True)
def _one_blas_thread() -> Iterator[None]:
    """Small dense problems: BLAS threads only add contention on the 2-core test machines."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield
