"""MNIST in two domains (as MNIST has it, and inverted): a digit task and a domain task, for
domain-adversarial training."""

from __future__ import annotations

import numpy as np
import torch

from ...tasks import BinaryClassification, Classification
from .._dataset import DATASETS, MultiTaskData
from .._source import TensorSource
from ._multimnist import mnist_splits

__all__ = ["mnist_domains"]


@DATASETS.register("mnist_domains")
def mnist_domains(
    root: str | None = None,
    val_fraction: float = 1 / 6,
    seed: int = 0,
    train_size: int | None = None,
    test_size: int | None = None,
    download: bool = False,
    verify: bool = True,
) -> MultiTaskData:
    """MNIST digits in two domains: each image (in every split, a seeded half of them) is shown
    as MNIST has it (domain 0) or inverted, ``1 - x`` (domain 1, white background). Each split
    draws from its own stream, so an image's domain does not depend on ``train_size`` or
    ``test_size``.

    Inputs ``[1, 28, 28]`` in ``[0, 1]``. Tasks: ``digit`` (main, 10 classes, accuracy) and
    ``domain`` (binary, auxiliary; set ``tasks.domain.role: adversarial`` to train the shared
    layers against it through gradient reversal, Ganin & Lempitsky 2015). The domain is a
    nuisance the digit task should not need; a probe fitted on the features afterwards measures
    how much of it they keep (``benchmarks/domain_adversary.py``).

    Args:
        root: Folder holding ``mnist/`` (default ``$MANYTASK_DATA``, else ``./data``).
        val_fraction: Fraction of the MNIST training images held out for validation (seeded).
        seed: Seed of the validation split and of the domain draw.
        train_size: Use only the first ``train_size`` training images (None: all).
        test_size: Use only the first ``test_size`` test images (None: all).
        download: Fetch missing files (with checksums) instead of raising.
        verify: Check the files' SHA-256.
    """
    # one random stream per split, so that neither split's draw depends on another's size
    streams = [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(3)]
    parts: dict[str, TensorSource | None] = {}
    splits = mnist_splits(root, val_fraction, seed, train_size, test_size, download, verify, "mnist_domains")
    for (part, found), stream in zip(splits.items(), streams):
        if found is None:
            parts[part] = None
            continue
        images, labels = found
        x = torch.from_numpy(images).to(torch.float32).div_(255.0).unsqueeze(1)
        domain = torch.rand(len(images), generator=torch.Generator().manual_seed(stream)) < 0.5
        x = torch.where(domain[:, None, None, None], 1.0 - x, x)
        parts[part] = TensorSource(x, {"digit": torch.from_numpy(labels), "domain": domain.float()},
                                   name=f"mnist_domains/{part}")
    train = parts["train"]
    assert train is not None  # mnist_splits refuses an empty training part
    tasks = (Classification("digit", num_classes=10, metrics=("accuracy",)),
             BinaryClassification("domain", role="auxiliary", metrics=("accuracy", "auroc")))
    sizes = " / ".join(f"{len(s) if s else 0} {p}" for p, s in parts.items())
    return MultiTaskData(tasks=tasks, train={"mnist_domains": train}, val=parts["val"], test=parts["test"],
                         input_info={"in_channels": 1, "image_size": 28},
                         description=f"MNIST in two domains (inverted half, seed {seed}): {sizes}")
