"""Your own data: a table (CSV or Parquet) with input columns and labels, trained with a config."""

from __future__ import annotations

import csv
import difflib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from ...tasks import BinaryClassification, Classification, Regression, Task
from .._dataset import DATASETS, MultiTaskData, data_root
from ._files import MissingDataError, open_text, source_from_rows, split_groups, split_indices

__all__ = ["Encoder", "TableError", "read_table", "table"]

Column = list[Any]  # values, None where the cell is empty
Kind = Literal["classification", "binary", "regression"]
KINDS = ("classification", "binary", "regression")
TASK_KEYS = ("kind", "column", "role", "metrics", "classes", "positive")
SPLIT_NAMES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
TRUE = {"1", "1.0", "true", "yes", "y", "t"}
FALSE = {"0", "0.0", "false", "no", "n", "f"}


class TableError(ValueError):
    """A table or its options do not fit together (unknown column, empty label column, ...)."""


def _missing(value: Any) -> bool:
    if value is None:
        return True
    if type(value) is str:
        return not value or value.isspace()
    return isinstance(value, float) and math.isnan(value)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(str(value).strip())
    except ValueError:
        return None


def _text(value: Any) -> str:
    if type(value) is str:
        return value.strip()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def read_table(path: Path, sep: str | None = None) -> dict[str, Column]:
    """The columns of a CSV (optionally gzipped; ``.tsv`` is tab-separated) or Parquet file.

    CSV cells are strings with surrounding spaces removed; an empty cell reads as None.
    """
    name = path.name.lower()
    if name.endswith((".parquet", ".pq")):
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise ImportError(
                f'Reading {path} needs pyarrow. Install it with: pip install "manytask[parquet]"'
            ) from None
        data = pq.read_table(path).to_pydict()
        return {str(k): [None if _missing(v) else v for v in vs] for k, vs in data.items()}
    if sep is None:
        sep = "\t" if name.endswith((".tsv", ".tsv.gz", ".tab")) else ","
    with open_text(path) as f:
        rows = list(csv.reader(f, delimiter=sep))
    if not rows:
        raise TableError(f"{path} is empty; the first line must name the columns.")
    header = [h.strip() for h in rows[0]]
    duplicates = sorted({h for h in header if header.count(h) > 1})
    if duplicates or "" in header:
        raise TableError(f"{path}: column names must be unique and non-empty; got {header}.")
    columns: dict[str, Column] = {h: [] for h in header}
    for number, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise TableError(
                f"{path}, line {number}: {len(row)} fields but the header has {len(header)} "
                f"(separator {sep!r}; set the 'sep' option if the file uses another one)."
            )
        for h, value in zip(header, row):
            value = value.strip()
            columns[h].append(value if value else None)
    return columns


def _floats(name: str, values: Sequence[Any], where: str) -> tuple[np.ndarray, np.ndarray]:
    """``(x, present)``: the values as float64 (NaN where empty) and where they are present."""
    missing = {v: _missing(v) for v in set(values)}
    present = ~np.fromiter(map(missing.__getitem__, values), dtype=bool, count=len(values))
    raw = np.array([None if m else v for v, m in zip(values, ~present)], dtype=object)
    raw[~present] = "nan"
    try:
        x = raw.astype(np.float64)
    except (ValueError, TypeError):
        x = None
    if x is None or not np.isfinite(x[present]).all():
        bad = next(v for v, p in zip(values, present) if p and not _finite(v))
        raise TableError(
            f"{where}: column {name!r} is numeric but holds {bad!r}. Fix the value (leave the "
            "cell empty where it is missing), or, for an input column, list it under "
            "'categorical' to one-hot encode it."
        )
    return x, present


def _finite(value: Any) -> bool:
    x = _number(value)
    return x is not None and math.isfinite(x)


