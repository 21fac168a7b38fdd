"""The ``manytask fit-linear`` config: a table and one linear MTL estimator (``manytask.linear``).

Example (multi-input form: one target column and a column naming each row's task)::

    data:
      path: data.csv            # .csv, .csv.gz or .parquet (relative to the config file)
      inputs: [x1, x2, x3]
      target: score
      task: school              # or, shared-input form: targets: [task_a, task_b]
    estimator:
      name: l21                 # short name, see manytask.linear._catalog
      loss: squared             # squared (regression) | logistic (binary classification)
      params: {alpha: 0.1}
    split: {test_fraction: 0.25, seed: 0}
    output_dir: runs/l21
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from .._utils import StrictModel
from ._schema import read_config, validate_config

__all__ = [
    "LinearDataConfig",
    "LinearEstimatorConfig",
    "LinearFitConfig",
    "LinearSplitConfig",
    "load_linear_config",
]


class LinearDataConfig(StrictModel):
    """``data:`` the table, its input columns and either ``targets`` or ``target`` + ``task``."""

    path: Path
    inputs: list[str] = Field(min_length=1)
    targets: list[str] | None = None
    target: str | None = None
    task: str | None = None

    @model_validator(mode="after")
    def _one_form(self) -> LinearDataConfig:
        shared = self.targets is not None
        multi = self.target is not None or self.task is not None
        if shared == multi or (multi and (self.target is None or self.task is None)):
            raise ValueError(
                "give either 'targets' (one column per task, shared inputs) or both 'target' "
                "and 'task' (multi-input form)"
            )
        return self


class LinearEstimatorConfig(StrictModel):
    """``estimator:`` which estimator (short name), which loss, and its hyperparameters."""

    name: str
    loss: Literal["squared", "logistic"] = "squared"
    params: dict[str, Any] = Field(default_factory=dict)


class LinearSplitConfig(StrictModel):
    """``split:`` an optional held-out test part (stratified by task in the multi-input form)."""

    test_fraction: float = Field(default=0.0, ge=0.0, lt=1.0)
    seed: int = 0


class LinearFitConfig(StrictModel):
    """The whole ``fit-linear`` config."""

    data: LinearDataConfig
    estimator: LinearEstimatorConfig
    split: LinearSplitConfig = Field(default_factory=LinearSplitConfig)
    output_dir: Path


def load_linear_config(path: str | Path, overrides: Sequence[str] = ()) -> LinearFitConfig:
    """Read a ``fit-linear`` YAML file, apply ``key.sub=value`` overrides, validate.

    Errors are those of :func:`~manytask.config.load_config`: a :class:`ConfigError` naming each
    bad key. Registered names (``estimator.name``, ``estimator.params``) are checked by
    :func:`~manytask.linear._cli.fit_linear`.
    """
    return validate_config(LinearFitConfig, read_config(path, overrides), path)
