r"""Multi-task relationship learning (MTRL): learn the task covariance with the weights.

Zhang & Yeung (2010) minimise over the weights ``W`` (``[T, d]``) and a task covariance
``Omega`` (``[T, T]``, ``Omega >= 0``, ``tr(Omega) = 1``) the data term plus
``alpha/2 ||W||_F^2 + beta/2 tr(W^T Omega^{-1} W)``. For a fixed ``W`` the best ``Omega`` is
``(W W^T)^{1/2} / tr((W W^T)^{1/2})`` (their closed form), where
``tr(W^T Omega^{-1} W) = (tr (W W^T)^{1/2})^2 = ||W||_*^2``. The problem is therefore the convex
problem in ``W`` alone

.. math:: \min_{W, b} L(W, b) + \frac{\alpha}{2} \|W\|_F^2 + \frac{\beta}{2} \|W\|_*^2 ,

solved here by one accelerated proximal gradient run with the exact prox of the squared nuclear
norm (:func:`~manytask.linear._prox.prox_squared_trace`). Alternating a ``W`` solve with the
closed-form ``Omega``, the paper's algorithm, creeps towards a singular ``Omega`` and, stopped
on the objective's decrease, ended ~1 % above the optimum on small problems.
"""

from __future__ import annotations

import numpy as np

from manytask.linear._base import Blocks, LinearMultiTaskClassifier, LinearMultiTaskRegressor
from manytask.linear._prox import prox_squared_trace

__all__ = ["RelationshipMultiTaskClassifier", "RelationshipMultiTaskRegressor"]


class _Relationship:
    _constraints = {"alpha": "nonneg", "beta": "nonneg", "eps": "positive"}

    def __init__(
        self,
        alpha: float = 0.1,
        *,
        beta: float = 0.1,
        eps: float = 1e-8,
        fit_intercept: bool = True,
        max_iter: int = 1000,
        tol: float = 1e-5,
    ) -> None:
        self.alpha = alpha
        self.beta = beta
        self.eps = eps
        self.fit_intercept = fit_intercept
        self.max_iter = max_iter
        self.tol = tol

    def _smooth_penalty(self, blocks: Blocks) -> tuple[float, Blocks]:
        W = blocks[0]
        return 0.5 * self.alpha * float(np.sum(W * W)), [self.alpha * W]

    def _nonsmooth_penalty(self, blocks: Blocks) -> float:
        return 0.5 * self.beta * float(np.linalg.svd(blocks[0], compute_uv=False).sum()) ** 2

    def _prox(self, blocks: Blocks, step: float) -> Blocks:
        return [prox_squared_trace(blocks[0], step * self.beta)]

    def _store(self, blocks: Blocks) -> None:
        W = blocks[0]
        values, vectors = np.linalg.eigh(W @ W.T + self.eps * np.eye(len(W)))
        root = (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T
        self.task_covariance_ = root / np.trace(root)


class RelationshipMultiTaskRegressor(_Relationship, LinearMultiTaskRegressor):
    r"""Multi-task relationship learning (MTRL): least squares with a learned task covariance.

    .. math:: \min_{W, b, \Omega} \sum_t \frac{1}{2 n_t} \|y_t - X_t w_t - b_t\|^2
              + \frac{\alpha}{2} \|W\|_F^2
              + \frac{\beta}{2} \operatorname{tr}\big(W^\top \Omega^{-1} W\big)
              \quad \text{s.t. } \Omega \succeq 0,\ \operatorname{tr}(\Omega) = 1

    ``W`` is ``coef_`` (``[T, d]``); ``Omega`` models positive, negative and zero task
    correlations. Minimising out ``Omega`` (Zhang & Yeung's closed form
    ``Omega = (W W^T)^{1/2} / tr((W W^T)^{1/2})``) turns the penalty into
    ``beta/2 ||W||_*^2``, so the fit is one APG solve of the convex problem in ``W`` (module
    docstring). ``objective_`` is that objective (no ``eps`` in it).

    Args:
        alpha: ridge strength (>= 0).
        beta: strength of the task-covariance penalty (>= 0).
        eps: only for the reported ``task_covariance_ = (W W^T + eps I)^{1/2} / tr(.)``, which
            it keeps positive definite (``I / T`` at ``W = 0``); the fit does not use it.
        fit_intercept: fit an unpenalised intercept per task.
        max_iter: maximum number of APG iterations.
        tol: relative tolerance of the APG stopping rule.

    Attributes:
        coef_: ``[T, d]``; ``intercept_``: ``[T]``; task_covariance_: ``[T, T]`` ``Omega``.

    Examples:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0); X = rng.normal(size=(80, 4)); w = rng.normal(size=4)
        >>> Y = np.column_stack([X @ w, -(X @ w)]) + 0.1 * rng.normal(size=(80, 2))
        >>> omega = RelationshipMultiTaskRegressor(alpha=0.01, beta=0.1).fit(X, Y).task_covariance_
        >>> bool(omega[0, 1] / np.sqrt(omega[0, 0] * omega[1, 1]) < -0.99)  # anti-correlated tasks
        True

    References:
        Zhang & Yeung, "A convex formulation for learning task relationships in multi-task
        learning", UAI 2010 (Sec. 3: the problem and the closed-form ``Omega``).
    """


class RelationshipMultiTaskClassifier(_Relationship, LinearMultiTaskClassifier):
    r"""Multi-task relationship learning (MTRL) with the logistic loss.

    .. math:: \min_{W, b, \Omega} \sum_t \frac{1}{n_t} \sum_{i \in t} \log(1 + e^{-y_i
              (x_i^\top w_t + b_t)}) + \frac{\alpha}{2} \|W\|_F^2 + \frac{\beta}{2}
              \operatorname{tr}(W^\top \Omega^{-1} W) \quad \text{s.t. } \Omega \succeq 0,\
              \operatorname{tr}(\Omega) = 1

    Solved as :class:`RelationshipMultiTaskRegressor` is: one APG solve with the penalty
    ``beta/2 ||W||_*^2`` that minimising out ``Omega`` leaves.

    Args:
        alpha: ridge strength (>= 0).
        beta: strength of the task-covariance penalty (>= 0).
        eps: only for the reported ``task_covariance_ = (W W^T + eps I)^{1/2} / tr(.)``, which
            it keeps positive definite (``I / T`` at ``W = 0``); the fit does not use it.
        fit_intercept: fit an unpenalised intercept per task.
        max_iter: maximum number of APG iterations.
        tol: relative tolerance of the APG stopping rule.

    Attributes:
        coef_: ``[T, d]``; ``intercept_``: ``[T]``; task_covariance_: ``[T, T]`` ``Omega``.

    Examples:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0); X = rng.normal(size=(120, 3))
        >>> Y = (X @ np.array([[2.0, 0, 0], [-2.0, 0, 0]]).T > 0).astype(int)
        >>> omega = RelationshipMultiTaskClassifier(alpha=0.01, beta=0.1).fit(X, Y).task_covariance_
        >>> bool(omega[0, 1] < 0)  # opposite labels: negatively correlated tasks
        True

    References:
        Zhang & Yeung, "A convex formulation for learning task relationships in multi-task
        learning", UAI 2010.
    """
