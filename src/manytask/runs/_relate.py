"""``manytask relate``: which tasks help which on the user's own data, and which groups to train."""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._utils import atomic_write
from ..config import Config
from ..metrics import higher_is_better
from ..relatedness import (
    TaskMatrix,
    best_groups,
    correlation_matrix,
    load_matrices,
    parameter_cosine,
    representation_similarity,
)
from ._build import check_config, load_data, select_tasks
from ._linear import fit_linear_run
from ._run_dir import RunDirError, check_resume, claim
from ._saved import load_run
from ._train import config_of_run, train, try_report

__all__ = ["Relation", "relate"]

#: Most single-task and pair runs ``--pairs`` starts (24 tasks: 300 runs).
MAX_PAIR_RUNS = 300

#: The signed matrices a grouping is recommended from, in the order they are shown.
GROUPED = ("tag_affinity", "transfer_gain", "gradient_cosine")


@dataclass(frozen=True)
class Relation:
    """What ``relate`` measured: the matrices, each one's recommended groups, and how well the
    lookahead affinity ranks the pairs as the pair runs do (Spearman's rho; NaN without pairs)."""

    run_dir: Path
    matrices: tuple[TaskMatrix, ...]
    groups: dict[str, list[list[str]]]
    rank_correlation: float

    def summary(self) -> str:
        lines = []
        for matrix in self.matrices:
            if matrix.signed:  # a conflict rate or a norm ratio has no partner to name
                lines += [f"{matrix.title}:", *(f"  {line}" for line in matrix.partners())]
        for name, groups in self.groups.items():
            lines.append(f"Groups from {name}: " + " | ".join(", ".join(g) for g in groups))
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
    MTRL's learned task correlation."""
    from ..config import LinearConfig

    grid = {"alpha": [0.01, 0.1, 1.0, 10.0]}
    found = []
    for name in ("ridge", "mtrl"):
        linear = LinearConfig(name=name, search=grid, folds=3)
        found.append(fit_linear_run(config.model_copy(update={"linear": linear}), run_dir=root / f"linear-{name}",
                                    report=False, log=lambda line: None))
    ridge, mtrl = found
    return [parameter_cosine(ridge.estimator.coef_, names),
            correlation_matrix(mtrl.estimator.task_covariance_, names, "mtrl_correlation",
                               "Learned task correlation (MTRL)", "Zhang & Yeung 2010: the task covariance Ω of "
                               "multi-task relationship learning on the encoded inputs, as a correlation.")]


def _representations(config: Config, data: Any, root: Path, names: list[str], probe: int = 256) -> TaskMatrix:
    """RSA of the single-task models (``single-<task>/``) on the first ``probe`` validation (else
    test) inputs."""
    import torch

    source = data.val if data.val is not None else data.test
    if source is None:
        raise ValueError("Representation similarity needs validation or test inputs to probe the models with.")
    batch = source.batch(torch.arange(min(probe, len(source))))
    features = {}
    for task in names:
        model = load_run(root / f"single-{task}").model
        with torch.no_grad():
            features[task] = model.features(batch.inputs).flatten(1).double().numpy()
    return representation_similarity(features)


def _trained(config: Config, data: Any, only: list[str] | None, run_dir: Path) -> dict[str, float]:
    """The test metrics of the run in ``run_dir``: read back when it finished before (its config
    checked against this one), else trained now."""
    if (run_dir / "results.json").is_file():
        check_resume(run_dir, config_of_run(config, only))
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

    ``resume`` keeps every run already finished in the directory (its config must match, as a
    train resume checks) and trains the others: relate is ``T(T-1)/2`` runs long.

    Writes ``multi/``, ``single-*/`` and ``pair-*/`` runs, ``relatedness/`` (each matrix as CSV
    and JSON, ``groups.json``, ``summary.txt``) and ``report.html`` under the run directory.
    """
    check_config(config)
    root = Path(run_dir if run_dir is not None else config.run_dir)
    if not resume:
        claim(root, overwrite=overwrite, resume="--resume")
    elif not root.is_dir():
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
    measured = config.model_copy(update={"relatedness": config.relatedness.model_copy(
        update={"every": config.relatedness.every or 10})})
    _trained(measured, data, None, root / "multi")
    matrices = load_matrices(root / "multi")
    if pairs:
        keys = {t.name: f"{t.name}/{t.metrics[0]}" for t in tasks}
        matrices.append(_transfer(config, data, root, names, keys))
        matrices.append(_representations(config, data, root, names))
    if linear:
        matrices += _linear(config, root, names)
    by_name = {m.name: m for m in matrices}
    k = min(config.relatedness.groups, len(names))
    groups: dict[str, list[list[str]]] = {}
    for name in (n for n in GROUPED if n in by_name):
        matrix = by_name[name]
        try:
            chosen, _ = best_groups(matrix.values, k)
        except ValueError as error:  # too many tasks for the exact search: the matrices still stand
            print(f"manytask: no groups recommended from {name}: {error}")
            continue
        groups[name] = [[matrix.tasks[i] for i in group] for group in chosen]
    rho = (_spearman(by_name["tag_affinity"].values, by_name["transfer_gain"].values)
           if {"tag_affinity", "transfer_gain"} <= set(by_name) else math.nan)
    for matrix in matrices:
        matrix.save(root)
    relation = Relation(root, tuple(matrices), groups, rho)
    atomic_write(root / "relatedness" / "groups.json", json.dumps(
        {"k": k, "groups": groups, "rank_correlation": None if math.isnan(rho) else rho}, indent=1))
    atomic_write(root / "relatedness" / "summary.txt", relation.summary() + "\n")
    if config.logging.report:
        try_report(root)
    return relation
