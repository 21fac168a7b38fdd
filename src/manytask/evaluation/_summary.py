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
    """``"mean ± std"`` (or ``"mean"`` for one value; ``"–"`` for none).

    Examples:
        >>> format_mean_std([0.5, 0.7])
        '0.6000 ± 0.1414'
    """
    mean, std = mean_std(values)
    if math.isnan(mean):
        return "–"
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return f"{mean:.{digits}f}" if len(finite) == 1 else f"{mean:.{digits}f} ± {std:.{digits}f}"
