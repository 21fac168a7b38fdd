"""fit-linear reads the data `train` reads (same table reader, preprocessing, split and metrics),
chooses hyperparameters by cross-validation on the training rows, and writes a run directory."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from typer.testing import CliRunner

from manytask.cli import app
from manytask.config import ConfigError, parse_config
from manytask.linear import L21MultiTaskClassifier, L21MultiTaskRegressor
from manytask.runs import evaluate_file, fit_linear_run, load_data, select_tasks, train
from manytask.runs._build import standardize_targets
from manytask.runs._linear import LinearHeads, _folds, _pairs
from manytask.runs._run_dir import RunDirError

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()


def _table(path: Path, rows: int = 240, seed: int = 0) -> Path:
    """Two regression tasks that are exact linear functions of a number and a text column, a
    binary task, empty label cells (partial labels), and an empty input cell."""
    rng = np.random.default_rng(seed)
    region = rng.choice(["north", "south", "west"], size=rows)
    x = rng.normal(size=rows) * 10 + 50
    shift = {"north": 0.0, "south": 4.0, "west": -3.0}
    lines = ["x,region,a,b,flag"]
    for i in range(rows):
        a = 3.0 * x[i] + shift[region[i]] + 7
        b = -0.5 * x[i] - shift[region[i]]
        lines.append(",".join([f"{x[i]:.6f}", region[i], "" if i % 4 == 0 else f"{a:.6f}",
                               "" if i % 3 == 0 else f"{b:.6f}", str(int(x[i] > 50))]))
    path.write_text("\n".join(lines) + "\n")
    return path


def _config(table: Path, tasks: dict[str, Any] | None = None, **linear: Any) -> dict[str, Any]:
    return {"data": {"name": "table", "path": str(table), "inputs": ["x", "region"],
                     "tasks": tasks or {"a": {"kind": "regression"}, "b": {"kind": "regression"}}},
            "linear": {"name": "ridge", "params": {"alpha": 1e-8}, **linear},
            "training": {"steps": 20, "eval_every": 10, "progress": False}}


def test_an_exact_linear_table_is_fitted_exactly_on_the_test_rows(tmp_path: Path) -> None:
    """The known limit: labels that are linear in the (standardised, one-hot) inputs give a test
    RMSE of 0 — through the same preprocessing, target standardisation and metrics as train."""
    run = fit_linear_run(parse_config(_config(_table(tmp_path / "t.csv"))), run_dir=tmp_path / "run")
    assert run.split == "test"
    assert run.test["a/rmse"] < 1e-3 and run.test["b/rmse"] < 1e-3
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["metrics"]["a/rmse"] == pytest.approx(run.test["a/rmse"])
    deep = train(parse_config(_config(tmp_path / "t.csv")), run_dir=tmp_path / "deep")
    assert set(deep.test) == set(run.test)  # the same metrics of the same tasks, on the same rows
    assert json.loads((tmp_path / "deep" / "preprocessing.json").read_text()) == json.loads(
        (tmp_path / "run" / "preprocessing.json").read_text())  # one preprocessing, fitted on the train rows


def test_coef_csv_predicts_what_the_run_scored(tmp_path: Path) -> None:
    """An independent recomputation: coef.csv applied to the encoded test rows, mapped back to
    the target's scale with the saved standardisation, gives the reported RMSE."""
    config = parse_config(_config(_table(tmp_path / "t.csv", seed=1), params={"alpha": 0.5}))
    run = fit_linear_run(config, run_dir=tmp_path / "run")
    with (tmp_path / "run" / "coef.csv").open() as handle:
        rows = {r["task"]: r for r in csv.DictReader(handle)}
    spec = {t["fields"]["name"]: t["fields"] for t in json.loads((tmp_path / "run" / "tasks.json").read_text())["tasks"]}
    data = load_data(config)
    test = data.test
    assert test is not None
    features = list(data.input_info["feature_names"])
    for task in ("a", "b"):
        w = np.array([float(rows[task][f]) for f in features])
        raw = test.inputs.numpy() @ w + float(rows[task]["intercept"])
        prediction = raw * spec[task]["target_std"][0] + spec[task]["target_mean"][0]
        mask = test.masks[task].numpy()
        truth = test.targets[task].numpy()[mask]
        assert math.sqrt(np.mean((prediction[mask] - truth) ** 2)) == pytest.approx(run.test[f"{task}/rmse"], rel=1e-4)


