"""``manytask relate``: which tasks help which on the user's own data, and which groups to train."""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._utils import atomic_write
from ..config import Config, ConfigError
from ..metrics import higher_is_better
from ..relatedness import (
    TaskAffinity,
    TaskMatrix,
    best_groups,
    correlation_matrix,
    load_matrices,
    parameter_cosine,
    representation_similarity,
)
from ..tasks import Task
from ._build import build_model, check_config, load_data, select_tasks
from ._linear import estimator_kind, fit_linear_run
from ._run_dir import RunDirError, claim, config_changes
from ._saved import load_run
from ._train import config_of_run, train, try_report

__all__ = ["Relation", "relate"]

#: Most single-task and pair runs ``--pairs`` starts (24 tasks: 300 runs).
MAX_PAIR_RUNS = 300

#: The signed matrices a grouping is recommended from, in the order they are shown.
GROUPED = ("tag_affinity", "transfer_gain", "gradient_cosine")

#: Config keys a ``--resume`` may change in a finished run it reads back: they change neither what
#: that run trained nor its results (``train --resume`` may change more, as it trains on).
READ_BACK_KEYS = frozenset({"run_dir", "training.progress", "training.checkpoint_every", "data.eval_batch_size"})

#: Cross-validation folds of ``--linear``'s ridge and MTRL fits.
LINEAR_FOLDS = 3


@dataclass(frozen=True)
class Relation:
    """What ``relate`` measured: the matrices, each one's recommended groups, and how well the
    lookahead affinity ranks the pairs as the pair runs do (Spearman's rho; NaN without pairs).
    ``no_groups``: why a signed matrix recommends none (no pair measured, too many tasks)."""

    run_dir: Path
    matrices: tuple[TaskMatrix, ...]
    groups: dict[str, list[list[str]]]
    rank_correlation: float
    no_groups: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        lines = []
        for matrix in self.matrices:
            if matrix.signed:  # a conflict rate or a norm ratio has no partner to name
                lines += [f"{matrix.title}:", *(f"  {line}" for line in matrix.partners())]
        for name, groups in self.groups.items():
            lines.append(f"Groups from {name}: " + " | ".join(", ".join(g) for g in groups))
        lines += [f"No groups from {name}: {reason}" for name, reason in self.no_groups.items()]
        if math.isfinite(self.rank_correlation):
            lines.append(f"Rank correlation of lookahead affinity and pair-run transfer (off-diagonal): "
                         f"{self.rank_correlation:+.2f}")
        return "\n".join(lines)


def _transfer(config: Config, data: Any, root: Path, names: list[str], keys: dict[str, str]) -> TaskMatrix:
    """Standley et al. 2020: every task alone and every pair, with the config's budget; entry
    ``[i, j]`` is the signed relative change (%) of task ``j``'s primary metric when trained with
    ``i`` instead of alone (positive: ``i`` helps ``j``)."""
    alone = {t: _trained(config, data, [t], root / f"single-{t}") for t in names}
    gain = np.full((len(names), len(names)), np.nan)
    for (a, i), (b, j) in itertools.combinations(list(zip(names, range(len(names)))), 2):
        together = _trained(config, data, [a, b], root / f"pair-{a}+{b}")
        for row, column, task in ((i, j, b), (j, i, a)):
            key = keys[task]
            sign = 1.0 if higher_is_better(key.split("/", 1)[1]) else -1.0
            base = alone[task][key]
            if math.isfinite(base) and base != 0 and math.isfinite(together[key]):
                gain[row, column] = 100 * sign * (together[key] - base) / abs(base)
    return TaskMatrix("transfer_gain", "Transfer gain from pair runs (Standley et al. 2020)",
                      "Relative change (%) of the column task's primary metric trained with the row task instead "
                      "of alone (positive: the row task helps).", tuple(names), gain, effect=True)


def _linear(config: Config, root: Path, names: list[str]) -> list[TaskMatrix]:
    """Ridge per task and MTRL (Zhang & Yeung 2010) fitted by ``fit-linear`` on the same data,
    their hyperparameters chosen by cross-validation: the cosine of the ridge weight vectors and
    MTRL's learned task correlation. Refitted on a resume (seconds), replacing the earlier fits."""
    from ..config import LinearConfig

    grid = {"alpha": [0.01, 0.1, 1.0, 10.0]}
    found = []
    for name in ("ridge", "mtrl"):
        linear = LinearConfig(name=name, search=grid, folds=LINEAR_FOLDS)
        found.append(fit_linear_run(config.model_copy(update={"linear": linear}), run_dir=root / f"linear-{name}",
                                    overwrite=True, report=False, log=lambda line: None))
    ridge, mtrl = found
    return [parameter_cosine(ridge.estimator.coef_, names),
            correlation_matrix(mtrl.estimator.task_covariance_, names, "mtrl_correlation",
                               "Learned task correlation (MTRL)", "Zhang & Yeung 2010: the task covariance Ω of "
                               "multi-task relationship learning on the encoded inputs, as a correlation.")]


