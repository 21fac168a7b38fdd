"""``benchmarks/_report.write_section`` replaces only its own section, atomically."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_SPEC = importlib.util.spec_from_file_location(
    "benchmarks_report", Path(__file__).resolve().parents[2] / "benchmarks" / "_report.py"
)
assert _SPEC is not None and _SPEC.loader is not None
report = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(report)


def test_write_section_appends_replaces_and_keeps_others(tmp_path: Path) -> None:
    page = tmp_path / "docs" / "benchmarks.md"
    report.write_section("a", "first A", page)
    report.write_section("b", "only B", page)
    report.write_section("a", "second A", page)
    text = page.read_text()
    assert "second A" in text and "first A" not in text and "only B" in text
    assert text.index("section:a start") < text.index("section:b start")
    assert not [p for p in page.parent.iterdir() if ".tmp" in p.name]


def test_write_section_rejects_bad_ids_and_broken_markers(tmp_path: Path) -> None:
    page = tmp_path / "b.md"
    with pytest.raises(ValueError, match="section_id"):
        report.write_section("has space", "x", page)
    page.write_text("<!-- section:a start -->\nno end\n")
    with pytest.raises(ValueError, match="unbalanced"):
        report.write_section("a", "x", page)
