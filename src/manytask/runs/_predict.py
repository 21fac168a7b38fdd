"""A trained table run on new rows: ``manytask predict`` (predictions) and ``manytask evaluate``
(metrics on a labelled file)."""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from .._utils import TableError, atomic_write, read_table
from .._utils._table_io import first_fields
from ..data import TensorSource
from ..data.datasets._table import _encode_labels, encode_saved
from ..evaluation import evaluate
from ._saved import LoadedRun, load_run

__all__ = ["encode_rows", "evaluate_file", "predict", "predict_frame"]

log = logging.getLogger(__name__)


def _check_columns(frame: pd.DataFrame, preprocessing: dict[str, Any], where: str) -> None:
    """The new rows must have every input column; a column that is neither an input, a label
    nor excluded is named (it would be silently ignored otherwise)."""
    inputs = preprocessing["encoder"]["inputs"]
    missing = [c for c in inputs if c not in frame.columns]
    if missing:
        raise TableError(f"{where}: input column(s) {missing} of the training table are missing; the model reads "
                         f"{inputs}.")
    known = {*inputs, *(spec["column"] for spec in preprocessing["labels"].values()), *preprocessing.get("other", [])}
    extra = [str(c) for c in frame.columns if c not in known]
    if extra:
        raise TableError(f"{where}: column(s) {extra} were not in the training table's inputs or labels; remove "
                         f"them (the model reads {inputs}).")


def encode_rows(run: LoadedRun, frame: pd.DataFrame, where: str = "rows") -> torch.Tensor:
    """The model's input for the rows of ``frame`` (text cells, None where empty), encoded with the
    preprocessing fitted on the training rows (``preprocessing.json``): what an exported
    ``model.pt2`` takes."""
    if run.preprocessing is None or run.preprocessing.get("dataset") != "table":
        raise TableError(f"{run.run_dir} was not trained on a table (no preprocessing.json): its inputs are the "
                         "dataset's own tensors.")
    _check_columns(frame, run.preprocessing, where)
    return encode_saved(run.preprocessing["encoder"], frame, where)


def predict_frame(run: LoadedRun, frame: pd.DataFrame, batch_size: int = 1024, where: str = "rows") -> pd.DataFrame:
    """One row of predictions per row of ``frame`` (text cells, None where empty): per task its
    value, or its class with ``<task>/prob_<class>`` columns, or a binary task's 0/1 with
    ``<task>/prob_1``. Auxiliary and privileged columns are not needed; view tasks are left out."""
    if run.preprocessing is None or run.preprocessing.get("dataset") != "table":
        raise TableError(f"{run.run_dir} was not trained on a table (no preprocessing.json); predict reads tables. "
                         "In Python, manytask.load_run(RUN_DIR).model gives the model.")
    x = encode_rows(run, frame, where)
    tasks = [t for t in run.tasks if t.view is None]
    names = [t.name for t in tasks]
    outputs: dict[str, list[torch.Tensor]] = {n: [] for n in names}
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            produced = run.model(x[start:start + batch_size], names)
            for task in tasks:
                outputs[task.name].append(task.predictions(produced[task.name]).float())
    columns: dict[str, Any] = {}
    for task in tasks:
        values = torch.cat(outputs[task.name]) if outputs[task.name] else torch.zeros(0)
        label = run.preprocessing["labels"].get(task.name, {})
        if task.kind == "classification":
            classes = label.get("classes") or [str(k) for k in range(values.shape[1])]
            columns[task.name] = [classes[int(k)] for k in values.argmax(1)]
            for k, name in enumerate(classes):
                columns[f"{task.name}/prob_{name}"] = values[:, k].numpy()
        elif task.kind == "binary":
            values = values.reshape(len(values), -1)
            if values.shape[1] == 1:
                columns[task.name] = (values[:, 0] > 0.5).long().numpy()  # as the metrics threshold it
                columns[f"{task.name}/prob_1"] = values[:, 0].numpy()
            else:
                for k in range(values.shape[1]):
                    columns[f"{task.name}/prob_{k}"] = values[:, k].numpy()
        else:
            values = values.reshape(len(values), -1)
            if values.shape[1] == 1:
                columns[task.name] = values[:, 0].numpy()
            else:
                for k in range(values.shape[1]):
                    columns[f"{task.name}/{k}"] = values[:, k].numpy()
    kept = {c: frame[c].to_numpy() for c in run.preprocessing.get("other", []) if c in frame.columns}  # ids
    return pd.DataFrame({**kept, **columns})


