"""``data_root``: one rule (``root``, else ``$MANYTASK_DATA``, else ``./data``) for every loader."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from manytask import data
from manytask._utils import DEFAULT_DATA_ROOT, data_root
from manytask.data import create_dataset
from manytask.data.datasets._school import load_school
from tests.data.test_school_arrays import _fake_zhang_li


def test_the_rule(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MANYTASK_DATA", raising=False)
    assert DEFAULT_DATA_ROOT == Path("data") and data_root() == Path("data")
    monkeypatch.setenv("MANYTASK_DATA", str(tmp_path / "env"))
    assert data_root(None) == tmp_path / "env"
    assert data_root(tmp_path / "given") == tmp_path / "given"  # an explicit root wins
    assert data_root("~/x") == Path.home() / "x"
    monkeypatch.setenv("MANYTASK_DATA", "")  # empty: as if unset
    assert data_root() == Path("data")


def test_the_public_name_is_the_same_function() -> None:
    assert data.data_root is data_root


@pytest.mark.parametrize("where", ["default", "env"])
def test_both_former_callers_agree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """The registry loader and the array loader used to default to ./data and ../shared/data."""
    monkeypatch.chdir(tmp_path)
    if where == "env":
        monkeypatch.setenv("MANYTASK_DATA", str(tmp_path / "elsewhere"))
        root = tmp_path / "elsewhere"
    else:
        monkeypatch.delenv("MANYTASK_DATA", raising=False)
        root = tmp_path / "data"
    with pytest.raises(FileNotFoundError) as dataset_error:
        create_dataset("school", protocol="zhang_li")
    with pytest.raises(FileNotFoundError) as arrays_error:
        load_school(None, "zhang_li", 1)
    looked = str(Path(os.environ.get("MANYTASK_DATA") or "data") / "school")
    assert looked in str(dataset_error.value) and looked in str(arrays_error.value)
    _fake_zhang_li(root)
    arrays = load_school(None, "zhang_li", 1)
    dataset = create_dataset("school", protocol="zhang_li", verify=False, standardize=False)
    assert dataset.val is None and dataset.test is not None  # too few rows per school for val
    assert len(dataset.train["school"]) == len(arrays.y_train)
    assert len(dataset.test) == len(arrays.y_test)
    np.testing.assert_array_equal(dataset.test.inputs.numpy(), arrays.X_test.astype(np.float32))
