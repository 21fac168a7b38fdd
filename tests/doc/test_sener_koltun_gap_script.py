"""``benchmarks/sener_koltun_gap.py``: Sener & Koltun's protocol (all 60,000 training images, the
test split every epoch) and the three readings of its curves."""

from __future__ import annotations

import yaml

from .benchmark_scripts import load_script

script = load_script("sener_koltun_gap")


def test_the_protocol_trains_on_everything_and_evaluates_every_epoch() -> None:
    base = yaml.safe_load(script.SUITE.read_text())["base"]
    config = script._config(base, "mgda", seed=2, epochs=100)
    assert config["data"]["val_fraction"] == 0.0 and config["seed"] == config["data"]["seed"] == 2
    assert config["training"]["eval_every"] == 235 and config["training"]["steps"] == 23_500  # ceil(60000/256)
    assert config["optimizer"]["decay_every"] == 2350  # x 0.85 every 10 epochs
    assert config["balancer"] == {"name": "mgda", "level": "representation"}


def test_last_selected_and_best_per_digit() -> None:
    curves = {"ew": {"left": [90.0, 96.0, 95.0], "right": [91.0, 93.0, 94.5]},
              "single-task": {"left": [96.0, 97.0, 96.5], "right": [95.0, 94.0, 95.5]}}
    rows = {line.split(" | ")[0].strip("| "): line for line in script.table(curves, 0, "cmd").splitlines()
            if line.startswith("| EW") or line.startswith("| single")}
    # EW: the best mean of the two digits is at epoch 3 (95 + 94.5 = 189.5 > 96 + 93 = 189)
    assert "| 95.00 / 94.50 | 95.00 / 94.50 (epoch 3) | 96.00 / 94.50 | 96.46 / 94.99 |" in rows["EW (uniform)"]
    assert "97.00 / 95.50 (each run its best epoch)" in rows["single-task"]
