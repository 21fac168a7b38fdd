"""MultiMNIST (Sener & Koltun, 2018): two overlaid MNIST digits; classify the top-left and the
bottom-right one."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import torch

from ..._utils import split_indices
from ...tasks import Classification
from .._dataset import DATASETS, MultiTaskData
from .._source import TensorSource
from ._files import DataFile, DataFormatError, dataset_dir, locate, read_bytes

__all__ = ["FILES", "make_multimnist", "mnist_splits", "multimnist", "read_idx"]

FOLDER = "mnist"
_MIRROR = "https://ossci-datasets.s3.amazonaws.com/mnist/"
_RECONSTRUCTED = DataFile(
    "train-images-idx3-ubyte-reconstructed.gz",
    sha256="8907b8266d9149b0dd4716f5a6c6b58d5fd4975ce2f910cc2bfc38cd1e39ce72",
)
FILES = {
    "train_images": DataFile(
        "train-images-idx3-ubyte.gz",
        sha256="440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        url=_MIRROR + "train-images-idx3-ubyte.gz",
        alternatives=(_RECONSTRUCTED,),
    ),
    "train_labels": DataFile(
        "train-labels-idx1-ubyte.gz",
        sha256="3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        url=_MIRROR + "train-labels-idx1-ubyte.gz",
    ),
    "test_images": DataFile(
        "t10k-images-idx3-ubyte.gz",
        sha256="8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        url=_MIRROR + "t10k-images-idx3-ubyte.gz",
    ),
    "test_labels": DataFile(
        "t10k-labels-idx1-ubyte.gz",
        sha256="f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        url=_MIRROR + "t10k-labels-idx1-ubyte.gz",
    ),
}
#: Normalisation of Sener & Koltun's loader (the MNIST mean and standard deviation).
MEAN, STD = 0.1307, 0.3081
# Nearest-neighbour resize 36 -> 28 (PIL's rule, used by scipy.misc.imresize): output pixel i
# reads input pixel floor((i + 0.5) * 36 / 28).
_NEAREST = np.floor((np.arange(28) + 0.5) * 36 / 28).astype(np.int64)


def read_idx(path: Path, kind: str) -> np.ndarray:
    """An IDX file of images ``[N, rows, cols]`` (``kind="images"``) or labels ``[N]``, uint8."""
    data = read_bytes(path)
    magic, dims = (2051, 3) if kind == "images" else (2049, 1)
    header = 4 + 4 * dims
    if len(data) < header:
        raise DataFormatError(f"{path} is too short ({len(data)} bytes) to be an IDX file.")
    got_magic, *shape = struct.unpack(f">{1 + dims}I", data[:header])
    if got_magic != magic:
        raise DataFormatError(
            f"{path}: IDX magic number {got_magic}, expected {magic} (uint8 {kind}); is it the "
            "right file?"
        )
    if len(data) != header + int(np.prod(shape)):
        raise DataFormatError(
            f"{path}: header says shape {tuple(shape)} ({int(np.prod(shape))} bytes) but the file "
            f"holds {len(data) - header} bytes of data; the file is truncated or corrupt."
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def _read_split(
    folder: Path, split: str, download: bool, verify: bool
) -> tuple[np.ndarray, np.ndarray, Path]:
    image_path = locate(
        folder, FILES[f"{split}_images"], "multimnist", download_missing=download, verify=verify
    )
    label_path = locate(
        folder, FILES[f"{split}_labels"], "multimnist", download_missing=download, verify=verify
    )
    images, labels = read_idx(image_path, "images"), read_idx(label_path, "labels")
    if images.shape[1:] != (28, 28):
        raise DataFormatError(f"{image_path}: images must be 28x28, got {images.shape[1:]}.")
    if len(images) != len(labels):
        raise DataFormatError(
            f"{image_path} has {len(images)} images but {label_path} has {len(labels)} labels."
        )
    if labels.size and labels.max() > 9:
        raise DataFormatError(
            f"{label_path}: labels must be digits 0-9, found {int(labels.max())}."
        )
    return images, labels, image_path


def mnist_splits(root: str | None, val_fraction: float, seed: int, train_size: int | None, test_size: int | None,
                 download: bool, verify: bool, dataset: str) -> dict[str, tuple[np.ndarray, np.ndarray] | None]:
    """MNIST's images and labels for ``train``, ``val`` (a seeded ``val_fraction`` of the
    training file) and ``test``, the first ``train_size`` / ``test_size`` of train and test only
    (None: an empty part); ``dataset`` names the caller in errors."""
    for name, size in (("train_size", train_size), ("test_size", test_size)):
        if size is not None and size < 1:
            raise ValueError(f"The {name!r} parameter of {dataset} must be >= 1 or None. Got {size}.")
    folder = dataset_dir(root, FOLDER)
    train_images, train_labels, _ = _read_split(folder, "train", download, verify)
    test_images, test_labels, _ = _read_split(folder, "test", download, verify)
    train_idx, val_idx, _ = split_indices(len(train_images), val_fraction, 0.0, seed)
    parts: dict[str, tuple[np.ndarray, np.ndarray] | None] = {}
    for part, idx, images, labels, limit in (
        ("train", train_idx.numpy(), train_images, train_labels, train_size),
        ("val", val_idx.numpy(), train_images, train_labels, None),
        ("test", np.arange(len(test_images)), test_images, test_labels, test_size),
    ):
        idx = idx[:limit] if limit is not None else idx
        parts[part] = (images[idx], labels[idx].astype(np.int64)) if len(idx) else None
    if parts["train"] is None:
        raise ValueError(f"{dataset}: val_fraction={val_fraction} leaves no training image; use less than 1.")
    return parts


def make_multimnist(
    images: np.ndarray, labels: np.ndarray, seed: int, count: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Overlay each image with a seeded random partner, as Sener & Koltun's loader does.

    For every image ``i`` a partner ``j`` is drawn uniformly from the same set (``j = i`` is
    possible, as in the original). On a 36x36 zero canvas image ``i`` goes at rows/cols 0-27
    and image ``j`` at 6-33, the overlap taking the element-wise maximum; the canvas is
    rescaled to 0-255 by its maximum (``scipy.misc.imresize`` does this implicitly) and
    resized to 28x28 with nearest-neighbour interpolation.

    Args:
        images: ``[N, 28, 28]`` uint8.
        labels: ``[N]`` digits.
        seed: Seed of the pairing.
        count: Build only the first ``count`` composites (the same as the first ``count`` of
            the full set; partners are still drawn from all ``N`` images).

    Returns:
        ``(images [count, 28, 28] uint8, left [N], right [N])``: the composites, and the digit of
        the top-left image and of the bottom-right image.
    """
    partner = np.random.default_rng(seed).integers(0, len(images), size=len(images))
    n = len(images) if count is None else min(count, len(images))
    partner = partner[:n]
    canvas = np.zeros((n, 36, 36), dtype=np.uint8)
    canvas[:, :28, :28] = images[:n]
    canvas[:, 6:34, 6:34] = np.maximum(canvas[:, 6:34, 6:34], images[partner])
    peak = canvas.reshape(n, -1).max(axis=1).astype(np.float64)
    scale = np.where(peak > 0, 255.0 / np.maximum(peak, 1), 0.0)[:, None, None]
    small = canvas[:, _NEAREST][:, :, _NEAREST].astype(np.float64)
    out = np.floor(small * scale + 0.5).clip(0, 255).astype(np.uint8)
    return out, labels[:n].astype(np.int64), labels[partner].astype(np.int64)


