"""Fit a linear MTL estimator on a table described by a YAML config (``manytask fit-linear``).

Example config (shared-input form: one target column per task)::

    data:
      path: data.csv            # .csv, .csv.gz or .parquet (relative to the config file)
      inputs: [x1, x2, x3]
      targets: [task_a, task_b]
    estimator:
      name: l21                 # short name, see manytask.linear._catalog
      loss: squared             # squared (regression) | logistic (binary classification)
      params: {alpha: 0.1}
    split: {test_fraction: 0.25, seed: 0}
    output_dir: runs/l21

Multi-input form: replace ``targets`` by ``target: score`` and ``task: school`` (a column whose
values name each row's task).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pydantic
import yaml

from manytask._registry import OptionsError, UnknownNameError

__all__ = ["LinearFitConfig", "fit_linear"]


class _Strict(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)


class DataConfig(_Strict):
    """The table: its path, input columns and either ``targets`` or ``target`` + ``task``."""

    path: Path
    inputs: list[str] = pydantic.Field(min_length=1)
    targets: list[str] | None = None
    target: str | None = None
    task: str | None = None

    @pydantic.model_validator(mode="after")
    def _one_form(self) -> DataConfig:
        shared = self.targets is not None
        multi = self.target is not None or self.task is not None
        if shared == multi or (multi and (self.target is None or self.task is None)):
            raise ValueError(
                "give either 'targets' (one column per task, shared inputs) or both 'target' "
                "and 'task' (multi-input form)"
            )
        return self


class EstimatorConfig(_Strict):
    """Which estimator (short name), which loss, and its hyperparameters."""

    name: str
    loss: Literal["squared", "logistic"] = "squared"
    params: dict[str, Any] = pydantic.Field(default_factory=dict)


class SplitConfig(_Strict):
    """Optional held-out test part (stratified by task in the multi-input form)."""

    test_fraction: float = pydantic.Field(default=0.0, ge=0.0, lt=1.0)
    seed: int = 0


class LinearFitConfig(_Strict):
    """The whole ``fit-linear`` config."""

    data: DataConfig
    estimator: EstimatorConfig
    split: SplitConfig = SplitConfig()
    output_dir: Path


def _load_config(config_path: Path) -> LinearFitConfig:
    raw = yaml.safe_load(Path(config_path).read_text())
    if not isinstance(raw, dict):
        raise ValueError(f"{config_path}: the config must be a YAML mapping.")
    try:
        return LinearFitConfig.model_validate(raw)
    except pydantic.ValidationError as err:
        first = err.errors()[0]
        key = ".".join(str(p) for p in first["loc"]) or "(root)"
        raise ValueError(
            f"{config_path}: config key {key!r}: {first['msg']} (got {first.get('input')!r})."
        ) from None


def _read_table(path: Path) -> Any:
    try:
        import pandas as pd
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("fit-linear reads tables with pandas: pip install pandas") from err
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    return pd.read_csv(path)


def _columns(table: Any, names: list[str], key: str) -> np.ndarray:
    missing = [c for c in names if c not in table.columns]
    if missing:
        raise ValueError(
            f"config key {key!r}: column(s) {missing} not in the table; it has "
            f"{list(table.columns)}."
        )
    return table[names].to_numpy()


def fit_linear(config_path: Path) -> dict[str, Any]:
    """Fit the estimator a config describes; print and save per-task metrics and ``coef_``.

    Args:
        config_path: YAML file validated by :class:`LinearFitConfig` (unknown keys and wrong
            types raise ``ValueError`` naming the key).

    Returns:
        ``{"metric", "per_task", "mean", "n_train", "n_test", "output_dir"}``; the metric is
        RMSE for ``loss: squared`` and error rate for ``loss: logistic``, on the test part
        (or on the training data when ``test_fraction`` is 0).
    """
    from manytask.linear._catalog import CLASSIFIERS, REGRESSORS

    config_path = Path(config_path)
    cfg = _load_config(config_path)
    registry = CLASSIFIERS if cfg.estimator.loss == "logistic" else REGRESSORS
    if cfg.estimator.name not in registry:
        try:
            registry.get(cfg.estimator.name)
        except UnknownNameError as err:
            raise ValueError(f"{config_path}: config key 'estimator.name': {err}") from None
    try:
        params = registry.validate(cfg.estimator.name, cfg.estimator.params)
    except OptionsError as err:
        raise ValueError(f"{config_path}: config key 'estimator.params': {err}") from None
    data_path = cfg.data.path if cfg.data.path.is_absolute() else config_path.parent / cfg.data.path
    if not data_path.is_file():
        raise FileNotFoundError(f"config key 'data.path': table {data_path} not found.")
    table = _read_table(data_path)
    X = _columns(table, cfg.data.inputs, "data.inputs").astype(float)
    if cfg.data.targets is not None:
        Y = _columns(table, cfg.data.targets, "data.targets")
        task_names = list(cfg.data.targets)
        task = None
    else:
        Y = _columns(table, [cfg.data.target], "data.target").ravel()  # type: ignore[list-item]
        names, task = np.unique(  # type: ignore[call-overload]
            _columns(table, [cfg.data.task], "data.task").ravel(),  # type: ignore[list-item]
            return_inverse=True,
        )
        task_names = [str(n) for n in names]

    rng = np.random.default_rng(cfg.split.seed)
    test = np.zeros(len(X), dtype=bool)
    if cfg.split.test_fraction > 0:
        groups = (
            [np.flatnonzero(task == t) for t in range(len(task_names))]
            if task is not None
            else [np.arange(len(X))]
        )
        for rows in groups:
            # keep at least one training row per task
            n_test = min(int(round(cfg.split.test_fraction * len(rows))), len(rows) - 1)
            test[rng.permutation(rows)[:n_test]] = True
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
    out.mkdir(parents=True, exist_ok=True)
    header = ",".join(["task", *cfg.data.inputs, "intercept"])
    with open(out / "coef.csv", "w") as fh:
        fh.write(header + "\n")
        for name, w, b in zip(task_names, est.coef_, est.intercept_, strict=True):
            fh.write(",".join([name, *(f"{v:.10g}" for v in w), f"{b:.10g}"]) + "\n")
    (out / "metrics.json").write_text(json.dumps(result, indent=2))
    (out / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    print(
        f"{type(est).__name__} on {data_path.name}: {metric} on the {result['evaluated_on']} part"
    )
    width = max(len(n) for n in per_task)
    for name, value in per_task.items():
        print(f"  {name:<{width}}  {value:.4f}")
    print(f"  {'mean':<{width}}  {result['mean']:.4f}")
    return result
