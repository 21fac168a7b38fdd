"""``benchmarks/balancing_cost.py`` runs end to end in a tiny configuration (keeps the script from rotting)."""

from __future__ import annotations

import pytest

from manytask.balancing import BALANCERS, create_balancer

from .benchmark_scripts import load_script

script = load_script("balancing_cost")


def test_measure_one_method_and_ew_tiny() -> None:
    methods = [("ew", None), ("mgda", "exact")]
    results = script.measure(methods, [2], steps=1, repeats=1, budget=60.0)
    assert set(results) == {"ew", "mgda (exact)", "naive"}
    for cells in results.values():
        cell = cells[2]
        assert "skipped" not in cell, cell
        assert cell["time"] > 0 and cell["memory"] > 0
    table = script.table(methods, [2], results)
    assert "| mgda (exact) |" in table and "naive" in table


def test_every_registered_method_is_listed_and_builds() -> None:
    methods = script.methods(None)
    assert {name for name, _ in methods} == set(BALANCERS.names())
    tasks, _ = script.setup(2)
    for name, level in methods:
        create_balancer(name, tasks, **script.options(name, level, [t.name for t in tasks]))


def test_budget_cuts_the_cell_and_larger_task_counts() -> None:
    results = script.measure([("mgda", "exact")], [2, 3], steps=10**6, repeats=1, budget=0.5,
                             memory=False, naive=False)
    cells = results["mgda (exact)"]
    assert cells[2]["skipped"].startswith("cut:") and cells[3]["skipped"].startswith("cut at T = 2")
    assert "cut" in script.table([("mgda", "exact")], [2, 3], results)


@pytest.mark.parametrize(("goal", "t", "ratio", "naive", "expected"), [
    ("losses", 2, 1.04, None, True),
    ("losses", 2, 1.06, None, False),
    ("representation", 8, 5.0, None, None),
    ("representation", 32, 1.19, None, True),
    ("exact", 2, 9.0, None, None),
    ("exact", 8, 1.9, 4.0, True),
    ("exact", 8, 1.9, 3.0, False),
    ("exact", 32, 3.1, 10.0, False),
    ("", 32, 9.0, 1.0, None),
])
def test_goals(goal: str, t: int, ratio: float, naive: float | None, expected: bool | None) -> None:
    assert script.meets(goal, t, ratio, naive) is expected
