"""Off a terminal the progress bar becomes plain periodic lines instead of disappearing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from manytask.training._run_logger import RunLogger


def test_plain_lines_with_step_rate_eta_losses_and_validation(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    logger = RunLogger(tmp_path, ["val/a/accuracy", "val/a/loss", "val/b/accuracy"], total=40)  # stderr: a pipe here
    logger.start(None)
    for step in range(1, 41):
        logger.advance({"a": 0.5, "b": 0.25} if step % 4 == 0 else None)
        if step == 20:
            logger.log({"step": 20, "epoch": 0, "val/a/accuracy": 0.75, "val/a/loss": 0.4, "val/b/accuracy": 0.25})
    logger.close()
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("manytask: step")]
    assert len(lines) == 10 and lines[-1].startswith("manytask: step 40/40")
    assert re.search(r"steps/s, ETA \d+ s, loss a 0.5 b 0.25, val a/accuracy 0.75 b/accuracy 0.25 \(mean 0.5\)",
                     lines[-1]), lines[-1]
    assert "val" not in lines[0]  # no evaluation yet


def test_no_lines_when_progress_is_off(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    logger = RunLogger(tmp_path, [], progress=False, total=10)
    for _ in range(10):
        logger.advance()
    assert "manytask: step" not in capsys.readouterr().err


def test_on_a_terminal_the_bar_shows_losses_validation_and_their_mean(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    logger = RunLogger(tmp_path, ["val/a/accuracy", "val/b/accuracy"], total=10)
    logger.start(None)
    logger.advance({"a": 0.5, "b": 0.25})
    logger.log({"step": 1, "epoch": 0, "val/a/accuracy": 0.75, "val/b/accuracy": 0.25})
    shown = logger._bar.postfix
    logger.close()
    assert shown is not None
    assert "a=0.5" in shown and "val a/accuracy=0.75" in shown and "val mean=0.5" in shown, shown
