"""Your own data: a table (CSV or Parquet) with input columns and labels, trained with a config."""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from scipy import sparse
from sklearn.compose import ColumnTransformer
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from torch import Tensor

from ..._utils import TableError, data_root, did_you_mean, read_table, split_groups, split_indices
from ...tasks import BinaryClassification, Classification, Regression, Task
from ...tasks._auxiliary import expand_auxiliary
from .._dataset import DATASETS, MultiTaskData
from ._files import MissingDataError, source_from_rows

__all__ = ["Encoder", "TableError", "read_table", "table"]

log = logging.getLogger(__name__)

Kind = Literal["classification", "binary", "regression"]
KINDS = ("classification", "binary", "regression")
TASK_KEYS = ("kind", "column", "role", "metrics", "classes", "positive", "above", "bins", "from_input")
SPLIT_NAMES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
TRUE = {"1", "1.0", "true", "yes", "y", "t"}
FALSE = {"0", "0.0", "false", "no", "n", "f"}


def _text(value: Any) -> str:
    """A config value (``classes``, ``positive``) as the text a cell would hold (2.0 -> "2")."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


_NUMBER_FIX = ("Fix the value (leave the cell empty where it is missing), or, for an input column, list it under "
               "'categorical' to one-hot encode it.")


def _numbers(column: pd.Series, where: str, fix: str = _NUMBER_FIX) -> np.ndarray:
    """``column`` (text) as float64, NaN where empty; a cell that is not a finite number raises."""
    x = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = column.notna().to_numpy() & ~np.isfinite(x)
    if bad.any():
        raise TableError(f"{where}: column {column.name!r} is numeric but holds {column.to_numpy()[bad][0]!r}. {fix}")
    return x


def _refuse_identifiers(text_columns: list[str], train_rows: pd.DataFrame, file: Path) -> None:
    """A text input with a different value in every training row (an id, a name) would be one
    one-hot feature per row that no other row shares: refused unless listed in 'categorical'."""
    for column in text_columns:
        values = train_rows[column].dropna()
        if len(values) >= 20 and values.nunique() == len(values):
            raise TableError(
                f"{file}: input column {column!r} has a different value in each of its {len(values)} training "
                f"rows (an identifier?); one-hot encoded, no other row would share any of its features. Leave "
                f"it out with exclude: [{column}], or list it under 'categorical' to encode it anyway."
            )


def _is_numeric(column: pd.Series, where: str) -> bool:
    """Whether an input column is numeric. A column whose cells are mostly numbers but not all
    is an error naming the rows and values: one stray string must not one-hot encode it."""
    present = column.dropna()
    parsed = pd.to_numeric(present, errors="coerce")
    stray = present[parsed.isna()]
    if stray.empty:
        return True
    if len(stray) <= len(present) / 2:
        rows = ", ".join(f"row {i + 2}: {v!r}" for i, v in stray.head(5).items())  # +2: header, 1-based
        raise TableError(
            f"{where}: input column {column.name!r} is numeric in {len(present) - len(stray)} of "
            f"{len(present)} cells but not in {len(stray)} ({rows}{', ...' if len(stray) > 5 else ''}). "
            "Fix those cells (leave a cell empty where the value is missing), or list the column "
            "under 'categorical' to one-hot encode it."
        )
    return False


#: A numeric classification column with more distinct values than this is probably continuous.
MANY_CLASSES = 100


def _is_number_list(values: Sequence[str]) -> bool:
    return bool(pd.to_numeric(pd.Series(list(values)), errors="coerce").notna().all())


def _sorted_labels(values: Iterable[str]) -> list[str]:
    """Sorted as numbers when they all are numbers, else as text."""
    try:
        return sorted(sorted(values), key=float)
    except ValueError:
        return sorted(values)


def _feature_name(column: str, category: Any) -> str:
    return f"{column}={category}"


@dataclass(frozen=True)
class Encoder:
    """Input encoding fitted on training rows: numeric columns standardised, others one-hot.

    A :class:`~sklearn.compose.ColumnTransformer` with one step per column, in column order.
    Numeric: :class:`~sklearn.preprocessing.StandardScaler` (training mean and standard
    deviation, std 0 -> 1); an empty cell becomes 0 (the training mean). Categorical:
    :class:`~sklearn.preprocessing.OneHotEncoder` with one 0/1 column per category seen in
    training (text stripped of surrounding spaces), in sorted order; an empty cell or a
    category unseen in training gives all zeros.
    """

    transformer: ColumnTransformer
    numeric: tuple[str, ...]

    @classmethod
    def fit(cls, train: pd.DataFrame, numeric: Sequence[str], where: str = "table") -> Encoder:
        """Fit on the training rows ``train`` (text cells, None where empty)."""
        prepared = _prepare(train, numeric, where)
        steps: list[tuple[str, Any, list[str]]] = []
        for name, values in prepared.items():
            if name in numeric:  # a column empty in every training row passes through (0)
                scaler = StandardScaler() if values.notna().any() else "passthrough"
                steps.append((str(name), scaler, [str(name)]))
            elif categories := sorted(set(pd.unique(values.to_numpy())) - {""}):
                one_hot = OneHotEncoder(
                    categories=[categories], handle_unknown="ignore", dtype=np.float32,
                    feature_name_combiner=_feature_name,
                )  # fmt: skip
                steps.append((str(name), one_hot, [str(name)]))
        if not steps:
            raise TableError(f"{where}: the input columns are empty in every training row.")
        transformer = ColumnTransformer(steps, sparse_threshold=1, verbose_feature_names_out=False)
        return cls(transformer.fit(prepared), tuple(numeric))

    @property
    def feature_names(self) -> list[str]:
        """One name per encoded feature (``column`` or ``column=category``)."""
        return [str(n) for n in self.transformer.get_feature_names_out()]

    def transform(self, frame: pd.DataFrame, where: str = "table") -> Tensor:
        """Encode the rows of ``frame`` as a float32 tensor ``[N, F]``."""
        x = self.transformer.transform(_prepare(frame, self.numeric, where))
        x = x.astype(np.float32).toarray() if sparse.issparse(x) else x.astype(np.float32)
        return torch.from_numpy(np.nan_to_num(x, copy=False, nan=0.0))

    def state(self) -> dict[str, Any]:
        """What was fitted, as JSON: per input column (in order) its training mean and scale, or
        its categories (see :func:`encode_saved`, which applies it without scikit-learn)."""
        steps = []
        for name, fitted, columns in self.transformer.transformers_:
            if name == "remainder":
                continue
            if isinstance(fitted, StandardScaler):
                steps.append({"column": columns[0], "mean": float(fitted.mean_[0]), "scale": float(fitted.scale_[0])})
            elif isinstance(fitted, OneHotEncoder):
                steps.append({"column": columns[0], "categories": [str(c) for c in fitted.categories_[0]]})
            else:  # a numeric column empty in every training row: passed through (0)
                steps.append({"column": columns[0], "mean": 0.0, "scale": 1.0})
        return {"numeric": list(self.numeric), "steps": steps, "inputs": list(self.transformer.feature_names_in_)}


def encode_saved(state: dict[str, Any], frame: pd.DataFrame, where: str = "table") -> Tensor:
    """Encode ``frame`` (text cells, None where empty) with an :meth:`Encoder.state`, as the
    fitted encoder would: ``(x - mean) / scale`` (empty -> 0), one-hot over the saved categories
    (empty or unseen -> zeros). Nothing is refitted on ``frame``."""
    prepared = _prepare(frame[state["inputs"]], state["numeric"], where)
    parts = []
    for step in state["steps"]:
        values = prepared[step["column"]]
        if "categories" in step:
            categories = np.array(step["categories"], dtype=object)
            one_hot = (values.to_numpy(dtype=object)[:, None] == categories[None, :]).astype(np.float32)
            _say_unseen(step["column"], values[(values != "").to_numpy() & (one_hot.sum(1) == 0)], values, categories,
                        where)
            parts.append(one_hot)
        else:
            numbers = (values.to_numpy(dtype=np.float64) - step["mean"]) / step["scale"]
            parts.append(np.nan_to_num(numbers, nan=0.0).astype(np.float32)[:, None])
    return torch.from_numpy(np.concatenate(parts, axis=1) if parts else np.zeros((len(frame), 0), np.float32))


def _say_unseen(column: str, unseen: pd.Series, values: pd.Series, categories: np.ndarray, where: str) -> None:
    """One warning per column whose cells hold categories the training rows did not have: they
    are encoded as an empty cell would be (all zeros), which changes those rows' predictions."""
    if unseen.empty:
        return
    filled = int((values != "").sum())
    counts = ", ".join(f"{value!r} x{count}" for value, count in unseen.value_counts().head(3).items())
    known = ", ".join(map(repr, categories[:5])) + (", ..." if len(categories) > 5 else "")
    log.warning("manytask: %s: column %r: %d of its %d filled cells hold categories the training rows did not have "
                "(%s); they are encoded as an empty cell (all zeros). Known: %s.", where, column, len(unseen), filled,
                counts, known)


