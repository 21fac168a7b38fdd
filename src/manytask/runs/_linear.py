"""``manytask fit-linear``: a regularised linear MTL estimator (``manytask.linear``) fitted on the
data ``train`` reads — the same dataset, preprocessing, split, tasks and metrics — with its
hyperparameters chosen by cross-validation on the training rows, written as a run directory."""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor, nn

from .._registry import OptionsError, UnknownNameError
from .._utils import atomic_write
from .._utils._peak_memory import own_peak_rss_mb
from ..config import Config, ConfigError
from ..data import Source, TensorSource
from ..evaluation import evaluate
from ..metrics import higher_is_better
from ..models import MultiTaskModel
from ..tasks import BinaryClassification, Regression, Task
from ._build import check_config, load_data, save_config, select_tasks, standardize_targets
from ._run_dir import claim
from ._saved import save_run_spec

__all__ = ["LinearHeads", "LinearRun", "fit_linear_run", "read_coef"]


class LinearHeads(nn.Module):
    """One linear function per task, ``x @ coef[t] + intercept[t]``, as a manytask model: what
    :func:`~manytask.evaluation.evaluate` scores (a regression task's output is its standardised
    target, a binary task's its logit, as the deep heads give them)."""

    coef: Tensor  # [T, D]
    intercept: Tensor  # [T]

    def __init__(self, names: list[str], coef: np.ndarray, intercept: np.ndarray) -> None:
        super().__init__()
        self.position = {name: t for t, name in enumerate(names)}
        self.register_buffer("coef", torch.as_tensor(np.asarray(coef), dtype=torch.float32))
        self.register_buffer("intercept", torch.as_tensor(np.asarray(intercept), dtype=torch.float32))

    def forward(self, inputs: Tensor, names: list[str]) -> dict[str, Tensor]:
        rows = torch.tensor([self.position[n] for n in names], device=inputs.device)
        outputs = inputs.float() @ self.coef[rows].T + self.intercept[rows]  # [N, tasks]: one product
        return {name: outputs[:, [k]] for k, name in enumerate(names)}


def read_coef(path: Path, names: list[str]) -> LinearHeads:
    """The linear heads ``coef.csv`` holds (one row per task: its weights, then the intercept)."""
    with path.open(newline="") as handle:
        rows = {row[0]: row[1:] for row in list(csv.reader(handle))[1:]}
    missing = [n for n in names if n not in rows]
    if missing:
        raise ConfigError(f"{path} has no row for task(s) {', '.join(missing)}: it was not written for this run.")
    values = np.array([[float(v) for v in rows[n]] for n in names])
    heads = LinearHeads(names, values[:, :-1], values[:, -1])
    return heads.eval()


@dataclass(frozen=True)
class _Pairs:
    """The labelled (row, task) pairs of the training rows, the estimators' multi-input form."""

    inputs: Tensor  # [P, D]
    task: np.ndarray  # [P] task position
    fitted: np.ndarray  # [P] what the estimator fits: a standardised value, or a 0/1 label
    targets: dict[str, Tensor]  # per task, [P, ...] the raw target (its pairs; zeros elsewhere)

    def source(self, keep: np.ndarray, names: list[str]) -> TensorSource:
        """The pairs in ``keep`` as a source whose mask labels each pair for its own task."""
        index = torch.from_numpy(np.flatnonzero(keep))
        task = torch.from_numpy(self.task[keep])
        return TensorSource(self.inputs[index], {n: self.targets[n][index] for n in names},
                            {n: task == t for t, n in enumerate(names)}, name="cross-validation fold")


