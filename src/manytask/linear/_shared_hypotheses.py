r"""Learning with few shared hypotheses: task clustering by the hypothesis each task uses.

Crammer & Mansour (2012), "Learning multiple tasks using shared hypotheses" (NeurIPS, Sec. 3):
``T`` tasks share ``k < T`` hypotheses :math:`h_1, \dots, h_k`; each task uses one,
:math:`c(t) \in \{1, \dots, k\}`, and the learner minimises the total empirical loss

.. math:: \sum_t \frac{1}{n_t} \sum_{i \in t} \big(y_i - h_{c(t)}(x_i)\big)^2
          + \alpha \sum_j \|w_j\|^2

over the hypotheses (ridge, with an intercept per task) and the assignment. Like k-means over
tasks, it alternates: each task takes the hypothesis with its smallest training loss, each
hypothesis is refitted on its tasks' rows (every task weighted by ``1 / n_t``); the objective never
increases. Started from ``n_init`` seeded assignments, the best run is kept.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.utils.validation import validate_data

from manytask.linear._base import TaskData, check_params
from manytask.linear._task_forms import TaskFormRegressor, stack_tasks

__all__ = ["SharedHypothesesRegressor"]


class SharedHypothesesRegressor(TaskFormRegressor):
    r"""``k`` shared linear hypotheses, each task assigned to one (Crammer & Mansour 2012).

    Args:
        n_hypotheses: ``k`` (1: one pooled model; ``T``: can be independent models).
        alpha: ridge penalty on each hypothesis' weights.
        max_iter: alternations per start.
        n_init: seeded starts (random assignments); the lowest objective wins.
        random_state: seed of the starts.

    Attributes:
        assignment_: ``(T,)`` the hypothesis of each task; ``hypotheses_``: ``(k, d)``;
        coef_: ``(T, d)`` each task's weights (its hypothesis'); ``intercept_``: ``(T,)``;
        objective_: the objective of the kept start.

    Examples:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0); X = rng.normal(size=(120, 2)); task = np.repeat(np.arange(4), 30)
        >>> w = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
        >>> y = np.einsum("ij,ij->i", X, w[task])
        >>> model = SharedHypothesesRegressor(n_hypotheses=2, alpha=1e-6).fit(X, y, task=task)
        >>> len(set(model.assignment_[:2])), len(set(model.assignment_[2:])), len(set(model.assignment_))
        (1, 1, 2)
    """

    def __init__(self, n_hypotheses: int = 2, alpha: float = 1.0, max_iter: int = 50, n_init: int = 5,
                 random_state: int = 0) -> None:
        self.n_hypotheses = n_hypotheses
        self.alpha = alpha
        self.max_iter = max_iter
        self.n_init = n_init
        self.random_state = random_state

    def fit(self, X: Any, y: Any, task: Any = None) -> SharedHypothesesRegressor:
        """Fit on ``(X, y)``: ``y`` ``(n, T)`` (shared inputs) or ``(n,)`` with ``task``."""
        check_params(self, {"n_hypotheses": "posint", "alpha": "positive", "max_iter": "posint", "n_init": "posint"})
        X, y = validate_data(self, X, y, multi_output=True, y_numeric=True, dtype=np.float64)
        rows, targets, tasks = stack_tasks(self, X, y, task)
        self.n_tasks_ = count = int(tasks.max()) + 1
        # centre each task's rows: its intercept is its own, the hypotheses share the slopes
        data = TaskData(rows, targets, tasks, count, logistic=False, fit_intercept=True)
        x, z = data.X, data.y
        weight = 1.0 / np.bincount(tasks, minlength=count).clip(min=1)[tasks]  # each task's mean loss
        # per task: sum_i w_i x_i x_i^T and sum_i w_i x_i z_i, so a hypothesis is one small solve
        gram = np.stack([(x[tasks == t] * weight[tasks == t, None]).T @ x[tasks == t] for t in range(count)])
        cross = np.stack([(x[tasks == t] * weight[tasks == t, None]).T @ z[tasks == t] for t in range(count)])
        k = min(self.n_hypotheses, count)
        rng = np.random.default_rng(self.random_state)
        best: tuple[float, np.ndarray, np.ndarray, int] | None = None
        for _ in range(self.n_init):
            assignment = rng.permutation(np.arange(count) % k)  # every hypothesis starts with a task
            iterations = 0
            for _ in range(self.max_iter):
                iterations += 1
                hypotheses = np.stack([np.linalg.solve(gram[assignment == j].sum(0) + self.alpha * np.eye(x.shape[1]),
                                                       cross[assignment == j].sum(0)) for j in range(k)])
                losses = _losses(x, z, tasks, weight, hypotheses, count)  # [T, k]
                new = losses.argmin(1)
                if np.array_equal(new, assignment):
                    break
                assignment = new
            objective = float(losses[np.arange(count), assignment].sum() + self.alpha * (hypotheses ** 2).sum())
            if best is None or objective < best[0]:
                best = (objective, assignment.copy(), hypotheses.copy(), iterations)
        assert best is not None
        self.objective_, self.assignment_, self.hypotheses_, self.n_iter_ = best
        self.coef_ = self.hypotheses_[self.assignment_]
        self.intercept_ = data.y_mean - np.einsum("ij,ij->i", data.x_mean, self.coef_)
        return self


def _losses(x: np.ndarray, z: np.ndarray, tasks: np.ndarray, weight: np.ndarray, hypotheses: np.ndarray,
            count: int) -> np.ndarray:
    """``[T, k]``: each task's mean squared error under each hypothesis."""
    residual = (z[:, None] - x @ hypotheses.T) ** 2 * weight[:, None]  # [N, k]
    out = np.zeros((count, len(hypotheses)))
    np.add.at(out, tasks, residual)
    return out
