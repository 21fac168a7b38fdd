"""A Hugging Face ``datasets.Dataset`` as a table: its columns become inputs and task labels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..._utils import TableError
from ..._utils._table_io import _cell_text
from .._dataset import DATASETS, MultiTaskData
from ._table import table_from_frame

__all__ = ["from_hf_dataset", "huggingface"]


def from_hf_dataset(dataset: Any, name: str = "hf", **options: Any) -> MultiTaskData:
    """The rows of a ``datasets.Dataset`` read as :func:`~manytask.data.datasets.table` reads a
    file (same options: ``tasks`` or ``target`` + ``task_column``, ``inputs``, ``categorical``,
    ``exclude``, the split...): a missing value (``None``) is no label for a task and an empty
    cell for an input; numbers are standardised and text one-hot encoded with training
    statistics only. Nested columns (lists, images) are not read; name the flat ones.

    Examples:
        >>> import datasets
        >>> rows = datasets.Dataset.from_dict({"x": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        ...                                    "y": [0.5, None, 1.5, 2.0, None, 3.0]})
        >>> data = from_hf_dataset(rows, tasks={"y": {"kind": "regression"}}, split_column=None,
        ...                        val_fraction=0.0, test_fraction=0.0)
        >>> data.train["hf"].masks["y"].tolist()
        [True, False, True, True, False, True]
    """
    columns = getattr(dataset, "column_names", None)
    if columns is None or not hasattr(dataset, "to_pandas"):
        raise TableError(f"from_hf_dataset needs a datasets.Dataset (one split); got {type(dataset).__name__}. "
                         "For a DatasetDict pick a split: dataset['train'].")
    frame = dataset.to_pandas()
    nested = [c for c in frame.columns if frame[c].map(lambda v: isinstance(v, (list, dict, tuple, np.ndarray))).any()]
    used = set(options.get("inputs") or []) | {str(s.get("column", t)) for t, s in (options.get("tasks") or {}).items()}
    if nested and (used & set(nested) or not options.get("inputs")):
        raise TableError(f"Dataset {name!r}: columns {nested} hold lists or records, which a table cannot read; "
                         "list the flat input columns under 'inputs' (or exclude those).")
    text = pd.DataFrame({str(c): pd.Series(map(_cell_text, frame[c]), dtype=object) for c in frame.columns
                         if c not in nested})
    return table_from_frame(text, Path(name), **options)


@DATASETS.register("huggingface", "A Hugging Face datasets.Dataset saved on disk (save_to_disk) or a hub name.")
def huggingface(
    path: str,
    split: str | None = None,
    inputs: list[str] | None = None,
    categorical: list[str] | None = None,
    tasks: dict[str, dict[str, Any]] | None = None,
    target: str | None = None,
    task_column: str | None = None,
    task_kind: str = "regression",
    split_column: str | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
    exclude: list[str] | None = None,
) -> MultiTaskData:
    """A ``datasets`` dataset read as a table: ``path`` a folder written by ``save_to_disk``
    (no network), else a name ``datasets.load_dataset`` resolves (the hub, or its cache);
    ``split`` picks one split of a ``DatasetDict``. Other options are :func:`from_hf_dataset`'s.
    Needs ``pip install "manytask[huggingface]"``."""
    try:
        import datasets
    except ImportError:
        message = 'Dataset "huggingface" needs the datasets package: pip install "manytask[huggingface]"'
        raise ImportError(message) from None
    if Path(path).is_dir():
        loaded = datasets.load_from_disk(path)
    else:
        loaded = datasets.load_dataset(path)
    if isinstance(loaded, datasets.DatasetDict):
        if split is None:
            raise TableError(f"{path} holds the splits {list(loaded)}; choose one with the 'split' option.")
        loaded = loaded[split]
    return from_hf_dataset(loaded, Path(path).name or "hf", inputs=inputs, categorical=categorical, tasks=tasks,
                           target=target, task_column=task_column, task_kind=task_kind, split_column=split_column,
                           val_fraction=val_fraction, test_fraction=test_fraction, seed=seed, exclude=exclude)
