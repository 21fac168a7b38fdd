"""The demo's configuration: the shared-latent data, an MLP trunk, equal weights."""

from __future__ import annotations

from typing import Any

__all__ = ["DEMO_CONFIG"]

DEMO_CONFIG: dict[str, Any] = {
    "seed": 0,
    "run_dir": "runs/demo",
    "data": {"name": "demo", "batch_size": 64},
    "model": {"name": "hps", "encoder": {"name": "mlp", "hidden": [64, 64]}},
    "balancer": {"name": "ew"},
    "optimizer": {"name": "adam", "lr": 0.001},
    "training": {"steps": 3000, "eval_every": 250},
}
