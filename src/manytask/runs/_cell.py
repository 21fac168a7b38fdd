"""One benchmark cell in its own process: ``python -m manytask.runs._cell SPEC.json OUT.json``.

Running each cell in a fresh process makes its peak memory (max RSS) its own: the cell reads its
own high-water mark (:func:`own_peak_rss_mb`), since the rusage the bench gets back would carry
the bench's own peak across the cell's ``exec``.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

import torch

from .._utils._peak_memory import own_peak_rss_mb
from ..config import parse_config
from ._train import train


def run_cell(spec: dict, out: Path) -> None:
    """Train the spec's config (on ``spec["only"]`` tasks) and write its figures as JSON."""
    # The suite owns its cells' directories: a cell run again (after a crash) starts afresh.
    result = train(parse_config(spec["config"]), only=spec.get("only"), run_dir=spec["run_dir"], overwrite=True)
    figures = {
        "steps": result.train.steps,
        "best_step": result.train.best_step,
        "seconds_per_step": result.train.train_seconds / max(1, result.train.steps_run),
        "threads": torch.get_num_threads(),
        "split": result.split,
        "metrics": {k: (None if math.isnan(v) else v) for k, v in result.test.items()},
        "peak_rss_mb": own_peak_rss_mb(),
        "peak_rss_of": "cell",
    }
    out.write_text(json.dumps(figures))


def die_with(parent: int | None) -> None:
    """End this cell when the bench that started it dies, even by SIGKILL or SIGTERM, which leave
    it no time to stop its cell: on Linux the kernel sends SIGTERM (``PR_SET_PDEATHSIG``).
    Elsewhere only an interrupted bench stops its cell (it terminates it on the way out)."""
    if parent is None or not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # a libc without prctl: as elsewhere, the bench's own cleanup only
        return
    if os.getppid() != parent:  # it died before the request was in place
        sys.exit("manytask: the bench that started this cell has stopped; not training.")


if __name__ == "__main__":
    import manytask  # noqa: F401  (fills the registries)

    spec = json.loads(Path(sys.argv[1]).read_text())
    die_with(spec.get("parent"))
    run_cell(spec, Path(sys.argv[2]))
