"""Per-task metrics with directions, and Δm% against single-task baselines."""

from ._chunk_f1 import ChunkF1, ChunkTagging, chunk_f1
from ._delta_m import delta_m
from ._metrics import METRICS, MetricInfo, create_metric, higher_is_better, list_metrics

__all__ = [
    "METRICS",
    "ChunkF1",
    "ChunkTagging",
    "MetricInfo",
    "chunk_f1",
    "create_metric",
    "delta_m",
    "higher_is_better",
    "list_metrics",
]
