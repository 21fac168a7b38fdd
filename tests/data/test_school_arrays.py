"""Array-level loaders of School, SARCOS and MNIST/USPS: real files (when present) and fakes."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pytest
from scipy.io import savemat

from manytask._utils import data_root
from manytask.data.datasets._mnist_usps_arrays import load_mnist_usps, one_vs_rest
from manytask.data.datasets._sarcos_arrays import load_sarcos_subsample, load_sarcos_test
from manytask.data.datasets._school import load_school

_ENV = os.environ.get("MANYTASK_DATA")
DATA = Path(_ENV) if _ENV else Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
needs_data = pytest.mark.skipif(
    not (DATA / "school").is_dir(), reason=f"shared data directory absent: {DATA}"
)


@needs_data
@pytest.mark.parametrize("protocol, n_train", [("argyriou", 11472), ("zhang_li", 11521)])
def test_real_school_splits(protocol: str, n_train: int) -> None:
    s = load_school(DATA, protocol, 1)  # type: ignore[arg-type]
    assert s.X_train.shape == (n_train, 28) and s.X_test.shape == (15362 - n_train, 28)
    assert s.n_tasks == 139 and set(np.unique(s.task_train)) == set(range(139))
    assert s.y_train.min() >= 1 and s.y_train.max() <= 70


@needs_data
def test_argyriou_split_one_equals_vstg_copy() -> None:
    from scipy.io import loadmat

    s = load_school(DATA, "argyriou", 1)
    rep = loadmat(DATA / "school" / "schoo_rep1.mat")
    first = rep["school_train_input"][0, 0]
    np.testing.assert_array_equal(s.X_train[s.task_train == 0], first)


@needs_data
def test_real_sarcos_and_digits() -> None:
    t = load_sarcos_test(DATA)
    assert t.X.shape == (4449, 21) and t.Y.shape == (4449, 7)
    sub = load_sarcos_subsample(DATA)
    assert sub.X.shape == (6228, 21) and np.bincount(sub.task).tolist()[0] == 901
    d = load_mnist_usps(DATA, "mnist")
    assert d.X_train.shape == (1000, 87) and d.X_test.shape == (500, 87)
    Y = one_vs_rest(d.y_train)
    assert Y.shape == (1000, 10) and np.all((Y == 1).sum(axis=1) == 1)


def _fake_zhang_li(root: Path, split: int = 1) -> None:
    folder = root / "school" / "zhang_li_cikm2019_splits"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for part, n in (("train", 278), ("test", 139)):
        X = rng.integers(0, 2, size=(n, 28)).astype(float)
        X[:, -1] = 1
        rows = np.c_[X, rng.integers(1, 70, size=n), np.arange(n) % 139 + 1]
        with gzip.open(folder / f"school_{part}_re{split}.csv.gz", "wt") as fh:
            np.savetxt(fh, rows, delimiter=",", fmt="%g")


def test_fake_school_and_env_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_zhang_li(tmp_path)
    monkeypatch.setenv("MANYTASK_DATA", str(tmp_path))
    s = load_school(None, "zhang_li", 1)
    assert s.X_train.shape == (278, 28) and s.task_test.max() == 138
    assert data_root(None) == tmp_path


def test_missing_file_names_file_place_and_url(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"school_b.mat.*looked in .*github.com/tjanez"):
        load_school(tmp_path, "argyriou", 3)
    with pytest.raises(FileNotFoundError, match=r"sarcos_inv_test.mat.*gaussianprocess.org"):
        load_sarcos_test(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"split1_usps_1000train.mat.*PyMTL"):
        load_mnist_usps(tmp_path, "usps")


def test_bad_arguments_and_bad_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="protocol"):
        load_school(tmp_path, "other", 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="split"):
        load_school(tmp_path, "argyriou", 11)
    folder = tmp_path / "mnist_usps_pca_kang2011"
    folder.mkdir()
    bad = {
        f"digit_{p}x": np.zeros((n, 64))
        for p, n in (("train", 1000), ("valid", 500), ("test", 500))
    }
    bad |= {
        f"digit_{p}y": np.full((n, 1), 11)
        for p, n in (("train", 1000), ("valid", 500), ("test", 500))
    }
    savemat(folder / "split1_usps_1000train.mat", bad)
    with pytest.raises(ValueError, match="labels must be 1..10"):
        load_mnist_usps(tmp_path, "usps")
    (tmp_path / "sarcos").mkdir()
    with gzip.open(tmp_path / "sarcos" / "sub_sarcos.csv.gz", "wt") as fh:
        np.savetxt(fh, np.c_[np.zeros((3, 22)), [1, 2, 9]], delimiter=",")
    with pytest.raises(ValueError, match="joint ids"):
        load_sarcos_subsample(tmp_path)
