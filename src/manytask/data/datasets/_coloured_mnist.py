"""Coloured MNIST: each digit coloured by a rule read from its own shape, for colourisation."""

from __future__ import annotations

import colorsys

import numpy as np
import torch

from ...tasks import Classification
from .._dataset import DATASETS, MultiTaskData
from .._source import TensorSource
from ._multimnist import mnist_splits

__all__ = ["colour_digits", "coloured_mnist"]


def colour_digits(images: np.ndarray) -> np.ndarray:
    r"""RGB images ``[N, 3, 28, 28]`` in ``[0, 1]`` from grey digits ``[N, 28, 28]`` (uint8).

    The rule reads each digit's slant, the shear :math:`s = \mu_{11} / \mu_{02}` of its ink's
    second moments (positive: leaning right), so that the colour follows the shape and a model
    can learn it from the grey image: the ink's hue is :math:`h = \sigma(3 s) \cdot 2/3` (red for
    left-leaning digits, through yellow and green, to blue for right-leaning ones) at full
    saturation and value, and the background takes the opposite hue :math:`h + 1/2` at saturation
    0.5 and value 0.25. A pixel mixes the two by its grey level.
    """
    grey = images.astype(np.float64) / 255.0
    rows, cols = np.mgrid[0:28, 0:28].astype(np.float64)
    mass = grey.sum((1, 2)).clip(1e-8)
    mean_r = (grey * rows).sum((1, 2)) / mass
    mean_c = (grey * cols).sum((1, 2)) / mass
    dr = rows[None] - mean_r[:, None, None]
    dc = cols[None] - mean_c[:, None, None]
    mu11 = (grey * dr * dc).sum((1, 2)) / mass
    mu02 = (grey * dr * dr).sum((1, 2)) / mass
    slant = -mu11 / mu02.clip(1e-8)  # rows grow downwards: a right lean has negative row-column covariance
    hue = 1.0 / (1.0 + np.exp(-3.0 * slant)) * (2.0 / 3.0)
    ink = np.array([colorsys.hsv_to_rgb(h, 1.0, 1.0) for h in hue])  # [N, 3]
    paper = np.array([colorsys.hsv_to_rgb((h + 0.5) % 1.0, 0.5, 0.25) for h in hue])
    mixed = paper[:, :, None, None] + (ink - paper)[:, :, None, None] * grey[:, None]
    return mixed.astype(np.float32)


@DATASETS.register("coloured_mnist")
def coloured_mnist(
    root: str | None = None,
    val_fraction: float = 1 / 6,
    seed: int = 0,
    train_size: int | None = None,
    test_size: int | None = None,
    download: bool = False,
    verify: bool = True,
) -> MultiTaskData:
    """MNIST digits in colour, the colours a documented function of each digit's shape
    (:func:`colour_digits`: the ink's hue follows the slant, the background the opposite hue).

    There is no colour image set in the shared data, and colourisation (the ``decolourise``
    view, Zhang et al. 2016) needs images whose colours can be learnt from their content; here
    they can be, as in natural images, and nothing about the label is in the rule beyond what
    the shape says. Inputs ``[3, 28, 28]`` in ``[0, 1]``; task ``digit`` (10 classes).

    Args:
        root: Folder holding ``mnist/``.
        val_fraction: Fraction of the training images held out for validation (seeded).
        seed: Seed of the validation split.
        train_size: Use only the first ``train_size`` training images (None: all).
        test_size: Use only the first ``test_size`` test images (None: all).
        download: Fetch missing files (with checksums) instead of raising.
        verify: Check the files' SHA-256.
    """
    parts = {part: None if found is None else TensorSource(
        torch.from_numpy(colour_digits(found[0])), {"digit": torch.from_numpy(found[1])}, name=f"coloured_mnist/{part}")
        for part, found in mnist_splits(root, val_fraction, seed, train_size, test_size, download, verify,
                                        "coloured_mnist").items()}
    train = parts["train"]
    assert train is not None  # mnist_splits refuses an empty training part
    sizes = " / ".join(f"{len(s) if s else 0} {p}" for p, s in parts.items())
    return MultiTaskData(tasks=(Classification("digit", num_classes=10, metrics=("accuracy",)),),
                         train={"coloured_mnist": train}, val=parts["val"], test=parts["test"],
                         input_info={"in_channels": 3, "image_size": 28},
                         description=f"Coloured MNIST (hue from each digit's slant): {sizes}")