def _source(
    images: np.ndarray, left: np.ndarray, right: np.ndarray, normalize: bool, name: str
) -> TensorSource:
    x = torch.from_numpy(images).to(torch.float32).div_(255.0).unsqueeze(1)
    if normalize:
        x.sub_(MEAN).div_(STD)
    return TensorSource(
        x, {"left": torch.from_numpy(left), "right": torch.from_numpy(right)}, name=name
    )


@DATASETS.register("multimnist")
def multimnist(
    root: str | None = None,
    val_fraction: float = 1 / 6,
    seed: int = 0,
    train_size: int | None = None,
    test_size: int | None = None,
    normalize: bool = True,
    download: bool = False,
    verify: bool = True,
) -> MultiTaskData:
    """MultiMNIST as built by Sener & Koltun (2018), with a seeded pairing.

    Each sample overlays two MNIST digits (see :func:`make_multimnist`); input
    ``[1, 28, 28]`` float, normalised with MNIST's mean 0.1307 and std 0.3081 as in their
    loader. Tasks: ``left`` (top-left digit) and ``right`` (bottom-right digit), 10 classes each.

    The 60,000 MNIST training images are first split (seeded) into training and validation
    images, and partners are drawn within each part, so no validation composite shares a digit
    image with a training composite; test composites pair the 10,000 test images.

    Args:
        root: Folder holding ``mnist/`` with the four IDX files (default ``$MANYTASK_DATA``,
            else ``./data``). ``train-images-idx3-ubyte-reconstructed.gz`` (see that folder's
            SOURCE.md) is used when the original training images are absent.
        val_fraction: Fraction of the MNIST training images used for validation.
        seed: Seed of the validation split and of the pairings.
        train_size: Use only the first ``train_size`` training composites (quick runs).
        test_size: Use only the first ``test_size`` test composites (and as many validation
            ones at most).
        normalize: Apply MNIST's normalisation (else pixels are in [0, 1]).
        download: Fetch missing files (with checksums) instead of raising.
        verify: Check the files' SHA-256.
    """
    for name, size in (("train_size", train_size), ("test_size", test_size)):
        if size is not None and size < 1:
            raise ValueError(
                f"The {name!r} parameter of multimnist must be >= 1 or None. Got {size}."
            )
    folder = dataset_dir(root, FOLDER)
    train_images, train_labels, train_path = _read_split(folder, "train", download, verify)
    test_images, test_labels, _ = _read_split(folder, "test", download, verify)
    train_idx, val_idx, _ = split_indices(len(train_images), val_fraction, 0.0, seed)
    seeds = [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(3)]
    parts: dict[str, TensorSource | None] = {}
    for (part, idx, images, labels), sub_seed in zip(
        [
            ("train", train_idx.numpy(), train_images, train_labels),
            ("val", val_idx.numpy(), train_images, train_labels),
            ("test", np.arange(len(test_images)), test_images, test_labels),
        ],
        seeds,
    ):
        if len(idx) == 0:
            parts[part] = None
            continue
        limit = train_size if part == "train" else test_size
        composites, left, right = make_multimnist(images[idx], labels[idx], sub_seed, limit)
        parts[part] = _source(composites, left, right, normalize, f"multimnist/{part}")
    reconstructed = train_path.name == _RECONSTRUCTED.name
    tasks = (
        Classification("left", num_classes=10, metrics=("accuracy",)),
        Classification("right", num_classes=10, metrics=("accuracy",)),
    )
    sizes = " / ".join(f"{len(s) if s else 0} {p}" for p, s in parts.items())
    train = parts["train"]
    if train is None:
        raise ValueError(f"multimnist: val_fraction={val_fraction} leaves no training image; use less than 1.")
    return MultiTaskData(
        tasks=tasks,
        train={"multimnist": train},
        val=parts["val"],
        test=parts["test"],
        input_info={"in_channels": 1, "image_size": 28},
        description=(
            f"MultiMNIST (Sener & Koltun 2018, seed {seed}): {sizes}"
            + (" (reconstructed MNIST training images)" if reconstructed else "")
        ),
    )
