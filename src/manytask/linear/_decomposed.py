"""Decomposition models ``W = P + Q`` with a different structure penalty on each part.

Dirty model (sparse + block-sparse), sparse + low rank, robust MTL (low rank + outlier tasks)
and robust multi-task feature learning (joint features + outlier tasks).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from manytask.linear._base import (
    Blocks,
    LinearMultiTaskClassifier,
    LinearMultiTaskRegressor,
    TaskData,
)
from manytask.linear._prox import prox_group_l2, prox_group_linf, prox_l1, prox_trace

__all__ = [
    "DirtyMultiTaskClassifier",
    "DirtyMultiTaskRegressor",
    "RobustFeatureMultiTaskClassifier",
    "RobustFeatureMultiTaskRegressor",
    "RobustMultiTaskClassifier",
    "RobustMultiTaskRegressor",
    "SparseLowRankMultiTaskClassifier",
    "SparseLowRankMultiTaskRegressor",
]


class _TwoPenaltyParams:
    """Stores ``alpha``, ``beta`` and the solver settings (scikit-learn ``__init__`` contract)."""

    _constraints = {"alpha": "nonneg", "beta": "nonneg"}

    def __init__(
        self,
        alpha: float = 0.1,
        *,
        beta: float = 0.1,
        fit_intercept: bool = True,
        max_iter: int = 1000,
        tol: float = 1e-5,
    ) -> None:
        self.alpha = alpha
        self.beta = beta
        self.fit_intercept = fit_intercept
        self.max_iter = max_iter
        self.tol = tol


_Norm = Callable[[np.ndarray], float]
_Prox = Callable[[np.ndarray, float], np.ndarray]

_NORMS: dict[str, tuple[_Norm, _Prox]] = {
    "l1": (lambda v: float(np.abs(v).sum()), prox_l1),
    "features_l2": (
        lambda v: float(np.linalg.norm(v, axis=0).sum()),
        lambda v, tau: prox_group_l2(v, tau, axis=0),
    ),
    "features_linf": (
        lambda v: float(np.abs(v).max(axis=0).sum()),
        lambda v, tau: prox_group_linf(v, tau, axis=0),
    ),
    "tasks_l2": (
        lambda v: float(np.linalg.norm(v, axis=1).sum()),
        lambda v, tau: prox_group_l2(v, tau, axis=1),
    ),
    "trace": (lambda v: float(np.linalg.svd(v, compute_uv=False).sum()), prox_trace),
}


class _TwoParts(_TwoPenaltyParams):
    """``W = P + Q``; ``alpha`` weighs the norm of ``P``, ``beta`` that of ``Q``."""

    _norms: tuple[str, str]
    _names: tuple[str, str]

    def _init_blocks(self, data: TaskData) -> Blocks:
        return [np.zeros((data.n_tasks, data.n_features)) for _ in range(2)]

    def _nonsmooth_penalty(self, blocks: Blocks) -> float:
        (n1, _), (n2, _) = _NORMS[self._norms[0]], _NORMS[self._norms[1]]
        return self.alpha * n1(blocks[0]) + self.beta * n2(blocks[1])

    def _prox(self, blocks: Blocks, step: float) -> Blocks:
        (_, p1), (_, p2) = _NORMS[self._norms[0]], _NORMS[self._norms[1]]
        return [p1(blocks[0], step * self.alpha), p2(blocks[1], step * self.beta)]

    def _store(self, blocks: Blocks) -> None:
        for name, blk in zip(self._names, blocks, strict=True):
            setattr(self, name, blk)


class _Dirty(_TwoParts):
    _norms = ("l1", "features_linf")
    _names = ("sparse_coef_", "block_coef_")


class _SparseLowRank(_TwoParts):
    _norms = ("l1", "trace")
    _names = ("sparse_coef_", "low_rank_coef_")


class _Robust(_TwoParts):
    _norms = ("trace", "tasks_l2")
    _names = ("low_rank_coef_", "outlier_coef_")


class _RobustFeature(_TwoParts):
    _norms = ("features_l2", "tasks_l2")
    _names = ("feature_coef_", "outlier_coef_")


class DirtyMultiTaskRegressor(_Dirty, LinearMultiTaskRegressor):
    r"""Dirty model: least squares with ``W = S + B``, ``S`` sparse, ``B`` block-sparse.

    .. math:: \min_{S, B, b} \sum_t \frac{1}{2 n_t} \|y_t - X_t w_t - b_t\|^2 + \alpha \|S\|_1
              + \beta \sum_j \|B_{:, j}\|_\infty, \qquad W = S + B

    Features shared by all tasks go to ``B`` (``block_coef_``), task-specific ones to ``S``
    (``sparse_coef_``).

    Args:
        alpha: l1 strength on ``S`` (>= 0).
        beta: l1/l_inf strength on ``B`` (>= 0).
        fit_intercept: fit an unpenalised intercept per task.
        max_iter: maximum number of solver iterations.
        tol: relative tolerance of the solver's stopping rule.

    References:
        Jalali, Ravikumar, Sanghavi & Ruan, "A dirty model for multi-task learning",
        NIPS 2010.
    """


class DirtyMultiTaskClassifier(_Dirty, LinearMultiTaskClassifier):
    r"""Dirty model with the logistic loss (``W = S + B``; l1 on ``S``, l1/l_inf on ``B``).

    .. math:: \min_{S, B, b} \sum_t \frac{1}{n_t} \sum_{i \in t}
              \log(1 + e^{-y_i (x_i^\top w_t + b_t)})
              + \alpha \|S\|_1
              + \beta \sum_j \|B_{:, j}\|_\infty

    Args:
        alpha: l1 strength on ``S`` (>= 0).
        beta: l1/l_inf strength on ``B`` (>= 0).
        fit_intercept: fit an unpenalised intercept per task.
        max_iter: maximum number of solver iterations.
        tol: relative tolerance of the solver's stopping rule.

    References:
        Jalali, Ravikumar, Sanghavi & Ruan, "A dirty model for multi-task learning",
        NIPS 2010.
    """


class SparseLowRankMultiTaskRegressor(_SparseLowRank, LinearMultiTaskRegressor):
    r"""Sparse + low-rank least squares: ``W = P + Q``, l1 on ``P``, trace norm on ``Q``.

    .. math:: \min_{P, Q, b} \sum_t \frac{1}{2 n_t} \|y_t - X_t w_t - b_t\|^2
              + \alpha \|P\|_1 + \beta \|Q\|_*,
              \qquad W = P + Q

    Chen, Liu & Ye constrain ``||Q||_* <= tau``; the penalised form used here has the same
    solutions for a matching ``beta`` (Lagrange duality) and is easier to cross-validate.

    Args:
        alpha: l1 strength on ``P`` (>= 0).
        beta: trace-norm strength on ``Q`` (>= 0).
        fit_intercept: fit an unpenalised intercept per task.
        max_iter: maximum number of solver iterations.
        tol: relative tolerance of the solver's stopping rule.

    References:
        Chen, Liu & Ye, "Learning incoherent sparse and low-rank patterns from multiple
        tasks", ACM TKDD 5(4), 2012.
    """


class SparseLowRankMultiTaskClassifier(_SparseLowRank, LinearMultiTaskClassifier):
    r"""Sparse + low-rank logistic regression (``W = P + Q``; l1 on ``P``, trace on ``Q``).

    .. math:: \min_{P, Q, b} \sum_t \frac{1}{n_t} \sum_{i \in t}
              \log(1 + e^{-y_i (x_i^\top w_t + b_t)})
              + \alpha \|P\|_1 + \beta \|Q\|_*

    Args:
        alpha: l1 strength on ``P`` (>= 0).
        beta: trace-norm strength on ``Q`` (>= 0).
        fit_intercept: fit an unpenalised intercept per task.
        max_iter: maximum number of solver iterations.
        tol: relative tolerance of the solver's stopping rule.

    References:
        Chen, Liu & Ye, ACM TKDD 5(4), 2012.
    """


class RobustMultiTaskRegressor(_Robust, LinearMultiTaskRegressor):
    r"""Robust MTL: low-rank shared structure plus group-sparse outlier tasks.

    .. math:: \min_{L, S, b} \sum_t \frac{1}{2 n_t} \|y_t - X_t w_t - b_t\|^2
              + \alpha \|L\|_* + \beta \sum_t \|s_t\|_2,
              \qquad W = L + S

    ``s_t`` is row ``t`` of ``S`` (``outlier_coef_``): a task that does not fit the low-rank
    structure gets a non-zero row.

    Args:
        alpha: trace-norm strength on ``L`` (>= 0).
        beta: group (per task) strength on ``S`` (>= 0).
        fit_intercept: fit an unpenalised intercept per task.
        max_iter: maximum number of solver iterations.
        tol: relative tolerance of the solver's stopping rule.

    References:
        Chen, Zhou & Ye, "Integrating low-rank and group-sparse structures for robust
        multi-task learning", KDD 2011.
    """


class RobustMultiTaskClassifier(_Robust, LinearMultiTaskClassifier):
    r"""Robust MTL with the logistic loss (low rank + group-sparse outlier tasks).

    .. math:: \min_{L, S, b} \sum_t \frac{1}{n_t} \sum_{i \in t}
              \log(1 + e^{-y_i (x_i^\top w_t + b_t)})
              + \alpha \|L\|_* + \beta \sum_t \|s_t\|_2

    Args:
        alpha: trace-norm strength on ``L`` (>= 0).
        beta: group (per task) strength on ``S`` (>= 0).
        fit_intercept: fit an unpenalised intercept per task.
        max_iter: maximum number of solver iterations.
        tol: relative tolerance of the solver's stopping rule.

    References:
        Chen, Zhou & Ye, KDD 2011.
    """


class RobustFeatureMultiTaskRegressor(_RobustFeature, LinearMultiTaskRegressor):
    r"""Robust multi-task feature learning (rMTFL): joint features plus outlier tasks.

    .. math:: \min_{P, Q, b} \sum_t \frac{1}{2 n_t} \|y_t - X_t w_t - b_t\|^2
              + \alpha \sum_j \|P_{:, j}\|_2
              + \beta \sum_t \|q_t\|_2, \qquad W = P + Q

    ``P`` (``feature_coef_``) selects features jointly across tasks; the rows of ``Q``
    (``outlier_coef_``) let outlier tasks deviate.

    Args:
        alpha: L2,1 strength over features on ``P`` (>= 0).
        beta: L2,1 strength over tasks on ``Q`` (>= 0).
        fit_intercept: fit an unpenalised intercept per task.
        max_iter: maximum number of solver iterations.
        tol: relative tolerance of the solver's stopping rule.

    References:
        Gong, Ye & Zhang, "Robust multi-task feature learning", KDD 2012.
    """


class RobustFeatureMultiTaskClassifier(_RobustFeature, LinearMultiTaskClassifier):
    r"""Robust multi-task feature learning (rMTFL) with the logistic loss.

    .. math:: \min_{P, Q, b} \sum_t \frac{1}{n_t} \sum_{i \in t}
              \log(1 + e^{-y_i (x_i^\top w_t + b_t)})
              + \alpha \sum_j \|P_{:, j}\|_2
              + \beta \sum_t \|q_t\|_2

    Args:
        alpha: L2,1 strength over features on ``P`` (>= 0).
        beta: L2,1 strength over tasks on ``Q`` (>= 0).
        fit_intercept: fit an unpenalised intercept per task.
        max_iter: maximum number of solver iterations.
        tol: relative tolerance of the solver's stopping rule.

    References:
        Gong, Ye & Zhang, "Robust multi-task feature learning", KDD 2012.
    """
