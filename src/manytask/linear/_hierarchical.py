r"""Hierarchical Bayesian multi-task regression, with task clustering.

Bakker & Heskes (2003), "Task clustering and gating for Bayesian multitask learning" (JMLR 4,
Secs. 2-3): each task's weights are drawn from a prior shared by all tasks, a mixture of ``K``
Gaussians (one per task cluster),

.. math:: w_t \sim \sum_k \pi_k\, \mathcal{N}(m_k, \Sigma_k), \qquad
          y_t = X_t w_t + b_t + \varepsilon, \ \varepsilon \sim \mathcal{N}(0, \sigma^2 I),

and the hyperparameters :math:`\pi, m, \Sigma, \sigma^2` maximise the marginal likelihood of all
tasks' data (empirical Bayes; the task weights integrated out), here by expectation
maximisation over the tasks' cluster memberships and weights. ``K = 1`` is the single shared
Gaussian prior of their Sec. 2. A task's weights are then its posterior mean (a shrinkage of its
own least-squares fit towards its clusters' means), and :meth:`predict` gives the posterior
predictive standard deviation. Each task's intercept is its mean target (rows centred).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import logsumexp
from sklearn.utils.validation import check_is_fitted, validate_data

from manytask.linear._base import TaskData, check_params
from manytask.linear._task_forms import TaskFormRegressor, stack_tasks

__all__ = ["HierarchicalBayesRegressor"]


class HierarchicalBayesRegressor(TaskFormRegressor):
    r"""Bakker & Heskes (2003): task weights from a shared mixture-of-Gaussians prior fitted by
    empirical Bayes (EM); ``n_clusters = 1`` is one shared Gaussian prior.

    Args:
        n_clusters: ``K``, the mixture's components (task clusters).
        max_iter: EM iterations; ``tol``: stop when the log marginal likelihood gains less.
        min_variance: a floor added to :math:`\Sigma_k`'s diagonal (keeps it invertible).
        random_state: seed of the initial cluster responsibilities (``K > 1``).

    Attributes:
        coef_: ``(T, d)`` posterior mean weights; ``intercept_``: ``(T,)``;
        means_, covariances_, weights_: the prior's :math:`m_k, \Sigma_k, \pi_k`; ``noise_``:
        :math:`\sigma^2`; ``responsibilities_``: ``(T, K)`` each task's cluster posterior;
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
                 random_state: int = 0) -> None:
        self.n_clusters = n_clusters
        self.max_iter = max_iter
        self.tol = tol
        self.min_variance = min_variance
        self.random_state = random_state

    def fit(self, X: Any, y: Any, task: Any = None) -> HierarchicalBayesRegressor:
        """Fit on ``(X, y)``: ``y`` ``(n, T)`` (shared inputs) or ``(n,)`` with ``task``."""
        check_params(self, {"n_clusters": "posint", "max_iter": "posint", "tol": "positive",
                            "min_variance": "positive"})
        X, y = validate_data(self, X, y, multi_output=True, y_numeric=True, dtype=np.float64, ensure_min_samples=2)
        rows, targets, tasks = stack_tasks(self, X, y, task)
        self.n_tasks_ = count = int(tasks.max()) + 1
        d, k = rows.shape[1], self.n_clusters
        centred = TaskData(rows, targets, tasks, count, logistic=False, fit_intercept=True)
        means_x, means_y = centred.x_mean, centred.y_mean
        data = [(centred.X[tasks == t], centred.y[tasks == t]) for t in range(count)]
        gram = np.stack([x.T @ x for x, _ in data])  # [T, d, d]
        cross = np.stack([x.T @ z for x, z in data])  # [T, d]
        sizes = np.array([len(z) for _, z in data], dtype=float)
        # start: every task's ridge fit, the prior moment-matched to them, soft random clusters
        start = np.stack([np.linalg.solve(g + np.eye(d), c) for g, c in zip(gram, cross)])
        rng = np.random.default_rng(self.random_state)
        resp = rng.dirichlet(np.ones(k), size=count) if k > 1 else np.ones((count, 1))
        weights = resp.mean(0)
        means = np.stack([(resp[:, j, None] * start).sum(0) / resp[:, j].sum() for j in range(k)])
        spread = [np.cov(start.T, aweights=resp[:, j] + 1e-12).reshape(d, d) if count > 1 else np.zeros((d, d))
                  for j in range(k)]  # one task has no spread to start from
        covs = np.stack([np.nan_to_num(c) + np.eye(d) for c in spread])
        noise = float(np.mean(np.concatenate([z - x @ w for (x, z), w in zip(data, start)]) ** 2)) + 1e-6
        history: list[float] = []
        for _ in range(self.max_iter):
            # E-step: each task's log evidence under each component, and its weights' posterior
            log_evidence, post_mean, post_cov = _posteriors(data, gram, cross, means, covs, noise)
            joint = np.log(weights)[None, :] + log_evidence  # [T, K]
            total = float(logsumexp(joint, axis=1).sum())
            history.append(total)
            resp = np.exp(joint - logsumexp(joint, axis=1, keepdims=True))
            if len(history) > 1 and history[-1] - history[-2] < self.tol * max(1.0, abs(history[-2])):
                break
            # M-step: the prior's moments from the posteriors, the noise from the expected residuals
            weights = resp.mean(0).clip(min=1e-12)
            for j in range(k):
                r = resp[:, j]
                means[j] = (r[:, None] * post_mean[:, j]).sum(0) / r.sum()
                spread = post_mean[:, j] - means[j]
                second = post_cov[:, j] + spread[:, :, None] * spread[:, None, :]  # E[(w - m)(w - m)^T] per task
                covs[j] = (r[:, None, None] * second).sum(0) / r.sum()
                covs[j] += self.min_variance * np.eye(d)
            residual = 0.0
            for t, (x, z) in enumerate(data):
                for j in range(k):
                    fit = z - x @ post_mean[t, j]
                    residual += resp[t, j] * (fit @ fit + np.trace(gram[t] @ post_cov[t, j]))
            noise = max(residual / sizes.sum(), 1e-10)
        log_evidence, post_mean, post_cov = _posteriors(data, gram, cross, means, covs, noise)
        joint = np.log(weights)[None, :] + log_evidence
        resp = np.exp(joint - logsumexp(joint, axis=1, keepdims=True))
        self.responsibilities_ = resp
        self.coef_ = np.einsum("tk,tkd->td", resp, post_mean)
        second = np.einsum("tk,tkde->tde", resp, post_cov + post_mean[:, :, :, None] * post_mean[:, :, None, :])
        self.coef_covariance_ = second - self.coef_[:, :, None] * self.coef_[:, None, :]
        self.intercept_ = means_y - np.einsum("ij,ij->i", means_x, self.coef_)
        self._means_x = means_x
        self.means_, self.covariances_, self.weights_, self.noise_ = means, covs, weights, noise
        self.log_likelihood_ = history
        self.n_iter_ = len(history)
        return self

    def predict(self, X: Any, task: Any = None, return_std: bool = False) -> Any:
        """Posterior mean (and, with ``return_std``, the posterior standard deviation of the
        task's function at each row): ``(n, T)`` for shared inputs, ``(n,)`` with ``task``."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        queries = self._queries(X, task)
        mean = self._scores(X)
        centred = X[:, None, :] - self._means_x[None, :, :]  # [n, T, d]
        std = np.sqrt(np.einsum("ntd,tde,nte->nt", centred, self.coef_covariance_, centred).clip(min=0))
        mean, std = self._shaped(mean, queries), self._shaped(std, queries)
        return (mean, std) if return_std else mean


def _posteriors(data: list[tuple[np.ndarray, np.ndarray]], gram: np.ndarray, cross: np.ndarray, means: np.ndarray,
                covs: np.ndarray, noise: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per task and component: ``log N(z_t; X_t m_k, X_t S_k X_t^T + noise I)`` ``[T, K]``, and the
    posterior mean ``[T, K, d]`` and covariance ``[T, K, d, d]`` of ``w_t``."""
    count, k, d = len(data), len(means), means.shape[1]
    log_evidence = np.zeros((count, k))
    post_mean = np.zeros((count, k, d))
    post_cov = np.zeros((count, k, d, d))
    for j in range(k):
        prior_precision = np.linalg.inv(covs[j])
        for t, (x, z) in enumerate(data):
            precision = prior_precision + gram[t] / noise
            cov = np.linalg.inv(precision)
            mean = cov @ (prior_precision @ means[j] + cross[t] / noise)
            post_mean[t, j], post_cov[t, j] = mean, cov
            marginal = x @ covs[j] @ x.T + noise * np.eye(len(z))
            residual = z - x @ means[j]
            sign, logdet = np.linalg.slogdet(marginal)
            log_evidence[t, j] = -0.5 * (residual @ np.linalg.solve(marginal, residual) + logdet
                                         + len(z) * np.log(2 * np.pi))
    return log_evidence, post_mean, post_cov
