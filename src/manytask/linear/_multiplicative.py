r"""MMTFL: multiplicative multi-task feature learning, ``w_t = c * beta_t``.

Wang, Bi, Yu & Sun, "On multiplicative multitask feature learning", NeurIPS 2014; extended in
Wang, Bi, Yu, Sun & Song, "Multiplicative multitask feature learning", JMLR 17(80), 2016.
Each task's weights factor into a feature scale ``c >= 0`` shared by all tasks and a
task-specific vector ``beta_t``, ``w_t = c \odot beta_t``, and the model solves

.. math:: \min_{c \ge 0, B, b} \sum_t L_t(c \odot \beta_t, b_t)
          + \gamma_1 \sum_t \|\beta_t\|_p^p + \gamma_2 \|c\|_k^k,
          \qquad p, k \in \{1, 2\},

with ``L_t`` the task's mean loss (:mod:`manytask.linear._base`). Minimising the penalty over
``c`` for fixed ``W`` (the scale symmetry ``(c_j s, beta_tj / s)`` leaves ``W`` unchanged)
gives ``c_j^{p+k} = p \gamma_1 \|w^j\|_p^p / (k \gamma_2)`` (``w^j``: feature ``j`` across
tasks), and the problem in ``W`` is the joint regulariser of the papers' equivalence theorem

.. math:: \min_{W, b} \sum_t L_t(w_t, b_t) + \lambda \sum_j \|w^j\|_p^{pk/(p+k)}, \qquad
          \lambda = (p + k)\, p^{-p/(p+k)} k^{-k/(p+k)}\, \gamma_1^{k/(p+k)} \gamma_2^{p/(p+k)}.

``(p, k) = (2, 2)`` is the convex L2,1 penalty of joint feature selection (``lambda = 2
sqrt(gamma1 gamma2)``, scikit-learn's ``MultiTaskLasso``); ``(1, 1)`` is the multi-level lasso
of Lozano & Swirszcz (ICML 2012), ``2 sqrt(gamma1 gamma2) sum_j ||w^j||_1^{1/2}``; ``(1, 2)`` and
``(2, 1)`` give ``||w^j||_1^{2/3}`` and ``||w^j||_2^{2/3}`` (the papers relate each pair to
earlier methods or to their new formulations). Every pair but ``(2, 2)`` is non-convex.
``p = 1`` also selects features per task inside a shared feature. Only ``lambda`` enters the
``W`` problem, so ``gamma1`` and ``gamma2`` act as one hyperparameter, up to the starting
point of the alternation (which can change the local minimum reached).

Fitting is the papers' alternating (blockwise coordinate descent) scheme: given ``c``, each
task is a lasso (``p = 1``) or ridge (``p = 2``) problem in ``beta_t`` on the rescaled features
``x \odot c``, solved by APG from the previous ``beta``; then ``c`` takes the closed form above
at the new ``W`` (with ``beta = W / c``), which lowers the penalty and leaves the loss
unchanged. The objective never increases. Deviations: (1) the ``c`` step keeps the ``p / k``
factor of the exact minimiser (the public MATLAB code of JunYongJeong/MMTFL drops it, which is
exact only for ``p = k``); (2) intercepts are unpenalised and fitted per task, outside ``c``; (3) the loss is
each task's mean loss; (4) the alternation starts from ``c = 1``, ``B = 0``, so its first
step is an independent lasso/ridge fit.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any

import numpy as np

from manytask.linear._base import (
    Blocks,
    InvalidParameterError,
    LinearMultiTaskClassifier,
    LinearMultiTaskRegressor,
    TaskData,
)
from manytask.linear._prox import prox_l1

__all__ = ["MultiplicativeMultiTaskClassifier", "MultiplicativeMultiTaskRegressor"]


class _ScaledStep:
    """``min_B loss(B diag(c)) + gamma1 sum_t ||beta_t||_p^p`` for a fixed feature scale ``c``."""

    def __init__(self, scale: np.ndarray, gamma1: float, p: int) -> None:
        self.scale, self.gamma1, self.p = scale, gamma1, p

    def _coef(self, blocks: Blocks) -> np.ndarray:
        return blocks[0] * self.scale

    def _coef_grad(self, blocks: Blocks, gC: np.ndarray) -> Blocks:
        return [gC * self.scale]

    def _smooth_penalty(self, blocks: Blocks) -> tuple[float, Blocks]:
        B = blocks[0]
        if self.p == 2:
            return self.gamma1 * float(np.sum(B * B)), [2.0 * self.gamma1 * B]
        return 0.0, [np.zeros_like(B)]

    def _nonsmooth_penalty(self, blocks: Blocks) -> float:
        return self.gamma1 * float(np.abs(blocks[0]).sum()) if self.p == 1 else 0.0

    def _prox(self, blocks: Blocks, step: float) -> Blocks:
        return [prox_l1(blocks[0], step * self.gamma1)] if self.p == 1 else blocks


def _optimal_scale(W: np.ndarray, gamma1: float, gamma2: float, p: int, k: int) -> np.ndarray:
    """``argmin_c gamma1 sum_tj |w_tj / c_j|^p + gamma2 sum_j c_j^k`` (``[d]``, 0 where ``w^j = 0``)."""
    strength = np.sum(np.abs(W) ** p, axis=0)
    return (p * gamma1 * strength / (k * gamma2)) ** (1.0 / (p + k))


class _Multiplicative:
    # provided by the estimator base this mixin is combined with
    _solve_apg: Callable[..., Any]
    _stop_reason: Callable[..., str | None]
    _constraints = {
        "gamma1": "positive",
        "gamma2": "positive",
        "max_outer_iter": "posint",
    }

    def __init__(
        self,
        gamma1: float = 0.1,
        *,
        gamma2: float = 0.1,
        p: int = 1,
        k: int = 2,
        max_outer_iter: int = 500,
        fit_intercept: bool = True,
        max_iter: int = 1000,
        tol: float = 1e-5,
    ) -> None:
        self.gamma1 = gamma1
        self.gamma2 = gamma2
        self.p = p
        self.k = k
        self.max_outer_iter = max_outer_iter
        self.fit_intercept = fit_intercept
        self.max_iter = max_iter
        self.tol = tol

    def _solve(self, data: TaskData) -> tuple[Blocks, np.ndarray | None, int, str | None]:
        for name in ("p", "k"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value not in (1, 2):
                raise InvalidParameterError(
                    f"The {name!r} parameter of {type(self).__name__} must be an int among {{1, 2}}. "
                    f"Got {value!r} instead."
                )
        p, k = int(self.p), int(self.k)
        scale = np.ones(data.n_features)
        beta = np.zeros((data.n_tasks, data.n_features))
        b: np.ndarray | None = None
        prev, total, converged, outer, inner_converged = np.inf, 0, False, 0, True
        while outer < self.max_outer_iter:
            outer += 1
            step = _ScaledStep(scale, self.gamma1, p)
            (beta,), b, n_iter, ok = self._solve_apg(data, [beta], b, hooks=step)
            total, inner_converged = total + n_iter, inner_converged and ok
            W = beta * scale
            scale = _optimal_scale(W, self.gamma1, self.gamma2, p, k)
            beta = np.divide(W, scale, out=np.zeros_like(W), where=scale > 0)
            obj = self._factored_objective(data, scale, beta, b)
            if prev - obj <= self.tol * max(abs(obj), np.finfo(float).tiny):
                converged = True
                break
            prev = obj
        self.feature_scale_, self.task_coef_, self.n_outer_iter_ = scale, beta, outer
        return [beta * scale], b, total, self._stop_reason(apg=not inner_converged, outer=not converged)

    def _factored_objective(
        self, data: TaskData, scale: np.ndarray, beta: np.ndarray, b: np.ndarray | None
    ) -> float:
        p, k = int(self.p), int(self.k)
        pen = self.gamma1 * np.sum(np.abs(beta) ** p) + self.gamma2 * np.sum(scale**k)
        return data.value(beta * scale, b) + float(pen)

    def _objective(self, data: TaskData, blocks: Blocks, b: np.ndarray | None) -> float:
        return self._factored_objective(data, self.feature_scale_, self.task_coef_, b)


class MultiplicativeMultiTaskRegressor(_Multiplicative, LinearMultiTaskRegressor):
    r"""MMTFL least squares: ``w_t = c * beta_t`` with a feature scale ``c >= 0`` shared by the tasks.

    .. math:: \min_{c \ge 0, B, b} \sum_t \frac{1}{2 n_t} \|y_t - X_t (c \odot \beta_t) - b_t\|^2
              + \gamma_1 \sum_t \|\beta_t\|_p^p + \gamma_2 \|c\|_k^k

    Equivalent to the joint penalty ``lambda sum_j ||w^j||_p^{pk/(p+k)}`` on ``W`` (module
    docstring): ``(p, k) = (2, 2)`` is L2,1 joint feature selection with ``lambda = 2
    sqrt(gamma1 gamma2)``. Fitted by alternating a per-task lasso (``p = 1``) or ridge
    (``p = 2``) step in ``beta`` on the rescaled features with the closed-form ``c``. Non-convex
    unless ``p = k = 2``, so the result is a local minimum. With ``p = 2`` the ridge step never
    zeroes a feature exactly: unused features shrink geometrically over the alternations.

    Args:
        gamma1: strength of ``sum_t ||beta_t||_p^p`` on the task-specific factors (> 0).
        gamma2: strength of ``||c||_k^k`` on the shared feature scale (> 0).
        p: norm on the task-specific factors: 1 (features selected per task too) or 2.
        k: norm on the shared feature scale: 1 or 2.
        max_outer_iter: maximum number of alternations.
        fit_intercept: fit an unpenalised intercept per task.
        max_iter: maximum number of APG iterations per ``beta`` step.
        tol: relative tolerance of the inner and outer stopping rules.

    Attributes:
        coef_: ``[T, d]`` task weights ``W = B diag(c)``; ``intercept_``: ``[T]``.
        feature_scale_: ``[d]`` the shared scale ``c`` (0 for a dropped feature).
        task_coef_: ``[T, d]`` the task-specific factors ``B``.
        objective_: the factored objective at the solution; ``n_outer_iter_``: alternations.

    Examples:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0); X = rng.normal(size=(60, 6))
        >>> Y = X[:, :2] @ rng.normal(size=(2, 3)) + 0.05 * rng.normal(size=(60, 3))
        >>> model = MultiplicativeMultiTaskRegressor(0.05, gamma2=0.05).fit(X, Y)
        >>> np.flatnonzero(model.feature_scale_)  # the two features the tasks use
        array([0, 1])

    References:
        Wang, Bi, Yu & Sun, NeurIPS 2014; Wang, Bi, Yu, Sun & Song, JMLR 17(80), 2016 (see the
        module docstring for the model, the equivalence, the algorithm and the deviations).
    """


class MultiplicativeMultiTaskClassifier(_Multiplicative, LinearMultiTaskClassifier):
    r"""MMTFL logistic regression: ``w_t = c * beta_t`` with a shared feature scale ``c >= 0``.

    .. math:: \min_{c \ge 0, B, b} \sum_t \frac{1}{n_t} \sum_{i \in t}
              \log(1 + e^{-y_i (x_i^\top (c \odot \beta_t) + b_t)})
              + \gamma_1 \sum_t \|\beta_t\|_p^p + \gamma_2 \|c\|_k^k

    Same model, penalty equivalence and alternation as
    :class:`MultiplicativeMultiTaskRegressor`, with the ``beta`` step an l1- (``p = 1``) or
    l2-penalised (``p = 2``) logistic regression per task.

    Args:
        gamma1: strength of ``sum_t ||beta_t||_p^p`` on the task-specific factors (> 0).
        gamma2: strength of ``||c||_k^k`` on the shared feature scale (> 0).
        p: norm on the task-specific factors: 1 (features selected per task too) or 2.
        k: norm on the shared feature scale: 1 or 2.
        max_outer_iter: maximum number of alternations.
        fit_intercept: fit an unpenalised intercept per task.
        max_iter: maximum number of APG iterations per ``beta`` step.
        tol: relative tolerance of the inner and outer stopping rules.

    Attributes:
        coef_: ``[T, d]`` task weights ``W = B diag(c)``; ``intercept_``: ``[T]``.
        feature_scale_: ``[d]`` the shared scale ``c`` (0 for a dropped feature).
        task_coef_: ``[T, d]`` the task-specific factors ``B``.
        objective_: the factored objective at the solution; ``n_outer_iter_``: alternations.

    Examples:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0); X = rng.normal(size=(80, 5))
        >>> Y = np.where(X[:, :1] @ np.ones((1, 2)) + 0.1 * rng.normal(size=(80, 2)) > 0, 1, 0)
        >>> model = MultiplicativeMultiTaskClassifier(0.05, gamma2=0.05).fit(X, Y)
        >>> np.flatnonzero(model.feature_scale_), model.score(X, Y) > 0.9
        (array([0]), True)

    References:
        Wang, Bi, Yu & Sun, NeurIPS 2014; Wang, Bi, Yu, Sun & Song, JMLR 17(80), 2016.
    """