@dataclass
class Encoder:
    """Input encoding fitted on training rows: numeric columns standardised, others one-hot.

    Numeric: ``(x - mean) / std`` with the training mean and standard deviation (std 0 -> 1);
    an empty cell becomes 0 (the training mean). Categorical: one 0/1 column per category seen
    in training, in sorted order; an empty cell or an unseen category gives all zeros.
    """

    numeric: dict[str, tuple[float, float]]
    categorical: dict[str, tuple[str, ...]]
    order: tuple[str, ...]

    @classmethod
    def fit(
        cls, columns: Mapping[str, Sequence[Any]], numeric: Sequence[str], where: str
    ) -> Encoder:
        """Fit on the training rows of ``columns``; ``numeric`` names the numeric ones."""
        stats: dict[str, tuple[float, float]] = {}
        categories: dict[str, tuple[str, ...]] = {}
        for name, values in columns.items():
            if name in numeric:
                x, present = _floats(name, values, where)
                x = x[present]
                mean = float(x.mean()) if x.size else 0.0
                std = float(x.std()) if x.size else 1.0
                stats[name] = (mean, std if std > 0 else 1.0)
            else:
                categories[name] = tuple(sorted({_text(v) for v in set(values) if not _missing(v)}))
        return cls(stats, categories, tuple(columns))

    @property
    def feature_names(self) -> list[str]:
        """One name per encoded feature (``column`` or ``column=category``)."""
        names: list[str] = []
        for name in self.order:
            if name in self.numeric:
                names.append(name)
            else:
                names += [f"{name}={c}" for c in self.categorical[name]]
        return names

    def transform(self, columns: Mapping[str, Sequence[Any]], where: str = "table") -> Tensor:
        """Encode ``columns`` (all rows) as a float32 tensor ``[N, F]``."""
        n = len(next(iter(columns.values()))) if columns else 0
        width = len(self.numeric) + sum(len(c) for c in self.categorical.values())
        out = np.zeros((n, width), dtype=np.float32)
        start = 0
        for name in self.order:
            values = columns[name]
            if name in self.numeric:
                mean, std = self.numeric[name]
                x, present = _floats(name, values, where)
                x[~present] = mean
                out[:, start] = (x - mean) / std
                start += 1
            else:
                index = {c: i for i, c in enumerate(self.categorical[name])}
                code = {v: -1 if _missing(v) else index.get(_text(v), -1) for v in set(values)}
                cols = np.fromiter(map(code.__getitem__, values), dtype=np.int64, count=n)
                rows = np.flatnonzero(cols >= 0)
                out[rows, start + cols[rows]] = 1.0
                start += len(index)
        return torch.from_numpy(out)


def _is_numeric(values: Column) -> bool:
    return all(_number(v) is not None for v in values if not _missing(v))


def _check_columns(
    names: Sequence[str], columns: Mapping[str, Column], what: str, path: Path
) -> None:
    for name in names:
        if name not in columns:
            close = difflib.get_close_matches(name, list(columns), n=3, cutoff=0.5)
            hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
            raise TableError(
                f"{path} has no column {name!r} (named in {what}).{hint} "
                f"Columns: {', '.join(columns)}."
            )


def _sorted_labels(values: Sequence[str]) -> list[str]:
    if all(_number(v) is not None for v in values):
        return sorted(values, key=lambda v: float(v))  # type: ignore[arg-type,return-value]
    return sorted(values)


