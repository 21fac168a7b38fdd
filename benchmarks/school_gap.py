"""School on Zhang & Li's splits: where the published MT-GBDT's RMSE 8.993 comes from.

The best published School number on the 10 splits of Zhang & Li (CIKM 2019) is the README row
"Variance-based Multi-Task GBDT 8.993 +/- 0.232" of squall1988/multi-task-gradient-boosting
(@ 4f755888). Its metric is ours: the unweighted mean over the 139 schools of the per-school test
RMSE, then the mean over the splits (``main.cpp`` lines 57-69, ``Booster::predict`` and
``utils.h`` ``RMSE``). Its protocol is not: ``main.cpp`` (lines 47-48) builds one ``Booster``
before the loop over the splits (lines 52-64), and ``Booster::train`` appends every tree and
best-iteration record to member vectors that it never clears, then reads them from index 0
(``Booster.cpp`` lines 40, 80, 102-112, 208-213, 262, 318, 333). Splits 2..10 are therefore
scored with the trees fitted on split 1's training rows, and those rows hold about 79 % of each
later split's test rows (the splits are independent 75/25 shuffles of the same 15,362 rows).

This script scores a few strong baselines both ways, on all rows pooled or per school:

* honest: fitted on split k's training rows, scored on split k's test rows;
* split-1 model: fitted once on split 1's training rows and scored on every split's test rows
  (what the published script does), with its pooled RMSE on the test rows identical to a
  split-1 training row ("seen") and on the others ("unseen");

each under the published metric (mean per-school RMSE) and the pooled RMSE over all test rows.
Hyperparameters are fixed, or chosen on training rows only (RidgeCV's leave-one-out; the
boosted trees' early stopping on 15 % of the training rows). ``THEIR_CODE`` holds the per-split
scores of the authors' C++ compiled here (g++ -O0; only the data paths changed), as published
and with the ``Booster`` constructed inside the split loop; the table shows both.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/school_gap.py [--splits 10] [--json FILE] [--docs]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import RidgeCV
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import shared_data, write_section  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
N_FEATURES, N_TASKS = 28, 139
PUBLISHED = 8.993  # README of squall1988/multi-task-gradient-boosting, "Variance-based Multi-Task GBDT"

# The authors' C++ (main.cpp's single_school_boost: 10 rounds, 5 common, learning rate 0.5,
# depth 5, lambda 0.1, leaves of 10, beta 0.01, early stopping on the training rows), compiled
# here with g++ -O0 (-O2 crashes: int functions without a return) and run on the split files in
# ../shared/data; mean per-school RMSE of splits 1..10. "as published": main.cpp unchanged but
# for the paths (reproduces the README's 8.993 +/- 0.232 and 8.998 +/- 0.239, the "+/-" being
# the variance); "rebuilt": the Booster constructed inside the loop over the splits.
THEIR_CODE: dict[str, dict[str, list[float]]] = {
    "MT-GBDT, variance-based (authors' C++)": {
        "as published": [10.3551, 8.77081, 8.9304, 8.80973, 8.86443, 8.81354, 8.8662, 8.74667, 8.89749, 8.87409],
        "rebuilt": [10.3551, 10.4576, 10.6019, 10.3566, 10.6329, 10.3696, 10.4145, 10.6212, 10.5924, 10.6642],
    },
    "MT-GBDT, entropy-based (authors' C++)": {
        "as published": [10.3707, 8.70644, 8.97736, 8.79692, 8.92868, 8.81396, 8.90001, 8.77138, 8.88051, 8.83173],
        "rebuilt": [10.3707, 10.4815, 10.5845, 10.2964, 10.613, 10.4218, 10.3525, 10.5553, 10.5498, 10.6101],
    },
}

Predictor = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Split:
    """One Zhang & Li split: the raw rows (for matching) and features, scores, 0-based schools."""

    train: np.ndarray
    test: np.ndarray

    @staticmethod
    def _parts(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return rows[:, :N_FEATURES], rows[:, N_FEATURES], rows[:, N_FEATURES + 1].astype(int) - 1

    @property
    def train_parts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self._parts(self.train)

    @property
    def test_parts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self._parts(self.test)


def load_split(root: Path, k: int) -> Split:
    """Split ``k`` (1..10): headerless CSVs of 30 columns (28 features, score, school 1..139)."""
    folder = root / "school" / "zhang_li_cikm2019_splits"
    parts = []
    for part in ("train", "test"):
        path = folder / f"school_{part}_re{k}.csv.gz"
        if not path.exists():
            path = path.with_suffix("")  # the uncompressed file, as in the authors' repository
        rows = pd.read_csv(path, header=None).to_numpy(dtype=float)
        if rows.shape[1] != N_FEATURES + 2:
            raise ValueError(f"{path}: expected {N_FEATURES + 2} columns, got {rows.shape[1]}.")
        parts.append(rows)
    return Split(*parts)


def mean_task_rmse(y: np.ndarray, pred: np.ndarray, task: np.ndarray) -> float:
    """Unweighted mean over the schools present of the per-school RMSE (the published metric)."""
    return float(np.mean([np.sqrt(np.mean((y[task == t] - pred[task == t]) ** 2)) for t in np.unique(task)]))


def pooled_rmse(y: np.ndarray, pred: np.ndarray) -> float:
    """RMSE over all rows, whatever their school."""
    return float(np.sqrt(np.mean((y - pred) ** 2)))


def seen_mask(train_rows: np.ndarray, test_rows: np.ndarray) -> np.ndarray:
    """Which test rows equal a training row in all 30 columns (features, score and school)."""
    seen = {r.tobytes() for r in train_rows}
    return np.array([r.tobytes() in seen for r in test_rows])


def school_identified(rows: np.ndarray) -> float:
    """Share of the groups of rows with equal year and school-level columns (0-4, 21-26) that
    hold one school only: how far trees can single out a school without its id."""
    groups = pd.DataFrame(rows).groupby(list(range(5)) + list(range(21, 27)))[N_FEATURES + 1].nunique()
    return float((groups == 1).mean())


# --- the baselines: each fits on (X, y, task) and returns predict(X, task) -------------------


def fit_school_mean(X: np.ndarray, y: np.ndarray, task: np.ndarray, fast: bool) -> Predictor:
    means = np.bincount(task, weights=y, minlength=N_TASKS) / np.bincount(task, minlength=N_TASKS).clip(min=1)
    return lambda X, task: means[task]


def fit_ridge_school(X: np.ndarray, y: np.ndarray, task: np.ndarray, fast: bool) -> Predictor:
    """Pooled ridge on the standardised features and a one-hot school (alpha by leave-one-out)."""
    mu, sd = X.mean(0), X.std(0)
    keep = sd > 0

    def design(X: np.ndarray, task: np.ndarray) -> np.ndarray:
        return np.c_[(X[:, keep] - mu[keep]) / sd[keep], np.eye(N_TASKS)[task]]

    model = RidgeCV(alphas=np.logspace(-2, 3, 11)).fit(design(X, task), y)
    return lambda X, task: model.predict(design(X, task))


def _hgb(fast: bool, **kw: Any) -> HistGradientBoostingRegressor:
    """Boosted trees, 0.05 learning rate, stopped early on 15 % of the training rows."""
    settings: dict[str, Any] = {
        "learning_rate": 0.05,
        "max_iter": 20 if fast else 2000,
        "early_stopping": True,
        "validation_fraction": 0.15,
        "n_iter_no_change": 5 if fast else 30,
        "random_state": 0,
    }
    return HistGradientBoostingRegressor(**(settings | kw))


def fit_hgb_aggregate(X: np.ndarray, y: np.ndarray, task: np.ndarray, fast: bool) -> Predictor:
    model = _hgb(fast).fit(X, y)
    return lambda X, task: model.predict(X)


def _with_school(X: np.ndarray, task: np.ndarray) -> np.ndarray:
    return np.c_[X, task]


_SCHOOL_CATEGORICAL = [False] * N_FEATURES + [True]


def fit_hgb_school(X: np.ndarray, y: np.ndarray, task: np.ndarray, fast: bool) -> Predictor:
    model = _hgb(fast, categorical_features=_SCHOOL_CATEGORICAL).fit(_with_school(X, task), y)
    return lambda X, task: model.predict(_with_school(X, task))


def fit_hgb_school_memorising(X: np.ndarray, y: np.ndarray, task: np.ndarray, fast: bool) -> Predictor:
    """As above with no early stopping, 300 rounds at 0.1 and leaves of 5 students: fits its
    training rows closely, as deep per-school trees at learning rate 0.5 do."""
    model = _hgb(
        fast, categorical_features=_SCHOOL_CATEGORICAL, early_stopping=False, learning_rate=0.1,
        max_iter=20 if fast else 300, max_leaf_nodes=63, min_samples_leaf=5,
    ).fit(_with_school(X, task), y)
    return lambda X, task: model.predict(_with_school(X, task))


def fit_hgb_independent(X: np.ndarray, y: np.ndarray, task: np.ndarray, fast: bool) -> Predictor:
    """One small boosted model per school (100 rounds at 0.05, 4 leaves of at least 5 students)."""
    models = {
        t: _hgb(fast, early_stopping=False, max_iter=5 if fast else 100, max_leaf_nodes=4, min_samples_leaf=5)
        .fit(X[task == t], y[task == t])
        for t in np.unique(task)
    }

    def predict(X: np.ndarray, task: np.ndarray) -> np.ndarray:
        out = np.zeros(len(X))
        for t in np.unique(task):
            out[task == t] = models[t].predict(X[task == t])
        return out

    return predict


METHODS: dict[str, tuple[str, Callable[[np.ndarray, np.ndarray, np.ndarray, bool], Predictor]]] = {
    "school_mean": ("Per-school training mean", fit_school_mean),
    "ridge_school": ("Pooled ridge + one-hot school (RidgeCV)", fit_ridge_school),
    "hgb_aggregate": ("HGB on all rows, no school id (aggregate)", fit_hgb_aggregate),
    "hgb_school": ("HGB on all rows + school id (categorical)", fit_hgb_school),
    "hgb_school_memorising": ("HGB + school id, memorising (no early stop, leaves of 5)", fit_hgb_school_memorising),
    "hgb_independent": ("HGB per school (independent)", fit_hgb_independent),
}


def run(root: Path, n_splits: int, methods: Sequence[str] = tuple(METHODS), fast: bool = False) -> dict[str, Any]:
    """Fit every method on splits 1..n_splits; score each honestly and the split-1 model on all.

    Returns ``{"seen_fraction": [per split], "methods": {id: {metric: [per split]}}}``.
    """
    splits = [load_split(root, k) for k in range(1, n_splits + 1)]
    seen = [seen_mask(splits[0].train, s.test) for s in splits]
    out: dict[str, Any] = {
        "seen_fraction": [float(m.mean()) for m in seen],
        "school_identified": school_identified(splits[0].train),
        "methods": {},
    }
    with threadpool_limits(1):
        for m in methods:
            fit = METHODS[m][1]
            scores: dict[str, list[float]] = {k: [] for k in ("rmse", "pooled", "stale", "stale_seen", "stale_unseen")}
            t0 = time.perf_counter()
            predictors = []
            for split in splits:
                predictors.append(fit(*split.train_parts, fast))
                X, y, task = split.test_parts
                pred = predictors[-1](X, task)
                scores["rmse"].append(mean_task_rmse(y, pred, task))
                scores["pooled"].append(pooled_rmse(y, pred))
            for split, mask in zip(splits, seen):
                X, y, task = split.test_parts
                pred = predictors[0](X, task)  # the published script's protocol
                scores["stale"].append(mean_task_rmse(y, pred, task))
                scores["stale_seen"].append(pooled_rmse(y[mask], pred[mask]) if mask.any() else float("nan"))
                scores["stale_unseen"].append(pooled_rmse(y[~mask], pred[~mask]) if (~mask).any() else float("nan"))
            out["methods"][m] = scores | {"seconds": time.perf_counter() - t0}
    return out


def _mean(v: Sequence[float]) -> float:
    return float(np.nanmean(v))


def _sd(v: Sequence[float]) -> float:
    return float(np.std(v, ddof=1)) if len(v) > 1 else 0.0


def _ours_elsewhere() -> tuple[str, float] | None:
    """Our best linear row on these splits (benchmarks/results/linear_school_zhang_li.json)."""
    path = REPO / "benchmarks" / "results" / "linear_school_zhang_li.json"
    if not path.exists():
        return None
    summary = json.loads(path.read_text())["summary"]
    best = min(summary.values(), key=lambda s: s["mean"])
    return best["label"], float(best["mean"])


def to_markdown(result: dict[str, Any], command: str, minutes: float) -> str:
    """The section ``school_gap``: table, command and findings computed from ``result``."""
    methods = result["methods"]
    n = len(result["seen_fraction"])
    later = result["seen_fraction"][1:]
    lines = [
        "## School, Zhang & Li splits: where the published MT-GBDT's 8.993 comes from",
        "",
        f"Command: `{command}` ({n} split(s), {minutes:.1f} min on 2 shared CPU cores, one thread). "
        "\"honest\": fitted on split k's training rows, scored on split k's test rows. \"split-1 model\": "
        "fitted on split 1's training rows, scored on every split's test rows, the protocol of the published "
        "script; \"seen\" / \"unseen\": its pooled RMSE on the test rows equal to a split-1 training row "
        "(all 30 columns) and on the others. Mean per-school RMSE is the published metric (unweighted mean "
        "over schools of the per-school RMSE, then mean over splits). Authors' rows: their C++ "
        "(squall1988/multi-task-gradient-boosting @ 4f75588) compiled and run here once, as published and "
        "with the Booster built inside the loop over the splits; its per-split scores are entered in the "
        "script (`THEIR_CODE`, with how they were obtained), not recomputed by it.",
        "",
        "| method | honest: mean per-school RMSE, mean (sd) | honest: pooled RMSE | split-1 model: "
        "mean per-school RMSE | split-1 model: pooled RMSE seen / unseen |",
        "|---|---|---|---|---|",
    ]
    for m, s in methods.items():
        lines.append(
            f"| {METHODS[m][0]} | {_mean(s['rmse']):.3f} ({_sd(s['rmse']):.3f}) | {_mean(s['pooled']):.3f} "
            f"| {_mean(s['stale']):.3f} | {_mean(s['stale_seen'][1:] or s['stale_seen']):.2f} / "
            f"{_mean(s['stale_unseen'][1:] or s['stale_unseen']):.2f} |"
        )
    for label, runs in THEIR_CODE.items():
        fresh, pub = runs["rebuilt"][:n], runs["as published"][:n]
        lines.append(
            f"| {label} | {_mean(fresh):.3f} ({_sd(fresh):.3f}) (Booster rebuilt per split) | — "
            f"| {_mean(pub):.3f} (as published; var {np.var(pub, ddof=1) if n > 1 else 0.0:.3f}) | — |"
        )
    lines.append(f"| Variance-based MT-GBDT, README | — | — | {PUBLISHED:.3f} (var 0.232) | — |")

    honest = {m: _mean(s["rmse"]) for m, s in methods.items()}
    best = min(honest, key=honest.__getitem__)
    gains = {m: honest[m] - _mean(s["stale"]) for m, s in methods.items()}
    theirs_fresh = _mean(THEIR_CODE["MT-GBDT, variance-based (authors' C++)"]["rebuilt"][:n])
    theirs_pub = _mean(THEIR_CODE["MT-GBDT, variance-based (authors' C++)"]["as published"][:n])
    findings = [
        "",
        "Findings (computed from the numbers above):",
        f"* Honestly scored, the best baseline here is {METHODS[best][0]} at {honest[best]:.3f}"
        + (f", and our best linear row on these splits is {ours[0]} at {ours[1]:.3f}" if (ours := _ours_elsewhere()) else "")
        + f". The authors' own variance-based MT-GBDT, with its Booster rebuilt for each split, scores "
        f"{theirs_fresh:.3f}, not {PUBLISHED}: {theirs_fresh - honest[best]:+.3f} from the best baseline here.",
    ]
    if n > 1:
        lo, hi = f"{100 * min(later):.0f}", f"{100 * max(later):.0f}"
        findings.append(
            f"* What closes the gap is the evaluation, not the model: the published script scores "
            f"{'split 2' if n == 2 else f'splits 2..{n}'} with split 1's trees, and {lo if lo == hi else f'{lo}-{hi}'} % "
            f"of {'that split' if n == 2 else 'each of those splits'}' test rows equal split-1 training rows. Their "
            f"code under that protocol gives {theirs_pub:.3f} ({theirs_fresh - theirs_pub:.2f} below its honest "
            f"score). Reusing the split-1 model the same way lowers our baselines' score by {min(gains.values()):.2f} "
            f"to {max(gains.values()):.2f}, more the closer a model fits its training rows (memorising HGB: "
            f"{gains.get('hgb_school_memorising', float('nan')):.2f}); the seen / unseen columns show where the "
            "gain comes from: test rows the split-1 model was trained on."
        )
        stale = {m: _mean(s["stale"]) for m, s in methods.items()}
        lowest = min(stale, key=stale.__getitem__)
        findings.append(
            f"* Under the published protocol the lowest score here is {stale[lowest]:.3f} "
            f"({'below' if stale[lowest] < PUBLISHED else 'above'} the published {PUBLISHED}), by "
            f"{METHODS[lowest][0]}, a model that scores {honest[lowest]:.3f} honestly "
            f"(rank {sorted(honest.values()).index(honest[lowest]) + 1} of {len(honest)})."
        )
    if "hgb_school" in honest and "hgb_aggregate" in honest:
        findings.append(
            f"* School-id splits: HGB with the school id {honest['hgb_school']:.3f} against "
            f"{honest['hgb_aggregate']:.3f} without ({honest['hgb_school'] - honest['hgb_aggregate']:+.3f}); "
            f"the year and school-level columns (free meals, VR1 share, school gender, denomination) already "
            f"single out one school in {100 * result['school_identified']:.0f} % of their distinct values."
        )
    if "ridge_school" in honest and "hgb_school" in honest:
        findings.append(
            f"* Tree non-linearity: HGB + school id {honest['hgb_school']:.3f} against pooled ridge + one-hot "
            f"school {honest['ridge_school']:.3f} ({honest['hgb_school'] - honest['ridge_school']:+.3f})."
        )
    pooled_gap = [_mean(s["pooled"]) - honest[m] for m, s in methods.items()]
    findings.append(
        f"* Metric: the published number is the mean per-school RMSE, as ours (main.cpp lines 57-69); the "
        f"pooled RMSE over all test rows is {min(pooled_gap):+.2f} to {max(pooled_gap):+.2f} from it here, "
        "so a different metric does not explain the gap either."
    )
    return "\n".join(lines + findings)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the comparison, print the table and optionally write it to docs/benchmarks.md."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--splits", type=int, default=10, help="number of splits, 1..10 (default 10)")
    parser.add_argument("--methods", nargs="*", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--data", type=Path, default=None, help="data root holding school/ (default: $MANYTASK_DATA or ../shared/data)")
    parser.add_argument("--json", type=Path, help="write the per-split scores to this JSON file")
    parser.add_argument("--docs", action="store_true", help="write the section school_gap of docs/benchmarks.md")
    args = parser.parse_args(argv)
    if not 1 <= args.splits <= 10:
        parser.error(f"--splits must be in 1..10; got {args.splits}.")
    command = "python benchmarks/school_gap.py " + " ".join(sys.argv[1:] if argv is None else argv)
    t0 = time.perf_counter()
    result = run(args.data or shared_data(), args.splits, args.methods)
    md = to_markdown(result, command.strip(), (time.perf_counter() - t0) / 60)
    print(md)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    if args.docs:
        write_section("school_gap", md, REPO / "docs" / "benchmarks.md")
    return result


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