def _representations(config: Config, data: Any, root: Path, names: list[str], probe: int = 256) -> TaskMatrix:
    """RSA of the single-task models (``single-<task>/``) on the first ``probe`` validation (else
    test) inputs, each model as its run tested it (the best checkpoint on validation; without a
    validation split, the last)."""
    import torch

    source = data.val if data.val is not None else data.test
    if source is None:
        raise ValueError("Representation similarity needs validation or test inputs to probe the models with.")
    batch = source.batch(torch.arange(min(probe, len(source))))
    checkpoint = "best" if data.val is not None else "latest"
    features = {}
    for task in names:
        model = load_run(root / f"single-{task}", checkpoint).model
        with torch.no_grad():
            features[task] = model.features(batch.inputs).flatten(1).double().numpy()
    return representation_similarity(features)


def _check_linear(data: Any, tasks: Sequence[Task]) -> None:
    """Refuse ``--linear`` where ``fit-linear`` would, before anything is trained: a task it cannot
    fit, inputs other than rows of features, or fewer labelled training rows than folds."""
    from ..data import TensorSource

    try:
        estimator_kind(tuple(tasks))
    except ConfigError as error:
        raise ConfigError(f"--linear: {error} Or relate without --linear.") from None
    sources = list(data.train.values())
    if any(not isinstance(s, TensorSource) or getattr(s.inputs, "ndim", None) != 2 for s in sources):
        raise ConfigError("--linear fits ridge and MTRL on rows of features (one 2-D input tensor); this dataset gives "
                          "other inputs (images, sentences, several inputs): relate without --linear.")
    labelled = {t.name: sum(int(s.masks[t.name].sum()) for s in sources if t.name in s.targets) for t in tasks}
    few = [f"{name} ({count})" for name, count in labelled.items() if count < LINEAR_FOLDS]
    if few:
        raise ConfigError(f"--linear cross-validates over {LINEAR_FOLDS} folds, which need as many labelled training "
                          f"rows per task; {', '.join(few)} have fewer: relate without --linear, or leave them out "
                          "(include_tasks: [...]).")


def _runs(config: Config, measured: Config, root: Path, names: list[str], pairs: bool) -> dict[Path, Config]:
    """Each training run relate reads back or trains, with the config that run saves."""
    runs = {root / "multi": measured}
    if pairs:
        runs |= {root / f"single-{t}": config_of_run(config, [t]) for t in names}
        runs |= {root / f"pair-{a}+{b}": config_of_run(config, [a, b]) for a, b in itertools.combinations(names, 2)}
    return runs


def _check_finished(run_dir: Path, config: Config) -> None:
    """Refuse to read back the finished run in ``run_dir`` if ``config`` differs from its own in
    anything but :data:`READ_BACK_KEYS`: relate reads its results, it does not train it on."""
    changed = config_changes(run_dir / "config.yaml", config, READ_BACK_KEYS)
    if changed:
        lines = "\n  ".join(changed)
        raise RunDirError(
            f"Cannot resume {run_dir.parent}: its finished run {run_dir.name}/ was trained with another config, and "
            f"relate reads a finished run's results back, it does not train it further:\n  {lines}\nRelate with "
            "the config those runs were trained with, or afresh: pass --overwrite (deletes them) or write to "
            "another directory (--run-dir ...).")


def _trained(config: Config, data: Any, only: list[str] | None, run_dir: Path) -> dict[str, float]:
    """The test metrics of the run in ``run_dir``: read back when it finished before (relate
    checked its config first), else trained now."""
    if (run_dir / "results.json").is_file():
        saved = json.loads((run_dir / "results.json").read_text())["metrics"]
        return {k: (math.nan if v is None else v) for k, v in saved.items()}
    return train(config, data=data, only=only, run_dir=run_dir, report=False, overwrite=True).test


def _spearman(first: np.ndarray, second: np.ndarray) -> float:
    from scipy.stats import spearmanr

    off = ~np.eye(len(first), dtype=bool) & np.isfinite(first) & np.isfinite(second)
    if off.sum() < 3:
        return math.nan
    return float(spearmanr(first[off], second[off]).statistic)


