"""Validated run configuration (YAML + pydantic)."""

from ._schema import (
    Component,
    Config,
    ConfigError,
    DataConfig,
    LinearConfig,
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
    "LinearConfig",
    "ModelConfig",
    "OptimizerConfig",
    "TaskConfig",
    "TrainingConfig",
    "apply_overrides",
    "load_config",
    "parse_config",
    "read_config",
    "validate_config",
]