def _prepare(frame: pd.DataFrame, numeric: Sequence[str], where: str) -> pd.DataFrame:
    """Numeric columns as floats (NaN where empty); others as stripped text, "" where empty."""
    columns: dict[str, pd.Series] = {}
    for name, values in frame.items():
        if name in numeric:
            columns[str(name)] = pd.Series(_numbers(values, where), index=frame.index)
        else:  # strip each distinct value once; code -1 (empty) picks the final ""
            codes, uniques = pd.factorize(values.to_numpy(dtype=object))
            text = np.array([*(str(u).strip() for u in uniques), ""], dtype=object)
            columns[str(name)] = pd.Series(text[codes], index=frame.index, dtype=object)
    return pd.DataFrame(columns)


def _check_columns(names: Sequence[str], columns: Sequence[str], what: str, path: Path) -> None:
    for name in names:
        if name not in columns:
            raise TableError(
                f"{path} has no column {name!r} (named in {what})."
                + did_you_mean(name, columns, "Columns")
            )


def _encode_labels(
    task: str, kind: str, values: pd.Series, spec: Mapping[str, Any], path: Path
) -> tuple[Tensor, Tensor, dict[str, Any]]:
    """Targets, mask and extra task arguments for one label column (text, None where empty)."""
    mask = values.notna().to_numpy(copy=True)
    present = values[mask]
    where = f"{path}, task {task!r} (column {spec.get('column', task)!r})"
    extra: dict[str, Any] = {}
    if kind == "regression":
        y = np.zeros(len(values), dtype=np.float32)
        y[mask] = _numbers(present, where)
    elif kind == "binary":
        y = np.zeros(len(values), dtype=np.float32)
        texts = [str(v).lower() for v in present]
        if "above" in spec:  # a derived target (a hint): is the number above the threshold?
            y[mask] = _numbers(present, where, "'above' compares numbers: name a numeric column, or use "
                               "'positive: <value>' for a text label.") > float(spec["above"])
        elif "positive" in spec:
            positive = _text(spec["positive"]).lower()
            others = sorted(set(texts) - {positive})
            if len(others) > 1:  # a typo of either value would silently be a negative
                raise TableError(f"{where}: a binary label with positive {positive!r} takes one other value (the "
                                 f"negative); found {others[:5]}. Fix the values, or make it a classification task.")
            y[mask] = [t == positive for t in texts]
        else:
            bad = sorted(set(texts) - TRUE - FALSE)
            if bad:
                raise TableError(
                    f"{where}: binary labels must be 0/1 (or true/false, yes/no); found {bad[:5]}. "
                    "Set 'positive' to the value that means 1, or make it a classification task."
                )
            y[mask] = [t in TRUE for t in texts]
    elif "bins" in spec:  # a continuous column quantised: class k holds bins[k-1] <= value < bins[k]
        edges = [float(b) for b in spec["bins"]]
        if not edges or edges != sorted(set(edges)):
            raise TableError(f"{where}: 'bins' must be increasing bin edges, e.g. [10, 20]; got {spec['bins']}.")
        y = np.zeros(len(values), dtype=np.int64)
        y[mask] = np.digitize(_numbers(present, where), edges)
        extra = {"num_classes": len(edges) + 1}
    else:
        if "classes" in spec:
            classes = [_text(c) for c in spec["classes"]]
            unknown = sorted(set(present) - set(classes))
            if unknown:
                raise TableError(f"{where}: labels {unknown[:5]} are not among the task's classes {classes} (its "
                                 "'classes').")
        else:
            classes = _sorted_labels(set(present))
        if len(classes) < 2:
            raise TableError(
                f"{where}: a classification task needs at least 2 classes, found {classes}."
            )
        if len(classes) > MANY_CLASSES and "classes" not in spec and _is_number_list(classes):
            warnings.warn(
                f"{where}: classification over {len(classes)} distinct numeric values; if the column "
                "is continuous, declare the task as kind: regression.", UserWarning, stacklevel=2)
        index = {c: i for i, c in enumerate(classes)}
        y = np.zeros(len(values), dtype=np.int64)
        y[mask] = [index[t] for t in present]
        extra = {"num_classes": len(classes), "classes": classes}  # "classes" is popped for the label spec
    return torch.from_numpy(y), torch.from_numpy(mask), extra


