"""Multi-seed summaries: mean ± std of each metric, formatted for tables."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

__all__ = ["mean_std", "format_mean_std"]


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value) of the finite ``values``.

    Examples:
        >>> mean_std([1.0, 2.0, 3.0])
        (2.0, 1.0)
    """
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return math.nan, math.nan
    return statistics.fmean(finite), statistics.stdev(finite) if len(finite) > 1 else 0.0


def format_mean_std(values: Sequence[float], digits: int = 4) -> str:
    """``"mean ± std"`` (or ``"mean"`` for one value; ``"–"`` for none), followed by
    ``"(n of m)"`` when only ``n`` of the ``m`` values are finite: a table never hides that a
    replicate's value was undefined.

    Examples:
        >>> format_mean_std([0.5, 0.7])
        '0.6000 ± 0.1414'
        >>> format_mean_std([0.5, float("nan"), 0.7])
        '0.6000 ± 0.1414 (2 of 3)'
    """
    mean, std = mean_std(values)
    finite = [v for v in values if v is not None and math.isfinite(v)]
    covered = f" ({len(finite)} of {len(values)})" if len(finite) < len(values) else ""
    if math.isnan(mean):
        return "–" + covered
    text = f"{mean:.{digits}f}" if len(finite) == 1 else f"{mean:.{digits}f} ± {std:.{digits}f}"
    return text + covered
