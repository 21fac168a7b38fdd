"""UCI Census-Income (KDD): income > 50K and never-married, the two-task set of MMoE (Ma et al.,
KDD 2018)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import torch

from ..._utils import split_indices
from ...tasks import BinaryClassification
from .._dataset import DATASETS, MultiTaskData
from .._source import TensorSource
from ._files import DataFile, DataFormatError, dataset_dir, locate, open_text
from ._table import Encoder

__all__ = ["COLUMNS", "FILES", "NUMERIC", "census_income"]

FOLDER = "census_income_kdd"
FILES = {
    "test": DataFile(
        "census-income.test.gz",
        sha256="5ac4cacd3ca9f1ecb10de1a0a41e4ac68fdc419e3fec190f5c0c6cc03b2ea659",
        url=(
            "https://raw.githubusercontent.com/drawbridge/keras-mmoe/"
            "2718f56e4313716fd3a86e9510bc2df0cc366238/data/census-income.test.gz"
        ),
    ),
    # The official training file; its SHA-256 is not known here, so it is not verified.
    "train": DataFile(
        "census-income.data.gz",
        url=(
            "https://archive.ics.uci.edu/ml/machine-learning-databases/census-income-mld/"
            "census-income.data.gz"
        ),
    ),
}
#: Column names in file order (as in keras-mmoe's census_income_demo.py).
COLUMNS = (
    "age", "class_worker", "det_ind_code", "det_occ_code", "education", "wage_per_hour",
    "hs_college", "marital_stat", "major_ind_code", "major_occ_code", "race", "hisp_origin", "sex",
    "union_member", "unemp_reason", "full_or_part_emp", "capital_gains", "capital_losses",
    "stock_dividends", "tax_filer_stat", "region_prev_res", "state_prev_res", "det_hh_fam_stat",
    "det_hh_summ", "instance_weight", "mig_chg_msa", "mig_chg_reg", "mig_move_reg", "mig_same",
    "mig_prev_sunbelt", "num_emp", "fam_under_18", "country_father", "country_mother",
    "country_self", "citizenship", "own_or_self", "vet_question", "vet_benefits", "weeks_worked",
    "year", "income_50k",
)  # fmt: skip
#: The attributes UCI's census-income.names declares continuous; all others are nominal.
NUMERIC = (
    "age", "wage_per_hour", "capital_gains", "capital_losses", "stock_dividends", "num_emp",
    "weeks_worked",
)  # fmt: skip
#: Never inputs: the two label columns, and the sampling weight (UCI: not a feature).
NOT_INPUTS = ("income_50k", "marital_stat", "instance_weight")
INCOME = {"- 50000.": 0.0, "50000+.": 1.0}
TEST_ROWS = 99762
#: Rows of UCI's census-income.data (the official training file), checked with ``verify``.
TRAIN_ROWS = 199523


def _read(path: Path) -> list[list[str]]:
    with open_text(path) as f:
        rows = list(csv.reader(f, skipinitialspace=True))
    for number, row in enumerate(rows, start=1):
        if len(row) != len(COLUMNS):
            raise DataFormatError(
                f"{path}, row {number}: expected {len(COLUMNS)} comma-separated fields, got "
                f"{len(row)}."
            )
    return rows


def _labels(rows: Sequence[Sequence[str]], path: Path) -> tuple[np.ndarray, np.ndarray]:
    income_col, marital_col = COLUMNS.index("income_50k"), COLUMNS.index("marital_stat")
    bad = sorted({r[income_col] for r in rows} - set(INCOME))
    if bad:
        raise DataFormatError(
            f"{path}: column income_50k must hold {sorted(INCOME)}, also found {bad[:5]}."
        )
    income = np.array([INCOME[r[income_col]] for r in rows], dtype=np.float32)
    never = np.array([r[marital_col] == "Never married" for r in rows], dtype=np.float32)
    return income, never


@DATASETS.register("census_income")
def census_income(
    root: str | None = None,
    protocol: Literal["test_file", "mmoe"] = "test_file",
    val_fraction: float = 1 / 6,
    test_fraction: float = 1 / 6,
    seed: int = 0,
    exclude: list[str] | None = None,
    download: bool = False,
    verify: bool = True,
) -> MultiTaskData:
    """Census-Income (KDD) with MMoE's first task pair: ``income`` (> 50K) and ``never_married``.

    Inputs: the 7 continuous attributes standardised with training statistics, and the other
    attributes one-hot encoded with the categories seen in training (``?`` is a category;
    an unseen one gives all zeros). ``income_50k`` and ``marital_stat`` (the labels) and
    ``instance_weight`` (a sampling weight) are never inputs. Both tasks are binary, metric AUROC.

    Protocols:
        * ``"test_file"`` (default; the only one the shared data allows): the official *test*
          file (99,762 rows) is split at random (``seed``) into train / validation / test with
          ``val_fraction`` and ``test_fraction`` (default 4:1:1, the proportions of MMoE's
          199,523 / 49,881 / 49,881). **This differs from Ma et al. (2018)**, who train on the
          official training file; numbers are not comparable with theirs.
        * ``"mmoe"``: the paper's protocol — train on ``census-income.data.gz`` (not verified:
          no checksum known) and split the test file in half (seeded) into validation and test.

    Args:
        root: Folder holding ``census_income_kdd/`` (default ``$MANYTASK_DATA``, else ``./data``).
        protocol: ``"test_file"`` or ``"mmoe"`` (see above).
        val_fraction: Validation fraction of the test file (``"test_file"`` only).
        test_fraction: Test fraction of the test file (``"test_file"`` only).
        seed: Seed of the split.
        exclude: More columns to drop from the inputs (e.g. ``det_hh_fam_stat``, whose values
            such as "Child 18+ never marr ..." partly reveal the marital status; MMoE keeps it).
        download: Fetch missing files instead of raising.
        verify: Check the SHA-256 and the row count of the test file, and (``"mmoe"``) the row
            count of the training file, whose SHA-256 is not known.
    """
    if protocol not in ("test_file", "mmoe"):
        raise ValueError(
            "The 'protocol' parameter of census_income must be 'test_file' or 'mmoe'. "
            f"Got {protocol!r}."
        )
    exclude = list(exclude or [])
    unknown = [c for c in exclude if c not in COLUMNS]
    if unknown:
        raise ValueError(
            f"The 'exclude' parameter of census_income names unknown columns {unknown}; "
            f"columns are {list(COLUMNS)}."
        )
    folder = dataset_dir(root, FOLDER)
    test_path = locate(
        folder, FILES["test"], "census_income", download_missing=download, verify=verify
    )
    test_rows = _read(test_path)
    if verify and len(test_rows) != TEST_ROWS:
        raise DataFormatError(f"{test_path} has {len(test_rows)} rows, expected {TEST_ROWS}.")
    if protocol == "test_file":
        rows = test_rows
        train_idx, val_idx, test_idx = split_indices(len(rows), val_fraction, test_fraction, seed)
        path = test_path
        note = f"split of the official test file (seed {seed}); differs from Ma et al. 2018"
    else:
        train_path = locate(
            folder, FILES["train"], "census_income", download_missing=download, verify=verify
        )
        official = _read(train_path)
        if verify and len(official) != TRAIN_ROWS:
            raise DataFormatError(
                f"{train_path} has {len(official)} rows, expected {TRAIN_ROWS} (UCI's "
                "census-income.data); delete it and fetch it again, or pass verify=False."
            )
        _labels(official, train_path)  # a bad label in the training file is reported as there
        rows = official + test_rows
        first, second, _ = split_indices(len(test_rows), 0.5, 0.0, seed)
        train_idx = torch.arange(len(official))
        val_idx, test_idx = second + len(official), first + len(official)
        path = test_path
        note = f"official training file; test file halved into val/test (seed {seed})"
    income, never = _labels(rows, path)
    inputs = [c for c in COLUMNS if c not in NOT_INPUTS and c not in exclude]
    frame = pd.DataFrame(rows, columns=list(COLUMNS), dtype=object)[inputs]
    encoder = Encoder.fit(
        frame.iloc[train_idx.numpy()], numeric=[c for c in inputs if c in NUMERIC], where=str(path)
    )
    targets = {"income": income, "never_married": never}

    def part(idx: torch.Tensor, name: str) -> TensorSource | None:
        # Each part is encoded on its own: no full [N, F] matrix to copy from.
        picked = idx.numpy()
        if picked.size == 0:
            return None
        x = encoder.transform(frame.iloc[picked], where=str(path))
        return TensorSource(
            x, {k: torch.from_numpy(v[picked]) for k, v in targets.items()}, name=name
        )

    train = part(train_idx, "census_income/train")
    assert train is not None
    tasks = (
        BinaryClassification("income", metrics=("auroc",)),
        BinaryClassification("never_married", metrics=("auroc",)),
    )
    return MultiTaskData(
        tasks=tasks,
        train={"census_income": train},
        val=part(val_idx, "census_income/val"),
        test=part(test_idx, "census_income/test"),
        input_info={
            "in_features": len(encoder.feature_names),
            "feature_names": tuple(encoder.feature_names),
        },
        description=(
            f"Census-Income (KDD), income + never_married: {len(train_idx)} train / "
            f"{len(val_idx)} val / {len(test_idx)} test rows, "
            f"{len(encoder.feature_names)} features; {note}"
        ),
    )
