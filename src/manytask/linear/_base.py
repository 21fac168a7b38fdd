r"""Shared base of the linear multi-task estimators: task forms, losses, validation, solving.

Two input forms are accepted by every estimator:

* shared-input form: ``fit(X, y)`` with ``y`` of shape ``(n_samples, n_tasks)``; every task sees
  every row of ``X`` (as in scikit-learn's ``MultiTaskLasso``);
* multi-input form: ``fit(X, y, task=task)`` with ``y`` of shape ``(n_samples,)`` and ``task`` the
  task index (``0 .. n_tasks - 1``) of each row; each task has its own rows.

A 1-D ``y`` without ``task`` is a single task (classifiers with more than two classes learn one
one-vs-rest task per class, sharing ``X``). Internally both forms are stacked into the
multi-input form, and the data term is the sum over tasks of each task's *mean* loss:

.. math::

    L(W, b) = \sum_{t=1}^T \frac{1}{n_t} \sum_{i: \tau_i = t} \ell(y_i, x_i^\top w_t + b_t),

with ``\ell(y, z) = (y - z)^2 / 2`` (regressors) or ``\log(1 + e^{-yz})`` with ``y = \pm 1``
(classifiers). With shared inputs, ``L = ||Y - XW^T||_F^2 / (2 n)``, scikit-learn's
``MultiTaskLasso`` data term. Intercepts ``b_t`` are never penalised.
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin, MultiOutputMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning, DataConversionWarning
from sklearn.metrics import r2_score
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from manytask.linear._solvers import accelerated_proximal_gradient

__all__ = [
    "InvalidParameterError",
    "LinearMultiTaskClassifier",
    "LinearMultiTaskRegressor",
    "TaskAccuracy",
    "TaskR2",
    "binary_targets",
    "class_labels",
    "class_probabilities",
    "validate_task",
]

Blocks = list[np.ndarray]


class InvalidParameterError(ValueError, TypeError):
    """A hyperparameter has a wrong type or value (raised by ``fit``, as in scikit-learn)."""


# --------------------------------------------------------------------------------------------
# parameter validation


def _is_real(v: object) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and bool(np.isfinite(float(v)))


_CONSTRAINTS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "nonneg": (lambda v: _is_real(v) and v >= 0, "a float in the range [0, inf)"),
    "positive": (lambda v: _is_real(v) and v > 0, "a float in the range (0, inf)"),
    "posint": (
        lambda v: isinstance(v, numbers.Integral) and not isinstance(v, bool) and int(v) >= 1,
        "an int in the range [1, inf)",
    ),
    "nonnegint": (
        lambda v: isinstance(v, numbers.Integral) and not isinstance(v, bool) and int(v) >= 0,
        "an int in the range [0, inf)",
    ),
    "bool": (lambda v: isinstance(v, (bool, np.bool_)), "an instance of 'bool'"),
    "unit": (lambda v: _is_real(v) and 0 < v < 1, "a float in the range (0, 1)"),
}


def check_params(estimator: BaseEstimator, constraints: dict[str, str]) -> None:
    """Raise :class:`InvalidParameterError` in scikit-learn's format for a bad hyperparameter."""
    for name, kind in constraints.items():
        value = getattr(estimator, name)
        if kind in _CONSTRAINTS:
            ok, desc = _CONSTRAINTS[kind]
            valid = ok(value)
        else:  # a set of allowed literal values, written "a|b|c"
            options = kind.split("|")
            valid = isinstance(value, (str, numbers.Real)) and str(value) in options
            desc = "a str among {" + ", ".join(repr(o) for o in options) + "}"
        if not valid:
            raise InvalidParameterError(
                f"The {name!r} parameter of {type(estimator).__name__} must be {desc}. "
                f"Got {value!r} instead."
            )


def validate_task(task: Any, n_samples: int, n_tasks: int | None) -> np.ndarray:
    """``task`` as int64 task indices of ``n_samples`` rows (below ``n_tasks`` when given)."""
    task = check_array(task, ensure_2d=False, dtype=None, input_name="task")
    if task.ndim != 1 or task.shape[0] != n_samples:
        raise ValueError(
            f"task must have shape (n_samples,) = ({n_samples},); got {task.shape}."
        )
    if not np.issubdtype(task.dtype, np.integer):
        if not np.issubdtype(task.dtype, np.floating) or np.any(task != np.round(task)):
            raise ValueError(
                f"task must hold integer task indices 0..n_tasks-1; got dtype {task.dtype}."
            )
    task = task.astype(np.int64)
    if task.size and task.min() < 0:
        raise ValueError(f"task indices must be >= 0; got {task.min()}.")
    if n_tasks is not None and task.size and task.max() >= n_tasks:
        raise ValueError(
            f"task index {task.max()} is out of range: the estimator was fitted on "
            f"{n_tasks} tasks (indices 0..{n_tasks - 1})."
        )
    return task


