"""GO-MTL: task weight vectors as sparse combinations of a few latent basis tasks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from manytask.linear._base import (
    Blocks,
    LinearMultiTaskClassifier,
    LinearMultiTaskRegressor,
    TaskData,
)
from manytask.linear._prox import prox_l1

__all__ = ["LatentBasisMultiTaskClassifier", "LatentBasisMultiTaskRegressor"]


class _CodesStep:
    """``min_A loss(A B) + alpha ||A||_1`` for a fixed basis ``B`` (a lasso in ``X B^T``)."""

    def __init__(self, basis: np.ndarray, alpha: float) -> None:
        self.basis, self.alpha = basis, alpha

    def _coef(self, blocks: Blocks) -> np.ndarray:
        return blocks[0] @ self.basis

    def _coef_grad(self, blocks: Blocks, gC: np.ndarray) -> Blocks:
        return [gC @ self.basis.T]

    def _smooth_penalty(self, blocks: Blocks) -> tuple[float, Blocks]:
        return 0.0, [np.zeros_like(blocks[0])]

    def _nonsmooth_penalty(self, blocks: Blocks) -> float:
        return self.alpha * float(np.abs(blocks[0]).sum())

    def _prox(self, blocks: Blocks, step: float) -> Blocks:
        return [prox_l1(blocks[0], step * self.alpha)]


class _BasisStep:
    """``min_B loss(A B) + beta ||B||_F^2`` for fixed codes ``A``."""

    def __init__(self, codes: np.ndarray, beta: float) -> None:
        self.codes, self.beta = codes, beta

    def _coef(self, blocks: Blocks) -> np.ndarray:
        return self.codes @ blocks[0]

    def _coef_grad(self, blocks: Blocks, gC: np.ndarray) -> Blocks:
        return [self.codes.T @ gC]

    def _smooth_penalty(self, blocks: Blocks) -> tuple[float, Blocks]:
        B = blocks[0]
        return self.beta * float(np.sum(B * B)), [2.0 * self.beta * B]

    def _nonsmooth_penalty(self, blocks: Blocks) -> float:
        return 0.0

    def _prox(self, blocks: Blocks, step: float) -> Blocks:
        return blocks


def top_factors(W: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``(codes [T, k], basis [k, d])``: the top ``k`` singular pairs of ``W``, each singular value
    split evenly between the two factors (the start of GO-MTL and VSTG-MTL from ridge fits)."""
    u, s, vt = np.linalg.svd(W, full_matrices=False)
    root = np.sqrt(s[:k])
    return u[:, :k] * root, root[:, None] * vt[:k]


