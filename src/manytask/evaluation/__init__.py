"""Evaluation: per-task metrics on a source, multi-seed summaries."""

from ._evaluate import evaluate, undefined_metrics
from ._summary import MeanStd, format_mean_std, mean_std

__all__ = ["MeanStd", "evaluate", "format_mean_std", "mean_std", "undefined_metrics"]
