"""Views from a config: the masked-cells view end to end on real MultiMNIST images, and the
checks run before anything is written."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from manytask.config import ConfigError, load_config, parse_config
from manytask.runs import build_experiment, train

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


@pytest.mark.parametrize("encoder, task, views, message", [
    ({"name": "transformer", "dim": 8, "heads": 2, "layers": 1, "feedforward": 16},
     {"view": "next_sentence", "kind": "binary", "role": "auxiliary"}, {},
     "exceed the transformer's max_length=78"),
    ({"name": "bilstm", "embedding_dim": 8, "hidden": 8},
     {"view": "masked_words", "kind": "classification", "level": "token", "num_classes": 9065},
     {"masked_words": {"mask_index": 99999}}, "index out of range"),
])
def test_a_model_that_cannot_read_a_views_inputs_is_a_config_error_before_anything_is_written(
        tmp_path: Path, real_data: Callable[[str], Path], encoder: dict[str, Any], task: dict[str, Any],
        views: dict[str, Any], message: str) -> None:
    """next_sentence packs pairs of sentences (2L + 1 tokens) past the transformer's max_length
    (L, from the data); a mask_index beyond the vocabulary: both crashed at the first step, after
    config.yaml and metrics.csv were written (the preflight ran the dataset's tasks only)."""
    config = parse_config({
        "data": {"name": "conll2000", "root": str(real_data("conll2000")), "batch_size": 16,
                 "next_sentence": task["view"] == "next_sentence"},
        "tasks": {"aux": task}, "views": views, "model": {"name": "hps", "encoder": encoder},
        "training": {"steps": 2, "eval_every": 2, "progress": False},
    })
    view = task["view"]
    with pytest.raises(ConfigError, match=f"'views.{view}': .* cannot read the inputs view '{view}' makes "
                                          f"\\(.*{message}"):
        build_experiment(config, run_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()
