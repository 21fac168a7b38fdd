"""PCA-reduced MNIST / USPS digits in the split format of Kang, Grauman & Sha (ICML 2011).

Each file holds 1,000 training, 500 validation and 500 test digits (MNIST: 87 PCA dims, USPS:
64) with labels 1..10; the multi-task problem is 10 one-vs-rest binary tasks sharing ``X``
(:func:`one_vs_rest`). Only split 1 is available offline; see the dataset's ``SOURCE.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from manytask._utils import data_root
from manytask.data.datasets._files import load_mat
from manytask.data.datasets._school import require_file

__all__ = ["DigitSplit", "load_mnist_usps", "one_vs_rest"]

_DIMS = {"mnist": 87, "usps": 64}
_SIZES = {"train": 1000, "valid": 500, "test": 500}
_URL = (
    "https://github.com/tjanez/PyMTL/raw/97dfc15be3769240f2099d036ce2b55b30a56f5f/data/"
    "{folder}/split1_{name}_1000train.mat"
)


@dataclass(frozen=True)
class DigitSplit:
    """One split: ``X_*`` ``[n, n_features]`` PCA features and ``y_*`` ``[n]`` labels 1..10."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_valid: np.ndarray
    y_valid: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray


def one_vs_rest(y: np.ndarray, n_classes: int = 10) -> np.ndarray:
    """``[n, n_classes]`` targets: ``+1`` where ``y == k + 1`` (task ``k``), else ``-1``."""
    return np.where(y[:, None] == np.arange(1, n_classes + 1)[None, :], 1, -1)


def load_mnist_usps(
    root: str | Path | None, dataset: Literal["mnist", "usps"], split: int = 1
) -> DigitSplit:
    """Load ``mnist_usps_pca_kang2011/split{split}_{dataset}_1000train.mat``.

    Args:
        root: data root (``None``: ``$MANYTASK_DATA``, else ``./data``).
        dataset: ``"mnist"`` or ``"usps"``.
        split: split number (only 1 is distributed offline).

    Raises:
        FileNotFoundError: the file is missing (the message gives the URL).
        ValueError: bad arguments, or unexpected shapes or labels in the file.
    """
    if dataset not in _DIMS:
        raise ValueError(f"dataset must be 'mnist' or 'usps'; got {dataset!r}.")
    folder = data_root(root) / "mnist_usps_pca_kang2011"
    name = f"split{split}_{dataset}_1000train.mat"
    url = _URL.format(folder=f"{dataset}_digits", name=dataset)
    mat = load_mat(require_file(folder, (name,), url, "MNIST/USPS (Kang et al. 2011)"))
    parts = []
    for part, n in _SIZES.items():
        X = np.asarray(mat[f"digit_{part}x"], dtype=float)
        y = np.asarray(mat[f"digit_{part}y"]).ravel().astype(int)
        if X.shape != (n, _DIMS[dataset]) or y.shape != (n,):
            raise ValueError(f"{name}: {part} part has shapes {X.shape}, {y.shape}.")
        if y.min() < 1 or y.max() > 10 or not np.all(np.isfinite(X)):
            raise ValueError(f"{name}: {part} labels must be 1..10 and features finite.")
        parts += [X, y]
    return DigitSplit(*parts)