# --------------------------------------------------------------------------------------------
# data term


class TaskData:
    """Stacked multi-input data with per-task centring and per-task mean weights.

    Args:
        X: ``[N, d]`` inputs.
        y: ``[N]`` targets (``+-1`` for the logistic loss).
        task: ``[N]`` task index of each row.
        n_tasks: number of tasks ``T``.
        logistic: use the logistic loss instead of the squared loss.
        fit_intercept: centre ``X`` (and ``y`` for the squared loss) per task.
    """

    def __init__(
        self,
        X: np.ndarray,
        y: np.ndarray,
        task: np.ndarray,
        n_tasks: int,
        *,
        logistic: bool,
        fit_intercept: bool,
    ) -> None:
        n, d = X.shape
        counts = np.bincount(task, minlength=n_tasks).astype(float)
        weights = 1.0 / np.maximum(counts, 1.0)[task]
        self.n_tasks, self.n_features = n_tasks, d
        self.logistic = logistic
        self.task = task
        self.weights = weights
        # S[t, i] = 1 / n_t if row i belongs to task t: task sums of weighted row quantities
        self.S = sp.csr_matrix((weights, (task, np.arange(n))), shape=(n_tasks, n))
        if fit_intercept:
            self.x_mean = np.asarray(self.S @ X)
            X = X - self.x_mean[task]
            if not logistic:
                self.y_mean = np.asarray(self.S @ y)
                y = y - self.y_mean[task]
            else:
                self.y_mean = np.zeros(n_tasks)
        else:
            self.x_mean = np.zeros((n_tasks, d))
            self.y_mean = np.zeros(n_tasks)
        self.X, self.y = X, y
        self.fit_b = fit_intercept and logistic

    def scores(self, C: np.ndarray, b: np.ndarray | None) -> np.ndarray:
        """Linear scores ``x_i^T c_{t_i} + b_{t_i}`` of every row."""
        z = np.einsum("ij,ij->i", self.X, C[self.task])
        return z if b is None else z + b[self.task]

    def value(self, C: np.ndarray, b: np.ndarray | None) -> float:
        """Data term ``L(C, b)``."""
        z = self.scores(C, b)
        if self.logistic:
            return float(self.weights @ np.logaddexp(0.0, -self.y * z))
        r = z - self.y
        return 0.5 * float(self.weights @ (r * r))

    def value_grad(
        self, C: np.ndarray, b: np.ndarray | None
    ) -> tuple[float, np.ndarray, np.ndarray | None]:
        """Data term and its gradients in ``C`` (``[T, d]``) and ``b`` (``[T]``)."""
        z = self.scores(C, b)
        if self.logistic:
            m = self.y * z
            val = float(self.weights @ np.logaddexp(0.0, -m))
            r = -self.y * expit(-m)
        else:
            r = z - self.y
            val = 0.5 * float(self.weights @ (r * r))
        gC = np.asarray(self.S @ (r[:, None] * self.X))
        gb = np.asarray(self.S @ r) if b is not None else None
        return val, gC, gb


# --------------------------------------------------------------------------------------------
# estimator base


