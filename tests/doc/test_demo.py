"""The demo shows what MTL exists for: the few-label tasks gain from the many-label one."""

from __future__ import annotations

import copy
from pathlib import Path

from manytask.config import apply_overrides, parse_config
from manytask.demos import DEMO_CONFIG
from manytask.runs import compare


def test_demo_multitask_beats_single_task(tmp_path: Path) -> None:
    config = parse_config(apply_overrides(copy.deepcopy(DEMO_CONFIG), ["training.progress=false"]))
    comparison = compare(config, run_dir=tmp_path)
    rows = {(r.task, r.metric): r for r in comparison.rows}
    assert comparison.delta_m > 2.0
    assert rows[("score", "rmse")].change > 0 and rows[("flag", "accuracy")].change > 0
    assert (tmp_path / "comparison.md").read_text().startswith("| task |")