def _pairs(sources: list[TensorSource], tasks: tuple[Task, ...]) -> _Pairs:
    inputs, task_ids, fitted, raw = [], [], [], []
    for source in sources:
        for t, task in enumerate(tasks):
            if task.name not in source.targets:
                continue
            mask = source.masks[task.name]
            target = source.targets[task.name][mask]
            inputs.append(source.inputs[mask])  # type: ignore[index]
            task_ids.append(np.full(int(mask.sum()), t))
            fitted.append(task.loss_target(target.float()).reshape(-1).numpy())
            raw.append((t, target))
    count = sum(len(ids) for ids in task_ids)
    targets = {}
    for t, task in enumerate(tasks):
        like = next((target for s, target in raw if s == t and len(target)), None)
        if like is None:
            raise ConfigError(f"Task {task.name!r} has no labelled training row: fit-linear cannot fit it. Leave it "
                              "out with include_tasks, or give it labels.")
        targets[task.name] = torch.zeros(count, *like.shape[1:], dtype=like.dtype)
    start = 0
    for (t, target), ids in zip(raw, task_ids):
        targets[tasks[t].name][start:start + len(ids)] = target
        start += len(ids)
    return _Pairs(torch.cat(inputs).float(), np.concatenate(task_ids), np.concatenate(fitted), targets)


