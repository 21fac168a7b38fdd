"""What the benchmark scripts share: the section writer, the environment line of their tables, the
interleaved timing of one step against another, and where the real datasets are."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from manytask._utils import data_root, write_section

__all__ = ["environment", "ratio", "shared_data", "timed", "write_section"]


def shared_data() -> Path:
    """The datasets' folder: ``$MANYTASK_DATA`` when set (the library's data root), else the
    shared data beside the repository (``../shared/data``)."""
    beside = Path(__file__).resolve().parents[2] / "shared" / "data"
    return data_root(None if os.environ.get("MANYTASK_DATA") else beside)


def environment() -> str:
    """``torch X, Python Y, N torch thread(s)`` for a table's command line."""
    return f"torch {torch.__version__}, Python {platform.python_version()}, {torch.get_num_threads()} torch thread(s)"


def timed(fn: Callable[[], object], steps: int) -> float:
    """Seconds per call of ``fn`` over ``steps`` calls."""
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - start) / steps


def ratio(ours: Callable[[], object], reference: Callable[[], object], steps: int, repeats: int,
          warmup: int = 1) -> float:
    """Median over interleaved repeats of (time per step of ``ours`` / of ``reference``), after
    ``warmup`` calls of each."""
    for _ in range(warmup):
        ours(), reference()
    return statistics.median(timed(ours, steps) / timed(reference, steps) for _ in range(repeats))
