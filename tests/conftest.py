"""Shared fixtures: a fixed seed for every test, and the location of the real datasets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def shared_data_dir() -> Path | None:
    """``$MANYTASK_DATA`` or ``<repo>/../shared/data`` when it exists."""
    env = os.environ.get("MANYTASK_DATA")
    candidates = [Path(env)] if env else []
    candidates.append(REPO.parent / "shared" / "data")
    return next((p for p in candidates if p.is_dir()), None)
