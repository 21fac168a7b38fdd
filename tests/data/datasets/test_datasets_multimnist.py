"""multimnist: tiny gzipped IDX files in the real MNIST format, plus the real files if present."""

from __future__ import annotations

import gzip
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from manytask.data import create_dataset
from manytask.data.datasets._files import DataFormatError, MissingDataError
from manytask.data.datasets._multimnist import (
    _NEAREST,
    MEAN,
    STD,
    make_multimnist,
    multimnist,
    read_idx,
)


def _write_idx(path: Path, array: np.ndarray) -> None:
    magic = 2051 if array.ndim == 3 else 2049
    header = struct.pack(f">{1 + array.ndim}I", magic, *array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


def _digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = np.zeros((n, 28, 28), dtype=np.uint8)
    images[:, 4:24, 4:24] = rng.integers(0, 256, size=(n, 20, 20))
    return images, rng.integers(0, 10, size=n).astype(np.uint8)


def _write_mnist(
    folder: Path, n_train: int = 60, n_test: int = 20, reconstructed: bool = False
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    images, labels = _digits(n_train, 0)
    name = (
        "train-images-idx3-ubyte-reconstructed.gz"
        if reconstructed
        else "train-images-idx3-ubyte.gz"
    )
    _write_idx(folder / name, images)
    _write_idx(folder / "train-labels-idx1-ubyte.gz", labels)
    images, labels = _digits(n_test, 1)
    _write_idx(folder / "t10k-images-idx3-ubyte.gz", images)
    _write_idx(folder / "t10k-labels-idx1-ubyte.gz", labels)


def _reference(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Sener & Koltun's construction for one pair, written out plainly (float canvas,
    max on the overlap, bytescale to 0-255, nearest resize with PIL's rule)."""
    canvas = np.zeros((36, 36))
    canvas[0:28, 0:28] = left
    canvas[6:34, 6:34] = right
    canvas[6:28, 6:28] = np.maximum(left[6:28, 6:28], right[0:22, 0:22])
    if canvas.max() > 0:
        canvas = canvas * 255.0 / canvas.max()
    out = np.zeros((28, 28))
    for i in range(28):
        for j in range(28):
            out[i, j] = canvas[int((i + 0.5) * 36 / 28), int((j + 0.5) * 36 / 28)]
    return np.floor(out + 0.5).astype(np.uint8)


def test_construction_matches_reference() -> None:
    images, labels = _digits(12, 3)
    images[5] //= 2  # a dim pair: the rescale to 255 matters
    out, left, right = make_multimnist(images, labels, seed=4)
    partner = np.random.default_rng(4).integers(0, 12, size=12)
    assert left.tolist() == labels.tolist()
    assert right.tolist() == labels[partner].tolist()
    for i in range(12):
        np.testing.assert_array_equal(out[i], _reference(images[i], images[partner[i]]))


def test_nearest_resize_is_pils() -> None:
    from PIL import Image as image_module  # a test dependency: the independent reference
    canvas = np.random.default_rng(0).integers(1, 256, size=(36, 36)).astype(np.uint8)
    pil = np.asarray(image_module.fromarray(canvas).resize((28, 28), image_module.NEAREST))
    np.testing.assert_array_equal(canvas[_NEAREST][:, _NEAREST], pil)


def test_seeded_and_prefix_stable() -> None:
    images, labels = _digits(30, 5)
    a = make_multimnist(images, labels, 7)
    b = make_multimnist(images, labels, 7)
    c = make_multimnist(images, labels, 8)
    head = make_multimnist(images, labels, 7, count=10)
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], c[0])
    np.testing.assert_array_equal(head[0], a[0][:10])
    np.testing.assert_array_equal(head[2], a[2][:10])


def test_dataset(tmp_path: Path) -> None:
    _write_mnist(tmp_path / "mnist")
    data = multimnist(root=str(tmp_path), val_fraction=0.25, verify=False)
    train, val, test = data.train["multimnist"], data.val, data.test
    assert val is not None and test is not None
    assert (len(train), len(val), len(test)) == (45, 15, 20)
    assert train.inputs.shape == (45, 1, 28, 28) and train.inputs.dtype.is_floating_point
    assert [t.name for t in data.tasks] == ["left", "right"]
    assert all(t.out_features == 10 for t in data.tasks)
    assert data.input_info == {"in_channels": 1, "image_size": 28}
    for source in (train, val, test):
        for task in data.tasks:
            task.check(source.targets[task.name], source.masks[task.name])
    # Test composites are built from the test images, normalised as in the original loader.
    images, labels = _digits(20, 1)
    assert test.targets["left"].tolist() == labels.tolist()
    pixels = np.rint((test.inputs[:, 0].numpy() * STD + MEAN) * 255).astype(np.int64)
    right = test.targets["right"].tolist()
    for i in range(20):
        partners = [
            j
            for j in range(20)
            if labels[j] == right[i] and np.array_equal(pixels[i], _reference(images[i], images[j]))
        ]
        assert partners, f"test composite {i} is not image {i} overlaid with a test image"
    # Reproducible, and the size options take prefixes.
    again = multimnist(
        root=str(tmp_path), val_fraction=0.25, verify=False, train_size=10, test_size=5
    )
    assert len(again.train["multimnist"]) == 10 and len(again.test) == 5  # type: ignore[arg-type]
    assert bool((again.train["multimnist"].inputs == train.inputs[:10]).all())
    unnormalised = create_dataset(
        "multimnist", root=str(tmp_path), verify=False, normalize=False, val_fraction=0.25
    )
    assert float(unnormalised.train["multimnist"].inputs.min()) >= 0.0


def test_reconstructed_train_images_are_used(tmp_path: Path) -> None:
    _write_mnist(tmp_path / "mnist", reconstructed=True)
    data = multimnist(root=str(tmp_path), verify=False)
    assert "reconstructed" in data.description


def test_missing_file_message(tmp_path: Path) -> None:
    _write_mnist(tmp_path / "mnist")
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(MissingDataError) as info:
        multimnist(root=str(tmp_path), verify=False)
    message = str(info.value)
    assert "t10k-labels-idx1-ubyte.gz" in message and str(tmp_path / "mnist") in message
    assert "download=True" in message


def test_format_errors(tmp_path: Path) -> None:
    path = tmp_path / "x.gz"
    _write_idx(path, np.zeros(20, np.uint8))
    with pytest.raises(DataFormatError, match="magic number 2049"):
        read_idx(path, "images")
    path.write_bytes(gzip.compress(struct.pack(">4I", 2051, 5, 28, 28) + bytes(100)))
    with pytest.raises(DataFormatError, match="truncated"):
        read_idx(path, "images")
    path.write_bytes(b"not gzip")
    with pytest.raises(DataFormatError, match="x.gz is truncated or not a gzip file.*delete it and fetch it again"):
        read_idx(path, "images")
    path.write_bytes(gzip.compress(np.random.default_rng(0).bytes(400))[:200])  # a download cut short
    with pytest.raises(DataFormatError, match="x.gz is truncated or not a gzip file.*delete it and fetch it again"):
        read_idx(path, "images")
    folder = tmp_path / "bad" / "mnist"
    _write_mnist(folder)
    _write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.full(20, 11, np.uint8))
    with pytest.raises(DataFormatError, match="digits 0-9"):
        multimnist(root=str(tmp_path / "bad"), verify=False)
    _write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.zeros(19, np.uint8))
    with pytest.raises(DataFormatError, match="20 images but"):
        multimnist(root=str(tmp_path / "bad"), verify=False)



def test_real_files(real_data: Callable[[str], Path]) -> None:
    root = real_data("mnist")
    data = multimnist(root=str(root), train_size=2000, test_size=1000)  # checksums verified
    folder = root / "mnist"
    train_files = [
        folder / "train-images-idx3-ubyte.gz",
        folder / "train-images-idx3-ubyte-reconstructed.gz",
    ]
    train_images = read_idx(next(p for p in train_files if p.is_file()), "images")
    assert train_images.shape == (60000, 28, 28)
    assert read_idx(folder / "t10k-images-idx3-ubyte.gz", "images").shape == (10000, 28, 28)
    assert data.test is not None
    assert len(data.train["multimnist"]) == 2000 and len(data.test) == 1000
    assert data.val is not None and len(data.val) == 1000
    # Both digits are visible: the composite has ink in the top-left and bottom-right corners.
    x = data.test.inputs[:, 0] * STD + MEAN  # type: ignore[union-attr]
    assert float(x[:, :6, :6].sum()) > 0 and float(x[:, -6:, -6:].sum()) > 0
