"""mnist_usps_pca: a tiny .mat file in the Kang et al. format, plus the real files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from manytask.data import create_dataset
from manytask.data.datasets._files import MissingDataError
from manytask.data.datasets._mnist_usps_pca import mnist_usps_pca


def _write(folder: Path, digits: str = "usps", dims: int = 64) -> dict[str, np.ndarray]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    content = {}
    for part, n in (("train", 1000), ("valid", 500), ("test", 500)):
        content[f"digit_{part}x"] = rng.normal(size=(n, dims))
        content[f"digit_{part}y"] = (np.arange(n) % 10 + 1).astype(np.uint8)[:, None]
    scipy.io.savemat(folder / f"split1_{digits}_1000train.mat", content)
    return content


def test_tiny_file(tmp_path: Path) -> None:
    content = _write(tmp_path / "mnist_usps_pca_kang2011")
    data = mnist_usps_pca(root=str(tmp_path), digits="usps", verify=False)
    train, val, test = data.train["usps"], data.val, data.test
    assert val is not None and test is not None
    assert (len(train), len(val), len(test)) == (1000, 500, 500)
    assert [t.name for t in data.tasks] == [f"label_{k}" for k in range(1, 11)]
    assert all(t.kind == "binary" and t.metrics == ("accuracy", "auroc") for t in data.tasks)
    assert data.input_info == {"in_features": 64}
    # One-vs-rest: exactly one positive task per digit, the one of its label.
    labels = content["digit_testy"].ravel()
    for k in range(1, 11):
        assert test.targets[f"label_{k}"].tolist() == (labels == k).astype(float).tolist()
    assert abs(float(train.inputs.mean())) < 1e-5
    for t in data.tasks:
        t.check(train.targets[t.name], train.masks[t.name])


def test_unstandardized(tmp_path: Path) -> None:
    content = _write(tmp_path / "mnist_usps_pca_kang2011", "mnist", 87)
    data = create_dataset("mnist_usps_pca", root=str(tmp_path), verify=False, standardize=False)
    np.testing.assert_allclose(
        data.train["mnist"].inputs.numpy(), content["digit_trainx"], rtol=1e-6
    )


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(MissingDataError) as info:
        mnist_usps_pca(root=str(tmp_path))
    assert "split1_mnist_1000train.mat" in str(info.value) and "download=True" in str(info.value)
    with pytest.raises(ValueError, match="only split 1"):
        mnist_usps_pca(root=str(tmp_path), split=2)
    with pytest.raises(ValueError, match="'digits'"):
        mnist_usps_pca(root=str(tmp_path), digits="svhn")  # type: ignore[arg-type]



@pytest.mark.parametrize(("digits", "dims"), [("mnist", 87), ("usps", 64)])
def test_real_files(real_data: Callable[[str], Path], digits: str, dims: int) -> None:
    root = real_data("mnist_usps_pca_kang2011")
    data = mnist_usps_pca(root=str(root), digits=digits)  # type: ignore[arg-type]
    assert data.input_info["in_features"] == dims
    assert data.val is not None and data.test is not None
    assert (len(data.train[digits]), len(data.val), len(data.test)) == (1000, 500, 500)
    if digits == "mnist":  # SOURCE.md's training class counts
        counts = [int(data.train[digits].targets[f"label_{k}"].sum()) for k in range(1, 11)]
        assert counts == [111, 111, 92, 113, 78, 90, 105, 96, 109, 95]
