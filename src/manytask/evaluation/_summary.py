"""Multi-seed summaries: mean ± std of each metric, formatted for tables."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import NamedTuple

__all__ = ["MeanStd", "mean_std", "format_mean_std"]


class MeanStd(NamedTuple):
    """Mean and standard deviation of the finite values, and how many values they cover."""

    mean: float
    std: float
    n: int  #: finite values the mean and std are taken over
    total: int  #: values given (finite or not)

    @property
    def coverage(self) -> str:
        """``" (n of m)"`` when some values were not finite, else ``""``: for table cells."""
        return f" ({self.n} of {self.total})" if self.n < self.total else ""


def mean_std(values: Sequence[float]) -> MeanStd:
    """Mean and sample standard deviation (0 for one value) of the finite ``values``.

    Non-finite values (NaN: an undefined metric of one replicate) are left out, and the result
    says so: ``n`` of ``total`` values are covered. Both statistics are NaN when no value
    is finite.

    Examples:
        >>> mean_std([1.0, 2.0, 3.0])
        MeanStd(mean=2.0, std=1.0, n=3, total=3)
        >>> mean_std([1.0, float("nan"), 3.0]).coverage
        ' (2 of 3)'
    """
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return MeanStd(math.nan, math.nan, 0, len(values))
    std = statistics.stdev(finite) if len(finite) > 1 else 0.0
    return MeanStd(statistics.fmean(finite), std, len(finite), len(values))


def format_mean_std(values: Sequence[float], digits: int = 4, *, spread: bool = True) -> str:
    """``"mean ± std"`` (or ``"mean"`` for one value, or with ``spread=False``; ``"–"`` for
    none), followed by ``"(n of m)"`` when only ``n`` of the ``m`` values are finite: a table
    never hides that a replicate's value was undefined.

    Examples:
        >>> format_mean_std([0.5, 0.7])
        '0.6000 ± 0.1414'
        >>> format_mean_std([0.5, float("nan"), 0.7])
        '0.6000 ± 0.1414 (2 of 3)'
        >>> format_mean_std([1.5, float("nan")], 2, spread=False)
        '1.50 (1 of 2)'
    """
    stats = mean_std(values)
    if stats.n == 0:
        return "–" + stats.coverage
    text = f"{stats.mean:.{digits}f}"
    if spread and stats.n > 1:
        text += f" ± {stats.std:.{digits}f}"
    return text + stats.coverage