def _label_spec(task: Task, spec: Mapping[str, Any], target: str | None,
                classes: list[str] | None) -> dict[str, Any]:
    """How a task's outputs read as labels at predict time: its label column and class names."""
    column = target if target is not None else str(spec.get("column", task.name))
    out: dict[str, Any] = {"column": column, "kind": task.kind, "multi_input": target is not None,
                           **{k: spec[k] for k in ("positive", "above", "bins") if k in spec}}
    if task.kind == "classification":
        if "bins" in spec:
            edges = [float(b) for b in spec["bins"]]
            classes = [f"<{edges[0]:g}", *(f"{a:g}-{b:g}" for a, b in zip(edges, edges[1:])), f">={edges[-1]:g}"]
        out["classes"] = [_text(c) for c in classes] if classes is not None else None
    return out


def _make_task(name: str, kind: str, spec: Mapping[str, Any], extra: Mapping[str, Any]) -> Task:
    options: dict[str, Any] = {"role": spec.get("role", "main"), **extra}
    if spec.get("metrics"):
        options["metrics"] = tuple(spec["metrics"])
    kinds: dict[str, type[Task]] = {
        "classification": Classification, "binary": BinaryClassification, "regression": Regression
    }  # fmt: skip
    return kinds[kind](name, **options)


