"""``benchmarks/school_cost.py`` builds the School catalogue's model and times a method against EW."""

from __future__ import annotations

from .benchmark_scripts import load_script

script = load_script("school_cost")


def test_a_method_against_ew_in_one_block() -> None:
    ew = script.train_step({"name": "ew"})
    assert script.ratio(script.train_step(script.METHODS["PCGrad (representation)"]), ew, 1, 1) > 0
    assert set(script.GOALS) <= set(script.METHODS)


def test_grouped_heads_and_stacked_targets_against_their_absence() -> None:
    assert script.grouped_heads_ratio(1, 1) > 0
    assert script.stacked_targets_ratio(1, 1) > 0
    assert script._hard_sharing.GROUP_AT == 8 and script._source.STACK_AT == 8  # restored


def test_block_reads_against_restacking() -> None:
    original = script._columns.Columns.block_of
    assert script.block_reads_ratio(1, 1) > 0
    assert script._columns.Columns.block_of is original  # restored