class _LinearMultiTaskBase(MultiOutputMixin, BaseEstimator):
    """Shared machinery; subclasses implement the penalty hooks below."""

    _logistic: bool = False
    _constraints: dict[str, str] = {}

    # ----- penalty hooks (override in method families) -----
    def _init_blocks(self, data: TaskData) -> Blocks:
        return [np.zeros((data.n_tasks, data.n_features))]

    def _coef(self, blocks: Blocks) -> np.ndarray:
        return blocks[0] if len(blocks) == 1 else np.sum(blocks, axis=0)

    def _coef_grad(self, blocks: Blocks, gC: np.ndarray) -> Blocks:
        return [gC for _ in blocks]

    def _smooth_penalty(self, blocks: Blocks) -> tuple[float, Blocks]:
        return 0.0, [np.zeros_like(b) for b in blocks]

    def _nonsmooth_penalty(self, blocks: Blocks) -> float:
        return 0.0

    def _prox(self, blocks: Blocks, step: float) -> Blocks:
        return blocks

    def _store(self, blocks: Blocks) -> None:
        """Store method-specific fitted attributes (e.g. the parts of ``W = S + B``)."""

    # ----- objective -----
    def _objective(self, data: TaskData, blocks: Blocks, b: np.ndarray | None) -> float:
        val = data.value(self._coef(blocks), b)
        return val + self._smooth_penalty(blocks)[0] + self._nonsmooth_penalty(blocks)

    def _solve(self, data: TaskData) -> tuple[Blocks, np.ndarray | None, int, str | None]:
        """Minimise data term + penalty by accelerated proximal gradient.

        Returns the blocks, the intercepts (``None`` where centring gives them), the iteration count
        and :meth:`_stop_reason` (``None`` when the stopping rule was met).
        """
        blocks, b, n_iter, converged = self._solve_apg(data, self._init_blocks(data))
        return blocks, b, n_iter, self._stop_reason(apg=not converged)

    def _stop_reason(self, *, apg: bool = False, outer: bool = False) -> str | None:
        """Why a fit stopped before its stopping rule held, worded for ``fit``'s
        ``ConvergenceWarning``; ``None`` if it did not.

        Args:
            apg: an APG solve ran out of ``max_iter`` iterations.
            outer: an alternation of solves ran out of ``max_outer_iter`` alternations.
        """
        reasons = []
        if outer:
            reasons.append(f"the alternation reached max_outer_iter={self.max_outer_iter}")
        if apg:
            solve = "an inner APG solve" if hasattr(self, "max_outer_iter") else "APG"  # one of several?
            reasons.append(f"{solve} reached max_iter={self.max_iter} iterations")
        if not reasons:
            return None
        limits = " and ".join(name for name, hit in (("max_outer_iter", outer), ("max_iter", apg)) if hit)
        return f"{' and '.join(reasons)}; increase {limits}, or tol"

    def _solve_apg(
        self,
        data: TaskData,
        blocks0: Blocks,
        b0: np.ndarray | None = None,
        *,
        hooks: Any = None,
        max_iter: int | None = None,
    ) -> tuple[Blocks, np.ndarray | None, int, bool]:
        """Run APG from ``blocks0``; ``hooks`` (default ``self``) supplies the penalty hooks."""
        h = self if hooks is None else hooks
        shapes = [blk.shape for blk in blocks0]
        sizes = [int(np.prod(s)) for s in shapes]
        if b0 is None and data.fit_b:
            b0 = np.zeros(data.n_tasks)
        n_b = 0 if b0 is None else data.n_tasks

        def unpack(x: np.ndarray) -> tuple[Blocks, np.ndarray | None]:
            out, pos = [], 0
            for s, k in zip(shapes, sizes, strict=True):
                out.append(x[pos : pos + k].reshape(s))
                pos += k
            return out, (x[pos:] if n_b else None)

        def pack(blocks: Blocks, b: np.ndarray | None) -> np.ndarray:
            parts = [blk.ravel() for blk in blocks] + ([b] if b is not None else [])
            return np.concatenate(parts)

        def f(x: np.ndarray) -> float:
            blocks, b = unpack(x)
            pen, _ = h._smooth_penalty(blocks)
            return data.value(h._coef(blocks), b) + pen if np.isfinite(pen) else np.inf

        def f_grad(x: np.ndarray) -> tuple[float, np.ndarray]:
            blocks, b = unpack(x)
            pen, pgrads = h._smooth_penalty(blocks)
            if not np.isfinite(pen):
                return np.inf, np.zeros_like(x)
            val, gC, gb = data.value_grad(h._coef(blocks), b)
            grads = [g1 + g2 for g1, g2 in zip(h._coef_grad(blocks, gC), pgrads, strict=True)]
            return val + pen, pack(grads, gb)

        def g(x: np.ndarray) -> float:
            return h._nonsmooth_penalty(unpack(x)[0])

        def prox(v: np.ndarray, step: float) -> np.ndarray:
            blocks, b = unpack(v)
            return pack(h._prox([blk.copy() for blk in blocks], step), b)

        res = accelerated_proximal_gradient(
            f,
            f_grad,
            g,
            prox,
            pack(blocks0, b0),
            max_iter=self.max_iter if max_iter is None else max_iter,
            tol=self.tol,
        )
        blocks, b = unpack(res.x)
        return [blk.copy() for blk in blocks], b, res.n_iter, res.converged

    # ----- input handling -----
    def _validate_task(self, task: Any, n_samples: int, n_tasks: int | None) -> np.ndarray:
        return validate_task(task, n_samples, n_tasks)

    def _targets(self, y: np.ndarray) -> np.ndarray:
        """Map validated targets to the values the loss uses (identity for regression)."""
        return y.astype(float)

    def _fit(self, X: Any, y: Any, task: Any) -> _LinearMultiTaskBase:
        check_params(self, {"fit_intercept": "bool", "max_iter": "posint", "tol": "positive"})
        check_params(self, self._constraints)
        X, y = validate_data(
            self,
            X,
            y,
            multi_output=True,
            y_numeric=not self._logistic,
            dtype=np.float64,
        )
        n = X.shape[0]
        if task is not None:
            if y.ndim != 1:
                raise ValueError(
                    "In the multi-input form (task given), y must be 1-D with one target per "
                    f"row; got y of shape {y.shape}. For y of shape (n_samples, n_tasks) "
                    "(shared inputs), call fit without task."
                )
            task = self._validate_task(task, n, None)
            n_tasks = int(task.max()) + 1
            yt = self._targets(y)
            if yt.ndim != 1:
                raise ValueError(
                    "In the multi-input form each task must be binary; got "
                    f"{len(self.classes_)} classes."
                )
            self.task_form_ = "multi_input"
            Xs, ys, tasks = X, yt, task
        else:
            yt = self._targets(y)
            if yt.ndim == 1:
                self.task_form_ = "single"
                yt = yt[:, None]
            else:
                self.task_form_ = "shared" if y.ndim == 2 else "one_vs_rest"
            n_tasks = yt.shape[1]
            Xs = np.tile(X, (n_tasks, 1))
            ys = yt.T.ravel()
            tasks = np.repeat(np.arange(n_tasks), n)
        self.n_tasks_ = n_tasks
        if self._logistic and self.fit_intercept:
            _check_both_labels(type(self).__name__, self.classes_, ys, tasks, n_tasks)
        data = TaskData(
            Xs,
            ys,
            tasks,
            n_tasks,
            logistic=self._logistic,
            fit_intercept=self.fit_intercept,
        )
        _warn_if_badly_scaled(type(self).__name__, X)
        blocks, b, n_iter, stop = self._solve(data)
        if stop is not None:
            warnings.warn(
                f"{type(self).__name__} did not converge (tol={self.tol}): {stop}.",
                ConvergenceWarning,
                stacklevel=3,
            )
        coef = self._coef(blocks)
        self.coef_ = coef
        shift = b if b is not None else data.y_mean
        self.intercept_ = shift - np.einsum("ij,ij->i", data.x_mean, coef)
        self.n_iter_ = n_iter
        self.objective_ = self._objective(data, blocks, b)
        self._store(blocks)
        return self

    def _decision(self, X: Any, task: Any) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        if task is not None:
            task = self._validate_task(task, X.shape[0], self.n_tasks_)
            return np.einsum("ij,ij->i", X, self.coef_[task]) + self.intercept_[task]
        if self.task_form_ == "multi_input":
            raise ValueError(
                f"{type(self).__name__} was fitted in the multi-input form (with task=...); "
                "pass the task of each row: predict(X, task=task)."
            )
        out = X @ self.coef_.T + self.intercept_
        return out[:, 0] if self.task_form_ == "single" else out

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags


