r"""Hierarchical Bayesian multi-task regression: task clustering and task gating.

Bakker & Heskes (2003), "Task clustering and gating for Bayesian multitask learning", JMLR 4:83-99.
Each task's weights are drawn from a prior shared by all tasks, a mixture of ``K`` Gaussians
(one per task cluster),

.. math:: w_t \sim \sum_k \pi_{tk}\, \mathcal{N}(m_k, \Sigma_k), \qquad
          y_t = X_t w_t + b_t + \varepsilon, \ \varepsilon \sim \mathcal{N}(0, \sigma^2 I),

and the hyperparameters maximise the marginal likelihood of all tasks' data (empirical Bayes; the
task weights integrated out), here by expectation maximisation over the tasks' cluster
memberships and weights. The paper's three priors, in its order (Sec. 2: one shared Gaussian;
then task clustering; then task gating, its mixture-of-experts prior):

* :class:`HierarchicalBayesRegressor`: ``K = 1`` is the single shared Gaussian; ``K > 1`` is task
  clustering, one set of mixture weights :math:`\pi_{tk} = \pi_k` for every task;
* :class:`TaskGatingRegressor`: task gating, :math:`\pi_{tk} = \mathrm{softmax}_k(u_k^\top f_t)`
  from each task's characteristics :math:`f_t` (with a bias), so that which cluster a task draws
  its weights from is predicted from what is known about the task -- also for a task with no
  data (:meth:`TaskGatingRegressor.predict_new_task`).

EM: the E-step gives each task's cluster responsibilities and Gaussian weight posterior per
cluster; the M-step sets the clusters' means and covariances to the responsibility-weighted
posterior moments, the noise to the expected residual, and the mixture weights to the mean
responsibilities (clustering) or, for gating, the gate to the multinomial logistic regression of
the responsibilities on :math:`f_t` (convex; Newton's method from the previous gate, never ending
lower, so the objective never decreases: a generalised EM). Everything is computed from each
task's sufficient statistics :math:`X_t^\top X_t, X_t^\top y_t, y_t^\top y_t, n_t` (the evidence
by the matrix determinant lemma and Woodbury's identity), batched over tasks and clusters.

Deviations from the paper: the model is linear in the inputs (the paper's tasks share an
input-to-hidden layer of a neural network and the prior is over the hidden-to-output weights; here
the "hidden layer" is the identity). The gate's weights get a Gaussian prior (an L2 penalty
``gate_alpha``, as scikit-learn's ``LogisticRegression``) so that they stay finite when the task
features separate the clusters; ``log_likelihood_`` then includes it. The intercepts are either
each task's mean target with the rows centred (``shrink_intercept=False``, not in the paper) or
part of the weight vector and its prior (``shrink_intercept=True``, as the paper's biases; needed
to predict a new task). The equation numbers of the paper were not checked: its text could not be
retrieved here, so sections are cited by their content.
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.special import log_softmax, logsumexp, softmax
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_is_fitted, validate_data

from manytask.linear._base import InvalidParameterError, TaskData, check_params
from manytask.linear._task_forms import TaskFormRegressor, stack_tasks

__all__ = ["HierarchicalBayesRegressor", "TaskGatingRegressor"]


class HierarchicalBayesRegressor(TaskFormRegressor):
    r"""Hierarchical Bayes: task weights from a shared mixture-of-Gaussians prior (Bakker & Heskes 2003).

    Bakker & Heskes (2003): task weights from a shared mixture-of-Gaussians prior fitted by
    empirical Bayes (EM); ``n_clusters = 1`` is one shared Gaussian prior.

    Args:
        n_clusters: ``K``, the mixture's components (task clusters).
        max_iter: EM iterations; ``tol``: stop when the log marginal likelihood gains less
            (relative).
        min_variance: a floor added to :math:`\Sigma_k`'s diagonal (keeps it invertible).
        random_state: seed of the initial cluster responsibilities (``K > 1``).
        shrink_intercept: put each task's intercept in its weight vector and the prior (as the
            paper's biases); otherwise each task's rows are centred and its intercept is its mean
            target. Needed by :meth:`predict_new_task`.

    Attributes:
        coef_: ``(T, d)`` posterior mean weights; ``intercept_``: ``(T,)``;
        means_, covariances_, weights_: the prior's :math:`m_k, \Sigma_k, \pi_k` (over the
        weights, then the intercept when ``shrink_intercept``); ``noise_``: :math:`\sigma^2`;
        ``responsibilities_``: ``(T, K)`` each task's cluster posterior; ``coef_covariance_``:
        each task's posterior weight covariance (and intercept, last, when ``shrink_intercept``);
        log_likelihood_: the log marginal likelihood after each EM iteration (never decreasing).

    Examples:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0); X = rng.normal(size=(200, 2)); task = np.repeat(np.arange(10), 20)
        >>> w = np.where(np.arange(10)[:, None] < 5, [1.0, 0.0], [0.0, 1.0]) + 0.05 * rng.normal(size=(10, 2))
        >>> y = np.einsum("ij,ij->i", X, w[task]) + 0.1 * rng.normal(size=200)
        >>> model = HierarchicalBayesRegressor(n_clusters=2).fit(X, y, task=task)
        >>> clusters = model.responsibilities_.argmax(1)
        >>> len(set(clusters[:5])), len(set(clusters[5:])), len(set(clusters))
        (1, 1, 2)
    """

    def __init__(self, n_clusters: int = 1, max_iter: int = 200, tol: float = 1e-6, min_variance: float = 1e-6,
                 random_state: int = 0, shrink_intercept: bool = False) -> None:
        self.n_clusters = n_clusters
        self.max_iter = max_iter
        self.tol = tol
        self.min_variance = min_variance
        self.random_state = random_state
        self.shrink_intercept = shrink_intercept

    # ----- hooks of the gated prior (TaskGatingRegressor) -----
    def _check(self) -> None:
        check_params(self, {"n_clusters": "posint", "max_iter": "posint", "tol": "positive",
                            "min_variance": "positive", "shrink_intercept": "bool"})

    def _setup(self, X: np.ndarray, tasks: np.ndarray, count: int) -> np.ndarray:
        """The columns of ``X`` the tasks regress on (gating: also reads the task features)."""
        return np.arange(X.shape[1])

    def _gate(self, resp: np.ndarray) -> tuple[np.ndarray, float]:
        """M-step of the mixture weights: log prior weights (broadcast to ``[T, K]``) and the
        penalty the gate adds to the objective."""
        return np.log(resp.mean(0).clip(min=1e-12))[None, :], 0.0

    def _new_task_weights(self, X: np.ndarray) -> np.ndarray:
        """``[n, K]`` prior cluster probabilities of a new task at each row."""
        return np.broadcast_to(self.weights_, (len(X), self.n_clusters))

    # ----- fitting -----
    def fit(self, X: Any, y: Any, task: Any = None) -> HierarchicalBayesRegressor:
        """Fit on ``(X, y)``: ``y`` ``(n, T)`` (shared inputs) or ``(n,)`` with ``task``."""
        self._check()
        X, y = validate_data(self, X, y, multi_output=True, y_numeric=True, dtype=np.float64, ensure_min_samples=2)
        rows, targets, tasks = stack_tasks(self, X, y, task)
        self.n_tasks_ = count = int(tasks.max()) + 1
        columns = self._setup(rows, tasks, count)
        if self.shrink_intercept:  # the intercept is one more weight, under the prior
            design, z = np.c_[rows[:, columns], np.ones(len(rows))], targets
            origin, y_mean = np.zeros((count, len(columns) + 1)), np.zeros(count)
        else:
            centred = TaskData(rows[:, columns], targets, tasks, count, logistic=False, fit_intercept=True)
            design, z, origin, y_mean = centred.X, centred.y, centred.x_mean, centred.y_mean
        stats = _task_statistics(design, z, tasks, count)
        gram, cross, _, sizes = stats
        d, k = design.shape[1], self.n_clusters
        # start: every task's ridge fit, the prior moment-matched to them, soft random clusters
        start = np.linalg.solve(gram + np.eye(d), cross[:, :, None])[:, :, 0]
        rng = np.random.default_rng(self.random_state)
        resp = rng.dirichlet(np.ones(k), size=count) if k > 1 else np.ones((count, 1))
        log_prior, penalty = self._gate(resp)
        means = (resp.T @ start) / resp.sum(0)[:, None]
        spread = [np.cov(start.T, aweights=resp[:, j] + 1e-12).reshape(d, d) if count > 1 else np.zeros((d, d))
                  for j in range(k)]  # one task has no spread to start from
        covs = np.stack([np.nan_to_num(c) + np.eye(d) for c in spread])
        noise = float(_expected_residual(stats, start[:, None, :], None).sum() / sizes.sum()) + 1e-6
        history: list[float] = []
        for _ in range(self.max_iter):
            # E-step: each task's log evidence under each component, and its weights' posterior
            log_evidence, post_mean, post_cov = _posteriors(stats, means, covs, noise)
            joint = log_prior + log_evidence  # [T, K]
            history.append(float(logsumexp(joint, axis=1).sum()) - penalty)
            resp = softmax(joint, axis=1)
            if len(history) > 1 and history[-1] - history[-2] < self.tol * max(1.0, abs(history[-2])):
                break
            # M-step: the gate, the prior's moments from the posteriors, the noise from the residuals
            log_prior, penalty = self._gate(resp)
            mass = resp.sum(0).clip(min=1e-300)
            means = np.einsum("tk,tkd->kd", resp, post_mean) / mass[:, None]
            offset = post_mean - means[None]
            second = post_cov + offset[..., :, None] * offset[..., None, :]  # E[(w - m)(w - m)^T] per task
            covs = np.einsum("tk,tkde->kde", resp, second) / mass[:, None, None] + self.min_variance * np.eye(d)
            noise = max(float((resp * _expected_residual(stats, post_mean, post_cov)).sum()) / sizes.sum(), 1e-10)
        else:
            warnings.warn(f"{type(self).__name__} did not converge in max_iter={self.max_iter} EM iterations "
                          f"(tol={self.tol}); increase max_iter or tol.", ConvergenceWarning, stacklevel=2)
        log_evidence, post_mean, post_cov = _posteriors(stats, means, covs, noise)
        resp = softmax(log_prior + log_evidence, axis=1)
        self.responsibilities_ = resp
        weights = np.einsum("tk,tkd->td", resp, post_mean)
        second = np.einsum("tk,tkde->tde", resp, post_cov + post_mean[..., :, None] * post_mean[..., None, :])
        self.coef_covariance_ = second - weights[:, :, None] * weights[:, None, :]
        self.coef_ = np.zeros((count, X.shape[1]))
        self.coef_[:, columns] = weights[:, :len(columns)]
        self.intercept_ = weights[:, -1] if self.shrink_intercept else y_mean - np.einsum(
            "ij,ij->i", origin, weights)
        self._columns, self._origin, self._sizes = columns, origin, sizes
        self.means_, self.covariances_, self.noise_ = means, covs, noise
        self.weights_ = np.exp(log_prior[0] if log_prior.shape[0] == 1 else log_prior)
        self.log_likelihood_ = history
        self.n_iter_ = len(history)
        return self

    def _design(self, X: np.ndarray) -> np.ndarray:
        """``[n, d']`` rows in the prior's coordinates (the regression columns, then a 1)."""
        rows = X[:, self._columns]
        return np.c_[rows, np.ones(len(X))] if self.shrink_intercept else rows

    def predict(self, X: Any, task: Any = None, return_std: bool = False) -> Any:
        r"""Posterior mean (and, with ``return_std``, the posterior standard deviation of the
        task's function at each row): ``(n, T)`` for shared inputs, ``(n,)`` with ``task``.

        With ``shrink_intercept=False`` the intercept is the task's mean target under a flat
        prior, whose posterior variance :math:`\sigma^2 / n_t` (independent of the weights of the
        centred rows) adds to the variance: :math:`(x - \bar x_t)^\top \Sigma_t (x - \bar x_t) +
        \sigma^2 / n_t`."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        queries = self._queries(X, task)
        mean = self._shaped(self._scores(X), queries)
        if not return_std:
            return mean
        rows = self._design(X)[:, None, :] - self._origin[None, :, :]  # [n, T, d']
        variance = np.einsum("ntd,tde,nte->nt", rows, self.coef_covariance_, rows).clip(min=0)
        if not self.shrink_intercept:
            variance = variance + self.noise_ / np.maximum(self._sizes, 1)[None, :]
        return mean, self._shaped(np.sqrt(variance), queries)

    def predict_new_task(self, X: Any, return_std: bool = False) -> Any:
        r"""Prediction for rows of a task not seen in ``fit``, from the prior alone: the mixture's
        mean :math:`\sum_k \pi_k x^\top m_k` (with ``return_std``, also the prior standard deviation
        of the task's function at each row). ``(n,)``; needs ``shrink_intercept=True``."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        if not self.shrink_intercept:
            raise ValueError(f"{type(self).__name__} fitted with shrink_intercept=False has no prior over a new "
                             "task's intercept; refit with shrink_intercept=True to predict new tasks.")
        rows, gates = self._design(X), self._new_task_weights(X)
        each = rows @ self.means_.T  # [n, K]
        mean = np.einsum("nk,nk->n", gates, each)
        if not return_std:
            return mean
        spread = np.einsum("nd,kde,ne->nk", rows, self.covariances_, rows)
        return mean, np.sqrt(np.einsum("nk,nk->n", gates, spread + each**2) - mean**2).clip(min=0)


class TaskGatingRegressor(HierarchicalBayesRegressor):
    r"""Task gating: each task's prior cluster predicted from its task features (Bakker & Heskes 2003).

    Bakker & Heskes (2003), task gating: the mixture-of-Gaussians prior of
    :class:`HierarchicalBayesRegressor` with each task's cluster probabilities
    :math:`\pi_{tk} = \mathrm{softmax}_k(u_{k0} + u_k^\top f_t)` given by its task features.

    The task features are columns of ``X`` (``task_feature_columns``), constant within each task,
    as School's school-level columns: they travel with the rows through every splitter, pipeline
    and grid search, and a new task's rows carry its features to :meth:`predict_new_task`. The
    tasks regress on the other columns. Without task features (or with features equal for all
    tasks) this is :class:`HierarchicalBayesRegressor`'s task clustering.

    Args:
        task_feature_columns: indices of the columns of ``X`` holding the task features
            (standardised over the tasks inside); ``None``: none.
        n_clusters: ``K``; gate_alpha: the L2 penalty on the gate's feature weights (a Gaussian
            prior :math:`\mathcal{N}(0, 1 / \alpha)` on standardised features; ``0``: none).
        max_iter, tol, min_variance, random_state, shrink_intercept: as in
            :class:`HierarchicalBayesRegressor` (``shrink_intercept`` defaults to ``True`` here).

    Attributes:
        gate_coef_, gate_intercept_: ``(K, f)`` and ``(K,)``: the gate in the features' own units;
        weights_: ``(T, K)`` each training task's prior cluster probabilities from the gate;
        log_likelihood_: the log marginal likelihood minus the gate's penalty (with
        ``gate_alpha = 0`` the log marginal likelihood) after each EM iteration (never
        decreasing); the others as in :class:`HierarchicalBayesRegressor`.

    Examples:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0); group = np.arange(20) % 2; task = np.repeat(np.arange(20), 10)
        >>> X = np.c_[rng.normal(size=(200, 2)), group[task]]    # column 2: the task's feature
        >>> w = np.where(group[:, None] == 0, [1.0, -1.0], [-1.0, 1.0])
        >>> y = np.einsum("ij,ij->i", X[:, :2], w[task]) + 0.1 * rng.normal(size=200)
        >>> model = TaskGatingRegressor([2], n_clusters=2, gate_alpha=0.1).fit(X, y, task=task)
        >>> new = np.array([[1.0, 0.0, 0.0], [1.0, 0.0, 1.0]])  # new tasks of each group, x = (1, 0)
        >>> np.round(model.predict_new_task(new), 1)
        array([ 1., -1.])
    """

    def __init__(self, task_feature_columns: Sequence[int] | None = None, *, n_clusters: int = 2,
                 gate_alpha: float = 1.0, max_iter: int = 200, tol: float = 1e-6, min_variance: float = 1e-6,
                 random_state: int = 0, shrink_intercept: bool = True) -> None:
        super().__init__(n_clusters=n_clusters, max_iter=max_iter, tol=tol, min_variance=min_variance,
                         random_state=random_state, shrink_intercept=shrink_intercept)
        self.task_feature_columns = task_feature_columns
        self.gate_alpha = gate_alpha

    def _check(self) -> None:
        super()._check()
        check_params(self, {"gate_alpha": "nonneg"})
        cols = self.task_feature_columns
        if cols is not None and (isinstance(cols, (str, bytes)) or not isinstance(cols, Sequence) or not all(
                isinstance(c, numbers.Integral) and not isinstance(c, bool) for c in cols)):
            raise InvalidParameterError(f"The 'task_feature_columns' parameter of {type(self).__name__} must be "
                                        f"None or a sequence of column indices (int). Got {cols!r} instead.")

    def _setup(self, X: np.ndarray, tasks: np.ndarray, count: int) -> np.ndarray:
        d = X.shape[1]
        gate = np.array(self.task_feature_columns or [], dtype=int)
        if len(set(gate.tolist())) != len(gate) or np.any((gate < 0) | (gate >= d)):
            raise ValueError(f"task_feature_columns must be distinct column indices in 0..{d - 1}; got "
                             f"{self.task_feature_columns!r}.")
        columns = np.setdiff1d(np.arange(d), gate)
        if not self.shrink_intercept and len(columns) == 0:
            raise ValueError("Every column is a task feature: nothing is left to regress on. Keep some columns "
                             "out of task_feature_columns, or set shrink_intercept=True (intercepts only).")
        values = X[:, gate]
        first = np.full(count, len(X))
        np.minimum.at(first, tasks, np.arange(len(X)))  # each task's first row
        seen = first < len(X)
        features = np.zeros((count, len(gate)))
        features[seen] = values[first[seen]]
        varies = np.abs(values - features[tasks]) > 1e-9 * (1 + np.abs(values))
        if varies.any():
            row, col = np.argwhere(varies)[0]
            raise ValueError(f"Task features must be constant within each task: column {gate[col]} varies within "
                             f"task {tasks[row]}. (In the shared-input form every task sees every row, so a "
                             "task feature column must be constant.)")
        features[~seen] = features[seen].mean(0)  # a task with no rows: the average task
        centre, scale = features.mean(0), features.std(0)
        scale[scale <= 1e-12 * (1 + np.abs(centre))] = 1.0  # a feature equal for all tasks: bias only
        self._gate_inputs = np.c_[np.ones(count), (features - centre) / scale]
        self._gate_params = np.zeros((self.n_clusters, len(gate) + 1))
        self._gate_units = gate, centre, scale
        return columns

    def _gate(self, resp: np.ndarray) -> tuple[np.ndarray, float]:
        self._gate_params = _fit_gate(self._gate_inputs, resp, self.gate_alpha, self._gate_params)
        return log_softmax(self._gate_inputs @ self._gate_params.T, axis=1), _gate_penalty(
            self._gate_params, self.gate_alpha)

    def fit(self, X: Any, y: Any, task: Any = None) -> TaskGatingRegressor:
        """Fit on ``(X, y)``: ``y`` ``(n,)`` with ``task`` (or ``(n, T)`` shared inputs, where the
        task features cannot differ between tasks)."""
        super().fit(X, y, task)
        _, centre, scale = self._gate_units
        self.gate_coef_ = self._gate_params[:, 1:] / scale
        self.gate_intercept_ = self._gate_params[:, 0] - self.gate_coef_ @ centre
        return self

    def _new_task_weights(self, X: np.ndarray) -> np.ndarray:
        return softmax(X[:, self._gate_units[0]] @ self.gate_coef_.T + self.gate_intercept_, axis=1)


def _task_statistics(design: np.ndarray, z: np.ndarray, tasks: np.ndarray,
                     count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each task's sufficient statistics: ``X_t^T X_t`` ``[T, d, d]``, ``X_t^T z_t`` ``[T, d]``,
    ``z_t^T z_t`` ``[T]`` and ``n_t`` ``[T]``."""
    n = len(z)
    sizes = np.bincount(tasks, minlength=count)
    blocks = np.split(design[np.argsort(tasks, kind="stable")], np.cumsum(sizes)[:-1])
    gram = np.stack([b.T @ b for b in blocks])
    indicator = sp.csr_matrix((np.ones(n), (tasks, np.arange(n))), shape=(count, n))
    return gram, np.asarray(indicator @ (design * z[:, None])), indicator @ (z * z), sizes.astype(float)


