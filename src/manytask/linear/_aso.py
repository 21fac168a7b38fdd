r"""Alternating structure optimisation (ASO): a shared predictive subspace.

Ando & Zhang (2005), "A framework for learning predictive structures from multiple tasks and
unlabeled data" (JMLR 6, Sec. 3): each task predicts with its own weights plus weights on a
shared low-dimensional map :math:`\Theta \in \mathbb{R}^{h \times d}` (:math:`\Theta\Theta^\top
= I`), :math:`f_t(x) = u_t^\top x + v_t^\top \Theta x + b_t`, and only :math:`u_t` is penalised:

.. math:: \min_{\{u_t, v_t, b_t\}, \Theta} \sum_t \frac{1}{n_t} \sum_{i \in t}
          \big(y_i - f_t(x_i)\big)^2 + \lambda \|u_t\|^2 .

With :math:`w_t = u_t + \Theta^\top v_t`, the best :math:`v_t` for fixed :math:`w_t` is
:math:`\Theta w_t`, so each task is ridge regression with the penalty
:math:`\lambda\, w_t^\top (I - \Theta^\top\Theta)\, w_t`; for fixed :math:`w_t` the best
:math:`\Theta` is the top ``h`` left singular vectors of :math:`[\sqrt{\lambda} w_1, \dots,
\sqrt{\lambda} w_T]` (their Algorithm 1). The two steps alternate.

Semi-supervised ASO (their Sec. 4): *auxiliary problems* made from unlabelled inputs — here,
predicting each of the ``auxiliary`` highest-variance input columns from the others — join the
labelled tasks in the singular value step, so that the subspace is learned from much more data;
the labelled tasks are then fitted on it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.utils.validation import check_array, validate_data

from manytask.linear._base import check_params
from manytask.linear._task_forms import TaskFormRegressor, stack_tasks

__all__ = ["AlternatingStructureRegressor"]


class AlternatingStructureRegressor(TaskFormRegressor):
    r"""ASO (Ando & Zhang 2005): task weights around a shared low-dimensional subspace.

    ASO (Ando & Zhang 2005): task weights :math:`w_t = u_t + \Theta^\top v_t` around a shared
    ``h``-dimensional subspace :math:`\Theta`, found by alternating ridge fits and an SVD.

    Args:
        alpha: :math:`\lambda`, the penalty on each task's weights outside the subspace.
        n_components: ``h``, the subspace's dimension (0: independent ridge regressions; ``d``:
            unpenalised least squares per task).
        max_iter: alternations of the two steps.
        auxiliary: how many auxiliary problems to build from ``X_unlabelled`` in :meth:`fit`
            (semi-supervised ASO); 0: none.

    Attributes:
        coef_: ``(T, d)`` weights :math:`w_t` (zero, with a zero intercept, for a task index
            without rows, as in the APG estimators); ``intercept_``: ``(T,)``.
        components_: ``(h, d)`` the shared map :math:`\Theta` (orthonormal rows).
        objective_: the objective after each alternation (it never increases).

    Examples:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0); X = rng.normal(size=(60, 4)); task = np.repeat([0, 1, 2], 20)
        >>> y = X @ np.array([1.0, 2.0, 0.0, 0.0]) * (1 + task)
        >>> model = AlternatingStructureRegressor(alpha=1.0, n_components=1).fit(X, y, task=task)
        >>> np.round(np.abs(model.components_) @ np.array([1.0, 2.0, 0.0, 0.0]) / np.sqrt(5), 2).tolist()
        [1.0]
    """

    def __init__(self, alpha: float = 1.0, n_components: int = 1, max_iter: int = 20, auxiliary: int = 0) -> None:
        self.alpha = alpha
        self.n_components = n_components
        self.max_iter = max_iter
        self.auxiliary = auxiliary

    def fit(self, X: Any, y: Any, task: Any = None, X_unlabelled: Any = None) -> AlternatingStructureRegressor:
        """Fit on ``(X, y)`` (``y`` ``(n, T)``, or ``(n,)`` with ``task``); ``X_unlabelled``
        feeds the ``auxiliary`` problems."""
        check_params(self, {"alpha": "positive", "max_iter": "posint", "n_components": "nonnegint",
                            "auxiliary": "nonnegint"})
        X, y = validate_data(self, X, y, multi_output=True, y_numeric=True, dtype=np.float64, ensure_min_samples=2)
        rows, targets, tasks = stack_tasks(self, X, y, task)
        d = X.shape[1]
        if self.n_components > d:
            raise ValueError(f"n_components ({self.n_components}) cannot exceed the number of features ({d}).")
        self.n_tasks_ = int(tasks.max()) + 1
        problems = [(rows[tasks == t], targets[tasks == t]) for t in range(self.n_tasks_)]
        problems += self._auxiliary_problems(X_unlabelled, d)
        means = [(_mean(x), _mean(z)) for x, z in problems]
        centred = [(x - m_x, z - m_z) for (x, z), (m_x, m_z) in zip(problems, means)]
        theta = np.zeros((self.n_components, d))
        objective: list[float] = []
        for _ in range(self.max_iter):
            outside = np.eye(d) - theta.T @ theta  # penalise only what lies outside the subspace
            weights = np.stack([_ridge(x, z, self.alpha * outside) for x, z in centred])  # [tasks + auxiliary, d]
            objective.append(sum(float(_mean((z - x @ w) ** 2)) + self.alpha * float(w @ outside @ w)
                                 for (x, z), w in zip(centred, weights)))
            if self.n_components == 0:
                break
            left, _, _ = np.linalg.svd(np.sqrt(self.alpha) * weights.T)  # d x d: h may exceed the problems
            theta = left[:, :self.n_components].T
        outside = np.eye(d) - theta.T @ theta
        final = [_ridge(x, z, self.alpha * outside) for x, z in centred]
        self.coef_ = np.stack(final[:self.n_tasks_])
        self.intercept_ = np.array([m_z - m_x @ w for (m_x, m_z), w in zip(means, self.coef_)])
        self.components_ = theta
        self.objective_ = objective
        self.n_iter_ = len(objective)
        return self

    def _auxiliary_problems(self, X_unlabelled: Any, d: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """Predict each of the ``auxiliary`` highest-variance columns of the unlabelled inputs
        from the other columns (that column zeroed)."""
        if not self.auxiliary:
            return []
        if X_unlabelled is None:
            raise ValueError("auxiliary > 0 builds its problems from unlabelled inputs: pass X_unlabelled to fit.")
        unlabelled = check_array(X_unlabelled, dtype=np.float64)
        if unlabelled.shape[1] != d:
            raise ValueError(f"X_unlabelled has {unlabelled.shape[1]} features; X has {d}.")
        columns = np.argsort(-unlabelled.var(0))[: min(self.auxiliary, d)]
        out = []
        for column in columns:
            inputs = unlabelled.copy()
            inputs[:, column] = 0.0
            out.append((inputs, unlabelled[:, column]))
        return out


def _mean(values: np.ndarray) -> Any:
    """Mean over the rows, 0 for none (a task index without rows)."""
    return values.sum(0) / max(len(values), 1)


def _ridge(x: np.ndarray, z: np.ndarray, penalty: np.ndarray) -> np.ndarray:
    """``argmin_w mean((z - x w)^2) + w^T penalty w`` (the least-norm one where it is not unique);
    zero for a task without rows, as the APG estimators give it."""
    if len(x) == 0:
        return np.zeros(len(penalty))
    return np.linalg.lstsq(x.T @ x / len(x) + penalty, x.T @ z / len(x), rcond=None)[0]