def _folds(task: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Each pair's fold: every task's labelled pairs dealt round-robin over the folds in a seeded
    order, so that each fold holds about 1/folds of every task's labels."""
    rng = np.random.default_rng(seed)
    fold = np.empty(len(task), dtype=np.int64)
    for t in np.unique(task):
        members = rng.permutation(np.flatnonzero(task == t))
        fold[members] = np.arange(len(members)) % folds
    return fold


def estimator_kind(tasks: tuple[Task, ...]) -> str:
    """``logistic`` for binary tasks, ``squared`` for regression ones; anything else is refused."""
    kinds = {t.name: ("logistic" if isinstance(t, BinaryClassification) and t.num_labels == 1 else
                      "squared" if isinstance(t, Regression) and t.num_outputs == 1 else None) for t in tasks}
    unfit = [n for n, k in kinds.items() if k is None]
    if unfit:
        raise ConfigError(f"fit-linear fits one output per task, binary (logistic loss) or regression (squared "
                          f"loss); {', '.join(unfit)} is not (a multi-class, multi-label, multi-output or "
                          "view task). Leave it out with include_tasks, or train it with `manytask train`.")
    if len(set(kinds.values())) > 1:
        by = {k: [n for n, v in kinds.items() if v == k] for k in set(kinds.values())}
        raise ConfigError(f"fit-linear fits one loss for all tasks, but {', '.join(by['logistic'])} are binary and "
                          f"{', '.join(by['squared'])} are regression: fit each group on its own "
                          "(include_tasks: [...]).")
    return str(next(iter(kinds.values())))


def _grid(config: Config) -> list[dict[str, Any]]:
    assert config.linear is not None
    search = config.linear.search
    for key, values in search.items():
        if not values:
            raise ConfigError(f"Config key 'linear.search.{key}': give at least one value to try.")
    keys = sorted(search)
    return [{**config.linear.params, **dict(zip(keys, values))}
            for values in itertools.product(*(search[k] for k in keys))]


@dataclass(frozen=True)
class LinearRun:
    """A fitted linear run: the test (else validation) metrics of the chosen hyperparameters."""

    test: dict[str, float]
    split: str
    run_dir: Path
    params: dict[str, Any]
    search: list[dict[str, Any]]  # each grid point: params, score (mean and std over folds)
    estimator: Any = None  # the fitted scikit-learn estimator (e.g. MTRL's task_covariance_)


def _metrics(model: LinearHeads, tasks: tuple[Task, ...], source: Source, batch_size: int = 256) -> dict[str, float]:
    """The tasks' metrics of ``model`` on ``source``: the deep path's evaluation, unchanged."""
    return evaluate(cast(MultiTaskModel, model), tasks, source, batch_size)


def _described(keys: list[str]) -> str:
    """What :func:`_score` computes, in words."""
    metrics = sorted({k.split("/", 1)[1] for k in keys})
    signs = "" if all(higher_is_better(m) for m in metrics) else " (negated where lower is better)"
    if len(keys) == 1:
        return keys[0] + signs
    return f"mean {'/'.join(metrics)} over {len(keys)} main tasks{signs}"


def _score(metrics: dict[str, float], keys: list[str]) -> float:
    """The mean of the main tasks' primary metric, sign-flipped where lower is better."""
    values = [(1 if higher_is_better(k.split("/", 1)[1]) else -1) * metrics[k] for k in keys]
    finite = [v for v in values if math.isfinite(v)]
    return statistics.fmean(finite) if finite else math.nan


def fit_linear_run(config: Config, run_dir: Path | str | None = None, overwrite: bool = False,
                   report: bool = True, log: Callable[[str], None] = print) -> LinearRun:
    """Fit ``config.linear`` on the training rows of ``config``'s data and score it on the test
    split (else validation) with the tasks' own metrics; write the run directory.

    Every grid point of ``linear.search`` is scored by ``linear.folds``-fold cross-validation on
    the training rows (each task's labels spread over the folds; the score is the mean over main
    tasks of their primary metric); the best is refitted on all training rows. Writes
    ``config.yaml``, ``tasks.json`` (and ``preprocessing.json``), ``coef.csv``, ``search.csv``,
    ``results.json`` (as ``train`` does) and ``report.html``.
    """
    from ..linear._catalog import CLASSIFIERS, REGRESSORS

    if config.linear is None:
        raise ConfigError("fit-linear needs a 'linear:' section naming the estimator, e.g. linear: {name: trace, "
                          "search: {alpha: [0.01, 0.1, 1]}} (see docs/linear.md).")
    check_config(config)
    grid = _grid(config)
    target = Path(run_dir if run_dir is not None else config.run_dir)
    claim(target, overwrite=overwrite, resume=None, delete=False)  # the old run goes only once the new one is fitted
    data = load_data(config)
    tasks = standardize_targets(select_tasks(config, data), data)
    registry = CLASSIFIERS if estimator_kind(tasks) == "logistic" else REGRESSORS
    other = REGRESSORS if registry is CLASSIFIERS else CLASSIFIERS
    if config.linear.name not in registry.names() and config.linear.name in other.names():
        kinds = ("binary", "regression") if registry is CLASSIFIERS else ("regression", "binary")
        raise ConfigError(f"Config section 'linear': {config.linear.name!r} fits {kinds[1]} tasks only, and these "
                          f"tasks are {kinds[0]}; choose an estimator from `manytask list linear` that fits them.")
    try:
        for params in grid:
            registry.validate(config.linear.name, params)
    except (UnknownNameError, OptionsError) as error:
        raise ConfigError(f"Config section 'linear': {error}") from None
    sources = [s for s in data.train.values() if isinstance(s, TensorSource)]
    if len(sources) != len(data.train) or any(not isinstance(s.inputs, Tensor) or s.inputs.ndim != 2
                                              for s in sources):
        raise ConfigError(f"fit-linear needs rows of features (one 2-D input tensor); dataset {config.data.name!r} "
                          "gives other inputs (images, sentences, several inputs): train it with `manytask train`.")
    names = [t.name for t in tasks]
    pairs = _pairs(sources, tasks)
    counts = np.bincount(pairs.task, minlength=len(tasks))
    few = [f"{n} ({c})" for n, c in zip(names, counts) if c < config.linear.folds]
    if few:
        raise ConfigError(f"Config key 'linear.folds': {config.linear.folds} folds need as many labelled training "
                          f"rows per task; {', '.join(few)} have fewer. Lower linear.folds.")
    mains = [t for t in tasks if t.role == "main"] or list(tasks)
    keys = [f"{t.name}/{t.metrics[0]}" for t in mains]
    fold = _folds(pairs.task, config.linear.folds, config.seed)
    start = time.perf_counter()

    def fit(params: dict[str, Any], keep: np.ndarray) -> tuple[LinearHeads, Any]:
        assert config.linear is not None
        estimator = registry.create(config.linear.name, **params)
        try:
            estimator.fit(pairs.inputs[torch.from_numpy(keep)].numpy(), pairs.fitted[keep], task=pairs.task[keep])
        except ValueError as error:  # scikit-learn's checks: say which estimator and settings refused what
            order = ", ".join(f"{i} = {n}" for i, n in enumerate(names))
            raise ConfigError(f"Estimator {config.linear.name!r} with {params} could not be fitted on the training "
                              f"rows of {config.data.name!r}: {error} (tasks by index: {order})") from None
        if not hasattr(estimator, "coef_"):  # a kernel machine, a Gaussian process, nearest neighbours
            raise ConfigError(f"Estimator {config.linear.name!r} with {params} has no linear weights (coef_) for "
                              "fit-linear to score and save (it predicts from a kernel, a Gaussian process or the "
                              "training rows); use it from Python (manytask.linear), or choose a linear estimator.")
        return LinearHeads(names, estimator.coef_, estimator.intercept_), estimator

    search: list[dict[str, Any]] = []
    for number, params in enumerate(grid, 1):
        scores = []
        for k in range(config.linear.folds):
            metrics = _metrics(fit(params, fold != k)[0], tasks, pairs.source(fold == k, names))
            undefined = [key for key in keys if not math.isfinite(metrics[key])]
            if undefined:  # e.g. an AUROC on a fold whose rows of a task hold one class
                log(f"{params}, fold {k + 1}: {', '.join(undefined)} undefined on the fold's rows; left out of "
                    f"that fold's mean ({len(keys) - len(undefined)} of {len(keys)} tasks)")
            scores.append(_score(metrics, keys))
        finite = [s for s in scores if math.isfinite(s)]
        mean = statistics.fmean(finite) if finite else math.nan
        spread = statistics.stdev(finite) if len(finite) > 1 else 0.0
        search.append({"params": params, "score": mean, "score_std": spread, "folds": scores})
        if len(grid) > 1:
            log(f"[{number}/{len(grid)}] {params}: {_described(keys)} {mean:.4f} ± {spread:.4f} (cross-validated)")
    best = max(search, key=lambda r: r["score"] if math.isfinite(r["score"]) else -math.inf)
    model, estimator = fit(best["params"], np.ones(len(pairs.task), dtype=bool))
    seconds = time.perf_counter() - start
    split, source = ("test", data.test) if data.test is not None else ("val", data.val)
    metrics = _metrics(model, tasks, source, config.data.eval_batch_size) if source is not None else {}
    claim(target, overwrite=overwrite, resume=None)
    _write(target, config, tasks, data.input_info, model, metrics, split, best, search, seconds, keys)
    if report and config.logging.report:
        from ._train import try_report

        try_report(target)
    return LinearRun(metrics, split, target, best["params"], search, estimator)


def _write(run_dir: Path, config: Config, tasks: tuple[Task, ...], input_info: Any, model: LinearHeads,
           metrics: dict[str, float], split: str, best: dict[str, Any], search: list[dict[str, Any]],
           seconds: float, keys: list[str]) -> None:
    assert config.linear is not None
    save_config(config, run_dir)
    save_run_spec(run_dir, tasks, dict(input_info))
    features = list(input_info.get("feature_names") or [f"x{i}" for i in range(model.coef.shape[1])])
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["task", *features, "intercept"])
    for task, row, bias in zip(tasks, model.coef.tolist(), model.intercept.tolist()):
        writer.writerow([task.name, *(f"{v:.10g}" for v in row), f"{bias:.10g}"])
    atomic_write(run_dir / "coef.csv", buffer.getvalue())
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["params", "score", "score_std", *(f"fold_{k}" for k in range(len(search[0]["folds"])))])
    for row in search:
        writer.writerow([json.dumps(row["params"], sort_keys=True), row["score"], row["score_std"], *row["folds"]])
    atomic_write(run_dir / "search.csv", buffer.getvalue())
    summary = {
        "split": split,
        "metrics": {k: (None if math.isnan(v) else v) for k, v in metrics.items()},
        "cost": {"fit_seconds": seconds, "peak_memory_mb": own_peak_rss_mb(),
                 "peak_memory_kind": "process_max_rss"},
        "estimator": config.linear.name,
        "params": best["params"],
        "monitor": f"{_described(keys)}, cross-validated",
        "search": search,
    }
    atomic_write(run_dir / "results.json", json.dumps(summary, indent=2, default=str))
