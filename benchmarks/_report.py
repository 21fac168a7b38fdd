"""Benchmark scripts write their tables with the package's section writer."""

from manytask._utils import write_section

__all__ = ["write_section"]
