"""SARCOS inverse dynamics: 7 regression tasks (the torques of a robot arm's 7 joints)."""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from ..._utils import split_groups, split_indices
from ...tasks import Regression
from .._dataset import DATASETS, MultiTaskData, data_root
from ._files import DataFile, dataset_dir, locate, source_from_rows, standardize_columns
from ._sarcos_arrays import N_TASKS, load_sarcos_subsample, load_sarcos_test

__all__ = ["FILES", "sarcos"]

FOLDER = "sarcos"
FILES = {
    "test_file": DataFile(
        "sarcos_inv_test.mat",
        sha256="161a59b5c3b4f4b404584323f181607b2acbe620eb134dc720760dc3f38f5cec",
        url=(
            "https://raw.githubusercontent.com/probml/pmtkdata/"
            "1f3ffa3d21a38c8e9e5010dcedb71262b35b446a/sarcos_inv_test.mat"
        ),
        how="It is also on the GPML data page, http://www.gaussianprocess.org/gpml/data/.",
    ),
    "subsample": DataFile(
        "sub_sarcos.csv",
        sha256="a300157eb958a659e57ce1a67862b2a96c4cac6c7acca6a1a5e8e2893dcafe5e",
        url=(
            "https://raw.githubusercontent.com/squall1988/multi-task-gradient-boosting/"
            "4f75588884b587ea3e70639cd08708f6df2c5d76/data/sarcos/sub_sarcos.csv"
        ),
        alternatives=(
            DataFile(
                "sub_sarcos.csv.gz",
                sha256="7a59032bde86874bd6b9e22d8063628d7b5400975074662ba4369467042be3c9",
            ),
        ),
    ),
}
TASKS = tuple(f"torque_{j}" for j in range(1, N_TASKS + 1))



@DATASETS.register("sarcos")
def sarcos(
    root: str | None = None,
    source: Literal["test_file", "subsample"] = "test_file",
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    seed: int = 0,
    standardize: bool = True,
    download: bool = False,
    verify: bool = True,
) -> MultiTaskData:
    """SARCOS: 21 inputs (7 joint positions, velocities, accelerations) -> 7 torque tasks.

    The official training file (``sarcos_inv.mat``, 44,484 rows) is not available offline, so
    this loader works on what is, and **differs from every published protocol** (which train
    on samples of ``sarcos_inv.mat`` and test on ``sarcos_inv_test.mat``):

    * ``source="test_file"`` (default): the official *test* file (4,449 rows, all 7 torques
      per row: one source, every task labelled on every row), split at random (``seed``) into
      train / validation / test. Its rows are (almost) every 10th step of one trajectory, so a
      random split is optimistic: neighbouring rows are correlated.
    * ``source="subsample"``: Zhang & Li's 2 % sample of the training file (6,228 rows in the
      multi-input form: each row has the torque of one joint, so only that task's mask is
      True), split within each joint.

    Tasks ``torque_1`` .. ``torque_7`` are regressions on the raw torques (their scales differ:
    std 20.4 for joint 1, 0.97 for joint 5, so loss balancing matters). Inputs are standardised
    with the training rows' statistics unless ``standardize=False``.

    Args:
        root: Folder holding ``sarcos/`` (default ``$MANYTASK_DATA``, else ``./data``).
        source: ``"test_file"`` or ``"subsample"`` (see above).
        val_fraction: Fraction of rows (per joint for ``"subsample"``) for validation.
        test_fraction: Fraction of rows (per joint for ``"subsample"``) for test.
        seed: Seed of the split.
        standardize: Standardise the inputs with training statistics.
        download: Fetch the missing file (with checksum) instead of raising.
        verify: Check the file's SHA-256.
    """
    if source not in FILES:
        raise ValueError(
            f"The 'source' parameter of sarcos must be 'test_file' or 'subsample'. Got {source!r}."
        )
    locate(
        dataset_dir(root, FOLDER), FILES[source], "sarcos", download_missing=download, verify=verify
    )
    names = list(TASKS)
    if source == "test_file":
        shared = load_sarcos_test(data_root(root))
        x, y = shared.X, torch.as_tensor(shared.Y, dtype=torch.float32)
        train_idx, val_idx, test_idx = split_indices(len(x), val_fraction, test_fraction, seed)
        targets = {name: y[:, j] for j, name in enumerate(names)}
        masks = None
        note = f"rows of the official test file split at random (seed {seed})"
    else:
        sub = load_sarcos_subsample(data_root(root))
        x = sub.X
        y_all = torch.as_tensor(sub.y, dtype=torch.float32)
        task = torch.as_tensor(sub.task)
        train_idx, val_idx, test_idx = split_groups(sub.task, val_fraction, test_fraction, seed)
        targets = {name: y_all for name in names}
        masks = {name: task == j for j, name in enumerate(names)}
        note = f"2 % training subsample, split within each joint (seed {seed})"
    if standardize:
        x = standardize_columns(np.asarray(x, dtype=np.float64), train_idx.numpy())
    x = np.asarray(x, dtype=np.float32)
    train = source_from_rows(x, targets, masks, train_idx, "sarcos/train")
    assert train is not None
    return MultiTaskData(
        tasks=tuple(Regression(name) for name in names),
        train={"sarcos": train},
        val=source_from_rows(x, targets, masks, val_idx, "sarcos/val"),
        test=source_from_rows(x, targets, masks, test_idx, "sarcos/test"),
        input_info={"in_features": int(x.shape[1])},
        description=(
            f"SARCOS ({source}): {len(train_idx)} train / {len(val_idx)} val / {len(test_idx)} "
            f"test rows, 7 torques; {note}; differs from the published protocols"
        ),
    )