def read_rows(path: Path, preprocessing: dict[str, Any]) -> pd.DataFrame:
    """New rows for a run trained on a table: with a header row, or, where the training table had
    none (``columns``), headerless in the training file's layout or as its input columns alone."""
    sep, headerless = preprocessing.get("sep"), list(preprocessing.get("columns") or [])
    first = first_fields(path, sep) if headerless else []
    if not first or set(first) <= set(headerless):  # a header row names the columns
        return read_table(path, sep, text=True)
    inputs = preprocessing["encoder"]["inputs"]
    for names in (headerless, inputs):
        if len(first) == len(names):
            return read_table(path, sep, text=True, columns=names)
    raise TableError(f"{path}: the run was trained on a table without a header row, of {len(headerless)} columns "
                     f"({', '.join(headerless[:4])}, ...) with {len(inputs)} inputs; this file's first line has "
                     f"{len(first)} fields. Give rows of either width, or a header row naming the columns.")


def predict(run_dir: str | Path, data: str | Path, checkpoint: str = "best", out: str | Path | None = None) -> Path:
    """Write the predictions of the run at ``run_dir`` for the rows of the table ``data`` to
    ``out`` (default ``<run_dir>/predictions.csv``), atomically; return its path."""
    run = load_run(run_dir, checkpoint)
    path = Path(data)
    if not path.is_file():
        raise FileNotFoundError(f"--data {path}: no such file; give the CSV or Parquet table of new rows.")
    preprocessing = run.preprocessing or {}
    frame = read_rows(path, preprocessing)
    if frame.empty:
        raise TableError(f"--data {path} holds no rows (a header at most); give the rows to predict.")
    predictions = predict_frame(run, frame, where=str(path))
    target = Path(out) if out is not None else Path(run_dir) / "predictions.csv"
    buffer = io.StringIO()
    predictions.to_csv(buffer, index=False)
    atomic_write(target, buffer.getvalue())
    return target


def evaluate_file(run_dir: str | Path, data: str | Path, checkpoint: str = "best",
                  out: str | Path | None = None) -> dict[str, float]:
    """The metrics of every task of the run at ``run_dir`` on the labelled table ``data`` (an
    empty label cell, or a missing label column, is no label), keyed ``"<task>/<metric>"`` as in
    ``metrics.csv``; written as one CSV row to ``out`` (default ``<run_dir>/evaluation.csv``)."""
    run = load_run(run_dir, checkpoint)
    path = Path(data)
    if not path.is_file():
        raise FileNotFoundError(f"--data {path}: no such file; give the labelled CSV or Parquet table.")
    if run.preprocessing is None or run.preprocessing.get("dataset") != "table":
        raise TableError(f"{run.run_dir} was not trained on a table (no preprocessing.json); evaluate reads tables.")
    frame = read_rows(path, run.preprocessing)
    if frame.empty:
        raise TableError(f"--data {path} holds no rows (a header at most); give labelled rows to score.")
    _check_columns(frame, run.preprocessing, str(path))
    x = encode_saved(run.preprocessing["encoder"], frame, str(path))
    tasks = [t for t in run.tasks if t.view is None]
    targets, masks = {}, {}
    for task in tasks:
        label = run.preprocessing["labels"][task.name]
        if label.get("multi_input"):
            raise TableError(f"{run.run_dir} was trained on a one-task-per-row table; evaluate reads tables with one "
                             "column per task.")
        if label["column"] not in frame.columns:
            continue  # no label for this task in the file
        spec = {"column": label["column"], **{k: label[k] for k in ("positive", "above", "bins") if k in label}}
        if label.get("classes") is not None and "bins" not in label:
            spec["classes"] = label["classes"]
        targets[task.name], masks[task.name], _ = _encode_labels(task.name, label["kind"], frame[label["column"]],
                                                                 spec, path)
    for task in tasks:
        if task.name not in masks or not bool(masks[task.name].any()):
            column = run.preprocessing["labels"][task.name]["column"]
            log.warning("manytask: %s has no label for task %r (column %r is %s): its metrics are NaN.", path,
                        task.name, column, "empty" if column in frame.columns else "absent")
    metrics = evaluate(run.model, tasks, TensorSource(x, targets, masks, path.name))
    target = Path(out) if out is not None else Path(run_dir) / "evaluation.csv"
    row = pd.DataFrame([{f"{path.name}/{k}": v for k, v in metrics.items()}])
    buffer = io.StringIO()
    row.to_csv(buffer, index=False)
    atomic_write(target, buffer.getvalue())
    return metrics
