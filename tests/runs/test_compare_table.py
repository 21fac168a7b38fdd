"""The comparison table says Δm is undefined, with the reason, where no main task defines it
(it printed "Δm = +nan%")."""

from __future__ import annotations

import math
from pathlib import Path

from manytask.runs._compare import Comparison, ComparisonRow


def test_no_defined_primary_metric_prints_undefined_with_the_tasks() -> None:
    rows = (ComparisonRow("a", "rmse", False, 0.0, 1.0), ComparisonRow("b", "accuracy", True, math.nan, 0.5))
    table = Comparison(rows, math.nan, "test", Path("."), ("a/rmse", "b/accuracy")).table()
    assert "nan" not in table.split("\n")[-1]
    assert "Δm undefined" in table and "a/rmse, b/accuracy" in table


def test_a_defined_delta_m_still_prints_its_value() -> None:
    rows = (ComparisonRow("a", "rmse", False, 2.0, 1.0), ComparisonRow("b", "accuracy", True, math.nan, 0.5))
    table = Comparison(rows, 50.0, "test", Path("."), ("b/accuracy",)).table()
    assert "Δm = +50.00% " in table and "over 1 of 2 main tasks; undefined for b/accuracy, left out" in table
