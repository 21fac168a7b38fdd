"""``manytask fit-linear`` ends with the files it wrote, and only those."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from manytask.cli import app

REPO = Path(__file__).resolve().parents[2]
FILES = ("results.json", "coef.csv", "search.csv", "report.html")


@pytest.mark.parametrize(
    "report", [pytest.param(False, id="no_report"), pytest.param(True, id="report", marks=pytest.mark.report)]
)
def test_written_lists_the_files_in_the_run_directory(tmp_path: Path, report: bool) -> None:
    """Before the fix the line always listed report.html, also with logging.report=false."""
    run_dir = tmp_path / "r"
    result = CliRunner().invoke(app, [
        "fit-linear", str(REPO / "examples" / "table.yaml"), "--run-dir", str(run_dir),
        "--set", "linear.name=ridge", "--set", "include_tasks=[spend]", "--set", "linear.search.alpha=[0.1]",
        "--set", f"logging.report={str(report).lower()}",
    ])
    assert result.exit_code == 0, result.output
    line = re.search(r"^Written: (.*) \((.*)\)$", result.output, flags=re.M)
    assert line is not None, result.output
    assert Path(line.group(1)) == run_dir
    listed = line.group(2).split(", ")
    assert listed == [name for name in FILES if (run_dir / name).is_file()]
    assert ("report.html" in listed) == report
