"""Multi-task relationship learning (MTRL): learn the task covariance with the weights."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.linalg as sla

from manytask.linear._base import (
    Blocks,
    LinearMultiTaskClassifier,
    LinearMultiTaskRegressor,
    TaskData,
)

__all__ = ["RelationshipMultiTaskClassifier", "RelationshipMultiTaskRegressor"]


class _OmegaPenalty:
    """Penalty ``alpha/2 ||W||^2 + beta/2 tr(W^T Omega^{-1} W)`` for a fixed ``Omega``."""

    def __init__(self, alpha: float, beta: float, omega: np.ndarray) -> None:
        self.alpha = alpha
        self.beta = beta
        self.omega_inv = np.linalg.inv(omega)

    def _coef(self, blocks: Blocks) -> np.ndarray:
        return blocks[0]

    def _coef_grad(self, blocks: Blocks, gC: np.ndarray) -> Blocks:
        return [gC]

    def _smooth_penalty(self, blocks: Blocks) -> tuple[float, Blocks]:
        W = blocks[0]
        OW = self.omega_inv @ W
        val = 0.5 * self.alpha * float(np.sum(W * W)) + 0.5 * self.beta * float(np.sum(W * OW))
        return val, [self.alpha * W + self.beta * OW]

    def _nonsmooth_penalty(self, blocks: Blocks) -> float:
        return 0.0

    def _prox(self, blocks: Blocks, step: float) -> Blocks:
        return blocks


class _Relationship:
    # provided by the estimator base this mixin is combined with
    _solve_apg: Callable[..., Any]
    _init_blocks: Callable[..., Any]
    _constraints = {
        "alpha": "nonneg",
        "beta": "nonneg",
        "eps": "positive",
        "max_outer_iter": "posint",
    }

    def __init__(
        self,
        alpha: float = 0.1,
        *,
        beta: float = 0.1,
        eps: float = 1e-8,
        max_outer_iter: int = 50,
        fit_intercept: bool = True,
        max_iter: int = 1000,
        tol: float = 1e-5,
    ) -> None:
        self.alpha = alpha
        self.beta = beta
        self.eps = eps
        self.max_outer_iter = max_outer_iter
        self.fit_intercept = fit_intercept
        self.max_iter = max_iter
        self.tol = tol

    def _omega(self, W: np.ndarray) -> np.ndarray:
        """``argmin_Omega tr(W^T Omega^{-1} W) + eps tr(Omega^{-1})`` s.t. ``tr(Omega) = 1``."""
        root = sla.sqrtm(W @ W.T + self.eps * np.eye(W.shape[0]))
        root = np.real(0.5 * (root + root.T))
        return root / np.trace(root)

    def _relationship_objective(
        self, data: TaskData, W: np.ndarray, b: np.ndarray | None, omega: np.ndarray
    ) -> float:
        pen = _OmegaPenalty(self.alpha, self.beta, omega)
        reg = pen._smooth_penalty([W])[0] + 0.5 * self.beta * self.eps * np.trace(pen.omega_inv)
        return data.value(W, b) + reg

    def _solve(self, data: TaskData) -> tuple[Blocks, np.ndarray | None, int, bool]:
        T = data.n_tasks
        omega = np.eye(T) / T
        blocks: Blocks = [np.zeros((T, data.n_features))]
        b: np.ndarray | None = None
        total, prev = 0, np.inf
        converged = False
        for _ in range(self.max_outer_iter):
            hooks = _OmegaPenalty(self.alpha, self.beta, omega)
            blocks, b, n_iter, _ = self._solve_apg(data, blocks, b, hooks=hooks)
            total += n_iter
            omega = self._omega(blocks[0])
            obj = self._relationship_objective(data, blocks[0], b, omega)
            if prev - obj <= self.tol * max(abs(obj), np.finfo(float).tiny):
                converged = True
                break
            prev = obj
        self.task_covariance_ = omega
        return blocks, b, total, converged

    def _objective(self, data: TaskData, blocks: Blocks, b: np.ndarray | None) -> float:
        return self._relationship_objective(data, blocks[0], b, self.task_covariance_)


class RelationshipMultiTaskRegressor(_Relationship, LinearMultiTaskRegressor):
    r"""Multi-task relationship learning (MTRL): least squares with a learned task covariance.

    .. math:: \min_{W, b, \Omega} \sum_t \frac{1}{2 n_t} \|y_t - X_t w_t - b_t\|^2
              + \frac{\alpha}{2} \|W\|_F^2
              + \frac{\beta}{2} \operatorname{tr}\big(W^\top \Omega^{-1} W\big)
              \quad \text{s.t. } \Omega \succeq 0,\ \operatorname{tr}(\Omega) = 1

    ``W`` is ``coef_`` (``[T, d]``); ``Omega`` (``task_covariance_``, ``[T, T]``) models
    positive, negative and zero task correlations. The problem is jointly convex; it is solved
    by alternating an APG solve in ``W`` with the closed form
    ``Omega = (W W^T + eps I)^{1/2} / tr(...)`` (the ``eps`` term, ``beta/2 * eps *
    tr(Omega^{-1})``, keeps ``Omega`` invertible), until the objective stops decreasing.

    Args:
        alpha: ridge strength (>= 0).
        beta: strength of the task-covariance penalty (>= 0).
        eps: small positive smoothing of ``Omega``.
        max_outer_iter: maximum number of alternations.
        fit_intercept: fit an unpenalised intercept per task.
        max_iter: maximum number of APG iterations per ``W`` step.
        tol: relative tolerance of the inner and outer stopping rules.

    References:
        Zhang & Yeung, "A convex formulation for learning task relationships in multi-task
        learning", UAI 2010.
    """


class RelationshipMultiTaskClassifier(_Relationship, LinearMultiTaskClassifier):
    r"""Multi-task relationship learning (MTRL) with the logistic loss.

    .. math:: \min_{W, b, \Omega} \sum_t \frac{1}{n_t} \sum_{i \in t} \log(1 + e^{-y_i
              (x_i^\top w_t + b_t)}) + \frac{\alpha}{2} \|W\|_F^2 + \frac{\beta}{2}
              \operatorname{tr}(W^\top \Omega^{-1} W) \quad \text{s.t. } \Omega \succeq 0,\
              \operatorname{tr}(\Omega) = 1

    Args:
        alpha: ridge strength (>= 0).
        beta: strength of the task-covariance penalty (>= 0).
        eps: small positive smoothing of ``Omega``.
        max_outer_iter: maximum number of alternations.
        fit_intercept: fit an unpenalised intercept per task.
        max_iter: maximum number of APG iterations per ``W`` step.
        tol: relative tolerance of the inner and outer stopping rules.

    References:
        Zhang & Yeung, "A convex formulation for learning task relationships in multi-task
        learning", UAI 2010.
    """
