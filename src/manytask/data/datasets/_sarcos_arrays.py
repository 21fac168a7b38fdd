"""SARCOS inverse dynamics (7 torque tasks) as numpy arrays: the parts available offline.

``load_sarcos_test``: the official test file ``sarcos_inv_test.mat`` (4,449 x 28) in the
shared-input form (21 inputs, 7 torques). ``load_sarcos_subsample``: the 2 % training
subsample ``sub_sarcos.csv[.gz]`` of Zhang & Li (6,228 rows) in the multi-input form
(each row: 21 inputs, one torque, its joint). See the dataset's ``SOURCE.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from manytask._utils import data_root
from manytask.data.datasets._files import load_mat, open_text
from manytask.data.datasets._school import require_file

__all__ = ["SarcosShared", "SarcosSubsample", "load_sarcos_subsample", "load_sarcos_test"]

N_INPUTS, N_TASKS = 21, 7
_TEST_URL = "http://www.gaussianprocess.org/gpml/data/sarcos_inv_test.mat"
_SUB_URL = (
    "https://github.com/squall1988/multi-task-gradient-boosting/raw/"
    "4f75588884b587ea3e70639cd08708f6df2c5d76/data/sarcos/sub_sarcos.csv"
)


@dataclass(frozen=True)
class SarcosShared:
    """Shared-input arrays: ``X`` ``[n, 21]`` joint inputs, ``Y`` ``[n, 7]`` joint torques.

    The inputs are the 7 joint positions, 7 velocities and 7 accelerations.
    """

    X: np.ndarray
    Y: np.ndarray


@dataclass(frozen=True)
class SarcosSubsample:
    """Multi-input arrays: ``X`` ``[n, 21]``, ``y`` ``[n]`` torque, ``task`` ``[n]`` joint 0..6."""

    X: np.ndarray
    y: np.ndarray
    task: np.ndarray
    n_tasks: int = N_TASKS


def load_sarcos_test(root: str | Path | None) -> SarcosShared:
    """Load ``sarcos/sarcos_inv_test.mat`` (``root=None``: ``$MANYTASK_DATA``, else ``./data``).

    Raises:
        FileNotFoundError: the file is missing (the message gives the URL).
        ValueError: unexpected shape or non-finite values.
    """
    folder = data_root(root) / "sarcos"
    path = require_file(folder, ("sarcos_inv_test.mat",), _TEST_URL, "SARCOS")
    arr = np.asarray(load_mat(path)["sarcos_inv_test"], dtype=float)
    if arr.ndim != 2 or arr.shape[1] != N_INPUTS + N_TASKS or not np.all(np.isfinite(arr)):
        raise ValueError(f"{path}: expected a finite (n, 28) array; got shape {arr.shape}.")
    return SarcosShared(arr[:, :N_INPUTS], arr[:, N_INPUTS:])


def load_sarcos_subsample(root: str | Path | None) -> SarcosSubsample:
    """Load ``sarcos/sub_sarcos.csv.gz`` (or ``.csv``): 21 inputs, torque, joint id 1..7.

    Raises:
        FileNotFoundError: the file is missing (the message gives the URL).
        ValueError: unexpected shape, non-finite values or joint ids outside 1..7.
    """
    folder = data_root(root) / "sarcos"
    path = require_file(folder, ("sub_sarcos.csv.gz", "sub_sarcos.csv"), _SUB_URL, "SARCOS")
    with open_text(path) as fh:
        arr = np.loadtxt(fh, delimiter=",", ndmin=2)
    if arr.shape[1] != N_INPUTS + 2 or not np.all(np.isfinite(arr)):
        raise ValueError(f"{path}: expected a finite (n, 23) array; got shape {arr.shape}.")
    task = arr[:, -1].astype(int) - 1
    if task.min() < 0 or task.max() >= N_TASKS or np.any(arr[:, -1] != task + 1):
        raise ValueError(f"{path}: joint ids must be integers 1..{N_TASKS}.")
    return SarcosSubsample(arr[:, :N_INPUTS], arr[:, N_INPUTS], task)
