"""Toy multi-task data and the demo configuration, for the demo, tests, docs and bug reports."""

from ._config import DEMO_CONFIG
from ._data import shared_latent_tasks

__all__ = ["DEMO_CONFIG", "shared_latent_tasks"]
