"""Task relatedness read from models: parameter vectors, learned task covariances, and the
similarity of single-task models' representations (RSA) — each a :class:`TaskMatrix`."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np

from ._matrix import TaskMatrix

__all__ = ["correlation_matrix", "parameter_cosine", "representation_similarity"]


def parameter_cosine(coef: np.ndarray, tasks: Sequence[str]) -> TaskMatrix:
    """The cosine of single-task linear parameter vectors (rows of ``coef``, ``[T, D]``):
    tasks whose best linear predictors point the same way."""
    coef = np.asarray(coef, dtype=float)
    norms = np.linalg.norm(coef, axis=1)
    cos = coef @ coef.T / np.maximum(np.outer(norms, norms), 1e-300)
    cos[np.outer(norms, norms) == 0] = np.nan
    np.fill_diagonal(cos, np.nan)
    return TaskMatrix("parameter_cosine", "Cosine of single-task linear parameters",
                      "Cosine of the tasks' independently fitted (ridge) weight vectors on the encoded inputs.",
                      tuple(tasks), cos)


def correlation_matrix(covariance: np.ndarray, tasks: Sequence[str], name: str, title: str,
                       description: str) -> TaskMatrix:
    """A learned task covariance (MTRL's Ω, a relationship network's) as a correlation matrix."""
    covariance = np.asarray(covariance, dtype=float)
    scale = np.sqrt(np.clip(np.diag(covariance), 1e-300, None))
    correlation = covariance / np.outer(scale, scale)
    np.fill_diagonal(correlation, np.nan)
    return TaskMatrix(name, title, description, tuple(tasks), correlation)


def representation_similarity(features: Mapping[str, np.ndarray]) -> TaskMatrix:
    """Representation similarity analysis (Dwivedi & Roig 2019, Sec. 3): each task's single-task
    model encodes the same probe inputs (``[N, D_t]``); its dissimilarity matrix is ``1 - ``
    Pearson correlation between the samples' features; two tasks' similarity is the Spearman
    correlation of their dissimilarity matrices' upper triangles.

    An input that some model encodes as constant features (all zero from dead ReLUs) has no
    correlation with any other: it is left out of every task's matrix, with a ``RuntimeWarning``
    saying how many were; fewer than three inputs left is an error.
    """
    from scipy.stats import spearmanr

    tasks = list(features)
    arrays = [np.asarray(features[task], dtype=float) for task in tasks]
    for task, values in zip(tasks, arrays):
        if values.ndim != 2 or len(values) < 3:
            raise ValueError(f"RSA needs [N >= 3, D] features per task; {task!r} has shape {values.shape}.")
    if len({len(values) for values in arrays}) > 1:
        shapes = ", ".join(f"{task!r} {values.shape}" for task, values in zip(tasks, arrays))
        raise ValueError(f"RSA compares the tasks' features of the same probe inputs (the same N); got {shapes}.")
    count = len(arrays[0])
    keep = np.all([np.ptp(values, axis=1) > 0 for values in arrays], axis=0)  # [N]: varying features everywhere
    left_out = (f"{count - int(keep.sum())} of the {count} probe inputs have constant features (e.g. all zero from "
                "dead ReLUs) in some task's model")
    if keep.sum() < 3:
        raise ValueError(f"RSA needs at least 3 probe inputs whose features vary in every task's model; {left_out}. "
                         "Probe with more or other inputs.")
    if not keep.all():
        warnings.warn(f"RSA: {left_out}; they are left out of every task's dissimilarities.", RuntimeWarning,
                      stacklevel=2)
    upper = []
    for values in arrays:
        dissimilarity = 1 - np.corrcoef(values[keep])
        upper.append(dissimilarity[np.triu_indices(int(keep.sum()), k=1)])
    similarity = np.full((len(tasks), len(tasks)), np.nan)
    for i in range(len(tasks)):
        for j in range(i + 1, len(tasks)):
            similarity[i, j] = similarity[j, i] = spearmanr(upper[i], upper[j]).statistic
    return TaskMatrix("representation_similarity", "Representation similarity (RSA)",
                      "Dwivedi & Roig 2019: Spearman correlation of the single-task models' representational "
                      "dissimilarity matrices on the same inputs.", tuple(tasks), similarity)