def _check_both_labels(estimator: str, classes: np.ndarray, signs: np.ndarray, tasks: np.ndarray,
                       n_tasks: int) -> None:
    """Refuse a task whose rows carry one label only (``signs``: +-1 per row): the logistic loss
    then has no finite optimum for its unpenalised intercept, which grows for as long as the
    solver runs (a fit's intercept depended on ``tol``: 8.8 at 1e-5, 13.8 at 1e-8)."""
    rows = np.bincount(tasks, minlength=n_tasks)
    positive = np.bincount(tasks, weights=signs > 0, minlength=n_tasks)
    single = np.flatnonzero((rows > 0) & ((positive == 0) | (positive == rows)))
    if single.size:
        t = int(single[0])
        label = np.asarray(classes)[1 if positive[t] else 0].tolist()
        raise ValueError(
            f"{estimator}: task {t} has only the label {label!r} in y ({int(rows[t])} rows; {single.size} such "
            "task(s)). A logistic task needs rows of both labels: with one, its unpenalised intercept has no "
            "finite optimum. Leave the task out, add rows of the other label, or set fit_intercept=False."
        )


#: Column scales further apart than this make one proximal-gradient step size fit no column:
#: measured on ridge and logistic fits against scikit-learn, the coefficients are within 1e-3
#: (ridge) of the optimum up to a ratio of 30, off by 0.03 at 100, and at 1,000 the solver stops
#: after 6 steps with coefficients off by 2 and no convergence warning.
SCALE_RATIO_LIMIT = 30.0


