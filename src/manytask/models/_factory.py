"""The model registry: sharing schemes by name."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from .._registry import Registry
from ..tasks import Task
from ._base import MultiTaskModel
from ._hard_sharing import HardSharing
from ._independent import Independent

__all__ = ["MODELS", "create_model"]

MODELS: Registry[MultiTaskModel] = Registry("model")


@MODELS.register("hps")
def hard_parameter_sharing(encoder: nn.Module, tasks: Sequence[Task], feature_dim: int | None = None) -> MultiTaskModel:
    """Hard parameter sharing: a shared encoder and one head per task (Caruana 1993)."""
    return HardSharing(encoder, tasks, feature_dim)


def create_model(name: str, **options: object) -> MultiTaskModel:
    """Build a registered model by name (``encoder`` and ``tasks`` among the options)."""
    return MODELS.create(name, **options)


@MODELS.register("independent")
def independent(encoder: nn.Module, tasks: Sequence[Task], feature_dim: int | None = None) -> MultiTaskModel:
    """No sharing: one encoder copy per task (single-task baselines in one run)."""
    return Independent(encoder, tasks, feature_dim)
