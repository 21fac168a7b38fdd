"""Joint feature selection: L2,1 and block-sparse l1/lq penalties, and the trace norm."""

from __future__ import annotations

import numbers

import numpy as np

from manytask.linear._base import (
    Blocks,
    InvalidParameterError,
    LinearMultiTaskClassifier,
    LinearMultiTaskRegressor,
    TaskData,
)
from manytask.linear._prox import prox_group_l2, prox_group_linf, prox_trace

__all__ = [
    "L1LqMultiTaskClassifier",
    "L1LqMultiTaskRegressor",
    "L21MultiTaskClassifier",
    "L21MultiTaskRegressor",
    "TraceNormMultiTaskClassifier",
    "TraceNormMultiTaskRegressor",
]


class _OnePenaltyParams:
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


class _L21Penalty(_OnePenaltyParams):
    def _nonsmooth_penalty(self, blocks: Blocks) -> float:
        return self.alpha * float(np.linalg.norm(blocks[0], axis=0).sum())

    def _prox(self, blocks: Blocks, step: float) -> Blocks:
        return [prox_group_l2(blocks[0], step * self.alpha, axis=0)]


class _L1LqPenalty:
    _constraints = {"alpha": "nonneg"}

    def __init__(
        self,
        alpha: float = 0.1,
        *,
        q: float = 2.0,
        fit_intercept: bool = True,
        max_iter: int = 1000,
        tol: float = 1e-5,
    ) -> None:
        self.alpha = alpha
        self.q = q
        self.fit_intercept = fit_intercept
        self.max_iter = max_iter
        self.tol = tol

    def _solve(self, data: TaskData) -> tuple[Blocks, np.ndarray | None, int, str | None]:
        if not (isinstance(self.q, numbers.Real) and float(self.q) in (2.0, np.inf)):
            raise InvalidParameterError(
                f"The 'q' parameter of {type(self).__name__} must be 2 or numpy.inf "
                f"(the norms with an exact proximal operator). Got {self.q!r} instead."
            )
        return super()._solve(data)  # type: ignore[misc]

    def _nonsmooth_penalty(self, blocks: Blocks) -> float:
        return self.alpha * float(np.linalg.norm(blocks[0], ord=float(self.q), axis=0).sum())

    def _prox(self, blocks: Blocks, step: float) -> Blocks:
        if float(self.q) == 2.0:
            return [prox_group_l2(blocks[0], step * self.alpha, axis=0)]
        return [prox_group_linf(blocks[0], step * self.alpha, axis=0)]


class _TracePenalty(_OnePenaltyParams):
    def _nonsmooth_penalty(self, blocks: Blocks) -> float:
        return self.alpha * float(np.linalg.svd(blocks[0], compute_uv=False).sum())

    def _prox(self, blocks: Blocks, step: float) -> Blocks:
        return [prox_trace(blocks[0], step * self.alpha)]


class L21MultiTaskRegressor(_L21Penalty, LinearMultiTaskRegressor):
    r"""Joint feature selection: least squares with the L2,1 norm (group lasso over tasks).

    .. math:: \min_{W, b} \sum_t \frac{1}{2 n_t} \|y_t - X_t w_t - b_t\|^2
              + \alpha \sum_{j=1}^d \|W_{:, j}\|_2

    ``W`` is ``coef_`` (``[T, d]``), so the group of feature ``j`` is its weights in all tasks;
    a feature is used by every task or by none. With shared inputs this is scikit-learn's
    ``MultiTaskLasso(alpha=alpha)``.

    Args:
        alpha: strength of the L2,1 penalty (>= 0).
        fit_intercept: fit an unpenalised intercept per task.
        max_iter: maximum number of solver iterations.
        tol: relative tolerance of the solver's stopping rule.

    References:
        Argyriou, Evgeniou & Pontil, "Convex multi-task feature learning", Machine Learning
        73, 2008 (with the equivalent L2,1 form); Liu, Ji & Ye, "Multi-task
        feature learning via efficient l2,1-norm minimization", UAI 2009.
    """


