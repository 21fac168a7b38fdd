r"""Online multi-task classification: the multitask Perceptron.

Cavallanti, Cesa-Bianchi & Gentile (2010), "Linear algorithms for online multitask
classification" (JMLR 11, Sec. 3): ``T`` binary tasks share one weight vector
:math:`w \in \mathbb{R}^{Td}` (task ``t``'s block is :math:`w_t`). An example :math:`(x, t, y)`
is the compound vector :math:`\phi = e_t \otimes x`; the Perceptron runs in the geometry of a
positive-definite interaction matrix :math:`A` (``T x T``): it predicts
:math:`\operatorname{sgn}(w_t^\top x)` and, on a mistake, updates
:math:`w \leftarrow w + y\, (A^{-1} \otimes I_d)\, \phi`, i.e. every task's block moves by
:math:`y\, A^{-1}_{st}\, x` — the Perceptron with the multi-task kernel
:math:`K((x, s), (z, t)) = A^{-1}_{st}\, x^\top z` of Evgeniou et al. With the paper's
interaction matrix :math:`A = I + b\, L`, :math:`L` the Laplacian of the complete task graph
(:math:`L = T I - \mathbf{1}\mathbf{1}^\top`), ``b = 0`` gives ``T`` independent Perceptrons and a
larger ``b`` shares more of each mistake with the other tasks.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import check_is_fitted, validate_data

from manytask.linear._base import InvalidParameterError, TaskAccuracy, check_params, validate_task

__all__ = ["MultiTaskPerceptron"]


class MultiTaskPerceptron(TaskAccuracy, ClassifierMixin, BaseEstimator):
    r"""The multitask Perceptron with an interaction matrix, online (Cavallanti, Cesa-Bianchi & Gentile 2010).

    The multitask Perceptron of Cavallanti, Cesa-Bianchi & Gentile (2010), online
    (:meth:`partial_fit`) or over ``max_iter`` passes (:meth:`fit`), multi-input form
    (each row with its ``task``) and binary labels.

    Args:
        b: coupling of the interaction matrix :math:`A = I + b (T I - \mathbf{1}\mathbf{1}^\top)`
            (0: independent Perceptrons). Ignored when ``interaction`` is given.
        interaction: a ``(T, T)`` symmetric positive-definite :math:`A`.
        max_iter: passes over the data in :meth:`fit` (in order; no shuffling).
        fit_intercept: learn a bias per task (the weight of a constant input, updated alike).

    Attributes:
        coef_: ``(T, d)`` the task blocks :math:`w_t`; ``intercept_``: ``(T,)`` their biases.
        mistakes_: mistakes made so far (online, before each update).
        classes_: the two labels; the second is the positive one.

    Examples:
        >>> import numpy as np
        >>> X = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]); task = np.array([0, 1, 1])
        >>> model = MultiTaskPerceptron(b=0.0, fit_intercept=False).fit(X, np.array([1, 1, -1]), task=task)
        >>> model.coef_.tolist(), model.mistakes_
        ([[1.0, 0.0], [-1.0, 1.0]], 3)
    """

    def __init__(self, b: float = 0.0, interaction: Any = None, max_iter: int = 1, fit_intercept: bool = True) -> None:
        self.b = b
        self.interaction = interaction
        self.max_iter = max_iter
        self.fit_intercept = fit_intercept

    def _inverse(self, n_tasks: int) -> np.ndarray:
        if self.interaction is None:
            matrix = np.eye(n_tasks) + self.b * (n_tasks * np.eye(n_tasks) - np.ones((n_tasks, n_tasks)))
        else:
            matrix = np.asarray(self.interaction, dtype=float)
            if matrix.shape != (n_tasks, n_tasks) or not np.allclose(matrix, matrix.T):
                raise InvalidParameterError(f"interaction must be a symmetric ({n_tasks}, {n_tasks}) matrix for "
                                            f"{n_tasks} tasks; got shape {matrix.shape}.")
        if np.linalg.eigvalsh(matrix).min() <= 0:
            raise InvalidParameterError("The interaction matrix must be positive definite.")
        return np.linalg.inv(matrix)

    def partial_fit(self, X: Any, y: Any, task: Any = None, classes: Any = None, n_tasks: int | None = None,
                    ) -> MultiTaskPerceptron:
        """One online pass over the rows, in order. The first call fixes ``classes`` (two labels)
        and the number of tasks (``n_tasks``, default the largest task index + 1)."""
        check_params(self, {"b": "nonneg", "max_iter": "posint", "fit_intercept": "bool"})
        first = not hasattr(self, "coef_")
        X, y = validate_data(self, X, y, reset=first, dtype=np.float64)
        kind = type_of_target(y, input_name="y", raise_unknown=True)
        if kind != "binary":
            raise ValueError(f"Only binary classification is supported. The type of the target is {kind}: "
                             "MultiTaskPerceptron learns binary tasks.")
        task = np.zeros(len(X), dtype=np.int64) if task is None else task
        if first:
            labels = np.unique(y) if classes is None else np.asarray(classes)
            if len(labels) != 2:
                hint = (" A first chunk may hold one class: pass classes=[negative, positive] to the first "
                        "partial_fit." if classes is None and len(labels) < 2 else "")
                raise ValueError(f"MultiTaskPerceptron learns binary tasks; got {len(labels)} classes "
                                 f"{labels.tolist()}.{hint}")
            self.classes_ = labels
            tasks = validate_task(task, len(X), None)
            self.n_tasks_ = int(n_tasks if n_tasks is not None else tasks.max() + 1)
            self.inverse_ = self._inverse(self.n_tasks_)
            self.coef_ = np.zeros((self.n_tasks_, X.shape[1]))
            self.intercept_ = np.zeros(self.n_tasks_)
            self.mistakes_ = 0
        try:
            tasks = validate_task(task, len(X), self.n_tasks_)
        except ValueError as error:
            if first:
                raise
            raise ValueError(f"{error} A stream that brings tasks later: pass n_tasks=<all of them> to the first "
                             "partial_fit.") from None
        unknown = ~np.isin(y, self.classes_)
        if unknown.any():
            raise ValueError(f"Label {y[unknown][0]!r} is not one of the classes {self.classes_.tolist()}.")
        signs = np.where(y == self.classes_[1], 1.0, -1.0)
        bias = 1.0 if self.fit_intercept else 0.0  # the intercept is the weight of a constant input
        for x, t, sign in zip(X, tasks, signs):  # online: each update depends on the previous one
            if sign * (self.coef_[t] @ x + self.intercept_[t]) <= 0:
                self.coef_ += sign * self.inverse_[:, t, None] * x[None, :]
                self.intercept_ += sign * bias * self.inverse_[:, t]
                self.mistakes_ += 1
        return self

    def fit(self, X: Any, y: Any, task: Any = None) -> MultiTaskPerceptron:
        """``max_iter`` online passes from zero weights: ``y`` ``(n,)`` with ``task`` (or one
        task), or ``(n, T)``: every row labels every task (shared inputs; each row's tasks are
        seen one after the other)."""
        for name in ("coef_", "intercept_", "classes_", "n_tasks_", "inverse_", "mistakes_", "n_features_in_"):
            self.__dict__.pop(name, None)
        X = np.asarray(X) if not hasattr(X, "shape") else X
        labels = np.asarray(y)
        self.task_form_ = "multi_input" if task is not None else "single"
        if task is None and labels.ndim == 2 and labels.shape[1] > 1:  # shared inputs, row by row
            count = labels.shape[1]
            X, y, task = np.repeat(X, count, axis=0), labels.ravel(), np.tile(np.arange(count), len(labels))
            self.task_form_ = "shared"
        task = np.zeros(len(X), dtype=np.int64) if task is None else task
        for _ in range(self.max_iter):
            self.partial_fit(X, y, task)
        self.n_iter_ = self.max_iter
        return self

    def decision_function(self, X: Any, task: Any = None) -> np.ndarray:
        """Each row's score w_t . x (``task`` omitted: every task, ``(n, T)``, after a shared-input
        fit; the one task of a one-task fit; refused after a multi-input fit of several tasks)."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        if task is None and getattr(self, "task_form_", "") == "shared":
            return X @ self.coef_.T + self.intercept_  # [n, T]
        if task is None and self.n_tasks_ > 1:
            raise ValueError(f"MultiTaskPerceptron was fitted on {self.n_tasks_} tasks with task=...; pass the "
                             "task of each row: predict(X, task=task).")
        tasks = np.zeros(len(X), dtype=np.int64) if task is None else validate_task(task, len(X), self.n_tasks_)
        return np.einsum("ij,ij->i", X, self.coef_[tasks]) + self.intercept_[tasks]

    def predict(self, X: Any, task: Any = None) -> np.ndarray:
        """The label of each row's task."""
        positive = self.decision_function(X, task) > 0
        return self.classes_[positive.astype(int)]

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False  # binary tasks (one Perceptron per task)
        return tags