def _encode_labels(
    task: str, kind: str, values: Column, spec: Mapping[str, Any], path: Path
) -> tuple[Tensor, Tensor, dict[str, Any]]:
    """Targets, mask and extra task arguments for one label column."""
    mask = np.array([not _missing(v) for v in values])
    present = [v for v, m in zip(values, mask) if m]
    where = f"{path}, task {task!r} (column {spec.get('column', task)!r})"
    extra: dict[str, Any] = {}
    if kind == "regression":
        y = np.zeros(len(values), dtype=np.float32)
        y[mask] = _floats(str(spec.get("column", task)), present, where)[0]
    elif kind == "binary":
        y = np.zeros(len(values), dtype=np.float32)
        texts = [_text(v).lower() for v in present]
        if "positive" in spec:
            positive = _text(spec["positive"]).lower()
            labels = [float(t == positive) for t in texts]
        else:
            bad = sorted(set(texts) - TRUE - FALSE)
            if bad:
                raise TableError(
                    f"{where}: binary labels must be 0/1 (or true/false, yes/no); found {bad[:5]}. "
                    "Set 'positive' to the value that means 1, or make it a classification task."
                )
            labels = [float(t in TRUE) for t in texts]
        y[mask] = labels
    else:
        texts = [_text(v) for v in present]
        if "classes" in spec:
            classes = [_text(c) for c in spec["classes"]]
            unknown = sorted(set(texts) - set(classes))
            if unknown:
                raise TableError(f"{where}: labels {unknown[:5]} are not in 'classes' {classes}.")
        else:
            classes = _sorted_labels(sorted(set(texts)))
        if len(classes) < 2:
            raise TableError(
                f"{where}: a classification task needs at least 2 classes, found {classes}."
            )
        index = {c: i for i, c in enumerate(classes)}
        y = np.zeros(len(values), dtype=np.int64)
        y[mask] = [index[t] for t in texts]
        extra = {"num_classes": len(classes)}
    return torch.from_numpy(y), torch.from_numpy(mask), extra


def _make_task(name: str, kind: str, spec: Mapping[str, Any], extra: Mapping[str, Any]) -> Task:
    options: dict[str, Any] = {"role": spec.get("role", "main"), **extra}
    if spec.get("metrics"):
        options["metrics"] = tuple(spec["metrics"])
    if kind == "classification":
        return Classification(name, **options)
    if kind == "binary":
        return BinaryClassification(name, **options)
    return Regression(name, **options)


def _check_spec(name: str, spec: Any) -> dict[str, Any]:
    if not isinstance(spec, Mapping):
        raise TableError(
            f"Task {name!r}: its entry under 'tasks' must be a mapping such as "
            f"{{kind: regression, column: ...}}. Got {spec!r}."
        )
    for key in spec:
        if key not in TASK_KEYS:
            close = difflib.get_close_matches(str(key), TASK_KEYS, n=2, cutoff=0.5)
            hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
            raise TableError(
                f"Task {name!r}: unknown key {key!r}.{hint} Valid keys: {', '.join(TASK_KEYS)}."
            )
    kind = spec.get("kind")
    if kind not in KINDS:
        raise TableError(f"Task {name!r}: 'kind' must be one of {', '.join(KINDS)}. Got {kind!r}.")
    return dict(spec)


def _resolve(path: str, root: str | None) -> Path:
    p = Path(path).expanduser()
    if p.is_absolute():
        candidates = [p]
    elif root is not None:
        candidates = [Path(root).expanduser() / p]
    else:
        candidates = [p, data_root(None) / p]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    hint = ""
    folder = candidates[0].parent
    if folder.is_dir():
        close = difflib.get_close_matches(
            candidates[0].name, [f.name for f in folder.iterdir()], n=3
        )
        hint = f" Did you mean {', '.join(repr(str(folder / c)) for c in close)}?" if close else ""
    raise MissingDataError(
        f"Dataset 'table': the file {path!r} was not found (looked for: "
        f"{', '.join(str(c) for c in candidates)}).{hint} Give 'path' as an absolute path or "
        "relative "
        "to the current directory (or to 'root' when it is set); the file must be a CSV "
        "(.csv, .tsv, optionally .gz) or Parquet (.parquet) table with a header row."
    )


