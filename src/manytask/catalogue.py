"""Every registry, by kind, after importing the modules that fill them."""

from __future__ import annotations

from typing import Any

from . import demos as _demos  # noqa: F401  (registers the "demo" dataset)
from ._registry import Registry
from .balancing import BALANCERS
from .data import DATASETS, SAMPLERS
from .data import datasets as _datasets  # noqa: F401  (registers the dataset loaders)
from .linear._catalog import LINEAR
from .metrics import METRICS
from .models import ENCODERS, MODELS
from .tasks._auxiliary import AUXILIARY
from .views import VIEWS

__all__ = ["REGISTRIES"]

REGISTRIES: dict[str, Registry[Any]] = {
    "models": MODELS,
    "encoders": ENCODERS,
    "balancers": BALANCERS,
    "samplers": SAMPLERS,
    "datasets": DATASETS,
    "metrics": METRICS,
    "views": VIEWS,
    "auxiliary": AUXILIARY,  # auxiliary kinds: auxiliary: <kind> in a task's entry
    "linear": LINEAR,  # fit-linear's estimators
}
