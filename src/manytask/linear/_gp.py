r"""Multi-task Gaussian process regression with a learned task covariance.

Bonilla, Chai & Williams (2008), "Multi-task Gaussian process prediction" (NeurIPS, Eqs. 1-3):
the latent function of task ``t`` at ``x`` has covariance

.. math:: \langle f_s(x), f_t(x') \rangle = K^f_{st}\, k^x(x, x'), \qquad
          y_{t} = f_t(x) + \varepsilon_t,\ \varepsilon_t \sim \mathcal{N}(0, \sigma_t^2),

with :math:`K^f = L L^\top` a free-form positive semi-definite task covariance (their
"free-form" parameterisation, :math:`L` lower triangular) and :math:`k^x` a squared-exponential
kernel. :math:`L`, the length scale and the noise levels maximise the log marginal likelihood of
the labelled (input, task) pairs (their Sec. 2.1, gradient-based); predictions are the GP
posterior mean and standard deviation (their Eq. 2). The marginal likelihood is maximised with
L-BFGS on PyTorch's exact gradients, in float64.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_is_fitted, validate_data

from manytask.linear._base import check_params
from manytask.linear._task_forms import TaskFormRegressor, stack_tasks

__all__ = ["MultiTaskGaussianProcess"]

_NOISE_FLOOR = 1e-6  # added to every noise variance


class MultiTaskGaussianProcess(TaskFormRegressor):
    r"""Multi-task Gaussian process with a learned task covariance (Bonilla, Chai & Williams 2008).

    Multi-task GP regression (Bonilla, Chai & Williams 2008) on (input, task) pairs:
    :math:`K((x, s), (x', t)) = K^f_{st} \exp(-\|x - x'\|^2 / 2\ell^2)` plus a noise level per task.

    Args:
        length_scale: the squared-exponential kernel's :math:`\ell` (its starting value when
            ``optimize``).
        noise: each task's noise variance :math:`\sigma_t^2` (starting value; 1e-6 is added to it
            throughout, so that the Gram matrix stays positive definite).
        task_covariance: a fixed ``(T, T)`` :math:`K^f` (``None``: learned, starting from ``I``).
        optimize: maximise the marginal likelihood over the length scale, the noise levels and
            (unless given) :math:`K^f`; ``False`` keeps the values given.
        max_iter: L-BFGS iterations.

    Attributes:
        task_covariance_: :math:`K^f`; ``length_scale_``; ``noise_`` (``(T,)``);
        log_marginal_likelihood_: at the fitted values.

    Examples:
        >>> import numpy as np
        >>> X = np.linspace(0, 3, 20)[:, None]; task = np.tile([0, 1], 10)
        >>> y = np.sin(X[:, 0]) * np.where(task == 0, 1.0, 2.0)
        >>> gp = MultiTaskGaussianProcess().fit(X, y, task=task)
        >>> mean, std = gp.predict(X[:2], task=[1, 1], return_std=True)
        >>> bool(abs(mean[1] - 2 * np.sin(X[1, 0])) < 0.05), bool((std < 0.2).all())
        (True, True)
    """

    def __init__(self, length_scale: float = 1.0, noise: float = 0.1, task_covariance: Any = None,
                 optimize: bool = True, max_iter: int = 100) -> None:
        self.length_scale = length_scale
        self.noise = noise
        self.task_covariance = task_covariance
        self.optimize = optimize
        self.max_iter = max_iter

    def fit(self, X: Any, y: Any, task: Any = None) -> MultiTaskGaussianProcess:
        """Fit on ``(X, y)``: ``y`` ``(n, T)`` (shared inputs) or ``(n,)`` with ``task``."""
        check_params(self, {"length_scale": "positive", "noise": "positive", "optimize": "bool",
                            "max_iter": "posint"})
        X, y = validate_data(self, X, y, multi_output=True, y_numeric=True, dtype=np.float64)
        rows, targets, tasks = stack_tasks(self, X, y, task)
        self.n_tasks_ = int(tasks.max()) + 1
        count = self.n_tasks_
        fixed = None if self.task_covariance is None else np.asarray(self.task_covariance, dtype=float)
        if fixed is not None and fixed.shape != (count, count):
            raise ValueError(f"task_covariance must be ({count}, {count}) for {count} tasks; got {fixed.shape}.")
        self.y_mean_ = np.bincount(tasks, weights=targets, minlength=count) / np.maximum(
            np.bincount(tasks, minlength=count), 1)
        x = torch.from_numpy(rows)
        t = torch.from_numpy(tasks)
        z = torch.from_numpy(targets - self.y_mean_[tasks])
        log_length = torch.tensor(math.log(self.length_scale), dtype=torch.float64, requires_grad=self.optimize)
        log_noise = torch.full((count,), math.log(self.noise), dtype=torch.float64, requires_grad=self.optimize)
        factor = torch.eye(count, dtype=torch.float64, requires_grad=self.optimize and fixed is None)
        mask = torch.tril(torch.ones(count, count, dtype=torch.bool))

        def task_cov() -> torch.Tensor:
            if fixed is not None:
                return torch.from_numpy(fixed)
            lower = torch.where(mask, factor, 0.0)
            return lower @ lower.T

        def noise() -> torch.Tensor:
            return log_noise.exp() + _NOISE_FLOOR  # a floor keeps the Gram matrix positive definite

        def negative_log_likelihood() -> torch.Tensor:
            return -_log_marginal(x, t, z, task_cov(), log_length.exp(), noise())

        parameters = [p for p in (log_length, log_noise, factor) if p.requires_grad]
        if parameters:
            optimizer = torch.optim.LBFGS(parameters, max_iter=self.max_iter, line_search_fn="strong_wolfe")

            def closure() -> torch.Tensor:
                optimizer.zero_grad()
                loss = negative_log_likelihood()
                loss.backward()
                return loss

            optimizer.step(closure)
        state = optimizer.state[parameters[0]] if parameters else {}
        self.n_iter_ = max(1, int(state.get("n_iter", 1)))  # L-BFGS iterations (1 without optimising)
        if parameters and (state.get("n_iter", 0) >= self.max_iter
                           or state.get("func_evals", 0) >= optimizer.defaults["max_eval"]):
            warnings.warn(f"MultiTaskGaussianProcess: L-BFGS stopped on its limit (max_iter={self.max_iter}, "
                          f"{state.get('func_evals', 0)} evaluations of the marginal likelihood) before its "
                          "tolerance; the hyperparameters may not be optimal. Increase max_iter.",
                          ConvergenceWarning, stacklevel=2)
        with torch.no_grad():
            self.task_covariance_ = task_cov().numpy().copy()
            self.length_scale_ = float(log_length.exp())
            self.noise_ = noise().numpy().copy()
            self.log_marginal_likelihood_ = float(-negative_log_likelihood())
            gram = _gram(x, t, x, t, task_cov(), log_length.exp()) + torch.diag(noise()[t])
            self._cholesky = torch.linalg.cholesky(gram)
            self._alpha = torch.cholesky_solve(z[:, None], self._cholesky)[:, 0]
        self.X_fit_, self.task_fit_ = rows, tasks
        return self

    def predict(self, X: Any, task: Any = None, return_std: bool = False) -> Any:
        """Posterior mean (and standard deviation of the latent function): ``(n, T)`` for shared
        inputs, ``(n,)`` with ``task`` or a single task."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        asked = self._queries(X, task)
        queries = asked if asked is not None else np.repeat(np.arange(self.n_tasks_), len(X))
        rows = X if asked is not None else np.tile(X, (self.n_tasks_, 1))  # every task: each row once per task
        with torch.no_grad():
            cov, length = torch.from_numpy(self.task_covariance_), torch.tensor(self.length_scale_)
            cross = _gram(torch.from_numpy(rows), torch.from_numpy(queries), torch.from_numpy(self.X_fit_),
                          torch.from_numpy(self.task_fit_), cov, length)  # [m, N]
            mean = (cross @ self._alpha).numpy() + self.y_mean_[queries]
            solved = torch.cholesky_solve(cross.T, self._cholesky)  # [N, m]
            variance = cov[torch.from_numpy(queries), torch.from_numpy(queries)] - (cross * solved.T).sum(1)
            std = variance.clamp(min=0).sqrt().numpy()
        if asked is None:  # [T * n] back to [n, T], then the form's shape
            mean = self._shaped(mean.reshape(self.n_tasks_, -1).T, None)
            std = self._shaped(std.reshape(self.n_tasks_, -1).T, None)
        return (mean, std) if return_std else mean


def _gram(x: torch.Tensor, s: torch.Tensor, z: torch.Tensor, t: torch.Tensor, task_cov: torch.Tensor,
          length: torch.Tensor) -> torch.Tensor:
    """``K^f[s_i, t_j] exp(-|x_i - z_j|^2 / (2 l^2))``."""
    return task_cov[s][:, t] * torch.exp(-torch.cdist(x, z).pow(2) / (2 * length ** 2))


def _log_marginal(x: torch.Tensor, t: torch.Tensor, z: torch.Tensor, task_cov: torch.Tensor, length: torch.Tensor,
                  noise: torch.Tensor) -> torch.Tensor:
    """``log N(z; 0, K + diag(noise_t))`` (Rasmussen & Williams 2006, Eq. 2.30)."""
    gram = _gram(x, t, x, t, task_cov, length) + torch.diag(noise[t])
    lower = torch.linalg.cholesky(gram)
    alpha = torch.cholesky_solve(z[:, None], lower)[:, 0]
    return -0.5 * z @ alpha - lower.diagonal().log().sum() - 0.5 * len(z) * math.log(2 * math.pi)
