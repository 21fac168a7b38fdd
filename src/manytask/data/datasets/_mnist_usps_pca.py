"""PCA-reduced MNIST / USPS digits as 10 one-vs-rest binary tasks (Kang, Grauman & Sha, 2011)."""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from ...tasks import BinaryClassification
from .._dataset import DATASETS, MultiTaskData, data_root
from .._source import TensorSource
from ._files import DataFile, dataset_dir, locate
from ._mnist_usps_arrays import load_mnist_usps

__all__ = ["FILES", "mnist_usps_pca"]

FOLDER = "mnist_usps_pca_kang2011"
_PYMTL = (
    "https://raw.githubusercontent.com/tjanez/PyMTL/97dfc15be3769240f2099d036ce2b55b30a56f5f/data/"
)
FILES = {
    "mnist": DataFile(
        "split1_mnist_1000train.mat",
        sha256="164d20effee22b1df109588b37109890d648dbabd7bf7cb67c88f69e84cc4de8",
        url=_PYMTL + "mnist_digits/split1_mnist_1000train.mat",
    ),
    "usps": DataFile(
        "split1_usps_1000train.mat",
        sha256="106c4157c08d5df9b4c1b713ddca65696e1b63aa6bc0b20d765597b6d890cda6",
        url=_PYMTL + "usps_digits/split1_usps_1000train.mat",
    ),
}
N_CLASSES = 10


@DATASETS.register("mnist_usps_pca")
def mnist_usps_pca(
    root: str | None = None,
    digits: Literal["mnist", "usps"] = "mnist",
    split: int = 1,
    standardize: bool = True,
    download: bool = False,
    verify: bool = True,
) -> MultiTaskData:
    """MNIST or USPS (PCA features) as 10 one-vs-rest binary tasks, split 1 of Kang et al. 2011.

    Tasks ``label_1`` .. ``label_10``: task ``label_k`` is "the digit's label is ``k``" (labels
    are 1..10 in the files; 10 is presumably the digit 0, the usual MATLAB convention, but the
    files do not say). Every digit is labelled for every task. Metrics: accuracy (the published
    numbers are error rates = 1 - accuracy, in %) and AUROC. The file's own parts are used:
    1,000 train, 500 validation, 500 test digits; inputs are the PCA features (MNIST 87, USPS
    64), standardised with training statistics unless ``standardize=False``.

    Only split 1 of the original 10 is available, so results are one split, not the mean over
    splits that Kang et al. and Jeong & Jun (KDD 2018) report.

    Args:
        root: Folder holding ``mnist_usps_pca_kang2011/`` (default ``$MANYTASK_DATA``, else
            ``./data``).
        digits: ``"mnist"`` or ``"usps"``.
        split: The split number (only 1 is distributed).
        standardize: Standardise the inputs with training statistics.
        download: Fetch the missing file (with checksum) instead of raising.
        verify: Check the file's SHA-256.
    """
    if digits not in FILES:
        raise ValueError(
            f"The 'digits' parameter of mnist_usps_pca must be 'mnist' or 'usps'. Got {digits!r}."
        )
    if split != 1:
        raise ValueError(
            "The 'split' parameter of mnist_usps_pca must be 1: only split 1 is distributed. "
            f"Got {split}."
        )
    locate(
        dataset_dir(root, FOLDER),
        FILES[digits],
        "mnist_usps_pca",
        download_missing=download,
        verify=verify,
    )
    arrays = load_mnist_usps(data_root(root), digits, split)
    parts = {
        "train": (arrays.X_train, arrays.y_train),
        "val": (arrays.X_valid, arrays.y_valid),
        "test": (arrays.X_test, arrays.y_test),
    }
    mean = arrays.X_train.mean(0) if standardize else 0.0
    std = arrays.X_train.std(0) if standardize else 1.0
    if standardize:
        std = np.where(std > 0, std, 1.0)
    names = [f"label_{k}" for k in range(1, N_CLASSES + 1)]
    sources = {}
    for part, (x, y) in parts.items():
        inputs = torch.as_tensor((x - mean) / std, dtype=torch.float32)
        labels = torch.as_tensor(y)
        targets = {name: (labels == k).float() for k, name in enumerate(names, start=1)}
        sources[part] = TensorSource(inputs, targets, name=f"mnist_usps_pca/{part}")
    return MultiTaskData(
        tasks=tuple(BinaryClassification(name, metrics=("accuracy", "auroc")) for name in names),
        train={digits: sources["train"]},
        val=sources["val"],
        test=sources["test"],
        input_info={"in_features": int(arrays.X_train.shape[1])},
        description=(
            f"{digits.upper()} PCA digits (Kang et al. 2011, split {split}): 10 one-vs-rest "
            f"tasks, {len(arrays.y_train)} train / {len(arrays.y_valid)} val / "
            f"{len(arrays.y_test)} test"
        ),
    )
