"""SARCOS (available part) and MNIST/USPS (Kang et al. 2011 split 1) with the linear MTL estimators.

SARCOS: train on the 2 % training subsample (7 torque tasks, multi-input form), test on the
official test file minus the rows whose inputs occur in the subsample (to 1e-9 relative: the
two files print the same floats differently); hyperparameters by 3-fold CV (stratified by
task) on the subsample; score = per-task RMSE and normalised MSE
(MSE / variance of the test torques), averaged over the 7 joints. No published numbers exist
for this protocol (SOURCE.md).

MNIST / USPS: 10 one-vs-rest logistic tasks sharing X (shared-input form); hyperparameters by
3-fold CV on the 1,000 training digits only; test error % = mean binary error over the 10
tasks x 500 test digits (as in the VSTG-MTL demo), plus the multi-class (argmax) error.

Usage::

    python benchmarks/linear_sarcos_mnist_usps.py [--json FILE] [--only sarcos mnist usps]
    python benchmarks/linear_sarcos_mnist_usps.py --render FILE   # saved run, no refitting
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from joblib import Parallel, delayed
from sklearn.model_selection import ParameterGrid, StratifiedKFold
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_section  # noqa: E402
from linear_school import DATA_ROOT, _fmt_params, _logs, cv_select  # noqa: E402

from manytask.linear._catalog import CLASSIFIERS, REGRESSORS  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CHAIN = np.eye(7, k=1) + np.eye(7, k=-1)  # joints 1-2-...-7 of the arm

SARCOS_METHODS: dict[str, tuple[str, str, dict[str, list[Any]]]] = {
    "ridge": ("Ridge (independent)", "ridge", {"alpha": _logs(-5, 0, 11)}),
    "lasso": ("Lasso (independent)", "lasso", {"alpha": _logs(-5, -1, 9)}),
    "mean_regularized": (
        "Mean-regularised MTL",
        "mean_regularized",
        {"alpha": _logs(-4, 0, 5), "beta": _logs(-5, -1, 5)},
    ),
    "l21": ("L2,1 joint feature selection", "l21", {"alpha": _logs(-5, -1, 9)}),
    "trace": ("Trace norm", "trace", {"alpha": _logs(-5, -1, 9)}),
    "dirty": ("Dirty model", "dirty", {"alpha": _logs(-5, -2, 4), "beta": _logs(-5, -2, 4)}),
    "rmtl": ("Robust MTL (RMTL)", "rmtl", {"alpha": _logs(-5, -2, 4), "beta": _logs(-4, -1, 4)}),
    "rmtfl": ("rMTFL", "rmtfl", {"alpha": _logs(-5, -2, 4), "beta": _logs(-4, -1, 4)}),
    "srmtl": (
        "SRMTL (chain graph of joints)",
        "srmtl",
        {"alpha": _logs(-4, 0, 5), "gamma": _logs(-5, -2, 4), "graph": [CHAIN]},
    ),
    "cmtl": (
        "Clustered MTL (CMTL)",
        "cmtl",
        {"alpha": _logs(-3, -1, 3), "beta": _logs(-5, -3, 3), "n_clusters": [2, 3]},
    ),
    "mtrl": ("MTRL", "mtrl", {"alpha": _logs(-5, -3, 3), "beta": _logs(-4, -2, 3)}),
    "gomtl": (
        "GO-MTL",
        "gomtl",
        {"alpha": _logs(-4, -2, 3), "beta": _logs(-4, -2, 3), "n_components": [3, 5, 7]},
    ),
    # summed (not mean) squared errors per task in the kernel form
    "kernel_mtl": (
        "Regularised MTL, kernel form (Evgeniou & Pontil 2004)",
        "kernel_mtl",
        {"alpha": _logs(-2, 2, 5), "mu": _logs(-1, 1, 3)},
    ),
    "aso": ("ASO (Ando & Zhang 2005)", "aso", {"alpha": _logs(-5, -1, 5), "n_components": [1, 3, 7]}),
    "shared_hypotheses": (
        "Shared hypotheses (Crammer & Mansour 2012)",
        "shared_hypotheses",
        {"n_hypotheses": [1, 2, 3, 7], "alpha": _logs(-5, -1, 5)},
    ),
    "hierarchical_bayes": (
        "Hierarchical Bayes, task clustering (Bakker & Heskes 2003)",
        "hierarchical_bayes",
        {"n_clusters": [1, 2, 3], "max_iter": [50]},
    ),
    # only gamma1 * gamma2 shapes the problem in W; p = 1, k = 2
    "mmtfl": ("MMTFL (Wang et al. 2016)", "mmtfl", {"gamma1": _logs(-5, -1, 5), "gamma2": [1e-3, 1e-1]}),
    "vstg": (
        "VSTG-MTL (Jeong & Jun 2018)",
        "vstg",
        {"gamma1": [1e-4, 1e-3], "gamma2": [1e-4, 1e-3], "mu": [1e-3, 1e-2], "k_support": [3], "n_components": [7]},
    ),
    "group_mtfl": ("Learning with whom to share (Kang et al. 2011)", "group_mtfl",
                   {"alpha": _logs(-5, -1, 5), "n_groups": [1, 2, 3]}),
    # no grid: the marginal likelihood sets the task covariance, length scale and noise levels
    "mtgp": ("Multi-task GP (Bonilla et al. 2008), free-form task covariance", "mtgp", {"max_iter": [30]}),
}

DIGIT_METHODS: dict[str, tuple[str, str, dict[str, list[Any]]]] = {
    "lasso": ("Lasso logistic (independent)", "lasso", {"alpha": _logs(-4, -1, 7)}),
    "ridge": ("Ridge logistic (independent)", "ridge", {"alpha": _logs(-4, 0, 9)}),
    "mean_regularized": (
        "Mean-regularised MTL",
        "mean_regularized",
        {"alpha": _logs(-3, 0, 4), "beta": _logs(-4, -1, 4)},
    ),
    "l21": ("L2,1 joint feature selection", "l21", {"alpha": _logs(-4, -1, 7)}),
    "trace": ("Trace norm", "trace", {"alpha": _logs(-4, -1, 7)}),
    "sparse_low_rank": (
        "Sparse + low rank",
        "sparse_low_rank",
        {"alpha": _logs(-4, -2, 3), "beta": _logs(-3, -1, 3)},
    ),
    "dirty": ("Dirty model", "dirty", {"alpha": _logs(-4, -2, 3), "beta": _logs(-3, -1, 3)}),
    "cmtl": (
        "Clustered MTL (CMTL)",
        "cmtl",
        {"alpha": _logs(-3, -1, 3), "beta": _logs(-4, -2, 3), "n_clusters": [3]},
    ),
    "mtrl": ("MTRL", "mtrl", {"alpha": _logs(-4, -2, 3), "beta": _logs(-3, -1, 3)}),
    "gomtl": (
        "GO-MTL",
        "gomtl",
        {"alpha": _logs(-3, -2, 2), "beta": _logs(-3, -2, 2), "n_components": [5, 8]},
    ),
    "perceptron_mtl": (
        "Multitask Perceptron (Cavallanti et al. 2010)",
        "perceptron_mtl",
        {"b": [0.0, 0.1, 1.0], "max_iter": [5, 20]},
    ),
    # only gamma1 * gamma2 shapes the problem in W; p = 1, k = 2
    "mmtfl": ("MMTFL (Wang et al. 2016)", "mmtfl", {"gamma1": _logs(-3.5, -2, 4), "gamma2": [0.003, 0.03]}),
    # the authors' MNIST setting (2^-3 for every penalty) keeps 2 variables at this scale: smaller ones
    "vstg": (
        "VSTG-MTL (Jeong & Jun 2018)",
        "vstg",
        {"gamma1": [1e-3, 1e-2], "gamma2": [1e-3, 1e-2], "mu": [1e-2], "k_support": [3], "n_components": [10],
         "max_outer_iter": [100]},
    ),
    # nearest neighbour: its scores are neighbour votes (ties across tasks), read its binary error
    "tc": ("TC task clustering, k-NN (Thrun & O'Sullivan 1996)", "tc",
           {"n_clusters": [1, 2, 3], "n_neighbors": [1, 3, 5], "random_state": [0]}),
    "group_mtfl": ("Learning with whom to share (Kang et al. 2011)", "group_mtfl",
                   {"alpha": [1e-4, 1e-3, 1e-2], "n_groups": [1, 2, 3]}),
    # regressors (squared loss on the +-1 targets: least-squares classification)
    "kernel_mtl": ("Regularised MTL, kernel form (Evgeniou & Pontil 2004), least squares", "kernel_mtl",
                   {"alpha": _logs(-1, 3, 5), "mu": _logs(-1, 1, 3)}),
    "aso": ("ASO (Ando & Zhang 2005), least squares", "aso", {"alpha": _logs(-3, 1, 5), "n_components": [1, 3, 7]}),
    "shared_hypotheses": ("Shared hypotheses (Crammer & Mansour 2012), least squares", "shared_hypotheses",
                          {"n_hypotheses": [1, 3, 10], "alpha": _logs(-3, 1, 5)}),
    "hierarchical_bayes": ("Hierarchical Bayes (Bakker & Heskes 2003), least squares", "hierarchical_bayes",
                           {"n_clusters": [1, 2, 3], "max_iter": [50]}),
    "dp_mtl": ("Dirichlet-process prior, logistic (Xue et al. 2007)", "dp_mtl",
               {"prior_variance": _logs(-2, 0, 5), "alpha": [0.1, 1.0]}),
}

# Jeong & Jun (KDD 2018) slides, error % mean (sd): method id -> (label, mnist, usps)
DIGIT_PUBLISHED: dict[str, tuple[str, str, str]] = {
    "lasso": ("LASSO", "13.02 (0.71)", "12.88 (1.51)"),
    "sparse_low_rank": ("L1 + trace norm", "17.98 (1.76)", "16.02 (1.29)"),
    "cmtl": ("CMTL", "12.34 (0.02)", "12.44 (0.01)"),
    "gomtl": ("GO-MTL", "12.84 (1.30)", "12.90 (1.08)"),
    "mmtfl": ("MMTFL", "12.60 (0.86)", "11.36 (1.15)"),
    "vstg": ("VSTG-MTL", "11.70 (1.45)", "11.48 (1.04)"),
}
DIGIT_NOT_RUN: list[tuple[str, str, str]] = []


def _mean_rmse(y: np.ndarray, p: np.ndarray, task: np.ndarray) -> float:
    return float(
        np.mean([np.sqrt(np.mean((y[task == t] - p[task == t]) ** 2)) for t in np.unique(task)])
    )


def unseen_rows(train: np.ndarray, test: np.ndarray, rtol: float = 1e-9) -> np.ndarray:
    """Mask of the ``test`` rows with no ``train`` row within ``rtol * (1 + max|x|)``.

    The subsample's CSV and the test file's .mat print the same floats differently (copies
    differ by up to 1e-14), so exact byte equality misses rows that are training inputs.
    """
    from scipy.spatial import cKDTree

    dist, _ = cKDTree(train).query(test, k=1, p=np.inf)
    return np.asarray(dist > rtol * (1.0 + np.abs(train).max()))


def run_sarcos(method: str) -> dict[str, Any]:
    """One method on SARCOS: CV on the subsample, test on the de-duplicated test file."""
    from manytask.data.datasets._sarcos_arrays import load_sarcos_subsample, load_sarcos_test

    warnings.simplefilter("ignore")
    with threadpool_limits(1):
        sub, test = load_sarcos_subsample(DATA_ROOT), load_sarcos_test(DATA_ROOT)
        keep = unseen_rows(sub.X, test.X)
        mu, sd = sub.X.mean(0), sub.X.std(0)
        X_tr, X_te = (sub.X - mu) / sd, (test.X[keep] - mu) / sd
        y_mu = np.array([sub.y[sub.task == t].mean() for t in range(7)])
        y_sd = np.array([sub.y[sub.task == t].std() for t in range(7)])
        y_tr = (sub.y - y_mu[sub.task]) / y_sd[sub.task]
        _, name, grid = SARCOS_METHODS[method]
        make = REGRESSORS.get(name).factory
        t0 = time.perf_counter()
        params, _ = cv_select(make, grid, X_tr, y_tr, sub.task, _mean_rmse)
        est = make(**params).fit(X_tr, y_tr, task=sub.task)
        # every joint, every row (the GP has no linear weights: its own predictions, joint by joint)
        scores = (X_te @ est.coef_.T + est.intercept_ if hasattr(est, "coef_") else
                  np.stack([est.predict(X_te, task=np.full(len(X_te), t)) for t in range(7)], axis=1))
        pred = scores * y_sd + y_mu
        Y = test.Y[keep]
        mse = ((pred - Y) ** 2).mean(axis=0)
        return {
            "rmse": float(np.sqrt(mse).mean()),
            "nmse": float((mse / Y.var(axis=0)).mean()),
            "rmse_per_joint": np.sqrt(mse).tolist(),
            "params": {k: v for k, v in params.items() if k != "graph"},
            "n_test": int(keep.sum()),
            "seconds": time.perf_counter() - t0,
        }


def _cv_shared(
    make: Callable[..., Any],
    grid: dict[str, list[Any]],
    X: np.ndarray,
    Y: np.ndarray,
    labels: np.ndarray,
) -> dict[str, Any]:
    folds = list(StratifiedKFold(3, shuffle=True, random_state=0).split(X, labels))
    best: tuple[float, dict[str, Any]] = (np.inf, {})
    for params in ParameterGrid(grid):
        errs = [
            np.mean(
                _scores(make(**params).fit(X[tr], Y[tr]), X[va]).argmax(1) + 1
                != labels[va]
            )
            for tr, va in folds
        ]
        if np.mean(errs) < best[0]:
            best = (float(np.mean(errs)), params)
    return best[1]


def _scores(est: Any, X: np.ndarray) -> np.ndarray:
    """``[n, 10]`` task scores: a classifier's decision function, or a regressor's predictions
    of the +-1 targets (least-squares classification)."""
    return est.decision_function(X) if hasattr(est, "decision_function") else est.predict(X)


def run_digits(dataset: str, method: str) -> dict[str, Any]:
    """One method on MNIST or USPS split 1: CV on the training digits, test errors."""
    from manytask.data.datasets._mnist_usps_arrays import load_mnist_usps, one_vs_rest

    warnings.simplefilter("ignore")
    with threadpool_limits(1):
        d = load_mnist_usps(DATA_ROOT, dataset)  # type: ignore[arg-type]
        # one global scale keeps the relative variances of the PCA components (as raw)
        mu, sd = d.X_train.mean(0), d.X_train.std()
        X_tr, X_te = (d.X_train - mu) / sd, (d.X_test - mu) / sd
        Y_tr, Y_te = one_vs_rest(d.y_train), one_vs_rest(d.y_test)
        _, name, grid = DIGIT_METHODS[method]
        # a regressor (no logistic form) fits the +-1 targets by least squares
        make = (CLASSIFIERS if name in CLASSIFIERS.names() else REGRESSORS).get(name).factory
        t0 = time.perf_counter()
        params = _cv_shared(make, grid, X_tr, Y_tr, d.y_train)
        est = make(**params).fit(X_tr, Y_tr)
        scores = _scores(est, X_te)
        binary = float(np.mean(np.where(scores > 0, 1, -1) != Y_te) * 100)
        multiclass = float(np.mean(scores.argmax(1) + 1 != d.y_test) * 100)
        return {
            "binary_error": binary,
            "multiclass_error": multiclass,
            "params": params,
            "seconds": time.perf_counter() - t0,
        }


def sarcos_markdown(results: dict[str, Any], command: str, minutes: float) -> str:
    """The SARCOS table as markdown."""
    sizes = {r["n_test"] for r in results.values()}
    if len(sizes) != 1:
        raise ValueError(
            f"The SARCOS rows were scored on test sets of different sizes {sorted(sizes)}: "
            "rerun every method with --add ... --only sarcos --methods <all>."
        )
    (n_test,) = sizes
    lines = [
        "### SARCOS (available part): linear MTL estimators",
        "",
        f"Command: `{command}`",
        "",
        f"Time budget: 20 minutes on 2 CPU cores for the whole script; this run took "
        f"{minutes:.1f} min.",
        "",
        "Train: the 2 % training subsample `sub_sarcos.csv` (6,228 rows, 7 joints, multi-input "
        "form); test: `sarcos_inv_test.mat` minus the rows whose inputs occur in the subsample, "
        "matched to 1e-9 relative, since the two files print the same floats differently "
        f"({n_test} rows, all 7 torques). Inputs standardised, "
        "torques standardised per joint for fitting; hyperparameters by 3-fold CV on the "
        "subsample. **No published numbers exist for this protocol** (the full training file "
        "is not available offline; SOURCE.md), so the table only compares our own methods.",
        "",
        "| method | mean RMSE over joints | mean nMSE (MSE / var) | CV-chosen hyperparameters |",
        "|---|---|---|---|",
    ]
    for m, r in results.items():
        lines.append(
            f"| {SARCOS_METHODS[m][0]} | {r['rmse']:.3f} | {r['nmse']:.4f} "
            f"| {_fmt_params(r['params'])} |"
        )
    linear = {m: r["rmse"] for m, r in results.items() if m != "mtgp"}
    lines += ["", f"The linear rows span {min(linear.values()):.3f}-{max(linear.values()):.3f}: with about 900 rows per "
              "joint and 21 inputs, sharing adds nothing to a linear model."]
    if "mtgp" in results:
        lines[-1] += (f" The multi-task GP (squared-exponential kernel, {results['mtgp']['rmse']:.3f}) is the one "
                      "non-linear row: its length scale, noise levels and 7 x 7 joint covariance are set by the "
                      "marginal likelihood (30 L-BFGS iterations), no cross-validation.")
    return "\n".join(lines)


def _differences(results: dict[str, dict[str, Any]], best: dict[str, tuple[float, str]]) -> str:
    """A sentence per dataset comparing our rows with the published means (computed)."""
    parts = []
    for k, ds in enumerate(("mnist", "usps")):
        published = {m: float(v[1 + k].split()[0]) for m, v in DIGIT_PUBLISHED.items()}
        all_published = [*published.values(), *(float(v[1 + k].split()[0]) for v in DIGIT_NOT_RUN)]
        ours = {m: r["multiclass_error"] for m, r in results[ds].items()}
        se = 100 * np.sqrt(0.13 * 0.87 / 500)
        above = [
            DIGIT_METHODS[m][0] for m in published if m in ours and ours[m] > published[m] + se
        ]
        below = [
            DIGIT_METHODS[m][0] for m in published if m in ours and ours[m] < published[m] - se
        ]
        text = f"{ds.upper()}: our best row is {best[ds][1]} ({best[ds][0]:.1f} %), best published "
        text += f"{min(all_published):.2f} %; more than one SE above the same published method: "
        text += ", ".join(above) or "none"
        text += "; more than one SE below: " + (", ".join(below) or "none") + "."
        parts.append(text)
    return (
        "Where ours differ: " + " ".join(parts) + " With one split of 500 test digits we cannot "
        "separate method effects from split effects; other possible causes are the slides' "
        "feature sizes (they list 64 PCA dims for MNIST and 87 for USPS, the reverse of these "
        "files) and their unstated hyperparameter selection."
    )


def digits_markdown(results: dict[str, dict[str, Any]], command: str, minutes: float) -> str:
    """The MNIST / USPS table as markdown."""
    best = {
        ds: min((r["multiclass_error"], DIGIT_METHODS[m][0]) for m, r in results[ds].items())
        for ds in ("mnist", "usps")
    }
    lines = [
        "### MNIST / USPS (Kang et al. 2011 PCA splits): linear MTL classifiers",
        "",
        f"Command: `{command}`",
        "",
        f"Time budget: 20 minutes on 2 CPU cores for the whole script; this run took "
        f"{minutes:.1f} min.",
        "",
        "10 one-vs-rest logistic tasks sharing X; only **split 1** is available (published: "
        "mean (sd) over 10 repetitions, Jeong & Jun 2018 slides). Features centred and "
        "divided by one global scale (the PCA variances are kept, as with the raw features). "
        "Hyperparameters by 3-fold "
        "CV (10-class argmax error) on the 1,000 training digits. Two test errors: *argmax* = "
        "10-class error of the argmax over the 10 task scores; *binary* = mean binary error "
        "over 10 tasks x 500 digits (the VSTG demo's formula). The published values (11-18 %) "
        'exceed 10 %, the error of always answering "not this digit" under the binary '
        "metric, so they must be 10-class errors: compare them with the argmax column.",
        "",
        "| method | MNIST error % argmax (binary) | published MNIST | USPS error % argmax "
        "(binary) | published USPS | CV-chosen (MNIST; USPS) |",
        "|---|---|---|---|---|---|",
    ]
    for m in results["mnist"]:
        a, b = results["mnist"][m], results["usps"][m]
        pub = DIGIT_PUBLISHED.get(m, ("", "—", "—"))
        lines.append(
            f"| {DIGIT_METHODS[m][0]} | {a['multiclass_error']:.1f} ({a['binary_error']:.2f}) "
            f"| {pub[1]} {pub[0]} | {b['multiclass_error']:.1f} ({b['binary_error']:.2f}) "
            f"| {pub[2]} {pub[0]} | {_fmt_params(a['params'])}; {_fmt_params(b['params'])} |"
        )
    for label, mn, us in DIGIT_NOT_RUN:
        lines.append(f"| {label} (not run here) | — | {mn} | — | {us} | — |")
    lines += [
        "",
        "Notes: the published numbers average 10 random splits, ours is split 1 only (500 test "
        "digits: the binomial standard error of a 13 % error is 1.5 points), so differences "
        'of one or two points are not meaningful. The published "L1 + '
        'trace norm" penalises one matrix with both norms (Richard et al. 2012); our sparse + '
        "low-rank row is the decomposition W = P + Q (Chen et al. 2012). How the published "
        "binary errors were aggregated is not stated on the slides (SOURCE.md). TC is nearest "
        "neighbour (not linear): its scores are neighbour votes, which tie across the ten tasks, so "
        "its argmax error counts ties broken by task order; read its binary error. Rows marked "
        "*least squares* are regression estimators fitted to the +-1 targets, their predictions read "
        "as the task scores (least-squares classification).",
        "",
        _differences(results, best),
    ]
    return "\n".join(lines)


def _write(results: dict[str, Any], command: str, minutes: float, no_docs: bool) -> None:
    sections = []
    if "sarcos" in results:
        sections.append(("linear-sarcos", sarcos_markdown(results["sarcos"], command, minutes)))
    if "mnist" in results and "usps" in results:
        sections.append(("linear-mnist-usps", digits_markdown(results, command, minutes)))
    for section_id, md in sections:
        print(md, "\n")
        if not no_docs:
            write_section(section_id, md, REPO / "docs" / "benchmarks.md")


def main(argv: Sequence[str] | None = None) -> None:
    """Run the SARCOS and digit benchmarks; print, and write the tables to the docs."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="*", default=["sarcos", "mnist", "usps"])
    parser.add_argument("--json", type=Path)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--no-docs", action="store_true")
    parser.add_argument(
        "--render", type=Path, help="re-render the tables of a saved --json run (no fitting)"
    )
    parser.add_argument("--add", type=Path, help="run --methods and add them to a saved --json run (rewritten)")
    parser.add_argument("--methods", nargs="*", default=None, help="with --add: the methods to run")
    args = parser.parse_args(argv)
    if args.add:
        saved = json.loads(args.add.read_text())
        wanted = args.methods or []
        jobs_added = [("sarcos", m) for m in wanted if m in SARCOS_METHODS and "sarcos" in args.only]
        jobs_added += [(ds, m) for ds in ("mnist", "usps") if ds in args.only for m in wanted if m in DIGIT_METHODS]
        t0 = time.perf_counter()
        outs = Parallel(n_jobs=args.n_jobs)(
            delayed(run_sarcos)(m) if ds == "sarcos" else delayed(run_digits)(ds, m) for ds, m in jobs_added
        )
        for (ds, m), out in zip(jobs_added, outs, strict=True):
            saved["results"].setdefault(ds, {})[m] = out
        saved["minutes"] += (time.perf_counter() - t0) / 60
        saved["command"] += " && python benchmarks/linear_sarcos_mnist_usps.py " + " ".join(
            sys.argv[1:] if argv is None else argv
        )
        args.add.write_text(json.dumps(saved, indent=2, default=str))
        _write(saved["results"], saved["command"], saved["minutes"], args.no_docs)
        return
    if args.render:
        saved = json.loads(args.render.read_text())
        _write(saved["results"], saved["command"], saved["minutes"], args.no_docs)
        return
    command = "python benchmarks/linear_sarcos_mnist_usps.py " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    jobs: list[tuple[str, str]] = []
    if "sarcos" in args.only:
        jobs += [("sarcos", m) for m in SARCOS_METHODS]
    for ds in ("mnist", "usps"):
        if ds in args.only:
            jobs += [(ds, m) for m in DIGIT_METHODS]
    t0 = time.perf_counter()
    outs = Parallel(n_jobs=args.n_jobs)(
        delayed(run_sarcos)(m) if ds == "sarcos" else delayed(run_digits)(ds, m) for ds, m in jobs
    )
    minutes = (time.perf_counter() - t0) / 60
    results: dict[str, dict[str, Any]] = {}
    for (ds, m), out in zip(jobs, outs, strict=True):
        results.setdefault(ds, {})[m] = out
    _write(results, command, minutes, args.no_docs)
    if args.json:
        args.json.write_text(
            json.dumps(
                {"results": results, "minutes": minutes, "command": command}, indent=2, default=str
            )
        )


if __name__ == "__main__":
    main()