def test_the_linear_heads_are_the_estimators_own_predictions() -> None:
    rng = np.random.default_rng(0)
    X, task = rng.normal(size=(60, 4)), np.repeat([0, 1, 2], 20)
    y = X @ rng.normal(size=4) + rng.normal(size=60)
    regressor = L21MultiTaskRegressor(alpha=0.1).fit(X, y, task=task)
    heads = LinearHeads(["p", "q", "r"], regressor.coef_, regressor.intercept_)
    out = heads(torch.from_numpy(X).float(), ["p", "q", "r"])
    for t, name in enumerate("pqr"):
        np.testing.assert_allclose(out[name][:, 0].numpy(), regressor.predict(X, task=np.full(60, t)), atol=1e-5)
    labels = (y > 0).astype(int)
    classifier = L21MultiTaskClassifier(alpha=0.1).fit(X, labels, task=task)
    heads = LinearHeads(["p", "q", "r"], classifier.coef_, classifier.intercept_)
    out = heads(torch.from_numpy(X).float(), ["q"])
    np.testing.assert_allclose(out["q"][:, 0].numpy(), classifier.decision_function(X, task=np.full(60, 1)),
                               atol=1e-5)


def test_partial_labels_give_one_pair_per_labelled_cell_and_folds_share_every_task(tmp_path: Path) -> None:
    config = parse_config(_config(_table(tmp_path / "t.csv")))
    data = load_data(config)
    tasks = standardize_targets(select_tasks(config, data), data)
    source = next(iter(data.train.values()))
    pairs = _pairs([source], tasks)  # type: ignore[list-item]
    for t, task in enumerate(tasks):
        assert int((pairs.task == t).sum()) == int(source.masks[task.name].sum())
    fold = _folds(pairs.task, 5, seed=0)
    for t in range(len(tasks)):
        counts = np.bincount(fold[pairs.task == t], minlength=5)
        assert counts.max() - counts.min() <= 1  # each fold holds a fifth of every task's labels