def relate(config: Config, run_dir: Path | str | None = None, pairs: bool = False, linear: bool = False,
           overwrite: bool = False, resume: bool = False) -> Relation:
    """Train the multi-task model of ``config`` measuring gradient cosines, conflicts and the
    lookahead affinity every ``relatedness.every`` steps (10 when 0), and with ``pairs`` also
    every task alone and every pair (``T + T(T-1)/2`` more runs of the same budget); recommend
    ``relatedness.groups`` groups from each signed matrix (:func:`best_groups`). ``pairs`` also
    gives the representation similarity of the single-task models (RSA); ``linear`` (rows of
    features, one loss) fits ridge per task and MTRL on the same data for the cosine of their
    weight vectors and MTRL's learned task correlation.

    ``resume`` keeps every run already finished in the directory and trains the others: relate
    is ``T(T-1)/2`` runs long. A finished run's config must match this one but for
    :data:`READ_BACK_KEYS` (its results are read back, so not even its budget may change).

    Everything is checked (the tasks, the number of pair runs, ``linear``'s needs, the finished
    runs' configs) before ``overwrite`` deletes the old runs and before anything is trained.

    Writes ``multi/``, ``single-*/`` and ``pair-*/`` runs, ``relatedness/`` (each matrix of this
    invocation as CSV and JSON, and no other; ``groups.json``, ``summary.txt``) and
    ``report.html`` under the run directory.
    """
    check_config(config)
    root = Path(run_dir if run_dir is not None else config.run_dir)
    if resume and overwrite:
        raise RunDirError("--resume keeps the finished runs and --overwrite deletes them: pass one of the two.")
    if resume and not root.is_dir():
        raise RunDirError(f"Nothing to resume in {root}: run relate without --resume first.")
    data = load_data(config)
    tasks = select_tasks(config, data)
    names = [t.name for t in tasks]  # views' tasks too: a self-supervised task trains alone or in a pair as well
    if len(names) < 2:
        raise ValueError(f"relate needs at least two tasks; the config has {names}.")
    runs = len(names) * (len(names) + 1) // 2
    if pairs and runs > MAX_PAIR_RUNS:
        raise ValueError(f"--pairs with {len(names)} tasks is {runs} training runs (every task alone and every pair), "
                         f"more than {MAX_PAIR_RUNS}; relate a subset (include_tasks: [...]) or leave out --pairs.")
    if linear:
        _check_linear(data, tasks)
    measured = config.model_copy(update={"relatedness": config.relatedness.model_copy(
        update={"every": config.relatedness.every or 10})})
    model = build_model(measured, tasks, data.input_info)  # what the probe and the RSA can measure, asked first
    try:
        TaskAffinity(measured.relatedness.every, level=measured.relatedness.level).check_model(model)
    except ValueError as error:
        raise ConfigError(f"Config section 'relatedness': {error}") from None
    if resume:
        for path, saved in _runs(config, measured, root, names, pairs).items():
            if (path / "results.json").is_file():
                _check_finished(path, saved)
    else:
        claim(root, overwrite=overwrite, resume="--resume")
    _trained(measured, data, None, root / "multi")
    matrices = load_matrices(root / "multi")
    if pairs:
        keys = {t.name: f"{t.name}/{t.metrics[0]}" for t in tasks}
        matrices.append(_transfer(config, data, root, names, keys))
        if model.has_features:
            matrices.append(_representations(config, data, root, names))
        else:
            print(f"No representation similarity: {type(model).__name__} has no one shared representation to "
                  "compare the single-task models on (the other measures are unaffected).")
    if linear:
        matrices += _linear(config, root, names)
    by_name = {m.name: m for m in matrices}
    k = min(config.relatedness.groups, len(names))
    groups: dict[str, list[list[str]]] = {}
    no_groups: dict[str, str] = {}
    for name in (n for n in GROUPED if n in by_name):
        matrix = by_name[name]
        try:
            chosen, _ = best_groups(matrix.values, k)
        except ValueError as error:  # no pair measured, or too many tasks for the exact search
            no_groups[name] = str(error)
            continue
        groups[name] = [[matrix.tasks[i] for i in group] for group in chosen]
    rho = (_spearman(by_name["tag_affinity"].values, by_name["transfer_gain"].values)
           if {"tag_affinity", "transfer_gain"} <= set(by_name) else math.nan)
    for matrix in matrices:
        matrix.save(root)
    for stale in {m.name for m in load_matrices(root)} - set(by_name):  # an earlier invocation's (--pairs, --linear)
        for suffix in (".csv", ".json"):
            (root / "relatedness" / f"{stale}{suffix}").unlink(missing_ok=True)
    relation = Relation(root, tuple(matrices), groups, rho, no_groups)
    atomic_write(root / "relatedness" / "groups.json", json.dumps(
        {"k": k, "groups": groups, "no_groups": no_groups, "rank_correlation": None if math.isnan(rho) else rho},
        indent=1))
    atomic_write(root / "relatedness" / "summary.txt", relation.summary() + "\n")
    if config.logging.report:
        try_report(root)
    return relation