def _expected_residual(stats: tuple[np.ndarray, ...], mean: np.ndarray, cov: np.ndarray | None) -> np.ndarray:
    """``E ||z_t - X_t w||^2`` ``[T, K]`` for ``w ~ N(mean[t, k], cov[t, k])`` (``cov=None``: 0)."""
    gram, cross, zz, _ = stats
    fit = zz[:, None] - 2 * np.einsum("tkd,td->tk", mean, cross) + np.einsum("tkd,tde,tke->tk", mean, gram, mean)
    return fit if cov is None else fit + np.einsum("tde,tked->tk", gram, cov)


def _posteriors(stats: tuple[np.ndarray, ...], means: np.ndarray, covs: np.ndarray,
                noise: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per task and component: ``log N(z_t; X_t m_k, X_t S_k X_t^T + noise I)`` ``[T, K]``, and the
    posterior mean ``[T, K, d]`` and covariance ``[T, K, d, d]`` of ``w_t``. With the posterior
    precision ``P = S^-1 + G / noise``: ``log det(noise I + X S X^T) = n log noise + log det S +
    log det P`` and ``r^T (noise I + X S X^T)^-1 r = (r^T r - X^T r . P^-1 X^T r / noise) / noise``."""
    gram, cross, zz, sizes = stats
    prior_precision = np.linalg.inv(covs)  # [K, d, d]
    precision = prior_precision[None] + gram[:, None] / noise  # [T, K, d, d]
    post_cov = np.linalg.inv(precision)
    post_mean = np.einsum("tkde,tke->tkd", post_cov,
                          np.einsum("kde,ke->kd", prior_precision, means)[None] + cross[:, None] / noise)
    projected = (cross[:, None, :] - np.einsum("tde,ke->tkd", gram, means)) / noise  # X^T r / noise
    quadratic = (_expected_residual(stats, np.broadcast_to(means, (len(zz),) + means.shape), None) / noise
                 - np.einsum("tkd,tkde,tke->tk", projected, post_cov, projected))
    logdet = (sizes[:, None] * np.log(noise) + np.linalg.slogdet(covs)[1][None]
              + np.linalg.slogdet(precision)[1])
    return -0.5 * (quadratic + logdet + sizes[:, None] * np.log(2 * np.pi)), post_mean, post_cov


def _gate_penalty(params: np.ndarray, alpha: float) -> float:
    return 0.5 * alpha * float(np.sum(params[:, 1:] ** 2))


def _fit_gate(inputs: np.ndarray, resp: np.ndarray, alpha: float, start: np.ndarray,
              max_iter: int = 50) -> np.ndarray:
    """The gate's M-step: ``[K, 1 + f]`` parameters ``U`` maximising the responsibility-weighted
    multinomial log-likelihood ``sum_tk r_tk log softmax_k(inputs_t U^T)`` minus ``alpha / 2`` times
    the squared feature weights (the bias, column 0 of ``inputs``, is unpenalised): Newton's method
    from ``start`` with step halving, so it never ends worse than ``start``. The Hessian is
    singular along a common shift of the biases (and along features constant over the tasks when
    ``alpha = 0``): the minimum-norm Newton step leaves those directions alone."""
    k, g = start.shape
    mass = resp.sum(1)
    ridge = np.tile(np.r_[0.0, np.full(g - 1, alpha)], k)

    def value(params: np.ndarray) -> float:
        return -float(np.sum(resp * log_softmax(inputs @ params.T, axis=1))) + _gate_penalty(params, alpha)

    params, current = start, value(start)
    for _ in range(max_iter):
        prob = softmax(inputs @ params.T, axis=1)  # [T, K]
        grad = ((prob * mass[:, None] - resp).T @ inputs).ravel() + ridge * params.ravel()
        curvature = mass[:, None, None] * (prob[:, :, None] * np.eye(k) - prob[:, :, None] * prob[:, None, :])
        hessian = np.einsum("tkl,ti,tj->kilj", curvature, inputs, inputs).reshape(k * g, k * g) + np.diag(ridge)
        step = np.linalg.lstsq(hessian, grad, rcond=None)[0].reshape(k, g)
        size = 1.0
        while size > 1e-8 and value(params - size * step) > current:
            size /= 2
        trial = params - size * step
        gain = current - value(trial)
        if gain < 0:
            break
        params, current = trial, current - gain
        if gain <= 1e-13 * max(1.0, abs(current)):
            break
    return params
