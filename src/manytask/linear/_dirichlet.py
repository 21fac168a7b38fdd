r"""Multi-task logistic regression with a Dirichlet-process prior on the task weights.

Xue, Liao, Carin & Krishnapuram (2007), "Multi-task learning for classification with Dirichlet
process priors", JMLR 8, 35-63: their symmetric multi-task learning (SMTL) model, fitted by
variational Bayes as they do; their asymmetric variant (AMTL: the SMTL posterior as the prior of a
new task, sampled by MCMC) is not built. ``T`` binary logistic-regression tasks draw their
weights from one random measure,

.. math:: p(y = 1 \mid x, w_t) = \sigma(w_t^\top x), \qquad w_t \sim G, \qquad
          G \sim \mathrm{DP}(\alpha, G_0), \qquad G_0 = \mathcal{N}(0, s^2 I),

and the discreteness of :math:`G` clusters the tasks: tasks in one cluster share one weight
vector. With the stick-breaking representation, :math:`G = \sum_k \pi_k \delta_{W_k}`,
:math:`\pi_k = V_k \prod_{l<k} (1 - V_l)`, :math:`V_k \sim \mathrm{Beta}(1, \alpha)`,
:math:`W_k \sim G_0`, and task ``t`` takes :math:`w_t = W_{c_t}` with :math:`c_t \sim \pi`.

Inference is mean-field variational Bayes over the stick-breaking representation truncated at
``K`` components (Blei & Jordan 2006, :math:`V_K = 1`):
:math:`q = \prod_k q(V_k)\, q(W_k) \prod_t q(c_t)`, with :math:`q(V_k) = \mathrm{Beta}(\gamma_{k1},
\gamma_{k2})`, :math:`q(W_k) = \mathcal{N}(\theta_k, \Gamma_k)` (full covariance) and
:math:`q(c_t = k) = \phi_{tk}` (``responsibilities_``). The logistic likelihood is replaced by the
bound of Jaakkola & Jordan (2000), with one variational parameter :math:`\xi_i` per row (shared
by the clusters),

.. math:: \log \sigma(z) \ge \log \sigma(\xi) + \frac{z - \xi}{2} - \lambda(\xi) (z^2 - \xi^2),
          \qquad \lambda(\xi) = \frac{\tanh(\xi / 2)}{4 \xi},

tight at :math:`\xi = |z|`. Every update is the exact maximiser of the resulting evidence lower
bound in one factor (``y_i \in \{0, 1\}``), so the bound (``elbo_``) never decreases:

* :math:`\Gamma_k^{-1} = I / s^2 + 2 \sum_i \phi_{t_i k} \lambda(\xi_i) x_i x_i^\top`,
  :math:`\theta_k = \Gamma_k \sum_i \phi_{t_i k} (y_i - \tfrac12) x_i`;
* :math:`\xi_i^2 = \sum_k \phi_{t_i k}\, x_i^\top (\Gamma_k + \theta_k \theta_k^\top) x_i`;
* :math:`\gamma_{k1} = 1 + \sum_t \phi_{tk}`, :math:`\gamma_{k2} = \alpha + \sum_t \sum_{l>k} \phi_{tl}`;
* :math:`\log \phi_{tk} = \mathbb{E}[\log \pi_k] + \sum_{i \in t} \big[(y_i - \tfrac12)
  \theta_k^\top x_i - \lambda(\xi_i)\, x_i^\top (\Gamma_k + \theta_k \theta_k^\top) x_i\big] + \text{const}`.

Predictions average over the variational posterior with MacKay's probit approximation
(MacKay 1992; Bishop 2006, eq. 4.153):
:math:`p(y = 1 \mid x, t) \approx \sum_k \phi_{tk}\, \sigma\big(\theta_k^\top x / \sqrt{1 +
\pi x^\top \Gamma_k x / 8}\big)`.

Deviations from the paper, and why: the concentration :math:`\alpha` is a fixed hyperparameter
(to cross-validate, as scikit-learn's ``BayesianGaussianMixture`` does) rather than having the
paper's Gamma hyperprior; the base measure is centred at zero with an isotropic variance
``prior_variance``; with ``fit_intercept`` each task's bias is the weight of a constant input
(as in liblinear), clustered with the other weights and under the same prior; the truncation is
capped at ``T`` (a partition of ``T`` tasks needs no more clusters). Mean-field VB for DP mixtures
has local optima: random initial responsibilities often leave two unlike tasks in one cluster,
and a task alone in its cluster rarely leaves it (its own cluster fits it best, and the KL term
its departure would save is not part of its update). So each task starts in its own cluster
(``K = T``; for ``K < T``, in the k-means clusters of the tasks' own posterior means, seeded by
``random_state``), and after convergence *merge moves* (as in Ueda et al. 2000; Hughes & Sudderth
2013) pool two clusters' tasks and rerun the sweeps, kept only when the bound rises; a
merge is tried when moving one cluster's tasks to the other's current weights costs less fit
than the two clusters' KL terms.
"""

