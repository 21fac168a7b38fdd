"""``did_you_mean``: one format for every unknown-name message."""

from __future__ import annotations

import pytest

from manytask._utils import did_you_mean


@pytest.mark.parametrize(
    ("name", "valid", "kwargs", "expected"),
    [
        ("mlpp", ["cnn", "mlp"], {}, " Did you mean 'mlp'? Valid: cnn, mlp."),
        (
            "mlpp",
            ["cnn", "mlp"],
            {"label": "Registered"},
            " Did you mean 'mlp'? Registered: cnn, mlp.",
        ),
        ("zzz", ["cnn", "mlp"], {"label": "Registered"}, " Registered: cnn, mlp."),
        (
            "stepz",
            ["steps", "seed"],
            {"prefix": "training."},
            " Did you mean 'training.steps'? Valid: steps, seed.",
        ),
        ("a.csv", ["data.parquet", "aa.csv"], {"label": None}, " Did you mean 'aa.csv'?"),
        ("zzz", ["cnn"], {"label": None}, ""),
        ("x", [], {}, ""),
    ],
)
def test_formats(name: str, valid: list[str], kwargs: dict[str, object], expected: str) -> None:
    assert did_you_mean(name, valid, **kwargs) == expected  # type: ignore[arg-type]


def test_at_most_three_closest_first() -> None:
    tail = did_you_mean("ab", ["abc", "abd", "abe", "abf", "xyz"], None)
    assert tail.startswith(" Did you mean ") and tail.count("'") == 6


def test_valid_list_keeps_the_callers_order_and_accepts_iterables() -> None:
    assert did_you_mean("q", iter(["b", "a"]), "Columns") == " Columns: b, a."
