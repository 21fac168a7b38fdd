"""What the benchmark scripts share: the section writer, the environment line of their tables, the
interleaved timing of one step against another, and where the real datasets are."""

from __future__ import annotations

import ctypes
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from manytask._utils import data_root, write_section

__all__ = ["environment", "paired", "pin_malloc", "protocol", "ratio", "shared_data", "write_section"]


def shared_data() -> Path:
    """The datasets' folder: ``$MANYTASK_DATA`` when set (the library's data root), else the
    shared data beside the repository (``../shared/data``)."""
    beside = Path(__file__).resolve().parents[2] / "shared" / "data"
    return data_root(None if os.environ.get("MANYTASK_DATA") else beside)


_PINNED: list[str] = []  # what pin_malloc() did, for environment()


def pin_malloc() -> None:
    """Fix glibc malloc's mmap and trim thresholds at 2 GiB (what ``MALLOC_MMAP_THRESHOLD_`` and
    ``MALLOC_TRIM_THRESHOLD_`` do), so that a step's large temporaries come back from the heap
    instead of being mapped, faulted in and returned to the system afresh each step.

    By default glibc moves both thresholds with the allocations it has seen, so one step costs
    differently from one process to the next: in six runs of benchmarks/school_cost.py, exact
    PCGrad on School read 2.6-4.4x EW, and in three with the thresholds fixed 2.4-2.6x. A no-op where the
    C library is not glibc."""
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return
    trim, mmap = -1, -3  # M_TRIM_THRESHOLD, M_MMAP_THRESHOLD
    if mallopt(mmap, 2**31 - 1) and mallopt(trim, 2**31 - 1):
        _PINNED.append("glibc malloc's mmap and trim thresholds fixed at 2 GiB")


def environment() -> str:
    """``torch X, Python Y, N torch thread(s)`` for a table's command line (and the malloc
    thresholds, when :func:`pin_malloc` fixed them)."""
    return ", ".join([f"torch {torch.__version__}", f"Python {platform.python_version()}",
                      f"{torch.get_num_threads()} torch thread(s)", *_PINNED[:1]])


def ratio(ours: Callable[[], object], reference: Callable[[], object], steps: int, repeats: int,
          warmup: int = 1) -> float:
    """Median over ``steps * repeats`` pairs of one call of each of (time of ``ours`` / time of
    ``reference``), after ``warmup`` calls of each; which runs first alternates from pair to pair.

    A burst of other load on a shared machine skews the few pairs it overlaps, not the median,
    where blocks of many calls each averaged it in: on a 2-core VM, five runs of the EW / hand-loop
    ratio of benchmarks/overhead.py read 1.040-1.086 by 15 blocks of 20 steps and 1.040-1.056 by
    300 pairs."""
    for _ in range(warmup):
        ours(), reference()
    return statistics.median(a / b for a, b in paired(ours, reference, steps * repeats))


def paired(ours: Callable[[], object], reference: Callable[[], object], count: int,
           sync: Callable[[], object] = lambda: None) -> list[tuple[float, float]]:
    """``count`` pairs (seconds of one call of ``ours``, of one of ``reference``), which of the two
    runs first alternating from pair to pair; ``sync`` ends each call's timing (a device's queue)."""
    pairs = []
    for pair in range(count):
        seconds = []
        for fn in (ours, reference) if pair % 2 == 0 else (reference, ours):
            start = time.perf_counter()
            fn()
            sync()
            seconds.append(time.perf_counter() - start)
        pairs.append((seconds[0], seconds[1]) if pair % 2 == 0 else (seconds[1], seconds[0]))
    return pairs


def protocol(steps: int, repeats: int, warmup: int) -> str:
    """How :func:`ratio` measured, for a table's command line."""
    return (f"{warmup} warm-up step(s) of each, then {steps * repeats} pairs of one step of each, "
            "in alternating order; median of the pairs' ratios")
