"""``benchmarks/peers.py`` runs end to end in a tiny configuration against torchjd (always installed);
LibMTL is optional and not needed here."""

from __future__ import annotations

import argparse

from .benchmark_scripts import load_script

script = load_script("peers")


def test_ours_against_torchjd_tiny() -> None:
    build, x, targets = script.model_and_data("mlp", 3)
    label = "mgda (exact)"
    cell = script.compare(lambda: script.ours(label, build, x, targets), lambda: script.torchjd(label, build, x, targets),
                          steps=1, repeats=1, memory=False)
    assert cell["time"] > 0
    args = argparse.Namespace(model="mlp", tasks="3", repeats=1, steps=1)
    table = script.render({f"{label} vs torchjd": {3: cell}, "x vs LibMTL": {3: {"failed": "ValueError: boom"}}}, [3], args)
    assert "| mgda (exact) vs torchjd | " in table and "- x vs LibMTL: `ValueError: boom`" in table


def test_every_shared_method_exists_on_our_side() -> None:
    from manytask.balancing import BALANCERS

    assert {options["name"] for options, *_ in script.SHARED.values()} <= set(BALANCERS.names())
