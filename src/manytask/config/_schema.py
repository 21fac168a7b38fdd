"""Run configuration: YAML validated with pydantic; every key and registered name is checked."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

import pydantic
import yaml
from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, PositiveFloat, PositiveInt

from .._utils import StrictModel, load_yaml, validation_messages
from ..tasks._auxiliary import expand_auxiliary

__all__ = [
    "Config", "ConfigError", "Component", "apply_overrides", "load_config", "parse_config",
    "read_config", "validate_config",
]


class ConfigError(ValueError):
    """A configuration that is malformed: the message names the key and the fix."""


class Component(BaseModel):
    """A registered component: ``name`` plus its options as further keys."""

    model_config = ConfigDict(extra="allow")
    name: str

    def options(self) -> dict[str, Any]:
        """The keys besides ``name`` (and the subclass's own fields)."""
        return dict(self.model_extra or {})


class SamplerConfig(Component):
    """``data.sampler:`` the task sampler by name and its options."""

    name: str = "proportional"


class EncoderConfig(Component):
    """``model.encoder:`` the shared encoder by name and its options."""

    name: str = "mlp"


class BalancerConfig(Component):
    """``balancer:`` the balancing method by name and its options."""

    name: str = "ew"


class KeepLabelsConfig(StrictModel):
    """``data.keep_labels:`` only a seeded subset of the training rows keeps its labels."""

    fraction: float | None = Field(default=None, gt=0, le=1)
    samples: PositiveInt | None = None
    unlabelled_batch_size: PositiveInt | None = None
    """Rows of the unlabelled sources appended to every batch (for the view tasks); unset: the
    unlabelled sources are sources like the others, chosen for whole batches by the sampler."""


class DataConfig(Component):
    """``data:`` the dataset by name, its options, batch sizes and the task sampler."""

    name: str = "demo"
    batch_size: PositiveInt = 64
    eval_batch_size: PositiveInt = 256
    standardize_targets: bool = True
    keep_labels: KeepLabelsConfig | None = None
    sampler: SamplerConfig = Field(default_factory=SamplerConfig)


class ModelConfig(Component):
    """``model:`` the sharing scheme by name, its encoder and options."""

    name: str = "hps"
    encoder: EncoderConfig = Field(default_factory=EncoderConfig)


class TaskConfig(StrictModel):
    """``tasks.<name>:`` per-task overrides of the dataset's task definitions."""

    role: Literal["main", "auxiliary", "adversarial"] | None = None
    lr: PositiveFloat | None = None
    head_hidden: int | None = Field(default=None, ge=0)
    head_dropout: float | None = Field(default=None, ge=0.0, lt=1.0)
    head_grid: PositiveInt | None = None  # a sample-level head on a map: average over a k x k grid
    attach_at: PositiveInt | None = None
    reversal: PositiveFloat | None = None
    reversal_schedule: Literal["constant", "ganin"] | None = None
    reads: Literal["all", "forward", "backward"] | None = None
    metrics: list[str] | None = None
    loss: str | None = None
    view: str | None = None
    level: Literal["sample", "token", "pixel"] | None = None
    kind: Literal["regression", "binary", "classification"] | None = None
    num_outputs: PositiveInt | None = None
    num_classes: int | None = Field(default=None, ge=2)
    crf: bool | None = None
    every: PositiveInt | None = None  # trained every k-th step (asynchronous training)
    start: int | None = Field(default=None, ge=0)  # first step it trains (0-based)
    stop: PositiveInt | None = None  # the step from which it no longer trains


class OptimizerConfig(StrictModel):
    """``optimizer:`` optimizer, learning rates and schedule."""

    name: Literal["adam", "adamw", "sgd"] = "adam"
    lr: PositiveFloat = 1e-3
    weight_decay: NonNegativeFloat = 0.0
    momentum: NonNegativeFloat = 0.9
    shared_lr: PositiveFloat | None = None
    scheduler: Literal["constant", "cosine", "step"] = "constant"
    warmup_steps: int = Field(default=0, ge=0)
    decay_every: PositiveInt | None = None
    decay_factor: float = Field(default=0.1, gt=0.0, le=1.0)

    @pydantic.model_validator(mode="after")
    def _options_that_apply(self) -> OptimizerConfig:
        """An option the chosen optimizer or schedule does not read is refused, not ignored (a saved
        config, which writes every key, passes: it holds the defaults there)."""
        defaults = OptimizerConfig.model_fields
        step = self.scheduler == "step"
        owners = {"momentum": ("name: sgd", self.name == "sgd"), "decay_every": ("scheduler: step", step),
                  "decay_factor": ("scheduler: step", step)}
        for key, (owner, applies) in owners.items():
            if not applies and getattr(self, key) != defaults[key].default:
                raise ValueError(f"{key} is read only with {owner} (this is {self.name!r}, scheduler "
                                 f"{self.scheduler!r}); remove it, or set {owner}.")
        return self


class TrainingConfig(StrictModel):
    """``training:`` length, evaluation, checkpoints, early stopping and device."""

    steps: PositiveInt = 1000
    eval_every: PositiveInt = 100
    checkpoint_every: int | None = Field(default=None, ge=0)
    monitor: str | None = None
    patience: PositiveInt | None = None
    max_grad_norm: PositiveFloat | None = None
    device: str = "auto"  # auto | cpu | cuda | cuda:K | mps
    precision: Literal["32", "bf16", "fp16", "16"] = "32"  # "16": fp16
    progress: bool = True
    init_from: str | None = None
    freeze: Literal["none", "shared"] = "none"
    alternate: list[list[str]] | None = None  # groups of tasks taking turns, one group a step
    alternate_order: Literal["round_robin", "random"] = "round_robin"


class LoggingConfig(StrictModel):
    """``logging:`` optional loggers beside ``metrics.csv``."""

    tensorboard: bool = False  # <run_dir>/tensorboard (pip install "manytask[tensorboard]")
    every: PositiveInt = 10  # steps between training scalars
    report: bool = True  # <run_dir>/report.html at the end of train, compare and bench (manytask report DIR)


class RelatednessConfig(StrictModel):
    """``relatedness:`` which tasks help which, measured while training (``docs/relatedness.md``)."""

    every: int = Field(default=0, ge=0)  # steps between gradient/lookahead measurements (0: off)
    lookahead: bool = True  # also the lookahead affinity of Fifty et al. 2021 (T + 1 forwards a measurement)
    level: Literal["exact", "representation"] = "exact"  # gradients on the shared parameters, or on z
    groups: PositiveInt = 2  # manytask relate: how many groups (networks) to recommend


class LinearConfig(StrictModel):
    """``linear:`` the estimator ``manytask fit-linear`` fits on the same data (``docs/linear.md``)."""

    name: str  # ridge, lasso, mean_regularized, l21, l1lq, trace, dirty, sparse_low_rank, rmtl, ...
    params: dict[str, Any] = Field(default_factory=dict)  # fixed hyperparameters, e.g. {alpha: 0.1}
    search: dict[str, list[Any]] = Field(default_factory=dict)  # a grid, chosen by cross-validation
    folds: int = Field(default=5, ge=2)  # cross-validation folds on the training rows (per task)


class Config(StrictModel):
    """A whole run. Every section has defaults; see ``docs/configuration.md``."""

    seed: int = 0
    run_dir: str = "runs/default"
    data: DataConfig = Field(default_factory=DataConfig)
    tasks: dict[str, TaskConfig] = Field(default_factory=dict)
    views: dict[str, dict[str, Any]] = Field(default_factory=dict)
    include_tasks: list[str] | None = None
    model: ModelConfig = Field(default_factory=ModelConfig)
    balancer: BalancerConfig = Field(default_factory=BalancerConfig)
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    relatedness: RelatednessConfig = Field(default_factory=RelatednessConfig)
    linear: LinearConfig | None = None  # read by fit-linear only

    @pydantic.field_validator("tasks", mode="before")
    @classmethod
    def _auxiliary_kinds(cls, tasks: Any) -> Any:
        """``tasks.<name>: {auxiliary: <kind>, ...}`` becomes the task that kind means."""
        if not isinstance(tasks, Mapping):
            return tasks
        keys = TaskConfig.model_fields
        return {name: expand_auxiliary(str(name), spec, "tasks", keys) if isinstance(spec, Mapping) else spec
                for name, spec in tasks.items()}


Model = TypeVar("Model", bound=StrictModel)


def validate_config(
    model: type[Model], raw: Mapping[str, Any] | None, source: str | Path | None = None
) -> Model:
    """Validate a raw config dict against ``model`` (a :class:`StrictModel`): every problem is
    listed, each naming its key (and, for an unknown key, the closest valid ones).

    ``source`` (the file it came from) is named in the message."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"A config must be a mapping of sections, got {type(raw).__name__}.")
    try:
        return model.model_validate(dict(raw))
    except pydantic.ValidationError as error:
        where = f" in {source}" if source is not None else ""
        lines = validation_messages(error, model)
        raise ConfigError(f"Invalid configuration{where}:\n  " + "\n  ".join(lines)) from None


def parse_config(raw: Mapping[str, Any] | None) -> Config:
    """Validate a config dict (keys and types; registered names are checked by ``check_config``)."""
    return validate_config(Config, raw)


def apply_overrides(raw: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``key.sub=value`` overrides (values parsed as YAML) to a raw config dict."""
    for override in overrides:
        key, sep, text = override.partition("=")
        if not sep or not key:
            raise ConfigError(f"Override {override!r} must look like key.subkey=value.")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise ConfigError(f"Override {override!r}: the value is not valid YAML ({error}).") from None
        node = raw
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"Override {override!r}: {part!r} is not a section.")
            node = child
        node[parts[-1]] = value
    return raw


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> Config:
    """Read a YAML config file, apply overrides, validate."""
    return validate_config(Config, read_config(path, overrides), path)


def read_config(path: str | Path, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """The raw mapping in a YAML config file, with ``key.sub=value`` overrides applied."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Config file {path} does not exist. Pass the path of a YAML file "
                          "(see examples/ for templates).")
    try:
        raw = load_yaml(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"Config file {path} is not valid YAML: {error}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"Config file {path} must hold a mapping of sections, got {type(raw).__name__}.")
    return apply_overrides(raw, overrides)
