"""School (ILEA exam scores, 139 regression tasks) as numpy arrays, on its two published split sets.

``protocol="argyriou"``: the 10 splits distributed with Argyriou et al.'s multi-task feature
learning code (``argyriou_splits/school_b.mat`` + ``school_{k}_indexes.mat``), used by Jeong &
Jun (KDD 2018). ``protocol="zhang_li"``: the 10 splits of Zhang & Li (CIKM 2019)
(``zhang_li_cikm2019_splits/school_{train,test}_re{k}.csv[.gz]``). Features: the 28 columns
described in the dataset's ``SOURCE.md`` (27 attributes + a constant bias column, last).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from ..._utils import data_root
from ._files import load_mat, open_text

__all__ = ["SchoolSplit", "load_school", "require_file"]

N_TASKS = 139
N_FEATURES = 28
_PYMTL = "https://github.com/tjanez/PyMTL/raw/97dfc15be3769240f2099d036ce2b55b30a56f5f/data/school/"
_ZHANG_LI = (
    "https://github.com/squall1988/multi-task-gradient-boosting/raw/"
    "4f75588884b587ea3e70639cd08708f6df2c5d76/data/school/"
)


@dataclass(frozen=True)
class SchoolSplit:
    """One train/test split of School in the multi-input form (rows belong to tasks).

    Attributes:
        X_train: ``[n_train, 28]`` features (column 27 is the constant bias).
        y_train: ``[n_train]`` exam scores.
        task_train: ``[n_train]`` school index (``0 .. 138``) of each training row.
        X_test: ``[n_test, 28]``.
        y_test: ``[n_test]``.
        task_test: ``[n_test]``.
        n_tasks: number of tasks (139).
    """

    X_train: np.ndarray
    y_train: np.ndarray
    task_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    task_test: np.ndarray
    n_tasks: int


def require_file(folder: Path, names: tuple[str, ...], url: str, dataset: str) -> Path:
    """The first of ``names`` that exists in ``folder``; otherwise a FileNotFoundError with help."""
    for name in names:
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(
        f"{dataset}: file {names[0]!r} not found (looked in {folder.resolve()} for "
        f"{', '.join(names)}). Download it from {url} into that folder "
        f"(see SOURCE.md of the dataset)."
    )


def _validate(split: SchoolSplit) -> SchoolSplit:
    for part in ("train", "test"):
        X, y, task = (getattr(split, f"{k}_{part}") for k in ("X", "y", "task"))
        if X.ndim != 2 or X.shape[1] != N_FEATURES:
            raise ValueError(f"School {part} features must have shape (n, 28); got {X.shape}.")
        if not X.shape[0] == y.shape[0] == task.shape[0]:
            raise ValueError(
                f"School {part} arrays have different lengths: {X.shape[0]}, {y.shape[0]}, "
                f"{task.shape[0]}."
            )
        if not np.all(np.isfinite(X)) or not np.all(np.isfinite(y)):
            raise ValueError(f"School {part} arrays hold non-finite values.")
        if task.min() < 0 or task.max() >= N_TASKS:
            raise ValueError(f"School {part} task ids must be in 0..{N_TASKS - 1}.")
        if y.min() < 0 or y.max() > 100:
            raise ValueError(f"School {part} exam scores out of range: {y.min()}..{y.max()}.")
        if not np.all(X[:, -1] == 1):
            raise ValueError(f"School {part}: the last column must be the constant bias.")
    if np.unique(split.task_train).size != N_TASKS:
        raise ValueError("School training part does not contain all 139 tasks.")
    return split


def _load_argyriou(folder: Path, split: int) -> SchoolSplit:
    base = folder / "argyriou_splits"
    data = load_mat(require_file(base, ("school_b.mat",), _PYMTL + "school_b.mat", "School"))
    name = f"school_{split}_indexes.mat"
    idx = load_mat(require_file(base, (name,), _PYMTL + name, "School"))
    X = data["x"].T.astype(float)
    y = data["y"].ravel().astype(float)
    start = np.r_[data["task_indexes"].ravel().astype(int) - 1, len(y)]
    task = np.repeat(np.arange(len(start) - 1), np.diff(start))
    tr = idx["tr"].ravel().astype(int) - 1
    te = idx["tst"].ravel().astype(int) - 1
    return SchoolSplit(X[tr], y[tr], task[tr], X[te], y[te], task[te], N_TASKS)


def _read_csv(path: Path) -> np.ndarray:
    with open_text(path) as fh:
        arr = np.loadtxt(fh, delimiter=",", ndmin=2)
    if arr.shape[1] != N_FEATURES + 2:
        raise ValueError(f"{path}: expected {N_FEATURES + 2} columns, got {arr.shape[1]}.")
    return arr


def _load_zhang_li(folder: Path, split: int) -> SchoolSplit:
    base = folder / "zhang_li_cikm2019_splits"
    parts = []
    for part in ("train", "test"):
        name = f"school_{part}_re{split}.csv"
        path = require_file(base, (name + ".gz", name), _ZHANG_LI + name, "School")
        arr = _read_csv(path)
        parts += [arr[:, :N_FEATURES], arr[:, N_FEATURES], arr[:, N_FEATURES + 1].astype(int) - 1]
    x_train, y_train, t_train, x_test, y_test, t_test = parts
    return SchoolSplit(x_train, y_train, t_train, x_test, y_test, t_test, N_TASKS)


def load_school(
    root: str | Path | None, protocol: Literal["argyriou", "zhang_li"], split: int
) -> SchoolSplit:
    """Load split ``split`` (1..10) of School under ``protocol``.

    Args:
        root: data root holding ``school/`` (``None``: ``$MANYTASK_DATA``, else ``./data``).
        protocol: ``"argyriou"`` or ``"zhang_li"`` (see the module docstring).
        split: split number, 1..10.

    Returns:
        A :class:`SchoolSplit`.

    Raises:
        FileNotFoundError: a file is missing (the message says where to get it).
        ValueError: bad ``protocol``/``split`` or a file with unexpected content.
    """
    if protocol not in ("argyriou", "zhang_li"):
        raise ValueError(f"protocol must be 'argyriou' or 'zhang_li'; got {protocol!r}.")
    if not isinstance(split, (int, np.integer)) or not 1 <= split <= 10:
        raise ValueError(f"split must be an int in 1..10; got {split!r}.")
    folder = data_root(root) / "school"
    loader = _load_argyriou if protocol == "argyriou" else _load_zhang_li
    return _validate(loader(folder, int(split)))
