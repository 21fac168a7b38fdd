"""Evaluation: per-task metrics on a source, single-task baselines and Δm comparisons."""

from ._evaluate import evaluate

__all__ = ["evaluate"]