def _warn_if_badly_scaled(estimator: str, X: np.ndarray) -> None:
    """Warn when the columns' standard deviations differ by more than :data:`SCALE_RATIO_LIMIT`.

    The step size comes from the largest curvature, so the coefficients of small-scale columns
    barely move and the relative-decrease rule stops early, far from the optimum, with no
    convergence warning (a column 1,000 times the others: 6 steps, coefficients off by 2)."""
    spread = X.std(axis=0)
    varying = np.flatnonzero(spread > 0)
    if len(varying) < 2:
        return
    big, small = varying[np.argmax(spread[varying])], varying[np.argmin(spread[varying])]
    ratio = spread[big] / spread[small]
    if ratio > SCALE_RATIO_LIMIT:
        warnings.warn(
            f"{estimator}: the columns of X differ in scale by a factor {ratio:.3g} (column {big}: sd "
            f"{spread[big]:.3g}, column {small}: sd {spread[small]:.3g}); the proximal-gradient solver "
            "may stop far from the optimum on such data. Standardise X (StandardScaler in a Pipeline).",
            UserWarning,
            stacklevel=4,
        )


class TaskR2:
    """``score`` of the multi-task regressors: R^2, with ``task`` for the multi-input form
    (scikit-learn's ``RegressorMixin.score`` cannot pass it to ``predict``)."""

    predict: Any

    def score(self, X: Any, y: Any, sample_weight: Any = None, task: Any = None) -> float:
        """R^2 of the predictions (averaged uniformly over tasks in the shared form)."""
        return float(r2_score(y, self.predict(X, task=task), sample_weight=sample_weight))


class TaskAccuracy:
    """``score`` of the multi-task classifiers: mean accuracy, with ``task`` for the multi-input
    form (scikit-learn's ``ClassifierMixin.score`` cannot pass it to ``predict``)."""

    predict: Any

    def score(self, X: Any, y: Any, sample_weight: Any = None, task: Any = None) -> float:
        """Mean accuracy (over all entries in the shared form)."""
        pred = self.predict(X, task=task)
        return float(np.average(pred == np.asarray(y), weights=sample_weight, axis=0).mean())


class LinearMultiTaskRegressor(TaskR2, RegressorMixin, _LinearMultiTaskBase):
    """Base class of the least-squares estimators (subclass it to add a penalty)."""

    def fit(self, X: Any, y: Any, task: Any = None) -> LinearMultiTaskRegressor:
        """Fit the model.

        Args:
            X: ``[n_samples, n_features]`` inputs.
            y: ``[n_samples, n_tasks]`` (shared inputs) or ``[n_samples]`` targets.
            task: ``[n_samples]`` task index of each row (multi-input form), or ``None``.

        Returns:
            The fitted estimator.
        """
        return self._fit(X, y, task)

    def predict(self, X: Any, task: Any = None) -> np.ndarray:
        """Predict ``[n_samples, n_tasks]`` (shared form) or ``[n_samples]`` (with ``task``)."""
        return self._decision(X, task)


def binary_targets(estimator: BaseEstimator, y: np.ndarray) -> np.ndarray:
    """Class labels as ``+-1`` per task, setting ``estimator.classes_``: ``(n,)`` for one binary
    task, ``(n, T)`` for shared inputs (the same two labels in every column) or one-vs-rest
    tasks (a 1-D ``y`` with more than two classes)."""
    kind = type_of_target(y, input_name="y")
    if kind not in ("binary", "multiclass", "multilabel-indicator", "multiclass-multioutput"):
        raise ValueError(f"Unknown label type: {kind!r}; expected class labels.")
    classes = np.unique(y)
    if classes.size < 2:
        raise ValueError(
            "This solver needs samples of at least 2 classes in the data, but the data "
            f"contains only one class: {classes[0]!r}."
        )
    estimator.classes_ = classes
    if y.ndim == 2 and classes.size > 2:
        raise ValueError(
            "With y of shape (n_samples, n_tasks) every task must be binary with the "
            f"same two labels; got {classes.size} distinct labels."
        )
    if y.ndim == 2 or classes.size == 2:
        return np.where(y == classes[1], 1.0, -1.0)
    # one-vs-rest: one task per class (only without task=, checked by the caller)
    return np.where(y[:, None] == classes[None, :], 1.0, -1.0)