@DATASETS.register("table")
def table(
    root: str | None = None,
    path: str | None = None,
    inputs: list[str] | None = None,
    categorical: list[str] | None = None,
    tasks: dict[str, dict[str, Any]] | None = None,
    target: str | None = None,
    task_column: str | None = None,
    task_kind: Kind = "regression",
    split_column: str | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
    sep: str | None = None,
) -> MultiTaskData:
    """A table of your own (CSV or Parquet), in one of two forms.

    * **One column per task** (``tasks``): each row is one sample; ``tasks`` maps a task name
      to ``{kind: classification | binary | regression, column: <label column, default the
      task name>, role: main | auxiliary, metrics: [...], classes: [...], positive: <value>}``.
      An empty cell means "no label" for that task (mask False).
    * **Multi-input** (``target`` + ``task_column``): each row belongs to one task, named by
      its value in ``task_column``; its label is in ``target``. All tasks have kind
      ``task_kind``; the split is made within each task.

    Inputs: the ``inputs`` columns (default: every column that is not a label, task or split
    column). A column whose values all parse as numbers is standardised with the training
    rows' mean and std (empty -> 0, the mean); others, and those listed in ``categorical``, are
    one-hot encoded with the categories of the training rows (empty or unseen -> all zeros).
    Classification labels are mapped to 0..C-1 in sorted order (numeric order when numeric)
    unless ``classes`` gives the order; binary labels are 0/1, true/false or yes/no, or
    ``positive`` names the value meaning 1.

    Args:
        root: If set, a relative ``path`` is read from there.
        path: The table: ``.csv``/``.tsv`` (optionally ``.gz``, with a header row) or ``.parquet``.
        inputs: Input columns.
        categorical: Input columns to one-hot encode even if they look numeric.
        tasks: The one-column-per-task form (see above).
        target: Label column of the multi-input form.
        task_column: Task-id column of the multi-input form.
        task_kind: Kind of every task of the multi-input form.
        split_column: A column with ``train`` / ``val`` / ``test`` per row; else a seeded split.
        val_fraction: Fraction of rows for validation (random split only).
        test_fraction: Fraction of rows for test (random split only).
        seed: Seed of the random split.
        sep: CSV field separator (default ``,``; tab for ``.tsv``).
    """
    if path is None:
        raise TableError(
            "Dataset 'table' needs the 'path' option: the CSV or Parquet file to read."
        )
    multi = target is not None or task_column is not None
    if multi and tasks:
        raise TableError(
            "Give either 'tasks' (one column per task) or 'target' + 'task_column' (one task per "
            "row), not both."
        )
    if multi and (target is None or task_column is None):
        raise TableError("The multi-input form needs both 'target' and 'task_column'.")
    if not multi and not tasks:
        raise TableError(
            "Dataset 'table' needs its tasks: 'tasks' (e.g. {churn: {kind: binary}}) for one "
            "label column per task, or 'target' + 'task_column' for one task per row."
        )
    if task_kind not in KINDS:
        raise TableError(f"'task_kind' must be one of {', '.join(KINDS)}. Got {task_kind!r}.")
    file = _resolve(path, root)
    columns = read_table(file, sep)
    n = len(next(iter(columns.values()))) if columns else 0
    if n == 0:
        raise TableError(f"{file} has no data row.")

    specs: dict[str, dict[str, Any]] = {}
    if multi:
        assert target is not None and task_column is not None
        _check_columns([target, task_column], columns, "'target'/'task_column'", file)
        used = [target, task_column]
    else:
        assert tasks is not None
        specs = {name: _check_spec(name, spec) for name, spec in tasks.items()}
        label_columns = [str(s.get("column", name)) for name, s in specs.items()]
        _check_columns(label_columns, columns, "'tasks'", file)
        used = label_columns
    if split_column is not None:
        _check_columns([split_column], columns, "'split_column'", file)
        used = [*used, split_column]
    if inputs is None:
        inputs = [c for c in columns if c not in used]
    else:
        _check_columns(inputs, columns, "'inputs'", file)
        clash = [c for c in inputs if c in used]
        if clash:
            raise TableError(
                f"Columns {clash} are labels, task ids or splits and cannot be inputs."
            )
    if not inputs:
        raise TableError(f"{file}: no input column is left; list them under 'inputs'.")
    _check_columns(categorical or [], columns, "'categorical'", file)

    # Labels.
    targets: dict[str, Tensor] = {}
    masks: dict[str, Tensor] = {}
    task_objects: list[Task] = []
    groups: np.ndarray | None = None
    if multi:
        assert target is not None and task_column is not None
        ids = columns[task_column]
        if any(_missing(v) for v in ids):
            row = next(i for i, v in enumerate(ids) if _missing(v))
            raise TableError(
                f"{file}: column {task_column!r} is empty in data row {row + 1}; every row "
                "needs a task id."
            )
        names = _sorted_labels(sorted({_text(v) for v in ids}))
        id_text = np.array([_text(v) for v in ids], dtype=object)
        y, labelled, extra = _encode_labels(
            target, task_kind, columns[target], {"column": target}, file
        )
        lookup = {t: i for i, t in enumerate(names)}
        groups = np.array([lookup[t] for t in id_text], dtype=np.int64)
        for i, name in enumerate(names):
            if not name or "/" in name:
                raise TableError(
                    f"{file}: task id {name!r} in {task_column!r} cannot be a task name "
                    "(non-empty, no '/')."
                )
            mask = labelled & torch.from_numpy(groups == i)
            targets[name], masks[name] = y, mask
            task_objects.append(_make_task(name, task_kind, {}, extra))
    else:
        for name, spec in specs.items():
            column = str(spec.get("column", name))
            y, mask, extra = _encode_labels(name, spec["kind"], columns[column], spec, file)
            targets[name], masks[name] = y, mask
            task_objects.append(_make_task(name, spec["kind"], spec, extra))
    for name, mask in masks.items():
        if not bool(mask.any()):
            raise TableError(
                f"{file}: task {name!r} has no label at all (its column is empty in every row"
                + (" of that task" if multi else "")
                + "); fill it in or remove the task."
            )

    # Split.
    if split_column is not None:
        raw = [
            None if _missing(v) else SPLIT_NAMES.get(_text(v).lower())
            for v in columns[split_column]
        ]
        bad = sorted(
            {_text(v) for v, r in zip(columns[split_column], raw) if r is None and not _missing(v)}
        )
        if bad or any(_missing(v) for v in columns[split_column]):
            raise TableError(
                f"{file}: column {split_column!r} must hold train, val or test in every row; found "
                f"{bad[:5] or 'empty cells'}."
            )
        parts = [
            torch.tensor([i for i, r in enumerate(raw) if r == p], dtype=torch.long)
            for p in ("train", "val", "test")
        ]
    elif groups is not None:
        parts = list(split_groups(groups, val_fraction, test_fraction, seed))
    else:
        parts = list(split_indices(n, val_fraction, test_fraction, seed))
    train_idx, val_idx, test_idx = parts
    if len(train_idx) == 0:
        raise TableError(f"{file}: the training split is empty.")
    for name, mask in masks.items():
        if not bool(mask[train_idx].any()):
            raise TableError(
                f"{file}: task {name!r} has no label in the training split "
                f"({len(train_idx)} rows); "
                "give it more labelled rows or change the split."
            )

    # Inputs, encoded with training statistics only.
    forced = set(categorical or [])
    numeric = [c for c in inputs if c not in forced and _is_numeric(columns[c])]
    train_rows = train_idx.tolist()
    encoder = Encoder.fit(
        {c: [columns[c][i] for i in train_rows] for c in inputs}, numeric, where=str(file)
    )
    x = encoder.transform({c: columns[c] for c in inputs}, where=str(file))
    stem = file.name.split(".")[0]
    train = source_from_rows(x, targets, masks, train_idx, f"{stem}/train")
    assert train is not None
    return MultiTaskData(
        tasks=tuple(task_objects),
        train={stem: train},
        val=source_from_rows(x, targets, masks, val_idx, f"{stem}/val"),
        test=source_from_rows(x, targets, masks, test_idx, f"{stem}/test"),
        input_info={"in_features": x.shape[1], "feature_names": tuple(encoder.feature_names)},
        description=(
            f"table {file.name}: {len(train_idx)} train / {len(val_idx)} val / {len(test_idx)} "
            f"test rows, {x.shape[1]} features, {len(task_objects)} tasks"
        ),
    )
