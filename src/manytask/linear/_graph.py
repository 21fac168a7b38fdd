"""Graph-regularised multi-task learning (SRMTL) with a user-given task graph."""

from __future__ import annotations

from typing import Any

import numpy as np

from manytask.linear._base import (
    Blocks,
    LinearMultiTaskClassifier,
    LinearMultiTaskRegressor,
    TaskData,
)
from manytask.linear._prox import prox_l1

__all__ = ["GraphRegularizedMultiTaskClassifier", "GraphRegularizedMultiTaskRegressor"]


class _GraphPenalty:
    # provided by the estimator base this mixin is combined with
    _constraints = {"alpha": "nonneg", "beta": "nonneg", "gamma": "nonneg"}

    def __init__(
        self,
        alpha: float = 0.1,
        *,
        graph: Any = None,
        beta: float = 0.0,
        gamma: float = 0.0,
        fit_intercept: bool = True,
        max_iter: int = 1000,
        tol: float = 1e-5,
    ) -> None:
        self.alpha = alpha
        self.graph = graph
        self.beta = beta
        self.gamma = gamma
        self.fit_intercept = fit_intercept
        self.max_iter = max_iter
        self.tol = tol

    def _laplacian(self, n_tasks: int) -> np.ndarray:
        if self.graph is None:
            A = (np.ones((n_tasks, n_tasks)) - np.eye(n_tasks)) / n_tasks
        else:
            A = np.asarray(self.graph, dtype=float)
            if A.shape != (n_tasks, n_tasks):
                raise ValueError(
                    f"graph must be a ({n_tasks}, {n_tasks}) adjacency matrix, one row and "
                    f"column per task; got shape {A.shape}."
                )
            if not np.all(np.isfinite(A)) or np.any(A < 0) or not np.allclose(A, A.T):
                raise ValueError(
                    "graph must be a symmetric matrix of finite non-negative edge weights."
                )
            A = A - np.diag(np.diag(A))
        return np.diag(A.sum(axis=1)) - A

    def _solve(self, data: TaskData) -> tuple[Blocks, np.ndarray | None, int, str | None]:
        self.laplacian_ = self._laplacian(data.n_tasks)
        return super()._solve(data)  # type: ignore[misc]

    def _smooth_penalty(self, blocks: Blocks) -> tuple[float, Blocks]:
        W = blocks[0]
        LW = self.laplacian_ @ W
        val = 0.5 * self.alpha * float(np.sum(W * LW)) + 0.5 * self.gamma * float(np.sum(W * W))
        return val, [self.alpha * LW + self.gamma * W]

    def _nonsmooth_penalty(self, blocks: Blocks) -> float:
        return self.beta * float(np.abs(blocks[0]).sum())

    def _prox(self, blocks: Blocks, step: float) -> Blocks:
        return [prox_l1(blocks[0], step * self.beta)]


class GraphRegularizedMultiTaskRegressor(_GraphPenalty, LinearMultiTaskRegressor):
    r"""Graph-regularised multi-task least squares (SRMTL) with a user-given task graph.

    .. math:: \min_{W, b} \sum_t \frac{1}{2 n_t} \|y_t - X_t w_t - b_t\|^2
              + \frac{\alpha}{2} \sum_{s < t} A_{st} \|w_s - w_t\|^2
              + \beta \|W\|_1 + \frac{\gamma}{2} \|W\|_F^2

    The graph term equals ``alpha/2 tr(W^T L W)`` with the Laplacian ``L = D - A``
    (``laplacian_``). MALSAR writes it ``||W R||_F^2`` with an edge-incidence matrix ``R``,
    which is the same with ``A = R R^T`` off the diagonal.

    Args:
        alpha: strength of the graph penalty (>= 0).
        graph: ``[T, T]`` symmetric non-negative adjacency matrix of the tasks; ``None`` uses
            the complete graph with weights ``1 / T``, for which the graph term is
            ``alpha/2 sum_t ||w_t - mean(w)||^2`` (mean-regularised MTL).
        beta: l1 strength (>= 0).
        gamma: ridge strength (>= 0).
        fit_intercept: fit an unpenalised intercept per task.
        max_iter: maximum number of solver iterations.
        tol: relative tolerance of the solver's stopping rule.

    References:
        Zhou, Chen & Ye, "MALSAR: Multi-tAsk Learning via StructurAl Regularization", Arizona
        State University, 2011 (SRMTL); Evgeniou, Micchelli & Pontil, "Learning
        multiple tasks with kernel methods", JMLR 6, 2005 (graph regulariser).
    """


class GraphRegularizedMultiTaskClassifier(_GraphPenalty, LinearMultiTaskClassifier):
    r"""Graph-regularised multi-task logistic regression (SRMTL).

    .. math:: \min_{W, b} \sum_t \frac{1}{n_t} \sum_{i \in t} \log(1 + e^{-y_i (x_i^\top w_t
              + b_t)}) + \frac{\alpha}{2} \sum_{s < t} A_{st} \|w_s - w_t\|^2 + \beta \|W\|_1
              + \frac{\gamma}{2} \|W\|_F^2

    Args:
        alpha: strength of the graph penalty (>= 0).
        graph: ``[T, T]`` symmetric non-negative adjacency matrix; ``None``: complete graph
            with weights ``1 / T``.
        beta: l1 strength (>= 0).
        gamma: ridge strength (>= 0).
        fit_intercept: fit an unpenalised intercept per task.
        max_iter: maximum number of solver iterations.
        tol: relative tolerance of the solver's stopping rule.

    References:
        Zhou, Chen & Ye, MALSAR manual, 2011; Evgeniou, Micchelli & Pontil, JMLR 6,
        2005.
    """
