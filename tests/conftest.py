"""Shared fixtures: a fixed seed for every test, and the location of the real datasets."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _no_reports(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """train/compare/bench write report.html by default (about a second each); in-process tests
    skip it unless marked ``@pytest.mark.report`` (tests/report/ check the reports themselves)."""
    if request.node.get_closest_marker("report") is None:
        import manytask.report

        monkeypatch.setattr(manytask.report, "write_report", lambda directory, out=None: Path(directory) / "skipped")


@pytest.fixture
def real_data() -> Callable[[str], Path]:
    """Locate a real dataset folder (``$MANYTASK_DATA`` or ``<repo>/../shared/data``).

    Returns the data root holding ``folder``; skips the test, naming where it looked, only when
    the data is genuinely absent.
    """

    def locate(folder: str) -> Path:
        env = os.environ.get("MANYTASK_DATA")
        candidates = ([Path(env)] if env else []) + [REPO.parent / "shared" / "data"]
        for root in candidates:
            if (root / folder).is_dir():
                return root
        pytest.skip(f"real data absent: no {folder}/ under {', '.join(map(str, candidates))}")

    return locate
