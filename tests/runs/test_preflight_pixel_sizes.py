"""A pixel-level task whose maps come out smaller than its targets (a CNN that halves the size
twice, on 30x30 images) is a config error before anything is written, not a broadcasting crash
in the loss at the first step."""

from __future__ import annotations

import pytest
import torch

from manytask.config import ConfigError, parse_config
from manytask.data import TensorSource
from manytask.models import create_encoder, create_model
from manytask.runs._preflight import check_model_fits
from manytask.tasks import Regression
from manytask.views import MaskedCells

CONFIG = parse_config({"data": {"name": "demo"}, "model": {"name": "hps", "encoder": {"name": "cnn"}}})


def test_maps_smaller_than_their_targets_are_named() -> None:
    torch.manual_seed(0)
    depth = Regression("depth", level="pixel")
    inpaint = Regression("inpaint", level="pixel", view="masked_cells", role="auxiliary")
    model = create_model("hps", encoder=create_encoder("cnn"), tasks=[depth, inpaint])
    odd = torch.rand(4, 1, 30, 30)
    with pytest.raises(ConfigError, match=r"tasks\.depth': a pixel-level task, .* gives 28x28 maps for its 30x30 "
                                          r"targets.*a multiple of 4"):
        check_model_fits(CONFIG, model, [depth], {"s": TensorSource(odd, {"depth": torch.rand(4, 30, 30)})})
    with pytest.raises(ConfigError, match=r"tasks\.inpaint'.*28x28 maps for its 30x30 targets"):
        check_model_fits(CONFIG, model, [inpaint], {"s": TensorSource(odd, {})},
                         {"masked_cells": MaskedCells(cell=2)})
    fits = torch.rand(4, 1, 28, 28)
    check_model_fits(CONFIG, model, [depth, inpaint], {"s": TensorSource(fits, {"depth": torch.rand(4, 28, 28)})},
                     {"masked_cells": MaskedCells(cell=2)})