def _refuse_one_vs_rest_task(classes: np.ndarray, task_form: str, task: Any) -> None:
    """Task ``t`` of a one-vs-rest fit answers "``classes[t]`` or not", which is no label of
    ``classes``: labels and probabilities per task would be mislabelled, so they are refused."""
    if task_form == "one_vs_rest" and task is not None:
        raise ValueError(
            f"This classifier was fitted one-vs-rest on the classes {classes.tolist()} (task t: classes_[t] "
            "against the rest), so a task's answer is not one of classes_. Call predict(X) or "
            "predict_proba(X) without task for the class, or use decision_function(X, task=t) > 0 for "
            "task t's yes/no."
        )


def class_probabilities(scores: np.ndarray, task_form: str, classes: np.ndarray, task: Any) -> np.ndarray:
    """``predict_proba`` from log-odds: ``[n, 2]`` for one task (or with ``task``), normalised
    ``[n, n_classes]`` for one-vs-rest (``task`` refused), the positive class' ``[n, T]`` for
    shared inputs."""
    _refuse_one_vs_rest_task(classes, task_form, task)
    p = expit(scores)
    if p.ndim == 1:
        return np.column_stack([1.0 - p, p])
    if task_form == "one_vs_rest":
        return p / p.sum(axis=1, keepdims=True)
    return p


def class_labels(classes: np.ndarray, scores: np.ndarray, task_form: str, task: Any) -> np.ndarray:
    """``predict`` from log-odds: the argmax class for one-vs-rest (``task`` refused), else each
    task's sign."""
    _refuse_one_vs_rest_task(classes, task_form, task)
    if task_form == "one_vs_rest":
        return classes[np.argmax(scores, axis=1)]
    return classes[(scores > 0).astype(int)]


class LinearMultiTaskClassifier(TaskAccuracy, ClassifierMixin, _LinearMultiTaskBase):
    """Base class of the logistic-loss estimators (binary per task; labels mapped to +-1)."""

    _logistic = True

    def _targets(self, y: np.ndarray) -> np.ndarray:
        return binary_targets(self, y)

    def fit(self, X: Any, y: Any, task: Any = None) -> LinearMultiTaskClassifier:
        """Fit the model.

        Args:
            X: ``[n_samples, n_features]`` inputs.
            y: ``[n_samples, n_tasks]`` binary labels (shared inputs), or ``[n_samples]``
                labels: binary with ``task``, or binary/multiclass (one-vs-rest) without.
            task: ``[n_samples]`` task index of each row (multi-input form), or ``None``.
                A column vector ``y`` of shape ``(n_samples, 1)`` is treated as 1-D.

        Returns:
            The fitted estimator.
        """
        if getattr(y, "ndim", 1) == 2 and y.shape[1] == 1:
            warnings.warn(
                "A column-vector y was passed when a 1d array was expected; it is treated as "
                "y.ravel() (one task, or one-vs-rest tasks for more than two classes).",
                DataConversionWarning,
                stacklevel=2,
            )
            y = np.asarray(y).ravel()
        return self._fit(X, y, task)

    def decision_function(self, X: Any, task: Any = None) -> np.ndarray:
        """Scores ``x^T w_t + b_t``: ``[n_samples, n_tasks]`` or ``[n_samples]``."""
        return self._decision(X, task)

    def predict_proba(self, X: Any, task: Any = None) -> np.ndarray:
        """Class probabilities from the logistic model.

        Returns ``[n_samples, 2]`` (one binary task, or with ``task``), ``[n_samples,
        n_classes]`` (one-vs-rest, normalised) or ``[n_samples, n_tasks]`` holding the
        probability of ``classes_[1]`` for each task (shared inputs).
        """
        return class_probabilities(self._decision(X, task), self.task_form_, self.classes_, task)

    def predict_log_proba(self, X: Any, task: Any = None) -> np.ndarray:
        """Logarithm of :meth:`predict_proba`."""
        return np.log(self.predict_proba(X, task=task))

    def predict(self, X: Any, task: Any = None) -> np.ndarray:
        """Predicted labels, shaped like :meth:`decision_function`."""
        scores = self._decision(X, task)  # checks it is fitted first
        return class_labels(self.classes_, scores, self.task_form_, task)

