"""Validated run configuration (YAML + pydantic)."""

from ._linear import (
    LinearDataConfig,
    LinearEstimatorConfig,
    LinearFitConfig,
    LinearSplitConfig,
    load_linear_config,
)
from ._schema import (
    Component,
    Config,
    ConfigError,
    DataConfig,
    ModelConfig,
    OptimizerConfig,
    TaskConfig,
    TrainingConfig,
    apply_overrides,
    load_config,
    parse_config,
    read_config,
    validate_config,
)

__all__ = [
    "Component",
    "Config",
    "ConfigError",
    "DataConfig",
    "LinearDataConfig",
    "LinearEstimatorConfig",
    "LinearFitConfig",
    "LinearSplitConfig",
    "ModelConfig",
    "OptimizerConfig",
    "TaskConfig",
    "TrainingConfig",
    "apply_overrides",
    "load_config",
    "load_linear_config",
    "parse_config",
    "read_config",
    "validate_config",
]
