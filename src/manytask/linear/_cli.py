"""Fit a linear MTL estimator on a table described by a YAML config (``manytask fit-linear``).

The config is a :class:`manytask.config.LinearFitConfig` (its module shows an example), read and
validated like every other manytask config: the same errors, and the same ``--set key.sub=value``
overrides.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from manytask._registry import OptionsError, UnknownNameError
from manytask._utils import atomic_write, did_you_mean, read_table, split_groups, split_indices
from manytask.config import ConfigError, LinearFitConfig, load_linear_config

__all__ = ["LinearFitConfig", "fit_linear"]


def _columns(table: pd.DataFrame, names: list[str], key: str, numeric: bool = False) -> np.ndarray:
    """The ``names`` columns of ``table``; an absent (or, with ``numeric``, a text) one raises."""
    for name in names:
        if name not in table.columns:
            raise ConfigError(
                f"Config key {key!r}: column {name!r} is not in the table."
                + did_you_mean(name, table.columns, "Columns")
            )
        if numeric and not pd.api.types.is_numeric_dtype(table[name]):
            value = next(v for v in table[name] if pd.isna(pd.to_numeric(v, errors="coerce")))
            raise ConfigError(
                f"Config key {key!r}: column {name!r} must hold numbers, but holds {value!r} "
                "(fit-linear does not encode text; an empty cell is missing and not allowed)."
            )
    return table[names].to_numpy()


def fit_linear(config_path: str | Path, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Fit the estimator a config describes; print and save per-task metrics and ``coef_``.

    Args:
        config_path: YAML file validated by :class:`~manytask.config.LinearFitConfig` (unknown
            keys and wrong types raise :class:`~manytask.config.ConfigError` naming the key).
        overrides: ``key.sub=value`` strings applied before validation, as ``--set`` does
            (e.g. ``estimator.params.alpha=0.5``).

    Returns:
        ``{"metric", "per_task", "mean", "n_train", "n_test", "output_dir"}``; the metric is
        RMSE for ``loss: squared`` and error rate for ``loss: logistic``, on the test part
        (or on the training data when ``test_fraction`` is 0).
    """
    from manytask.linear._catalog import CLASSIFIERS, REGRESSORS

    config_path = Path(config_path)
    cfg = load_linear_config(config_path, overrides)
    registry = CLASSIFIERS if cfg.estimator.loss == "logistic" else REGRESSORS
    try:
        registry.get(cfg.estimator.name)
    except UnknownNameError as err:
        raise ConfigError(f"Config key 'estimator.name': {err}") from None
    try:
        params = registry.validate(cfg.estimator.name, cfg.estimator.params)
    except OptionsError as err:
        raise ConfigError(f"Config key 'estimator.params': {err}") from None
    data_path = cfg.data.path if cfg.data.path.is_absolute() else config_path.parent / cfg.data.path
    if not data_path.is_file():
        raise FileNotFoundError(
            f"Config key 'data.path': table {data_path} not found (a relative path is read from "
            f"the config file's folder, {config_path.parent})."
        )
    table = read_table(data_path)
    X = _columns(table, cfg.data.inputs, "data.inputs", numeric=True).astype(float)
    split = cfg.split
    if cfg.data.targets is not None:
        Y = _columns(table, cfg.data.targets, "data.targets")
        task_names = list(cfg.data.targets)
        task = None
        _, _, test_idx = split_indices(len(X), 0.0, split.test_fraction, split.seed)
    else:
        assert cfg.data.target is not None and cfg.data.task is not None  # the config checks it
        Y = _columns(table, [cfg.data.target], "data.target").ravel()
        ids = _columns(table, [cfg.data.task], "data.task").ravel()
        names, task = np.unique(ids, return_inverse=True)
        task_names = [str(n) for n in names]
        _, _, test_idx = split_groups(task, 0.0, split.test_fraction, split.seed)
    test = np.zeros(len(X), dtype=bool)
    test[test_idx.numpy()] = True
    train = ~test

    est = registry.create(cfg.estimator.name, **params)
    fit_kw = {} if task is None else {"task": task[train]}
    est.fit(X[train], Y[train], **fit_kw)
    rows = test if test.any() else train
    pred_kw = {} if task is None else {"task": task[rows]}
    pred = est.predict(X[rows], **pred_kw)
    if task is None and pred.ndim == 1:  # a single target column
        pred = pred[:, None]
    logistic = cfg.estimator.loss == "logistic"
    per_task = {}
    for t, name in enumerate(task_names):
        if task is None:
            truth, guess = Y[rows][:, t], pred[:, t]
        else:
            sel = task[rows] == t
            truth, guess = Y[rows][sel], pred[sel]
        if truth.size == 0:
            continue
        per_task[name] = (
            float(np.mean(truth != guess))
            if logistic
            else float(np.sqrt(np.mean((truth.astype(float) - guess) ** 2)))
        )
    metric = "error_rate" if logistic else "rmse"
    result = {
        "metric": metric,
        "evaluated_on": "test" if test.any() else "train",
        "per_task": per_task,
        "mean": float(np.mean(list(per_task.values()))),
        "n_train": int(train.sum()),
        "n_test": int(test.sum()),
        "output_dir": str(cfg.output_dir),
    }
    out = cfg.output_dir
    coef = io.StringIO()
    coef.write(",".join(["task", *cfg.data.inputs, "intercept"]) + "\n")
    for name, w, b in zip(task_names, est.coef_, est.intercept_, strict=True):
        coef.write(",".join([name, *(f"{v:.10g}" for v in w), f"{b:.10g}"]) + "\n")
    atomic_write(out / "coef.csv", coef.getvalue())
    atomic_write(out / "metrics.json", json.dumps(result, indent=2))
    atomic_write(out / "config.yaml", yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    print(
        f"{type(est).__name__} on {data_path.name}: {metric} on the {result['evaluated_on']} part"
    )
    width = max(len(n) for n in per_task)
    for name, value in per_task.items():
        print(f"  {name:<{width}}  {value:.4f}")
    print(f"  {'mean':<{width}}  {result['mean']:.4f}")
    return result
