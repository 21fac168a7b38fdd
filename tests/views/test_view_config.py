"""The masked-cells view end to end from a config, on real MultiMNIST images."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

from manytask.config import load_config
from manytask.runs import train

REPO = Path(__file__).resolve().parents[2]


def test_example_config_trains_a_view_task(tmp_path: Path, real_data: Callable[[str], Path]) -> None:
    config = load_config(REPO / "examples" / "multimnist_inpainting.yaml", [
        f"data.root={real_data('mnist')}", "data.train_size=600", "data.test_size=200", "training.steps=6",
        "training.eval_every=3", "training.progress=false", "data.batch_size=32"])
    result = train(config, run_dir=tmp_path)
    assert {"left/accuracy", "right/accuracy", "inpaint/rmse"} <= set(result.test)
    assert all(math.isfinite(result.test[k]) for k in ("left/accuracy", "inpaint/rmse"))
    assert (tmp_path / "checkpoints").is_dir()
    assert result.train.monitor == "mean/accuracy"  # the main tasks' mean; the view task is auxiliary
