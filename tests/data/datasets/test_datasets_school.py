"""school (deep, multi-input form): tiny files in both published formats, plus the real data."""

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
from manytask.data.datasets._school_dataset import school, school_files

N_TASKS, PER_TASK = 139, 6


def _students(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = N_TASKS * PER_TASK
    x = rng.integers(0, 2, size=(n, 28)).astype(np.float64)
    x[:, 3] = rng.integers(8, 92, size=n)
    x[:, 27] = 1.0
    y = rng.integers(1, 71, size=n).astype(np.float64)
    task = np.repeat(np.arange(N_TASKS), PER_TASK)
    return x, y, task


def _write_argyriou(root: Path, split: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x, y, task = _students()
    folder = root / "school" / "argyriou_splits"
    folder.mkdir(parents=True)
    starts = np.arange(N_TASKS) * PER_TASK + 1
    scipy.io.savemat(
        folder / "school_b.mat",
        {
            "x": x.T.astype(np.uint8),
            "y": y[:, None].astype(np.uint8),
            "task_indexes": starts[:, None].astype(np.uint16),
        },
    )
    # First 4 students of each school train, last 2 test (1-based column indexes).
    tr = np.concatenate([s - 1 + np.arange(4) for s in starts]) + 1
    te = np.concatenate([s - 1 + np.arange(4, 6) for s in starts]) + 1
    scipy.io.savemat(
        folder / f"school_{split}_indexes.mat",
        {"tr": tr[None].astype(np.uint16), "tst": te[None].astype(np.uint16)},
    )
    return x, y, task


def _write_zhang_li(root: Path, split: int = 1) -> None:
    x, y, task = _students(1)
    folder = root / "school" / "zhang_li_cikm2019_splits"
    folder.mkdir(parents=True)
    table = np.column_stack([x, y, task + 1])
    is_test = np.tile(np.arange(PER_TASK) >= 5, N_TASKS)
    for part, rows in (("train", ~is_test), ("test", is_test)):
        text = "\n".join(",".join(f"{v:g}" for v in row) for row in table[rows]) + "\n"
        (folder / f"school_{part}_re{split}.csv.gz").write_bytes(gzip.compress(text.encode()))


def test_argyriou_format(tmp_path: Path) -> None:
    x, y, task = _write_argyriou(tmp_path)
    data = school(root=str(tmp_path), split=2, val_fraction=0.25, verify=False, standardize=False)
    assert [t.name for t in data.tasks] == [f"school_{k}" for k in range(1, 140)]
    train, val, test = data.train["school"], data.val, data.test
    assert val is not None and test is not None
    assert (len(train), len(val), len(test)) == (139 * 3, 139, 139 * 2)
    assert data.input_info == {"in_features": 28}
    # Every row is labelled for exactly its own school.
    for source in (train, val, test):
        labelled = torch.stack([source.masks[f"school_{k}"] for k in range(1, 140)], 1)
        assert bool((labelled.sum(1) == 1).all())
    # Test rows are the last two students of each school, with their scores.
    expected = np.concatenate([np.arange(k * 6 + 4, k * 6 + 6) for k in range(N_TASKS)])
    mask = test.masks["school_7"]
    assert test.targets["school_7"][mask].tolist() == y[expected][task[expected] == 6].tolist()
    assert np.allclose(test.inputs.numpy(), x[expected])
    for t in data.tasks:
        t.check(train.targets[t.name], train.masks[t.name])


def test_a_subset_of_schools_keeps_their_students_only(tmp_path: Path) -> None:
    """schools=[7, 2]: two tasks, in that order, and exactly the rows the full dataset labels
    for them (the same scores and raw inputs)."""
    _write_argyriou(tmp_path)
    options = {"root": str(tmp_path), "split": 2, "val_fraction": 0.25, "verify": False, "standardize": False}
    full, part = school(**options), school(**options, schools=[7, 2])  # type: ignore[arg-type]
    assert [t.name for t in part.tasks] == ["school_7", "school_2"]
    for whole, some in ((full.train["school"], part.train["school"]), (full.test, part.test)):
        assert whole is not None and some is not None
        keep = whole.masks["school_7"] | whole.masks["school_2"]
        assert len(some) == int(keep.sum()) and torch.equal(some.inputs, whole.inputs[keep])
        for name in ("school_7", "school_2"):
            assert torch.equal(some.targets[name][some.masks[name]], whole.targets[name][whole.masks[name]])
    with pytest.raises(ValueError, match="distinct ids in 1..139"):
        school(**options, schools=[0, 3])  # type: ignore[arg-type]


def test_standardized_with_training_rows_only(tmp_path: Path) -> None:
    _write_argyriou(tmp_path)
    data = school(root=str(tmp_path), split=2, val_fraction=0.25, verify=False)
    x = data.train["school"].inputs
    assert torch.allclose(x[:, :27].mean(0), torch.zeros(27), atol=1e-4)
    assert bool((x[:, 27] == 1).all())  # the bias column is kept as is
    assert data.test is not None and not torch.allclose(
        data.test.inputs[:, 3].mean(), torch.tensor(0.0), atol=1e-4
    )


def test_zhang_li_format_and_per_task_sources(tmp_path: Path) -> None:
    _write_zhang_li(tmp_path)
    data = create_dataset(
        "school",
        root=str(tmp_path),
        protocol="zhang_li",
        val_fraction=0.2,
        verify=False,
        per_task_sources=True,
    )
    assert len(data.train) == 139
    source = data.train["school_5"]
    assert source.tasks == ("school_5",) and len(source) == 4
    assert data.test is not None and len(data.test) == 139


def test_missing_files(tmp_path: Path) -> None:
    _write_argyriou(tmp_path)
    with pytest.raises(MissingDataError) as info:
        school(root=str(tmp_path), split=5, verify=False)
    message = str(info.value)
    assert "school_5_indexes.mat" in message and "download=True" in message
    with pytest.raises(MissingDataError, match="school_train_re1.csv"):
        school(root=str(tmp_path), protocol="zhang_li")


@pytest.mark.parametrize(
    ("options", "match"), [({"split": 11}, "1..10"), ({"protocol": "x"}, "'protocol'")]
)
def test_bad_options(options: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        school(**options)  # type: ignore[arg-type]


def test_file_list() -> None:
    files = school_files("zhang_li", 3)
    assert [f.name for f in files] == [
        "zhang_li_cikm2019_splits/school_train_re3.csv",
        "zhang_li_cikm2019_splits/school_test_re3.csv",
    ]
    assert all(f.url and f.sha256 and f.alternatives[0].sha256 for f in files)



@pytest.mark.parametrize(
    ("protocol", "sizes"), [("argyriou", (11472, 3890)), ("zhang_li", (11521, 3841))]
)
def test_real_files(real_data: Callable[[str], Path], protocol: str, sizes: tuple[int, int]) -> None:
    root = real_data("school")
    data = school(root=str(root), protocol=protocol, split=1)  # checksums verified
    assert data.val is not None and data.test is not None
    assert len(data.train["school"]) + len(data.val) == sizes[0]
    assert len(data.test) == sizes[1]
    assert len(data.tasks) == 139
    counts = data.train["school"].labelled_counts()
    assert min(counts.values()) >= 10  # every school keeps training rows


def test_a_truncated_split_file_names_it(tmp_path: Path) -> None:
    from manytask.data.datasets._files import DataFormatError

    _write_zhang_li(tmp_path)
    path = tmp_path / "school" / "zhang_li_cikm2019_splits" / "school_train_re1.csv.gz"
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(DataFormatError, match="school_train_re1.csv.gz is truncated or corrupt"):
        school(root=str(tmp_path), protocol="zhang_li", verify=False)