def _expanded(name: str, spec: Any) -> Any:
    """The spec with its ``auxiliary: <kind>`` expanded (``manytask list auxiliary``)."""
    if not isinstance(spec, Mapping):
        return spec
    try:
        return expand_auxiliary(name, spec, "table", TASK_KEYS)
    except ValueError as error:
        raise TableError(str(error)) from None


def _check_smoothing(raw: Mapping[str, Any], specs: Mapping[str, dict[str, Any]]) -> None:
    """A quantisation-smoothing task needs a task that bins its column."""
    for name, spec in raw.items():
        if isinstance(spec, Mapping) and spec.get("auxiliary") == "quantisation_smoothing":
            column = specs[name]["column"]
            if not any("bins" in s and str(s.get("column", n)) == column for n, s in specs.items()):
                raise TableError(f"Task {name!r} smooths the quantisation of column {column!r}, but no task bins "
                                 f"it: add one such as {{kind: classification, column: {column}, bins: [...]}}.")


def _check_spec(name: str, spec: Any) -> dict[str, Any]:
    if not isinstance(spec, Mapping):
        raise TableError(
            f"Task {name!r}: its entry under 'tasks' must be a mapping such as "
            f"{{kind: regression, column: ...}}. Got {spec!r}."
        )
    for key in spec:
        if key not in TASK_KEYS:
            tail = did_you_mean(str(key), TASK_KEYS, "Valid keys")
            raise TableError(f"Task {name!r}: unknown key {key!r}.{tail}")
    kind = spec.get("kind")
    if kind not in KINDS:
        raise TableError(f"Task {name!r}: 'kind' must be one of {', '.join(KINDS)}. Got {kind!r}.")
    wrong = [key for key, kinds in (("above", ("binary",)), ("bins", ("classification",))) if key in spec
             and kind not in kinds]
    if wrong:
        raise TableError(f"Task {name!r}: {wrong[0]!r} applies to kind "
                         f"{'binary' if wrong[0] == 'above' else 'classification'}, not {kind!r}.")
    if "bins" in spec and "classes" in spec:
        raise TableError(f"Task {name!r}: give 'bins' (a numeric column quantised) or 'classes', not both.")
    above = spec.get("above", 0.0)
    if isinstance(above, bool) or not isinstance(above, (int, float)) or not math.isfinite(above):
        raise TableError(f"Task {name!r}: 'above' must be a finite number. Got {above!r}.")
    if "column" in spec and spec["column"] is None:
        raise TableError(f"Task {name!r}: 'column' is empty; name a column, or leave the key out to read the "
                         "column named like the task.")
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
    folder = candidates[0].parent
    names = [f.name for f in folder.iterdir()] if folder.is_dir() else []
    hint = did_you_mean(candidates[0].name, names, None, prefix=f"{folder}/")
    raise MissingDataError(
        f"Dataset 'table': the file {path!r} was not found (looked for: "
        f"{', '.join(str(c) for c in candidates)}).{hint} Give 'path' as an absolute path or "
        "relative to the current directory (or to 'root' when it is set); the file must be a CSV "
        "(.csv, .tsv, optionally .gz) or Parquet (.parquet) table with a header row."
    )