class _LatentBasis:
    # provided by the estimator base this mixin is combined with
    _solve_apg: Callable[..., Any]
    _init_blocks: Callable[..., Any]
    _stop_reason: Callable[..., str | None]
    _constraints = {
        "alpha": "nonneg",
        "beta": "positive",
        "n_components": "posint",
        "max_outer_iter": "posint",
    }

    def __init__(
        self,
        alpha: float = 0.1,
        *,
        beta: float = 0.1,
        n_components: int = 2,
        max_outer_iter: int = 200,
        fit_intercept: bool = True,
        max_iter: int = 1000,
        tol: float = 1e-5,
    ) -> None:
        self.alpha = alpha
        self.beta = beta
        self.n_components = n_components
        self.max_outer_iter = max_outer_iter
        self.fit_intercept = fit_intercept
        self.max_iter = max_iter
        self.tol = tol

    def _solve(self, data: TaskData) -> tuple[Blocks, np.ndarray | None, int, str | None]:
        T, d = data.n_tasks, data.n_features
        k = min(self.n_components, T, d)
        # initialise from independent ridge fits: top-k singular directions (Kumar & Daume 2012)
        ridge = _BasisStep(np.eye(T), 0.5 * self.beta)
        (W0,), b, total, inner_converged = self._solve_apg(data, [np.zeros((T, d))], hooks=ridge)
        codes, basis = top_factors(W0, k)
        prev, converged = np.inf, False
        for _ in range(self.max_outer_iter):
            (codes,), b, n1, ok1 = self._solve_apg(
                data, [codes], b, hooks=_CodesStep(basis, self.alpha)
            )
            (basis,), b, n2, ok2 = self._solve_apg(
                data, [basis], b, hooks=_BasisStep(codes, self.beta)
            )
            total, inner_converged = total + n1 + n2, inner_converged and ok1 and ok2
            codes, basis = self._rebalance(codes, basis)
            obj = self._latent_objective(data, codes, basis, b)
            if prev - obj <= self.tol * max(abs(obj), np.finfo(float).tiny):
                converged = True
                break
            prev = obj
        self.codes_, self.basis_ = codes, basis
        return [codes @ basis], b, total, self._stop_reason(apg=not inner_converged, outer=not converged)

    def _rebalance(self, codes: np.ndarray, basis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact minimisation over the scale symmetry ``(s_j c, l_j / c)`` of each component.

        The product ``S L`` is unchanged; ``alpha c |s_j|_1 + beta ||l_j||^2 / c^2`` is minimal
        at ``c^3 = 2 beta ||l_j||^2 / (alpha |s_j|_1)``. Without this step the alternation
        creeps along the symmetry for hundreds of iterations.
        """
        a = np.abs(codes).sum(axis=0)
        b = np.sum(basis * basis, axis=1)
        ok = (a > 0) & (b > 0)
        if self.alpha <= 0 or not ok.any():
            return codes, basis
        c = np.ones_like(a)
        c[ok] = np.cbrt(2.0 * self.beta * b[ok] / (self.alpha * a[ok]))
        return codes * c, basis / c[:, None]

    def _latent_objective(
        self, data: TaskData, codes: np.ndarray, basis: np.ndarray, b: np.ndarray | None
    ) -> float:
        pen = self.alpha * np.abs(codes).sum() + self.beta * np.sum(basis * basis)
        return data.value(codes @ basis, b) + float(pen)

    def _objective(self, data: TaskData, blocks: Blocks, b: np.ndarray | None) -> float:
        return self._latent_objective(data, self.codes_, self.basis_, b)


class LatentBasisMultiTaskRegressor(_LatentBasis, LinearMultiTaskRegressor):
    r"""GO-MTL least squares: each task is a sparse combination of ``k`` latent basis tasks.

    .. math:: \min_{S, L, b} \sum_t \frac{1}{2 n_t} \|y_t - X_t L^\top s_t - b_t\|^2
              + \alpha \|S\|_1 + \beta \|L\|_F^2, \qquad W = S L

    ``L`` (``basis_``, ``[k, d]``) holds the latent tasks, ``S`` (``codes_``, ``[T, k]``)
    their sparse per-task combinations, so tasks sharing basis vectors form overlapping
    groups. The problem is non-convex; as in the paper it is solved by alternating
    minimisation (a lasso in ``S``, a ridge problem in ``L``, each by APG, then an exact
    rescaling of each latent component along the scale symmetry), initialised from
    the top-``k`` singular directions of independent ridge fits, until the objective stops
    decreasing. The result is a local minimum.

    Args:
        alpha: l1 strength on the codes ``S`` (>= 0), ``mu`` in the paper. At 0 the problem has no
            minimiser: the codes grow and the basis shrinks along the scale symmetry without end,
            and the fit stops on ``max_outer_iter`` with a ``ConvergenceWarning``.
        beta: Frobenius strength on the basis ``L`` (> 0), ``lambda`` in the paper.
        n_components: number of latent tasks ``k`` (capped at ``min(T, d)``).
        max_outer_iter: maximum number of alternations.
        fit_intercept: fit an unpenalised intercept per task.
        max_iter: maximum number of APG iterations per step.
        tol: relative tolerance of the inner and outer stopping rules.

    References:
        Kumar & Daume III, "Learning task grouping and overlap in multi-task learning",
        ICML 2012 (alternating optimisation).
    """


class LatentBasisMultiTaskClassifier(_LatentBasis, LinearMultiTaskClassifier):
    r"""GO-MTL logistic regression: tasks as sparse combinations of latent basis tasks.

    .. math:: \min_{S, L, b} \sum_t \frac{1}{n_t} \sum_{i \in t} \log(1 + e^{-y_i
              (x_i^\top L^\top s_t + b_t)}) + \alpha \|S\|_1 + \beta \|L\|_F^2

    Args:
        alpha: l1 strength on the codes ``S`` (>= 0; at 0 no minimiser, as for the regressor).
        beta: Frobenius strength on the basis ``L`` (> 0).
        n_components: number of latent tasks ``k`` (capped at ``min(T, d)``).
        max_outer_iter: maximum number of alternations.
        fit_intercept: fit an unpenalised intercept per task.
        max_iter: maximum number of APG iterations per step.
        tol: relative tolerance of the inner and outer stopping rules.

    References:
        Kumar & Daume III, "Learning task grouping and overlap in multi-task learning",
        ICML 2012.
    """