from __future__ import annotations

import warnings
from typing import Any, NamedTuple

import numpy as np
import scipy.sparse as sp
from scipy.linalg import cho_factor, cho_solve
from scipy.special import betaln, digamma, logsumexp
from sklearn.base import BaseEstimator, ClassifierMixin, MultiOutputMixin
from sklearn.exceptions import ConvergenceWarning, DataConversionWarning
from sklearn.utils.validation import check_is_fitted, validate_data

from manytask.linear._base import (
    TaskAccuracy,
    binary_targets,
    check_params,
    class_labels,
    class_probabilities,
    validate_task,
)

__all__ = ["DirichletProcessMultiTaskClassifier"]


def _lambda(xi: np.ndarray) -> np.ndarray:
    r""":math:`\lambda(\xi) = \tanh(\xi/2) / (4 \xi)` (its limit 1/8 at 0), elementwise."""
    xi = np.abs(xi)
    small = xi < 1e-4
    safe = np.where(small, 1.0, xi)
    return np.where(small, 0.125 - xi**2 / 96.0, np.tanh(safe / 2.0) / (4.0 * safe))


def _log_sigmoid_bound(z: np.ndarray, xi: np.ndarray) -> np.ndarray:
    r"""Jaakkola & Jordan's lower bound on :math:`\log \sigma(z)`, tight at :math:`\xi = |z|`."""
    return -np.logaddexp(0.0, -xi) + (z - xi) / 2.0 - _lambda(xi) * (z * z - xi * xi)


