"""Baselines without coupling: independent ridge and lasso per task, and mean-regularised MTL."""

from __future__ import annotations

import numpy as np

from manytask.linear._base import Blocks, LinearMultiTaskClassifier, LinearMultiTaskRegressor
from manytask.linear._prox import prox_l1

__all__ = [
    "IndependentLassoClassifier",
    "IndependentLassoRegressor",
    "IndependentRidgeClassifier",
    "IndependentRidgeRegressor",
    "MeanRegularizedMultiTaskClassifier",
    "MeanRegularizedMultiTaskRegressor",
]


class _RidgePenalty:
    _constraints = {"alpha": "nonneg"}

    def __init__(
        self,
        alpha: float = 0.1,
        *,
        fit_intercept: bool = True,
        max_iter: int = 1000,
        tol: float = 1e-5,
    ) -> None:
        self.alpha = alpha
        self.fit_intercept = fit_intercept
        self.max_iter = max_iter
        self.tol = tol

    def _smooth_penalty(self, blocks: Blocks) -> tuple[float, Blocks]:
        W = blocks[0]
        return 0.5 * self.alpha * float(np.sum(W * W)), [self.alpha * W]


class _LassoPenalty(_RidgePenalty):
    def _smooth_penalty(self, blocks: Blocks) -> tuple[float, Blocks]:
        return 0.0, [np.zeros_like(blocks[0])]

    def _nonsmooth_penalty(self, blocks: Blocks) -> float:
        return self.alpha * float(np.abs(blocks[0]).sum())

    def _prox(self, blocks: Blocks, step: float) -> Blocks:
        return [prox_l1(blocks[0], step * self.alpha)]


class _MeanPenalty:
    _constraints = {"alpha": "nonneg", "beta": "nonneg"}

    def __init__(
        self,
        alpha: float = 0.1,
        *,
        beta: float = 0.01,
        fit_intercept: bool = True,
        max_iter: int = 1000,
        tol: float = 1e-5,
    ) -> None:
        self.alpha = alpha
        self.beta = beta
        self.fit_intercept = fit_intercept
        self.max_iter = max_iter
        self.tol = tol

    def _smooth_penalty(self, blocks: Blocks) -> tuple[float, Blocks]:
        W = blocks[0]
        dev = W - W.mean(axis=0, keepdims=True)
        val = 0.5 * self.alpha * float(np.sum(dev * dev)) + 0.5 * self.beta * float(np.sum(W * W))
        return val, [self.alpha * dev + self.beta * W]


class IndependentRidgeRegressor(_RidgePenalty, LinearMultiTaskRegressor):
    r"""Ridge regression fitted independently per task (baseline).

    .. math:: \min_{W, b} \sum_t \frac{1}{2 n_t} \|y_t - X_t w_t - b_t\|^2
              + \frac{\alpha}{2} \|W\|_F^2

    Each task is an independent ridge problem; scikit-learn's ``Ridge(alpha=alpha * n_t)`` on
    task ``t`` gives the same ``w_t``.

    Args:
        alpha: ridge strength (>= 0).
        fit_intercept: fit an unpenalised intercept per task.
        max_iter: maximum number of solver iterations.
        tol: relative tolerance of the solver's stopping rule.

    References:
        Hoerl & Kennard, "Ridge regression", Technometrics 12(1), 1970.
    """


class IndependentRidgeClassifier(_RidgePenalty, LinearMultiTaskClassifier):
    r"""L2-regularised logistic regression fitted independently per task (baseline).

    .. math:: \min_{W, b} \sum_t \frac{1}{n_t} \sum_{i \in t} \log(1 + e^{-y_i (x_i^\top w_t
              + b_t)}) + \frac{\alpha}{2} \|W\|_F^2

    Args:
        alpha: L2 strength (>= 0).
        fit_intercept: fit an unpenalised intercept per task.
        max_iter: maximum number of solver iterations.
        tol: relative tolerance of the solver's stopping rule.

    References:
        Hoerl & Kennard, "Ridge regression", Technometrics 12(1), 1970.
    """


class IndependentLassoRegressor(_LassoPenalty, LinearMultiTaskRegressor):
    r"""Lasso fitted independently per task (baseline).

    .. math:: \min_{W, b} \sum_t \frac{1}{2 n_t} \|y_t - X_t w_t - b_t\|^2 + \alpha \|W\|_1

    Task ``t`` alone equals scikit-learn's ``Lasso(alpha=alpha)``.

    Args:
        alpha: l1 strength (>= 0).
        fit_intercept: fit an unpenalised intercept per task.
        max_iter: maximum number of solver iterations.
        tol: relative tolerance of the solver's stopping rule.

    References:
        Tibshirani, "Regression shrinkage and selection via the lasso", JRSS-B 58(1), 1996.
    """


class IndependentLassoClassifier(_LassoPenalty, LinearMultiTaskClassifier):
    r"""L1-regularised logistic regression fitted independently per task (baseline).

    .. math:: \min_{W, b} \sum_t \frac{1}{n_t} \sum_{i \in t} \log(1 + e^{-y_i (x_i^\top w_t
              + b_t)}) + \alpha \|W\|_1

    Args:
        alpha: l1 strength (>= 0).
        fit_intercept: fit an unpenalised intercept per task.
        max_iter: maximum number of solver iterations.
        tol: relative tolerance of the solver's stopping rule.

    References:
        Tibshirani, "Regression shrinkage and selection via the lasso", JRSS-B 58(1), 1996.
    """


class MeanRegularizedMultiTaskRegressor(_MeanPenalty, LinearMultiTaskRegressor):
    r"""Mean-regularised multi-task least squares: task vectors pulled to their mean.

    .. math:: \min_{W, b} \sum_t \frac{1}{2 n_t} \|y_t - X_t w_t - b_t\|^2
              + \frac{\alpha}{2} \sum_t \|w_t - \bar w\|^2 + \frac{\beta}{2} \|W\|_F^2,
              \qquad \bar w = \frac{1}{T} \sum_t w_t

    This is the regularised MTL of Evgeniou & Pontil, who write ``w_t = w_0 + v_t`` and
    penalise ``\lambda_1 / T \sum_t \|v_t\|^2 + \lambda_2 \|w_0\|^2``; minimising over ``w_0``
    gives the form above. ``alpha = 0`` is independent ridge with strength ``beta``.

    Args:
        alpha: strength of the pull towards the mean task (>= 0).
        beta: ridge strength on every task vector (>= 0).
        fit_intercept: fit an unpenalised intercept per task.
        max_iter: maximum number of solver iterations.
        tol: relative tolerance of the solver's stopping rule.

    References:
        Evgeniou & Pontil, "Regularized multi-task learning", KDD 2004.
    """


class MeanRegularizedMultiTaskClassifier(_MeanPenalty, LinearMultiTaskClassifier):
    r"""Mean-regularised multi-task logistic regression.

    .. math:: \min_{W, b} \sum_t \frac{1}{n_t} \sum_{i \in t} \log(1 + e^{-y_i (x_i^\top w_t
              + b_t)}) + \frac{\alpha}{2} \sum_t \|w_t - \bar w\|^2 + \frac{\beta}{2} \|W\|_F^2

    Args:
        alpha: strength of the pull towards the mean task (>= 0).
        beta: ridge strength on every task vector (>= 0).
        fit_intercept: fit an unpenalised intercept per task.
        max_iter: maximum number of solver iterations.
        tol: relative tolerance of the solver's stopping rule.

    References:
        Evgeniou & Pontil, "Regularized multi-task learning", KDD 2004.
    """