class L21MultiTaskClassifier(_L21Penalty, LinearMultiTaskClassifier):
    r"""Joint feature selection for logistic regression (L2,1 norm over tasks).

    .. math:: \min_{W, b} \sum_t \frac{1}{n_t} \sum_{i \in t} \log(1 + e^{-y_i (x_i^\top w_t
              + b_t)}) + \alpha \sum_j \|W_{:, j}\|_2

    Args:
        alpha: strength of the L2,1 penalty (>= 0).
        fit_intercept: fit an unpenalised intercept per task.
        max_iter: maximum number of solver iterations.
        tol: relative tolerance of the solver's stopping rule.

    References:
        Liu, Ji & Ye, "Multi-task feature learning via efficient l2,1-norm minimization",
        UAI 2009, with the logistic loss.
    """


class L1LqMultiTaskRegressor(_L1LqPenalty, LinearMultiTaskRegressor):
    r"""Block-sparse least squares with a mixed l1/lq norm, ``q`` in ``{2, inf}``.

    .. math:: \min_{W, b} \sum_t \frac{1}{2 n_t} \|y_t - X_t w_t - b_t\|^2
              + \alpha \sum_{j=1}^d \|W_{:, j}\|_q

    ``q = 2`` is :class:`L21MultiTaskRegressor`; ``q = inf`` (l1/l_inf, Turlach et al.
    2005; Negahban & Wainwright 2008) favours equal magnitudes across tasks. Both have exact
    proximal operators (group shrinkage; ``v - P_{l1 ball}(v)``).

    Args:
        alpha: strength of the penalty (>= 0).
        q: ``2`` or ``numpy.inf``.
        fit_intercept: fit an unpenalised intercept per task.
        max_iter: maximum number of solver iterations.
        tol: relative tolerance of the solver's stopping rule.

    References:
        Turlach, Venables & Wright, "Simultaneous variable selection", Technometrics 47, 2005;
        Liu, Ji & Ye, UAI 2009; Negahban & Wainwright, "Joint support recovery under
        high-dimensional scaling: benefits and perils of l1,inf-regularization", NIPS 2008.
    """


class L1LqMultiTaskClassifier(_L1LqPenalty, LinearMultiTaskClassifier):
    r"""Block-sparse logistic regression with a mixed l1/lq norm, ``q`` in ``{2, inf}``.

    .. math:: \min_{W, b} \sum_t \frac{1}{n_t} \sum_{i \in t} \log(1 + e^{-y_i (x_i^\top w_t
              + b_t)}) + \alpha \sum_j \|W_{:, j}\|_q

    Args:
        alpha: strength of the penalty (>= 0).
        q: ``2`` or ``numpy.inf``.
        fit_intercept: fit an unpenalised intercept per task.
        max_iter: maximum number of solver iterations.
        tol: relative tolerance of the solver's stopping rule.

    References:
        Turlach, Venables & Wright, Technometrics 47, 2005; Liu, Ji & Ye, UAI 2009.
    """


class TraceNormMultiTaskRegressor(_TracePenalty, LinearMultiTaskRegressor):
    r"""Low-rank multi-task least squares: trace (nuclear) norm of the coefficient matrix.

    .. math:: \min_{W, b} \sum_t \frac{1}{2 n_t} \|y_t - X_t w_t - b_t\|^2
              + \alpha \|W\|_*

    The proximal operator is singular value thresholding.

    Args:
        alpha: strength of the trace norm (>= 0).
        fit_intercept: fit an unpenalised intercept per task.
        max_iter: maximum number of solver iterations.
        tol: relative tolerance of the solver's stopping rule.

    References:
        Ji & Ye, "An accelerated gradient method for trace norm minimization", ICML 2009;
        Pong, Tseng, Ji & Ye, "Trace norm regularization: reformulations, algorithms, and
        multi-task learning", SIAM J. Optim. 20(6), 2010.
    """


class TraceNormMultiTaskClassifier(_TracePenalty, LinearMultiTaskClassifier):
    r"""Low-rank multi-task logistic regression (trace norm).

    .. math:: \min_{W, b} \sum_t \frac{1}{n_t} \sum_{i \in t} \log(1 + e^{-y_i (x_i^\top w_t
              + b_t)}) + \alpha \|W\|_*

    Args:
        alpha: strength of the trace norm (>= 0).
        fit_intercept: fit an unpenalised intercept per task.
        max_iter: maximum number of solver iterations.
        tol: relative tolerance of the solver's stopping rule.

    References:
        Ji & Ye, ICML 2009; Pong, Tseng, Ji & Ye, SIAM J. Optim. 2010.
    """