class DirichletProcessMultiTaskClassifier(TaskAccuracy, MultiOutputMixin, ClassifierMixin, BaseEstimator):
    r"""Logistic tasks clustered by a Dirichlet-process prior, by variational Bayes (Xue et al. 2007).

    Logistic tasks clustered by a Dirichlet-process prior on their weights (Xue et al. 2007,
    SMTL), fitted by variational Bayes with the Jaakkola-Jordan bound.

    Args:
        n_components: truncation level ``K`` of the stick-breaking representation (capped at
            the number of tasks).
        alpha: concentration of the Dirichlet process (larger: more clusters a priori).
        prior_variance: variance :math:`s^2` of the base measure :math:`\mathcal{N}(0, s^2 I)`
            (of every weight, the intercept included).
        fit_intercept: give each cluster a bias (the weight of a constant input).
        max_iter: sweeps per run (the first run and each merge trial); ``tol``: a run stops when a
            sweep gains less than ``tol * |elbo|``.
        random_state: seed of the k-means start (``n_components`` below the number of tasks).

    Attributes:
        coef_: ``(T, d)`` posterior mean weights :math:`\sum_k \phi_{tk} \theta_k`;
        intercept_: ``(T,)`` their biases; responsibilities_: ``(T, K)`` the cluster posteriors
        :math:`\phi`; cluster_coef_, cluster_intercept_: ``(K, d)``, ``(K,)`` the means
        :math:`\theta_k`; cluster_covariance_: ``(K, p, p)`` the :math:`\Gamma_k` (``p = d + 1``
        with an intercept, its last coordinate); weights_: ``(K,)`` the expected stick weights
        :math:`\mathbb{E}[\pi_k]`; elbo_: the evidence lower bound after each sweep, then after
        each accepted merge (never decreasing); n_iter_: all sweeps run, rejected merge trials
        included; classes_, n_tasks_, task_form_.

    Examples:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0); X = rng.normal(size=(240, 2)); task = np.repeat(np.arange(6), 40)
        >>> w = np.array([[4.0, 0.0], [0.0, 4.0]])[np.arange(6) % 2]   # tasks 0, 2, 4 and 1, 3, 5 agree
        >>> y = (np.einsum("ij,ij->i", X, w[task]) > 0).astype(int)
        >>> model = DirichletProcessMultiTaskClassifier(n_components=4).fit(X, y, task=task)
        >>> clusters = model.responsibilities_.argmax(1)
        >>> len(set(clusters[::2])), len(set(clusters[1::2])), len(set(clusters))
        (1, 1, 2)
        >>> model.predict_proba(X[:2], task=task[:2]).shape
        (2, 2)
    """

    def __init__(self, n_components: int = 10, *, alpha: float = 1.0, prior_variance: float = 1.0,
                 fit_intercept: bool = True, max_iter: int = 200, tol: float = 1e-6,
                 random_state: int | None = 0) -> None:
        self.n_components = n_components
        self.alpha = alpha
        self.prior_variance = prior_variance
        self.fit_intercept = fit_intercept
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state

    # ----- labels and task forms -----
    def _targets(self, y: np.ndarray) -> np.ndarray:
        """Labels as 0/1 per task: ``(n,)`` (binary) or ``(n, T)`` (shared, one-vs-rest)."""
        return (binary_targets(self, y) > 0).astype(float)

    def fit(self, X: Any, y: Any, task: Any = None) -> DirichletProcessMultiTaskClassifier:
        """Fit by variational Bayes.

        Args:
            X: ``[n_samples, n_features]`` inputs.
            y: ``[n_samples, n_tasks]`` binary labels (shared inputs), or ``[n_samples]`` labels:
                binary with ``task``, or binary/multiclass (one-vs-rest tasks) without.
            task: ``[n_samples]`` task index of each row (multi-input form), or ``None``.

        Returns:
            The fitted estimator.
        """
        check_params(self, {"n_components": "posint", "alpha": "positive", "prior_variance": "positive",
                            "fit_intercept": "bool", "max_iter": "posint", "tol": "positive"})
        if getattr(y, "ndim", 1) == 2 and y.shape[1] == 1:
            warnings.warn("A column-vector y was passed when a 1d array was expected; it is treated as y.ravel().",
                          DataConversionWarning, stacklevel=2)
            y = np.asarray(y).ravel()
        X, y = validate_data(self, X, y, multi_output=True, dtype=np.float64)
        labels = self._targets(y)
        n = len(X)
        if task is not None:
            if labels.ndim != 1:
                raise ValueError("In the multi-input form (task given), y must be 1-D with two classes; got y of "
                                 f"shape {y.shape} with {len(self.classes_)} classes.")
            tasks = validate_task(task, n, None)
            rows, self.task_form_ = np.arange(n), "multi_input"
        else:
            self.task_form_ = "single" if labels.ndim == 1 else ("shared" if y.ndim == 2 else "one_vs_rest")
            labels = labels[:, None] if labels.ndim == 1 else labels
            count = labels.shape[1]
            rows, tasks, labels = np.tile(np.arange(n), count), np.repeat(np.arange(count), n), labels.T.ravel()
        self.n_tasks_ = int(tasks.max()) + 1
        inputs = np.hstack([X, np.ones((n, 1))]) if self.fit_intercept else X
        state, self.elbo_, self.n_iter_ = self._variational_bayes(inputs, rows, tasks, labels - 0.5)
        self.responsibilities_, means, self.cluster_covariance_ = state.phi, state.means, state.covs
        sticks = np.append(state.sticks[:, 0] / state.sticks.sum(1), 1.0)  # E[V_k], V_K = 1
        self.weights_ = sticks * np.concatenate([[1.0], np.cumprod(1.0 - sticks[:-1])])
        d = X.shape[1]
        self.cluster_coef_ = means[:, :d]
        self.cluster_intercept_ = means[:, d] if self.fit_intercept else np.zeros(len(means))
        self.coef_ = self.responsibilities_ @ self.cluster_coef_
        self.intercept_ = self.responsibilities_ @ self.cluster_intercept_
        return self

    def _variational_bayes(self, X: np.ndarray, rows: np.ndarray, tasks: np.ndarray, signs: np.ndarray,
                           ) -> tuple[_State, list[float], int]:
        """Coordinate ascent from the initial clusters, then merge moves while they raise the bound."""
        k = min(self.n_components, self.n_tasks_)
        bound = _Bound(X, rows, tasks, signs, self.n_tasks_, float(self.prior_variance), float(self.alpha))
        xi = np.sqrt(bound.s2 * np.einsum("ij,ij->i", X, X))[rows]  # tight for the prior's moments
        phi = self._initial_responsibilities(bound, _lambda(xi), k)
        state, history, converged = bound.ascend(phi, xi, self.max_iter, self.tol)
        sweeps = len(history)
        for _ in range(k):  # each accepted merge empties a cluster
            for a, b in _merge_proposals(state):
                merged = state.phi.copy()
                merged[:, a] += merged[:, b]
                merged[:, b] = 0.0
                merged = merged[:, np.argsort(-merged.sum(0), kind="stable")]  # larger clusters first
                trial, trial_history, trial_converged = bound.ascend(merged, state.xi, self.max_iter, self.tol)
                sweeps += len(trial_history)
                if trial.elbo - state.elbo > self.tol * abs(state.elbo):
                    state, converged = trial, trial_converged
                    history.append(trial.elbo)
                    break
            else:
                break
        if not converged:
            warnings.warn(f"{type(self).__name__} did not converge in max_iter={self.max_iter} sweeps "
                          f"(tol={self.tol}); increase max_iter or tol.", ConvergenceWarning, stacklevel=3)
        return state, history, sweeps

    def _initial_responsibilities(self, bound: _Bound, lam: np.ndarray, k: int) -> np.ndarray:
        """Each task alone (``K = T``), else the k-means clusters of the tasks' own posterior means
        (one update of each task's Gaussian from the prior)."""
        count = self.n_tasks_
        if k == count:
            labels = np.arange(count)
        else:
            from sklearn.cluster import KMeans  # only here: keeps `import manytask.linear` light

            alone = np.eye(count)[bound.tasks]
            own, _, _ = bound.gaussians(lam[:, None] * alone, bound.signs[:, None] * alone)
            labels = KMeans(k, n_init=3, random_state=self.random_state).fit_predict(own)
        return 0.98 * np.eye(k)[labels] + 0.02 / k

    # ----- prediction -----
    def _log_odds(self, X: Any, task: Any) -> np.ndarray:
        """``[n, T]`` log-odds of the predictive probability (or ``[n]`` with ``task``)."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        queries = None if task is None else validate_task(task, len(X), self.n_tasks_)
        if queries is None and self.task_form_ == "multi_input":
            raise ValueError(f"{type(self).__name__} was fitted in the multi-input form (with task=...); pass the "
                             "task of each row: predict(X, task=task).")
        inputs, means = X, self.cluster_coef_
        if self.fit_intercept:  # the bias is the weight of a constant input
            inputs, means = np.hstack([X, np.ones((len(X), 1))]), np.column_stack([means, self.cluster_intercept_])
        variance = _quadratic(inputs, self.cluster_covariance_, np.zeros_like(means))  # x^T Gamma_k x
        z = (inputs @ means.T) / np.sqrt(1.0 + np.pi * variance / 8.0)  # [n, K]
        log_phi = np.log(np.clip(self.responsibilities_, 1e-300, None))  # [T, K]
        log_phi = log_phi[queries][:, None] if queries is not None else log_phi[None]  # [n, 1 or T, K]
        log_pos, log_neg = -np.logaddexp(0.0, -z)[:, None], -np.logaddexp(0.0, z)[:, None]  # log sigma(+-z)
        odds = logsumexp(log_phi + log_pos, axis=2) - logsumexp(log_phi + log_neg, axis=2)  # [n, 1 or T]
        if queries is not None:
            return odds[:, 0]
        return odds[:, 0] if self.task_form_ == "single" else odds

    def decision_function(self, X: Any, task: Any = None) -> np.ndarray:
        """Log-odds of :meth:`predict_proba`'s probability: ``[n_samples, n_tasks]`` or ``[n_samples]``."""
        return self._log_odds(X, task)

    def predict_proba(self, X: Any, task: Any = None) -> np.ndarray:
        """Predictive probabilities (MacKay's approximation, averaged over the clusters).

        Returns ``[n_samples, 2]`` (one binary task, or with ``task``), ``[n_samples, n_classes]``
        (one-vs-rest, normalised) or ``[n_samples, n_tasks]`` holding the probability of
        ``classes_[1]`` for each task (shared inputs).
        """
        return class_probabilities(self._log_odds(X, task), self.task_form_, self.classes_, task)

    def predict_log_proba(self, X: Any, task: Any = None) -> np.ndarray:
        """Logarithm of :meth:`predict_proba`."""
        return np.log(self.predict_proba(X, task=task))

    def predict(self, X: Any, task: Any = None) -> np.ndarray:
        """Labels of the larger predictive probability, shaped like :meth:`decision_function`."""
        scores = self._log_odds(X, task)  # checks it is fitted first
        return class_labels(self.classes_, scores, self.task_form_, task)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags


