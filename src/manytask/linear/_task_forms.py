"""What the estimators fitted on (row, target, task) triples share: both task forms in
(shared inputs ``y (n, T)``, or ``y (n,)`` with ``task``), and predictions shaped by the form
they were fitted in."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, MultiOutputMixin, RegressorMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from manytask.linear._base import TaskR2, validate_task

__all__ = ["TaskFormRegressor", "stack_tasks"]


def stack_tasks(estimator: Any, X: np.ndarray, y: np.ndarray, task: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Both task forms as (row, target, task) triples; sets ``estimator.task_form_``."""
    if task is not None:
        if y.ndim != 1:
            raise ValueError(f"In the multi-input form (task given), y must be 1-D; got shape {y.shape}.")
        estimator.task_form_ = "multi_input"
        return X, y.astype(float), validate_task(task, len(X), None)
    targets = y.astype(float)
    estimator.task_form_ = "single" if targets.ndim == 1 else "shared"
    targets = targets[:, None] if targets.ndim == 1 else targets
    n_tasks = targets.shape[1]
    return np.tile(X, (n_tasks, 1)), targets.T.ravel(), np.repeat(np.arange(n_tasks), len(X))


class TaskFormRegressor(TaskR2, MultiOutputMixin, RegressorMixin, BaseEstimator):
    """Base of the multi-task regressors outside the proximal-gradient family: :meth:`predict`
    from ``[n, T]`` scores (:meth:`_scores`, by default ``X coef_^T + intercept_``)."""

    n_tasks_: int
    task_form_: str

    def _queries(self, X: np.ndarray, task: Any) -> np.ndarray | None:
        """Each row's task index, or ``None`` for every task (refused after a multi-input fit)."""
        if task is not None:
            return validate_task(task, len(X), self.n_tasks_)
        if self.task_form_ == "multi_input":
            raise ValueError(f"{type(self).__name__} was fitted in the multi-input form (with task=...); pass the "
                             "task of each row: predict(X, task=task).")
        return None

    def _shaped(self, scores: np.ndarray, queries: np.ndarray | None) -> np.ndarray:
        """``[n, T]`` values as predictions: each row's task, the single task, or every task."""
        if queries is not None:
            return scores[np.arange(len(scores)), queries]
        return scores[:, 0] if self.task_form_ == "single" else scores

    def _scores(self, X: np.ndarray) -> np.ndarray:
        return X @ self.coef_.T + self.intercept_  # type: ignore[attr-defined]

    def predict(self, X: Any, task: Any = None) -> np.ndarray:
        """Predictions: ``(n, T)`` for shared inputs, ``(n,)`` with ``task`` or a single task."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        return self._shaped(self._scores(X), self._queries(X, task))

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

