r"""Multi-task kernel ridge regression with a task-similarity kernel.

Evgeniou & Pontil (2004), "Regularized multi-task learning" (KDD), write each task's function
as a shared part plus its own, :math:`w_t = w_0 + v_t`, penalised by
:math:`\lambda_1 / T \sum_t \|v_t\|^2 + \lambda_2 \|w_0\|^2`, and show (Sec. 3, their Eq. 12)
that this is a single kernel machine over (input, task) pairs with the multi-task kernel

.. math:: K\big((x, s), (z, t)\big) = \big(1/\mu + \delta_{st}\big)\, k(x, z),

:math:`\mu = T \lambda_2 / \lambda_1`. Evgeniou, Micchelli & Pontil (2005, JMLR 6, Sec. 3)
generalise the first factor to any positive semi-definite task-similarity matrix :math:`B`:
:math:`K((x, s), (z, t)) = B_{st}\, k(x, z)`. With the squared loss and an unpenalised intercept
per task, :math:`\min \|y - K a - E b\|^2 + \alpha\, a^\top K a` (:math:`E` the rows' task
indicators) is solved by the linear system :math:`(K + \alpha I) a + E b = y`,
:math:`E^\top a = 0`, and :math:`f_t(x) = b_t + \sum_i a_i B_{t \tau_i} k(x_i, x)`.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
import scipy.linalg
from sklearn.metrics.pairwise import pairwise_kernels
from sklearn.utils.validation import validate_data

from manytask.linear._base import InvalidParameterError, TaskData, check_params
from manytask.linear._task_forms import TaskFormRegressor, stack_tasks

__all__ = ["MultiTaskKernelRidge"]


class MultiTaskKernelRidge(TaskFormRegressor):
    r"""Regularised multi-task learning in kernel form, with a task-similarity kernel (Evgeniou & Pontil 2004).

    Regularised multi-task learning in kernel form (Evgeniou & Pontil 2004; Evgeniou,
    Micchelli & Pontil 2005): kernel ridge regression with
    :math:`K((x, s), (z, t)) = B_{st} k(x, z)`.

    Args:
        alpha: ridge strength (> 0).
        mu: task coupling of Evgeniou & Pontil, :math:`B = 1/\mu + I`; small ``mu`` pools the
            tasks, ``mu = inf`` makes them independent. Ignored when ``task_similarity`` is given.
        task_similarity: a ``(T, T)`` positive semi-definite :math:`B` (e.g. a learned task
            covariance); ``None`` uses ``mu``.
        kernel: ``"linear"``, ``"rbf"``, ``"poly"`` or ``"laplacian"`` (scikit-learn's pairwise
            kernels) on the inputs.
        gamma: the kernel's ``gamma`` (rbf, poly, laplacian); ``None``: scikit-learn's default.

    Attributes:
        dual_coef_: :math:`a`, one per training row (``None`` where a linear kernel was solved in the
            primal: more rows than tasks x features).
        coef_: ``(T, d)`` weights, linear kernel only: :math:`w_t = \sum_i a_i B_{t\tau_i} x_i`.
        intercept_: ``(T,)`` each task's unpenalised intercept :math:`b_t`.

    Examples:
        >>> import numpy as np
        >>> X = np.array([[0.0], [1.0], [2.0], [0.0], [1.0], [2.0]]); task = np.repeat([0, 1], 3)
        >>> y = np.array([0.0, 1.0, 2.0, 0.0, 2.0, 4.0])
        >>> model = MultiTaskKernelRidge(alpha=1e-6, mu=np.inf).fit(X, y, task=task)
        >>> np.round(model.coef_.ravel(), 3).tolist()
        [1.0, 2.0]
    """

    def __init__(self, alpha: float = 1.0, mu: float = 1.0, task_similarity: Any = None, kernel: str = "linear",
                 gamma: float | None = None) -> None:
        self.alpha = alpha
        self.mu = mu
        self.task_similarity = task_similarity
        self.kernel = kernel
        self.gamma = gamma

    def _similarity(self, n_tasks: int) -> np.ndarray:
        if self.task_similarity is None:
            return np.eye(n_tasks) + (0.0 if np.isinf(self.mu) else 1.0 / self.mu)
        similarity = np.asarray(self.task_similarity, dtype=float)
        if similarity.shape != (n_tasks, n_tasks) or not np.allclose(similarity, similarity.T):
            raise InvalidParameterError(f"task_similarity must be a symmetric ({n_tasks}, {n_tasks}) matrix for "
                                        f"{n_tasks} tasks; got shape {similarity.shape}.")
        if np.linalg.eigvalsh(similarity).min() < -1e-10 * max(1.0, np.abs(similarity).max()):
            raise InvalidParameterError("task_similarity must be positive semi-definite.")
        return similarity

    def _gram(self, A: np.ndarray, B: np.ndarray) -> np.ndarray:
        options = {} if self.gamma is None or self.kernel == "linear" else {"gamma": self.gamma}
        return pairwise_kernels(A, B, metric=self.kernel, **options)

    def fit(self, X: Any, y: Any, task: Any = None) -> MultiTaskKernelRidge:
        """Fit on ``(X, y)``: ``y`` of shape ``(n, T)`` (shared inputs) or ``(n,)`` with ``task``."""
        check_params(self, {"alpha": "positive", "kernel": "linear|rbf|poly|laplacian"})
        mu: Any = self.mu  # any real number (numpy's too) but a bool
        if isinstance(mu, bool) or not isinstance(mu, numbers.Real) or not float(mu) > 0:
            raise InvalidParameterError(f"The 'mu' parameter of MultiTaskKernelRidge must be a float in the range "
                                        f"(0, inf]. Got {self.mu!r} instead.")
        X, y = validate_data(self, X, y, multi_output=True, y_numeric=True, dtype=np.float64)
        rows, targets, tasks = stack_tasks(self, X, y, task)
        self.n_tasks_ = int(tasks.max()) + 1
        similarity = self._similarity(self.n_tasks_)
        n, count = len(rows), self.n_tasks_
        self.similarity_ = similarity
        self.X_fit_, self.task_fit_ = rows, tasks
        if self.kernel == "linear" and n > count * rows.shape[1]:  # fewer unknowns in the primal
            self.coef_, self.intercept_ = _linear_primal(rows, targets, tasks, similarity, self.alpha)
            self.dual_coef_ = None
            return self
        system = np.zeros((n + count, n + count))  # [[K + alpha I, E], [E^T, 0]]
        system[:n, :n] = similarity[tasks][:, tasks] * self._gram(rows, rows)
        system[np.arange(n), np.arange(n)] += self.alpha
        system[np.arange(n), n + tasks] = system[n + tasks, np.arange(n)] = 1.0
        present = np.bincount(tasks, minlength=count) > 0  # a task index without rows has no intercept
        system[n + np.flatnonzero(~present), n + np.flatnonzero(~present)] = 1.0
        solution = scipy.linalg.solve(system, np.concatenate([targets, np.zeros(count)]), assume_a="sym")
        self.dual_coef_, self.intercept_ = solution[:n], solution[n:]
        if self.kernel == "linear":
            self.coef_ = similarity[:, tasks] @ (self.dual_coef_[:, None] * rows)
        return self

    def _scores(self, X: np.ndarray) -> np.ndarray:
        if self.dual_coef_ is None:  # solved in the primal
            return X @ self.coef_.T + self.intercept_
        weights = self.similarity_[:, self.task_fit_] * self.dual_coef_  # [T, N]: a_i B[t, tau_i]
        return self._gram(X, self.X_fit_) @ weights.T + self.intercept_  # [n, T]


def _linear_primal(rows: np.ndarray, targets: np.ndarray, tasks: np.ndarray, similarity: np.ndarray,
                   alpha: float) -> tuple[np.ndarray, np.ndarray]:
    r"""The linear kernel's solution in the primal, ``(coef [T, d], intercept [T])``, each task's
    rows centred (its intercept unpenalised). An invertible ``B`` gives the task-coupled ridge
    :math:`\min \sum_t \|y_t - X_t w_t\|^2 + \alpha\, w^\top (B^{-1} \otimes I) w`, whose normal
    equations have a block-diagonal data part; a singular ``B`` the features
    ``phi(x, t) = B^{1/2}[t] (x) x`` (``phi(x, s) . phi(z, t) = B[s, t] x . z``)."""
    count, d = len(similarity), rows.shape[1]
    data = TaskData(rows, targets, tasks, count, logistic=False, fit_intercept=True)  # each task's rows centred
    centred, z = data.X, data.y
    present = np.bincount(tasks, minlength=count) > 0
    values, vectors = np.linalg.eigh(similarity)
    if values.min() > 1e-10 * values.max():
        system = alpha * np.kron(np.linalg.inv(similarity), np.eye(d))
        rhs = np.zeros(count * d)
        for t in np.flatnonzero(present):
            block = slice(t * d, (t + 1) * d)
            x_t = centred[tasks == t]
            system[block, block] += x_t.T @ x_t
            rhs[block] = x_t.T @ z[tasks == t]
        coef = np.linalg.solve(system, rhs).reshape(count, d)
    else:
        root = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T  # B^{1/2}
        phi = (root[tasks][:, :, None] * centred[:, None, :]).reshape(len(rows), count * d)
        u = np.linalg.solve(phi.T @ phi + alpha * np.eye(count * d), phi.T @ z)
        coef = root @ u.reshape(count, d)  # w_t = sum_s B^{1/2}[t, s] u_s
    return coef, data.y_mean - np.einsum("ij,ij->i", data.x_mean, coef)