def test_the_search_keeps_the_grid_point_cross_validation_prefers(tmp_path: Path) -> None:
    config = _config(_table(tmp_path / "t.csv"), params={}, search={"alpha": [1e-8, 100.0]}, folds=4)
    run = fit_linear_run(parse_config(config), run_dir=tmp_path / "run")
    assert run.params == {"alpha": 1e-8}  # exact labels: the least regularisation wins
    with (tmp_path / "run" / "search.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [json.loads(r["params"]) for r in rows] == [{"alpha": 1e-8}, {"alpha": 100.0}]
    scores = [float(r["score"]) for r in rows]
    assert scores[0] > scores[1] and all(len([k for k in r if k.startswith("fold_")]) == 4 for r in rows)
    for row in rows:  # the score is the mean of its folds
        assert float(row["score"]) == pytest.approx(np.mean([float(row[f"fold_{k}"]) for k in range(4)]))


def test_binary_tasks_get_the_logistic_estimator_and_their_metrics(tmp_path: Path) -> None:
    tasks = {"flag": {"kind": "binary"}}
    run = fit_linear_run(parse_config(_config(_table(tmp_path / "t.csv"), tasks, params={"alpha": 1e-4})),
                         run_dir=tmp_path / "run")
    assert set(run.test) == {"flag/accuracy", "flag/auroc", "flag/loss"}
    assert run.test["flag/accuracy"] > 0.9  # flag = x > 50: separable in x


def test_the_projects_own_table_with_empty_cells(tmp_path: Path) -> None:
    """examples/table.yaml as a user runs it: only --set on the command line."""
    result = runner.invoke(app, ["fit-linear", str(REPO / "examples" / "table.yaml"), "--run-dir", str(tmp_path / "r"),
                                 "--set", "linear.name=trace", "--set", "include_tasks=[spend]",
                                 "--set", "linear.search.alpha=[0.01,1]", "--set", "logging.report=false"])
    assert result.exit_code == 0, result.output
    assert "spend/rmse" in result.output and (tmp_path / "r" / "coef.csv").is_file()
    again = runner.invoke(app, ["fit-linear", str(REPO / "examples" / "table.yaml"), "--run-dir", str(tmp_path / "r"),
                                "--set", "linear.name=trace", "--set", "include_tasks=[spend]"])
    assert again.exit_code == 2 and "already holds a run" in again.output


@pytest.mark.parametrize("change, match", [
    ({"linear": None}, r"needs a 'linear:' section"),
    ({"linear": {"name": "ridg"}}, r"linear.*ridg.*Did you mean 'ridge'"),
    ({"linear": {"name": "ridge", "params": {"alfa": 1.0}}}, r"alfa"),
    ({"linear": {"name": "ridge", "search": {"alpha": []}}}, r"linear.search.alpha': give at least one value"),
    ({"linear": {"name": "ridge", "folds": 500}}, r"500 folds need as many labelled training rows per task"),
    ({"linear": {"name": "ridge", "params": {"alpha": -1.0}}}, r"Estimator 'ridge' with \{'alpha': -1.0\} could not "
                                                               r"be fitted.*'alpha' parameter"),
    ({"linear": {"name": "kernel_mtl", "params": {"kernel": "rbf"}}}, r"has no linear weights"),
    # before the fix: "Unknown linear MTL regressor 'tc'", for a registered estimator
    ({"linear": {"name": "tc"}}, r"'tc' fits binary tasks only, and these tasks are regression"),
    ({"tasks": {"a": {"kind": "regression"}, "flag": {"kind": "binary"}}},
     r"one loss for all tasks, but flag are binary and a are regression"),
    ({"tasks": {"region2": {"kind": "classification", "column": "region"}}},
     r"region2 is not \(a multi-class"),
])
def test_what_fit_linear_cannot_do_is_named_before_anything_is_written(
        tmp_path: Path, change: dict[str, Any], match: str) -> None:
    config = _config(_table(tmp_path / "t.csv"))
    if "tasks" in change:
        config["data"] = {**config["data"], "tasks": change["tasks"]}
        config["data"]["inputs"] = ["x"]
    else:
        config.update(change)
    with pytest.raises(ConfigError, match=match):
        fit_linear_run(parse_config(config), run_dir=tmp_path / "run")
    assert not (tmp_path / "run" / "results.json").exists()


def test_the_old_format_is_named_with_how_to_move(tmp_path: Path) -> None:
    old = {"data": {"path": "t.csv", "inputs": ["x"], "target": "y", "task": "task"},
           "estimator": {"name": "l21"}, "output_dir": str(tmp_path / "out")}
    (tmp_path / "old.yaml").write_text(yaml.safe_dump(old))
    result = runner.invoke(app, ["fit-linear", str(tmp_path / "old.yaml")])
    assert result.exit_code == 2 and "old fit-linear format" in result.output and "linear: {name" in result.output


def test_an_existing_run_is_kept_unless_overwrite(tmp_path: Path) -> None:
    config = parse_config(_config(_table(tmp_path / "t.csv")))
    fit_linear_run(config, run_dir=tmp_path / "run")
    before = (tmp_path / "run" / "results.json").read_text()
    with pytest.raises(RunDirError, match="already holds a run"):
        fit_linear_run(config, run_dir=tmp_path / "run")
    assert (tmp_path / "run" / "results.json").read_text() == before
    fit_linear_run(config, run_dir=tmp_path / "run", overwrite=True)


@pytest.mark.parametrize("override", [{"name": "trac"}, {"name": "mtgp", "params": {}}])
def test_an_overwrite_that_fails_keeps_the_old_run(tmp_path: Path, override: dict[str, object]) -> None:
    """--overwrite deleted the old run first: a typo in the estimator's name, or an estimator found
    to have no linear weights after its first fit, left the run directory empty."""
    raw = _config(_table(tmp_path / "t.csv"))
    fit_linear_run(parse_config(raw), run_dir=tmp_path / "run")
    before = {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir() if p.is_file()}
    raw["linear"] = {**raw["linear"], **override}
    with pytest.raises(ConfigError):
        fit_linear_run(parse_config(raw), run_dir=tmp_path / "run", overwrite=True)
    assert {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir() if p.is_file()} == before


@pytest.mark.report
def test_the_report_shows_the_search(tmp_path: Path) -> None:
    config = _config(_table(tmp_path / "t.csv"), params={}, search={"alpha": [1e-8, 1.0]})
    fit_linear_run(parse_config(config), run_dir=tmp_path / "run")
    page = (tmp_path / "run" / "report.html").read_text()
    assert "Cross-validation on the training rows" in page and "{&quot;alpha&quot;: 1e-08}" in page


def test_predict_and_evaluate_read_a_linear_run_as_they_read_a_deep_one(tmp_path: Path) -> None:
    """The run's test rows (a split column names them) through `manytask predict`: the same RMSE,
    to coef.csv's ten significant digits; `evaluate` on them gives the run's metrics."""
    frame = pd.read_csv(_table(tmp_path / "t.csv", seed=2))
    frame["part"] = ["test" if i % 5 == 0 else "val" if i % 5 == 1 else "train" for i in range(len(frame))]
    frame.to_csv(tmp_path / "t.csv", index=False)
    config = _config(tmp_path / "t.csv", params={"alpha": 0.3})
    config["data"]["split_column"] = "part"
    run = fit_linear_run(parse_config(config), run_dir=tmp_path / "run")
    test_rows = frame[frame["part"] == "test"]
    test_rows.to_csv(tmp_path / "test.csv", index=False)
    result = runner.invoke(app, ["predict", str(tmp_path / "run"), "--data", str(tmp_path / "test.csv"),
                                 "--out", str(tmp_path / "out.csv")])
    assert result.exit_code == 0, result.output
    predicted = pd.read_csv(tmp_path / "out.csv")
    labelled = test_rows["a"].notna().to_numpy()
    rmse = math.sqrt(np.mean((predicted["a"].to_numpy()[labelled] - test_rows["a"].to_numpy()[labelled]) ** 2))
    assert rmse == pytest.approx(run.test["a/rmse"], rel=1e-5)
    metrics = evaluate_file(tmp_path / "run", tmp_path / "test.csv")
    assert metrics["b/rmse"] == pytest.approx(run.test["b/rmse"], rel=1e-5)


BINARY = {"flag": {"kind": "binary"}}


@pytest.mark.parametrize("name, tasks", [
    ("kernel_mtl", None), ("aso", None), ("shared_hypotheses", None), ("hierarchical_bayes", None),
    ("task_gating", None), ("mmtfl", None), ("vstg", None), ("group_mtfl", None), ("mmtfl", BINARY),
    ("vstg", BINARY), ("group_mtfl", BINARY), ("perceptron_mtl", BINARY), ("dp_mtl", BINARY)])
def test_the_estimators_outside_the_first_family_by_their_short_names(tmp_path: Path, name: str, tasks: Any) -> None:
    run = fit_linear_run(parse_config(_config(_table(tmp_path / "t.csv"), tasks, name=name, params={})),
                         run_dir=tmp_path / "r")
    assert json.loads((tmp_path / "r" / "results.json").read_text())["estimator"] == name
    key = "a/rmse" if tasks is None else "flag/accuracy"
    assert math.isfinite(run.test[key])


@pytest.mark.parametrize("name, tasks", [("mtgp", None), ("tc", BINARY)])
def test_an_estimator_without_linear_weights_is_named_before_anything_is_written(
        tmp_path: Path, name: str, tasks: Any) -> None:
    """A Gaussian process and nearest neighbour have no ``coef_`` to save: a ConfigError says so."""
    with pytest.raises(ConfigError, match=f"{name!r}.*no linear weights"):
        fit_linear_run(parse_config(_config(_table(tmp_path / "t.csv"), tasks, name=name, params={})),
                       run_dir=tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_a_fold_where_a_task_is_undefined_says_so(tmp_path: Path) -> None:
    """A task with few positives can leave a fold's rows with one class: its AUROC is undefined
    there and the fold's mean covers the other tasks. That was silent while the log said "mean
    auroc over 2 main tasks"; now the fold says which task it left out."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=240)
    rare = np.zeros(240, dtype=int)
    rare[np.argsort(x)[-5:]] = 1  # 5 positives (the largest x): some of the 5 folds get none
    lines = ["x,flag,rare"] + [f"{v:.6f},{int(v > 0)},{r}" for v, r in zip(x, rare)]
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    config = {"data": {"name": "table", "path": str(tmp_path / "t.csv"), "inputs": ["x"],
                       "tasks": {"flag": {"kind": "binary"}, "rare": {"kind": "binary"}}},
              "linear": {"name": "ridge", "params": {"alpha": 0.1}, "folds": 5},
              "training": {"steps": 20, "eval_every": 10, "progress": False}}
    said: list[str] = []
    fit_linear_run(parse_config(config), run_dir=tmp_path / "run", log=said.append, report=False)
    assert any("rare/auroc undefined on the fold's rows; left out of that fold's mean (1 of 2 tasks)" in s
               for s in said), said
