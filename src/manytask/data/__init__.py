"""Batches, data sources, task samplers, the mixing loader and the dataset registry."""

from ._batch import Batch, Inputs
from ._dataset import DATASETS, MultiTaskData, create_dataset, data_root
from ._fewer_labels import keep_labels
from ._loader import MultiSourceLoader
from ._samplers import (
    SAMPLERS,
    Annealed,
    Proportional,
    RoundRobin,
    TaskSampler,
    Temperature,
    Uniform,
    create_sampler,
)
from ._source import EmptySourceError, Source, TensorSource

__all__ = [
    "DATASETS",
    "SAMPLERS",
    "Annealed",
    "Batch",
    "EmptySourceError",
    "Inputs",
    "MultiSourceLoader",
    "MultiTaskData",
    "Proportional",
    "RoundRobin",
    "Source",
    "TaskSampler",
    "Temperature",
    "TensorSource",
    "Uniform",
    "create_dataset",
    "create_sampler",
    "data_root",
    "keep_labels",
]
