"""mnist_domains: MNIST digits, a seeded half of them inverted, with the domain as a task."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from manytask.data.datasets import mnist_domains
from manytask.data.datasets._multimnist import _read_split


def test_half_the_digits_are_inverted_and_labelled_so(real_data: Callable[[str], Path]) -> None:
    root = real_data("mnist")
    data = mnist_domains(root=str(root), train_size=2000, test_size=1000)
    raw, labels, _ = _read_split(root / "mnist", "test", False, True)
    test = data.test
    assert test is not None and len(test) == 1000
    batch = test.batch(torch.arange(1000))
    domain = batch.targets["domain"].bool()
    original = torch.from_numpy(np.array(raw[:1000])).float().div(255.0).unsqueeze(1)
    torch.testing.assert_close(batch.inputs[~domain], original[~domain])
    torch.testing.assert_close(batch.inputs[domain], 1.0 - original[domain])
    assert torch.equal(batch.targets["digit"], torch.from_numpy(labels[:1000].astype(np.int64)))
    assert 0.45 < float(domain.float().mean()) < 0.55
    assert [t.name for t in data.tasks] == ["digit", "domain"] and data.tasks[1].role == "auxiliary"
    again = mnist_domains(root=str(root), train_size=2000, test_size=1000)
    assert again.test is not None and torch.equal(again.test.batch(torch.arange(1000)).targets["domain"], domain.float())
    with pytest.raises(ValueError, match="'train_size' parameter of mnist_domains must be >= 1"):
        mnist_domains(root=str(root), train_size=0)


def test_the_evaluation_images_do_not_depend_on_train_size(real_data: Callable[[str], Path]) -> None:
    """Which validation and test digits are inverted must not move with ``train_size`` (one random
    stream for every split made a 20,000-image run's test set another than a full run's), and
    the first training images keep their domains whatever the size."""
    root = str(real_data("mnist"))
    small = mnist_domains(root=root, train_size=500, test_size=300)
    large = mnist_domains(root=root, train_size=2000, test_size=600)
    for part in ("val", "test"):
        a, b = getattr(small, part), getattr(large, part)
        assert a is not None and b is not None
        rows = torch.arange(min(len(a), len(b), 300))
        assert torch.equal(a.batch(rows).targets["domain"], b.batch(rows).targets["domain"]), part
        assert torch.equal(a.batch(rows).inputs, b.batch(rows).inputs), part
    first = torch.arange(500)
    assert torch.equal(small.train["mnist_domains"].batch(first).targets["domain"],
                       large.train["mnist_domains"].batch(first).targets["domain"])
