"""Clustered multi-task learning, convex relaxation (CMTL)."""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla

from manytask.linear._base import (
    Blocks,
    LinearMultiTaskClassifier,
    LinearMultiTaskRegressor,
    TaskData,
)
from manytask.linear._prox import project_cmtl_set

__all__ = ["ClusteredMultiTaskClassifier", "ClusteredMultiTaskRegressor"]


class _ClusteredPenalty:
    _constraints = {"alpha": "positive", "beta": "positive", "n_clusters": "posint"}

    def __init__(
        self,
        alpha: float = 0.1,
        *,
        beta: float = 0.1,
        n_clusters: int = 2,
        fit_intercept: bool = True,
        max_iter: int = 1000,
        tol: float = 1e-5,
    ) -> None:
        self.alpha = alpha
        self.beta = beta
        self.n_clusters = n_clusters
        self.fit_intercept = fit_intercept
        self.max_iter = max_iter
        self.tol = tol

    def _init_blocks(self, data: TaskData) -> Blocks:
        T = data.n_tasks
        k = min(self.n_clusters, T)
        return [np.zeros((T, data.n_features)), np.eye(T) * (k / T)]

    def _coef(self, blocks: Blocks) -> np.ndarray:
        return blocks[0]

    def _coef_grad(self, blocks: Blocks, gC: np.ndarray) -> Blocks:
        return [gC, np.zeros_like(blocks[1])]

    def _smooth_penalty(self, blocks: Blocks) -> tuple[float, Blocks]:
        W, M = blocks
        eta = self.beta / self.alpha
        c = self.alpha * eta * (1.0 + eta)
        A = eta * np.eye(M.shape[0]) + 0.5 * (M + M.T)
        try:
            factor = sla.cho_factor(A)
        except np.linalg.LinAlgError:
            return np.inf, [np.zeros_like(W), np.zeros_like(M)]
        AinvW = sla.cho_solve(factor, W)
        val = c * float(np.sum(W * AinvW))
        return val, [2.0 * c * AinvW, -c * (AinvW @ AinvW.T)]

    def _prox(self, blocks: Blocks, step: float) -> Blocks:
        W, M = blocks
        return [W, project_cmtl_set(M, min(self.n_clusters, M.shape[0]))]

    def _store(self, blocks: Blocks) -> None:
        self.cluster_matrix_ = blocks[1]


class ClusteredMultiTaskRegressor(_ClusteredPenalty, LinearMultiTaskRegressor):
    r"""Clustered multi-task least squares, convex relaxation (CMTL).

    .. math:: \min_{W, M, b} \sum_t \frac{1}{2 n_t} \|y_t - X_t w_t - b_t\|^2
              + \alpha \eta (1 + \eta) \operatorname{tr}\big(W^\top (\eta I + M)^{-1} W\big)
              \quad \text{s.t. } \operatorname{tr}(M) = k,\ 0 \preceq M \preceq I,
              \quad \eta = \beta / \alpha

    ``W`` is ``coef_`` (``[T, d]``) and ``M`` (``cluster_matrix_``, ``[T, T]``) relaxes the
    cluster-indicator projection ``F F^T`` of k-means over the tasks; the objective is jointly
    convex and solved by accelerated projected gradient on ``(W, M)``, the projection on ``M``
    being exact (eigenvalues projected on the capped simplex).

    Args:
        alpha: ``rho_1`` (> 0), the weight of the clustering penalty.
        beta: ``rho_2`` (> 0), the ridge weight; ``eta = beta / alpha``.
        n_clusters: number of task clusters ``k`` (capped at the number of tasks; with
            ``k = T`` the penalty reduces to ridge with strength ``2 beta``).
        fit_intercept: fit an unpenalised intercept per task.
        max_iter: maximum number of solver iterations.
        tol: relative tolerance of the solver's stopping rule.

    References:
        Zhou, Chen & Ye, "Clustered multi-task learning via alternating structure
        optimization", NIPS 2011 (cASO); equivalent to the convex clustered MTL of
        Jacob, Bach & Vert, "Clustered multi-task learning: a convex formulation", NIPS 2008.
    """


class ClusteredMultiTaskClassifier(_ClusteredPenalty, LinearMultiTaskClassifier):
    r"""Clustered multi-task logistic regression, convex relaxation (CMTL).

    .. math:: \min_{W, M, b} \sum_t \frac{1}{n_t} \sum_{i \in t} \log(1 + e^{-y_i (x_i^\top w_t
              + b_t)}) + \alpha \eta (1 + \eta) \operatorname{tr}\big(W^\top (\eta I + M)^{-1}
              W\big) \quad \text{s.t. } \operatorname{tr}(M) = k,\ 0 \preceq M \preceq I

    Args:
        alpha: ``rho_1`` (> 0), the weight of the clustering penalty.
        beta: ``rho_2`` (> 0), the ridge weight; ``eta = beta / alpha``.
        n_clusters: number of task clusters ``k`` (capped at the number of tasks).
        fit_intercept: fit an unpenalised intercept per task.
        max_iter: maximum number of solver iterations.
        tol: relative tolerance of the solver's stopping rule.

    References:
        Zhou, Chen & Ye, NIPS 2011; Jacob, Bach & Vert, NIPS 2008.
    """
