"""coloured_mnist: the colouring rule on drawn strokes, and the dataset from the real digits."""

from __future__ import annotations

import colorsys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from manytask.data.datasets import coloured_mnist
from manytask.data.datasets._coloured_mnist import colour_digits


def _stroke(shear: int) -> np.ndarray:
    """A 1-pixel line from row 4 to 23, moving ``shear`` columns right per 10 rows up."""
    image = np.zeros((28, 28), dtype=np.uint8)
    for row in range(4, 24):
        image[row, 14 + round((14 - row) * shear / 10)] = 255
    return image


def test_the_hue_follows_the_slant() -> None:
    upright, right, left = colour_digits(np.stack([_stroke(0), _stroke(5), _stroke(-5)]))
    torch.testing.assert_close(torch.from_numpy(upright[:, 10, 14]), torch.tensor([0.0, 1.0, 0.0]))  # hue 1/3
    background = np.array(colorsys.hsv_to_rgb(1 / 3 + 1 / 2, 0.5, 0.25), dtype=np.float32)
    np.testing.assert_allclose(upright[:, 0, 0], background, rtol=1e-6)

    def hue(image: np.ndarray) -> float:
        ink = image[:, (image.max(0) == image.max())][:, 0]  # a full-ink pixel
        return colorsys.rgb_to_hsv(*ink)[0]

    assert hue(right) > 1 / 3 > hue(left)  # right-leaning towards blue, left-leaning towards red
    assert hue(right) + hue(left) == pytest.approx(2 / 3, abs=1e-6)  # mirror images, mirrored hues


def test_real_digits_in_colour(real_data: Callable[[str], Path]) -> None:
    data = coloured_mnist(root=str(real_data("mnist")), train_size=100, test_size=50)
    batch = data.train["coloured_mnist"].batch(torch.arange(100))
    assert batch.inputs.shape == (100, 3, 28, 28) and 0 <= float(batch.inputs.min()) <= float(batch.inputs.max()) <= 1
    assert data.input_info["in_channels"] == 3 and [t.name for t in data.tasks] == ["digit"]
    assert len({tuple(np.round(x[:, 0, 0].numpy(), 3)) for x in batch.inputs}) > 10  # colours vary with the digits
    with pytest.raises(ValueError, match="'test_size' parameter of coloured_mnist must be >= 1"):
        coloured_mnist(root=str(real_data("mnist")), test_size=0)
