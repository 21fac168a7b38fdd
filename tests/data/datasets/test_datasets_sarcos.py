"""sarcos: a tiny .mat file and a tiny long-format CSV in the real formats, plus the real data."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch

from manytask.data import create_dataset
from manytask.data.datasets._files import MissingDataError
from manytask.data.datasets._sarcos import sarcos


def _write_test_file(folder: Path, n: int = 50) -> np.ndarray:
    folder.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(0).normal(size=(n, 28))
    scipy.io.savemat(folder / "sarcos_inv_test.mat", {"sarcos_inv_test": arr})
    return arr


def _write_subsample(folder: Path, per_joint: int = 10) -> np.ndarray:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    joint = np.repeat(np.arange(1, 8), per_joint)
    arr = np.column_stack([rng.normal(size=(len(joint), 22)), joint])
    text = "\n".join(",".join(repr(float(v)) for v in row) for row in arr) + "\n"
    (folder / "sub_sarcos.csv.gz").write_bytes(gzip.compress(text.encode()))
    return arr


def test_test_file_form(tmp_path: Path) -> None:
    arr = _write_test_file(tmp_path / "sarcos")
    data = sarcos(root=str(tmp_path), verify=False, standardize=False)
    train, val, test = data.train["sarcos"], data.val, data.test
    assert val is not None and test is not None
    assert (len(train), len(val), len(test)) == (35, 5, 10)
    assert [t.name for t in data.tasks] == [f"torque_{j}" for j in range(1, 8)]
    assert data.input_info == {"in_features": 21}
    assert all(bool(train.masks[t].all()) for t in train.tasks)  # every torque on every row
    # Rows keep inputs and torques together: find each training row in the file.
    for i in range(len(train)):
        row = int(np.argmin(np.abs(arr[:, :21] - train.inputs[i].numpy()).sum(1)))
        got = torch.stack([train.targets[f"torque_{j}"][i] for j in range(1, 8)]).numpy()
        np.testing.assert_allclose(got, arr[row, 21:], rtol=1e-6)
    for t in data.tasks:
        t.check(train.targets[t.name], train.masks[t.name])


def test_subsample_form(tmp_path: Path) -> None:
    _write_subsample(tmp_path / "sarcos")
    data = create_dataset("sarcos", root=str(tmp_path), source="subsample", verify=False)
    train = data.train["sarcos"]
    labelled = torch.stack([train.masks[f"torque_{j}"] for j in range(1, 8)], 1)
    assert bool((labelled.sum(1) == 1).all())  # one joint per row
    assert train.labelled_counts() == {f"torque_{j}": 7 for j in range(1, 8)}
    assert abs(float(train.inputs.mean())) < 1e-5  # standardised on training rows


def test_missing_and_checksum(tmp_path: Path) -> None:
    with pytest.raises(MissingDataError) as info:
        sarcos(root=str(tmp_path))
    assert "sarcos_inv_test.mat" in str(info.value) and "gaussianprocess.org" in str(info.value)
    _write_test_file(tmp_path / "sarcos")
    with pytest.raises(ValueError, match="SHA-256"):
        sarcos(root=str(tmp_path))
    with pytest.raises(ValueError, match="'source'"):
        sarcos(root=str(tmp_path), source="train")  # type: ignore[arg-type]



def test_real_files(real_data: Callable[[str], Path]) -> None:
    root = real_data("sarcos")
    data = sarcos(root=str(root))
    assert data.val is not None and data.test is not None
    assert len(data.train["sarcos"]) + len(data.val) + len(data.test) == 4449
    sub = sarcos(root=str(root), source="subsample")
    assert sub.val is not None and sub.test is not None
    counts = [
        sum(s.labelled_counts()[f"torque_{j}"] for s in (sub.train["sarcos"], sub.val, sub.test))
        for j in range(1, 8)
    ]
    assert counts == [901, 865, 841, 868, 870, 946, 937]  # SOURCE.md's rows per joint


def test_a_truncated_subsample_names_the_file(tmp_path: Path) -> None:
    from manytask.data.datasets._files import DataFormatError

    _write_subsample(tmp_path / "sarcos")
    path = tmp_path / "sarcos" / "sub_sarcos.csv.gz"
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(DataFormatError, match="sub_sarcos.csv.gz is truncated or corrupt"):
        sarcos(root=str(tmp_path), source="subsample", verify=False)


def test_a_truncated_test_file_names_it(tmp_path: Path) -> None:
    from manytask.data.datasets._files import DataFormatError

    _write_test_file(tmp_path / "sarcos")
    path = tmp_path / "sarcos" / "sarcos_inv_test.mat"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DataFormatError, match="sarcos_inv_test.mat is truncated or not a MATLAB file"):
        sarcos(root=str(tmp_path), verify=False)
