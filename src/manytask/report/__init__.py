"""``report.html``: one self-contained page (figures embedded, no network) of a run, a comparison
or a benchmark suite."""

from __future__ import annotations

from pathlib import Path

from .._utils import atomic_write

__all__ = ["ReportError", "write_report"]

REPORT_FILE = "report.html"


class ReportError(ValueError):
    """A directory that holds no run, comparison or benchmark suite."""


def write_report(directory: Path | str, out: Path | str | None = None) -> Path:
    """Write the report of ``directory`` (a run's, a comparison's or a bench suite's) to ``out``
    (default ``<directory>/report.html``) and return its path.

    The kind is read from the files: ``comparison.csv`` (``manytask compare``), ``suite.json`` and
    ``results.csv`` (``manytask bench``), ``relatedness/groups.json`` (``manytask relate``), else
    ``metrics.csv`` or ``results.json`` (one run).
    """
    from ._comparison import comparison_sections
    from ._page import Page
    from ._run import relatedness_sections, run_sections
    from ._suite import suite_sections

    root = Path(directory)
    if not root.is_dir():
        raise ReportError(f"No directory {root}: pass a run, comparison or bench directory (the run_dir a "
                          "train, compare or bench command wrote).")
    if (root / "comparison.csv").is_file():
        page = Page(f"Comparison: {root.name}")
        comparison_sections(page, root)
    elif (root / "suite.json").is_file() and (root / "results.csv").is_file():
        page = Page(f"Benchmark: {root.name}")
        suite_sections(page, root)
    elif (root / "relatedness" / "groups.json").is_file():  # manytask relate
        page = Page(f"Relatedness: {root.name}")
        relatedness_sections(page, root)
        if (root / "multi").is_dir():
            page.heading("The multi-task run")
            run_sections(page, root / "multi", level=3, relatedness=False)
    elif (root / "metrics.csv").is_file() or (root / "results.json").is_file():
        page = Page(f"Run: {root.name}")
        run_sections(page, root)
    else:
        raise ReportError(f"{root} holds no run (metrics.csv, results.json), comparison (comparison.csv) or "
                          "benchmark suite (suite.json and results.csv). Pass the directory a train, compare or "
                          "bench command wrote.")
    target = Path(out) if out is not None else root / REPORT_FILE
    atomic_write(target, page.html())
    return target
