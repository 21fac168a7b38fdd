"""census_income: a tiny gzipped census CSV in the real format, plus the real test file."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from manytask.data import create_dataset
from manytask.data.datasets._census_income import COLUMNS, NUMERIC, census_income
from manytask.data.datasets._files import DataFormatError, MissingDataError


def _row(rng: np.random.Generator, i: int) -> list[str]:
    values = {c: rng.choice(["a", "b", "?"]) for c in COLUMNS}
    for c in NUMERIC:
        values[c] = str(int(rng.integers(0, 100)))
    values["instance_weight"] = f"{rng.uniform(500, 3000):.2f}"
    values["marital_stat"] = ["Never married", "Married-civilian spouse present", "Divorced"][i % 3]
    values["income_50k"] = "50000+." if i % 4 == 0 else "- 50000."
    values["year"] = rng.choice(["94", "95"])
    return [values[c] for c in COLUMNS]


def _write(folder: Path, n: int = 60, name: str = "census-income.test.gz") -> list[list[str]]:
    rng = np.random.default_rng(0)
    rows = [_row(rng, i) for i in range(n)]
    folder.mkdir(parents=True, exist_ok=True)
    # The real file: comma + space separated, no header.
    text = "".join(", ".join(r) + "\n" for r in rows)
    (folder / name).write_bytes(gzip.compress(text.encode()))
    return rows


def test_tiny_file(tmp_path: Path) -> None:
    rows = _write(tmp_path / "census_income_kdd")
    data = census_income(root=str(tmp_path), verify=False)
    train, val, test = data.train["census_income"], data.val, data.test
    assert val is not None and test is not None
    assert (len(train), len(val), len(test)) == (40, 10, 10)
    assert [t.name for t in data.tasks] == ["income", "never_married"]
    assert all(t.kind == "binary" and t.metrics == ("auroc",) for t in data.tasks)
    # Labels: all rows together, in the file's order once the split is undone.
    income = torch.cat([train.targets["income"], val.targets["income"], test.targets["income"]])
    never = torch.cat(
        [
            train.targets["never_married"],
            val.targets["never_married"],
            test.targets["never_married"],
        ]
    )
    assert sorted(income.tolist()) == sorted(float(i % 4 == 0) for i in range(60))
    assert sorted(never.tolist()) == sorted(float(i % 3 == 0) for i in range(60))
    # No label or weight column in the inputs.
    names = data.input_info["feature_names"]
    assert data.input_info["in_features"] == train.inputs.shape[1] == len(names)
    for column in ("income_50k", "marital_stat", "instance_weight"):
        assert not any(n == column or n.startswith(column + "=") for n in names)
    # Numeric columns standardised on training rows; categorical one-hot (with '?').
    for c in NUMERIC:
        j = names.index(c)
        assert abs(float(train.inputs[:, j].mean())) < 1e-5
        assert abs(float(train.inputs[:, j].std(unbiased=False)) - 1) < 1e-4
    assert "education=?" in names and "year=94" in names
    block = [j for j, n in enumerate(names) if n.startswith("education=")]
    assert bool((train.inputs[:, block].sum(1) == 1).all())
    assert rows  # written in the real format
    for t in data.tasks:
        t.check(train.targets[t.name], train.masks[t.name])


def test_seeded_split_and_exclude(tmp_path: Path) -> None:
    _write(tmp_path / "census_income_kdd")
    a = census_income(root=str(tmp_path), verify=False, seed=1)
    b = create_dataset(
        "census_income", root=str(tmp_path), verify=False, seed=1, exclude=["det_hh_fam_stat"]
    )
    assert torch.equal(
        a.train["census_income"].targets["income"], b.train["census_income"].targets["income"]
    )
    assert not any(n.startswith("det_hh_fam_stat") for n in b.input_info["feature_names"])
    with pytest.raises(ValueError, match="unknown columns"):
        census_income(root=str(tmp_path), verify=False, exclude=["nope"])


def test_mmoe_protocol(tmp_path: Path) -> None:
    folder = tmp_path / "census_income_kdd"
    _write(folder, n=40)
    _write(folder, n=30, name="census-income.data.gz")
    data = census_income(root=str(tmp_path), protocol="mmoe", verify=False)
    assert data.val is not None and data.test is not None
    assert (len(data.train["census_income"]), len(data.val), len(data.test)) == (30, 20, 20)
    assert "official training file" in data.description


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(MissingDataError) as info:
        census_income(root=str(tmp_path))
    assert "census-income.test.gz" in str(info.value) and "download=True" in str(info.value)
    folder = tmp_path / "census_income_kdd"
    folder.mkdir()
    (folder / "census-income.test.gz").write_bytes(gzip.compress(b"1, 2, 3\n"))
    with pytest.raises(DataFormatError, match="row 1: expected 42"):
        census_income(root=str(tmp_path), verify=False)
    rng = np.random.default_rng(0)
    row = _row(rng, 0)
    row[-1] = "maybe"
    (folder / "census-income.test.gz").write_bytes(gzip.compress((", ".join(row) + "\n").encode()))
    with pytest.raises(DataFormatError, match="income_50k"):
        census_income(root=str(tmp_path), verify=False)
    _write(folder, n=10)
    with pytest.raises(MissingDataError, match="census-income.data.gz"):
        census_income(root=str(tmp_path), verify=False, protocol="mmoe")



def test_real_file(real_data: Callable[[str], Path]) -> None:
    root = real_data("census_income_kdd")
    data = census_income(root=str(root))  # SHA-256 and the 99,762 rows are verified
    assert data.val is not None and data.test is not None
    sizes = (len(data.train["census_income"]), len(data.val), len(data.test))
    assert sum(sizes) == 99762 and sizes[1] == sizes[2] == round(99762 / 6)
    income = torch.cat(
        [s.targets["income"] for s in (data.train["census_income"], data.val, data.test)]
    )
    never = torch.cat(
        [s.targets["never_married"] for s in (data.train["census_income"], data.val, data.test)]
    )
    assert int(income.sum()) == 6186 and int(never.sum()) == 43143  # SOURCE.md's counts


def test_mmoe_training_file_is_checked(tmp_path: Path, real_data: Callable[[str], Path]) -> None:
    """protocol='mmoe': the training file has no known checksum, so verify checks its row count
    (UCI: 199,523), and a bad label in it is reported in it, not in the test file."""
    import shutil

    folder = tmp_path / "census_income_kdd"
    folder.mkdir()
    shutil.copy(real_data("census_income_kdd") / "census_income_kdd" / "census-income.test.gz", folder)
    _write(folder, n=30, name="census-income.data.gz")  # a training file cut short
    with pytest.raises(DataFormatError, match=r"census-income\.data\.gz has 30 rows, expected 199523"):
        census_income(root=str(tmp_path), protocol="mmoe")
    rng = np.random.default_rng(0)
    row = _row(rng, 0)
    row[-1] = "50000+"
    (folder / "census-income.data.gz").write_bytes(gzip.compress((", ".join(row) + "\n").encode()))
    with pytest.raises(DataFormatError, match=r"census-income\.data\.gz: column income_50k"):
        census_income(root=str(tmp_path), protocol="mmoe", verify=False)


def test_a_truncated_file_read_without_verify_names_it(tmp_path: Path) -> None:
    folder = tmp_path / "census_income_kdd"
    _write(folder)
    path = folder / "census-income.test.gz"
    path.write_bytes(path.read_bytes()[:-40])  # a download cut short
    with pytest.raises(DataFormatError, match="census-income.test.gz is truncated or corrupt.*fetch it again"):
        census_income(root=str(tmp_path), verify=False)