class _State(NamedTuple):
    """The variational factors after a sweep, and what the merge moves need."""

    phi: np.ndarray  # [T, K] q(c_t = k)
    xi: np.ndarray  # [pairs] the bound's parameters
    means: np.ndarray  # [K, p] theta_k
    covs: np.ndarray  # [K, p, p] Gamma_k
    sticks: np.ndarray  # [K - 1, 2] Beta parameters of q(V_k)
    fit: np.ndarray  # [T, K] each task's expected log-likelihood bound under each cluster
    kl: np.ndarray  # [K] KL(q(W_k) || G0)
    elbo: float


class _Bound:
    """The data as (row, task) pairs, and coordinate ascent on the evidence lower bound."""

    def __init__(self, X: np.ndarray, rows: np.ndarray, tasks: np.ndarray, signs: np.ndarray, count: int,
                 s2: float, alpha: float) -> None:
        pairs = len(rows)
        self.X, self.rows, self.tasks, self.signs, self.s2, self.alpha = X, rows, tasks, signs, s2, alpha
        # sums over the (row, task) pairs by row and by task
        self.by_row = sp.csr_matrix((np.ones(pairs), (rows, np.arange(pairs))), shape=(len(X), pairs))
        self.by_task = sp.csr_matrix((np.ones(pairs), (tasks, np.arange(pairs))), shape=(count, pairs))

    def gaussians(self, curvature: np.ndarray, linear: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        r"""Each cluster's :math:`\theta_k, \Gamma_k, \log |\Gamma_k|`, given each pair's
        :math:`\phi_{tk} \lambda(\xi)` (``curvature``) and :math:`\phi_{tk} (y - 1/2)` (``linear``), ``[pairs, K]``."""
        X = self.X
        p, k = X.shape[1], curvature.shape[1]
        rows_curvature = np.asarray(self.by_row @ curvature)  # [n, K]
        rows_linear = X.T @ np.asarray(self.by_row @ linear)  # [p, K]
        means, covs, logdets = np.zeros((k, p)), np.zeros((k, p, p)), np.zeros(k)
        for j in range(k):
            factor = cho_factor(np.eye(p) / self.s2 + 2.0 * X.T @ (rows_curvature[:, j, None] * X))
            covs[j] = cho_solve(factor, np.eye(p))
            means[j] = covs[j] @ rows_linear[:, j]
            logdets[j] = -2.0 * np.log(np.diag(factor[0])).sum()
        return means, covs, logdets

    def sweep(self, phi: np.ndarray, xi: np.ndarray) -> _State:
        """Update q(W), xi, q(V), q(c) in turn (each exactly), and evaluate the bound."""
        X, rows, signs, s2, alpha = self.X, self.rows, self.signs, self.s2, self.alpha
        p, k = X.shape[1], phi.shape[1]
        phi_pairs = phi[self.tasks]
        means, covs, logdets = self.gaussians(_lambda(xi)[:, None] * phi_pairs, signs[:, None] * phi_pairs)
        second = _quadratic(X, covs, means)  # [n, K]: x^T E[W_k W_k^T] x
        xi = np.sqrt((second[rows] * phi_pairs).sum(1))  # the bound made tight at E[(w_t^T x)^2]
        lam = _lambda(xi)
        sizes = phi.sum(0)
        beyond = np.cumsum(sizes[::-1])[::-1] - sizes  # sum over l > k of the cluster sizes
        g1, g2 = 1.0 + sizes[:-1], alpha + beyond[:-1]
        log_v, log_rest = digamma(g1) - digamma(g1 + g2), digamma(g2) - digamma(g1 + g2)
        log_pi = np.append(log_v, 0.0) + np.concatenate([[0.0], np.cumsum(log_rest)])  # E[log pi_k]
        scores = X @ means.T  # [n, K]
        fit = np.asarray(self.by_task @ (signs[:, None] * scores[rows] - lam[:, None] * second[rows]))  # [T, K]
        logits = fit + log_pi
        phi = np.exp(logits - logsumexp(logits, axis=1, keepdims=True))
        # the bound: likelihood (Jaakkola-Jordan), assignments, sticks, cluster weights
        likelihood = float((-np.logaddexp(0.0, -xi) - xi / 2.0 + lam * xi * xi).sum() + (phi * fit).sum())
        assign = float((phi * (log_pi - np.log(np.clip(phi, 1e-300, None)))).sum())
        entropy = betaln(g1, g2) - (g1 - 1) * digamma(g1) - (g2 - 1) * digamma(g2) + (g1 + g2 - 2) * digamma(g1 + g2)
        sticks = float((k - 1) * np.log(alpha) + (alpha - 1.0) * log_rest.sum() + entropy.sum())
        kl = 0.5 * ((np.trace(covs, axis1=1, axis2=2) + (means * means).sum(1)) / s2 - p + p * np.log(s2) - logdets)
        elbo = likelihood + assign + sticks - float(kl.sum())
        return _State(phi, xi, means, covs, np.column_stack([g1, g2]), fit, kl, elbo)

    def ascend(self, phi: np.ndarray, xi: np.ndarray, max_iter: int, tol: float) -> tuple[_State, list[float], bool]:
        """Sweeps until the bound gains less than ``tol * |bound|``: the last state, the bound after each
        sweep, and whether it converged."""
        history: list[float] = []
        for _ in range(max_iter):
            state = self.sweep(phi, xi)
            phi, xi = state.phi, state.xi
            history.append(state.elbo)
            if len(history) > 1 and history[-1] - history[-2] <= tol * abs(history[-1]):
                return state, history, True
        return state, history, False


def _merge_proposals(state: _State) -> list[tuple[int, int]]:
    """Pairs of occupied clusters worth a trial merge, the most promising first.

    Merging ``a`` and ``b`` removes one cluster's KL term and costs fit: the bound can gain at most
    about ``KL_a + KL_b``. Fitting ``b``'s tasks with ``a``'s current Gaussian (or the reverse, the
    cheaper of the two) bounds the fit cost before the merged cluster is refitted; pairs whose cost
    exceeds ``KL_a + KL_b`` are not tried (a screen, not a proof: the trial run decides).
    """
    occupied = np.flatnonzero(state.phi.sum(0) > 0.5)
    moved = state.phi[:, occupied].T @ state.fit[:, occupied]  # [b, a]: the fit of b's tasks under a
    cost = np.diag(moved)[:, None] - moved
    cost = np.minimum(cost, cost.T)  # the cheaper direction
    kl = state.kl[occupied]
    first, second = np.triu_indices(len(occupied), 1)
    slack = kl[first] + kl[second] - cost[first, second]
    order = np.argsort(-slack, kind="stable")
    return [(int(occupied[first[i]]), int(occupied[second[i]])) for i in order if slack[i] > 0]


def _quadratic(X: np.ndarray, covs: np.ndarray, means: np.ndarray) -> np.ndarray:
    r"""``[n, K]``: :math:`x_i^\top (\Gamma_k + \theta_k \theta_k^\top) x_i`."""
    out = (X @ means.T) ** 2
    for j in range(len(covs)):
        out[:, j] += np.einsum("ij,ij->i", X @ covs[j], X)
    return out