def _split_column(frame: pd.DataFrame, column: str, file: Path) -> list[Tensor]:
    """Train / val / test rows as named by ``column``."""
    raw = frame[column]
    parts = raw.map(lambda v: SPLIT_NAMES.get(v.lower()) if isinstance(v, str) else None)
    if parts.isna().any():
        bad = sorted(set(raw[raw.notna() & parts.isna()]))
        raise TableError(
            f"{file}: column {column!r} must hold train, val or test in every row; found "
            f"{bad[:5] or 'empty cells'}."
        )
    rows = parts.to_numpy()
    return [torch.as_tensor(np.flatnonzero(rows == p)) for p in ("train", "val", "test")]


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
    columns: list[str] | None = None,
    exclude: list[str] | None = None,
) -> MultiTaskData:
    """A table of your own (CSV or Parquet), in one of two forms.

    * **One column per task** (``tasks``): each row is one sample; ``tasks`` maps a task name
      to ``{kind: classification | binary | regression, column: <label column, default the
      task name>, role: main | auxiliary, metrics: [...], classes: [...], positive: <value>,
      above: <number>, bins: [<edges>], from_input: true}``. An empty cell means "no label" for
      that task (mask False). ``above`` makes a binary target of a numeric column (value >
      threshold), ``bins`` a classification target of one (class ``k``: ``bins[k-1] <= value <
      bins[k]``, quantisation), and ``from_input`` keeps the task's column among the inputs (a
      hint derived from an input). A label column is otherwise never an input: a column
      declared as an auxiliary task is *predicted* instead of read (Caruana & de Sa 1997), and a
      column empty in the test rows is privileged information, used in training only.
      ``{auxiliary: <kind>, ...}`` writes such a task by its name (``manytask list auxiliary``:
      hint, quantisation_smoothing, predicting_inputs, privileged).
    * **Multi-input** (``target`` + ``task_column``): each row belongs to one task, named by
      its value in ``task_column``; its label is in ``target``. All tasks have kind
      ``task_kind``; the split is made within each task.

    Inputs: the ``inputs`` columns (default: every column that is not a label, task or split
    column). A column whose values all parse as numbers is standardised with the training
    rows' mean and std (empty -> 0, the mean); others, and those listed in ``categorical``, are
    one-hot encoded with the categories of the training rows (empty or unseen -> all zeros).
    No statistic or input category comes from the validation or test rows (see :class:`Encoder`);
    two things are read from every row: whether a column is numeric (a stray text cell anywhere
    is an error naming its row), and a classification task's class list (so that every labelled
    row can be scored; a class only the test rows hold is an output that never trains — give
    ``classes`` to fix the list). Classification labels are mapped to 0..C-1 in sorted order
    (numeric order when numeric) unless ``classes`` gives the order; binary labels are 0/1, true/false or yes/no, or
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
        columns: The column names of a CSV without a header row, in the file's order.
        exclude: Columns never read (neither inputs nor labels), e.g. a sample weight.
    """
    if path is None:
        raise TableError(
            "Dataset 'table' needs the 'path' option: the CSV or Parquet file to read."
        )
    if task_kind not in KINDS:
        raise TableError(f"'task_kind' must be one of {', '.join(KINDS)}. Got {task_kind!r}.")
    file = _resolve(path, root)
    data = table_from_frame(read_table(file, sep, text=True, columns=columns), file, inputs=inputs,
                            categorical=categorical, tasks=tasks, target=target, task_column=task_column,
                            task_kind=task_kind, split_column=split_column, val_fraction=val_fraction,
                            test_fraction=test_fraction, seed=seed, sep=sep, exclude=exclude)
    if columns is not None:  # predict and evaluate read new headerless files by these names
        data.input_info["preprocessing"]["columns"] = list(columns)
    return data


def table_from_frame(
    frame: pd.DataFrame,
    file: Path,
    *,
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
    exclude: list[str] | None = None,
) -> MultiTaskData:
    """:func:`table` on rows already read: ``frame``'s cells as text (None where empty), ``file``
    naming them in messages and sources (the Hugging Face source passes its dataset's name)."""
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
    columns = [str(c) for c in frame.columns]
    if len(frame) == 0:
        raise TableError(f"{file} has no data row.")

    specs: dict[str, dict[str, Any]] = {}
    if target is not None and task_column is not None:
        _check_columns([target, task_column], columns, "'target'/'task_column'", file)
        used = [target, task_column]
    else:
        specs = {name: _check_spec(name, _expanded(name, spec)) for name, spec in (tasks or {}).items()}
        _check_smoothing(tasks or {}, specs)
        used = [str(s.get("column", name)) for name, s in specs.items()]
        _check_columns(used, columns, "'tasks'", file)
        hints = {str(s.get("column", name)) for name, s in specs.items() if s.get("from_input")}
        used = [c for c in used if c not in hints]  # a hint's column stays an input
    if split_column is not None:
        _check_columns([split_column], columns, "'split_column'", file)
        used = [*used, split_column]
    _check_columns(exclude or [], columns, "'exclude'", file)
    read = [c for c in [*used, *(inputs or [])] if c in (exclude or [])]
    if read:
        raise TableError(f"Columns {read} are listed in 'exclude' and also read (as labels or inputs); "
                         "keep each in one place.")
    if inputs is None:
        inputs = [c for c in columns if c not in used and c not in (exclude or [])]
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
    class_names: dict[str, list[str] | None] = {}
    groups: np.ndarray | None = None
    if target is not None and task_column is not None:
        ids = frame[task_column]
        if ids.isna().any():
            raise TableError(
                f"{file}: column {task_column!r} is empty in data row "
                f"{int(ids.isna().to_numpy().argmax()) + 1}; every row needs a task id."
            )
        names = _sorted_labels(set(ids))
        for name in names:
            if "/" in name:
                raise TableError(
                    f"{file}: task id {name!r} in {task_column!r} cannot be a task name "
                    "(non-empty, no '/')."
                )
        groups = ids.map({t: i for i, t in enumerate(names)}).to_numpy(dtype=np.int64)
        y, labelled, extra = _encode_labels(
            target, task_kind, frame[target], {"column": target}, file
        )
        names_of_classes = extra.pop("classes", None)
        for i, name in enumerate(names):
            class_names[name] = names_of_classes
            targets[name], masks[name] = y, labelled & torch.from_numpy(groups == i)
            task_objects.append(_make_task(name, task_kind, {}, extra))
    else:
        for name, spec in specs.items():
            column = str(spec.get("column", name))
            y, mask, extra = _encode_labels(name, spec["kind"], frame[column], spec, file)
            class_names[name] = extra.pop("classes", None)
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
        parts = _split_column(frame, split_column, file)
    elif groups is not None:
        parts = list(split_groups(groups, val_fraction, test_fraction, seed))
    else:
        parts = list(split_indices(len(frame), val_fraction, test_fraction, seed))
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

    label_columns = {str(s.get("column", n)) for n, s in specs.items()} | ({target} if target else set())
    # Inputs, encoded with training statistics only.
    forced = set(categorical or [])
    numeric = [c for c in inputs if c not in forced and _is_numeric(frame[c], str(file))]
    _refuse_identifiers([c for c in inputs if c not in numeric and c not in forced],
                        frame.iloc[train_idx.numpy()], file)
    encoder = Encoder.fit(frame[inputs].iloc[train_idx.numpy()], numeric, where=str(file))
    x = encoder.transform(frame[inputs], where=str(file))
    stem = file.name.split(".")[0]
    train = source_from_rows(x, targets, masks, train_idx, f"{stem}/train")
    assert train is not None
    return MultiTaskData(
        tasks=tuple(task_objects),
        train={stem: train},
        val=source_from_rows(x, targets, masks, val_idx, f"{stem}/val"),
        test=source_from_rows(x, targets, masks, test_idx, f"{stem}/test"),
        input_info={"in_features": x.shape[1], "feature_names": tuple(encoder.feature_names),
                    "preprocessing": {"dataset": "table", "encoder": encoder.state(), "sep": sep,
                                      "other": [c for c in columns if c not in inputs and c not in label_columns],
                                      "labels": {t.name: _label_spec(t, specs.get(t.name, {}), target,
                                                                     class_names.get(t.name))
                                                 for t in task_objects}}},
        description=(
            f"table {file.name}: {len(train_idx)} train / {len(val_idx)} val / {len(test_idx)} "
            f"test rows, {x.shape[1]} features, {len(task_objects)} tasks"
        ),
    )
