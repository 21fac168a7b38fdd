"""Reading a user's table (CSV or Parquet) into a pandas DataFrame, with errors that say the fix."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["TableError", "read_table"]

_PARQUET = (".parquet", ".pq")
_TAB = (".tsv", ".tsv.gz", ".tab")


class TableError(ValueError):
    """A table or its options do not fit together (unknown column, empty label column, ...)."""


def read_table(path: str | Path, sep: str | None = None, *, text: bool = False,
               columns: Sequence[str] | None = None) -> pd.DataFrame:
    """The table in ``path``: a CSV with a header row (or ``columns`` naming them), or a Parquet file.

    CSV files may be gzipped (``.csv.gz``); ``.tsv`` and ``.tab`` are tab-separated unless
    ``sep`` says otherwise. Cells are stripped of surrounding spaces; an empty cell is missing.
    Only empty cells are missing: ``NA`` or ``null`` are ordinary text.

    Args:
        path: The file.
        sep: CSV field separator (default ``,``, tab for ``.tsv``/``.tab``).
        text: Keep every cell as text (``str``; ``None`` where missing), for callers that decide
            themselves what is a number. Otherwise a column whose cells all parse as numbers is
            numeric (``NaN`` where missing).
        columns: The column names of a CSV without a header row (its first line is data).

    Raises:
        TableError: An empty file, missing or repeated column names, or a row whose number of
            fields differs from the header's (the message gives the line).
        ImportError: A Parquet file without pyarrow installed.
    """
    path = Path(path)
    name = path.name.lower()
    if name.endswith(_PARQUET):
        if columns is not None:
            raise TableError(f"{path}: 'columns' names the columns of a headerless CSV; a Parquet file names its own.")
        frame = _read_parquet(path)
        if not text:
            return frame
        text_columns = {n: pd.Series(map(_cell_text, c), dtype=object) for n, c in frame.items()}
        return pd.DataFrame(text_columns)  # a range index, as for a CSV
    frame = _read_csv(path, _separator(name, sep), columns)
    return frame if text else frame.apply(_infer_numbers)


def _separator(name: str, sep: str | None) -> str:
    """``sep``, else tab for ``.tsv``/``.tab`` files and a comma for others."""
    return sep if sep is not None else ("\t" if name.endswith(_TAB) else ",")


def first_fields(path: str | Path, sep: str | None = None) -> list[str]:
    """The fields of a CSV's first line (a header, or a first row of data); [] for Parquet."""
    path = Path(path)
    name = path.name.lower()
    if name.endswith(_PARQUET):
        return []
    try:
        row = pd.read_csv(path, sep=_separator(name, sep), header=None, dtype=str,
                          keep_default_na=False, nrows=1, engine="python")
    except pd.errors.EmptyDataError:
        return []
    return [str(v).strip() for v in row.iloc[0]] if len(row) else []


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except ImportError:
        raise ImportError(
            f'Reading {path} needs pyarrow. Install it with: pip install "manytask[parquet]"'
        ) from None


def _read_csv(path: Path, sep: str, columns: Sequence[str] | None = None) -> pd.DataFrame:
    # The python engine pads a short row with NaN while an empty field reads as "": the only
    # way to tell a ragged row from empty cells. Blank lines are all-NaN rows, dropped below.
    fix = f"(separator {sep!r}; set the 'sep' option if the file uses another one)"
    try:
        raw = pd.read_csv(
            path, sep=sep, header=None, dtype=str, keep_default_na=False,
            skip_blank_lines=False, engine="python",
        )  # fmt: skip
    except pd.errors.EmptyDataError:
        raise TableError(f"{path} is empty; the first line must name the columns.") from None
    except pd.errors.ParserError as error:
        found = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(error))
        if found is None:
            raise TableError(f"{path}: {error} {fix}.") from None
        width, line, got = found.groups()
        if width == "0":
            raise TableError(f"{path}: the first line is blank; it must name the columns.") from None
        raise TableError(
            f"{path}, line {line}: {got} fields but the header has {width} {fix}."
        ) from None
    if columns is not None:  # no header row: the first line is data
        header = [str(c).strip() for c in columns]
        if raw.shape[1] != len(header):
            raise TableError(f"{path}: its rows have {raw.shape[1]} fields but 'columns' names {len(header)}; "
                             "name every column, in the file's order.")
        raw = pd.concat([pd.DataFrame([header], columns=raw.columns), raw], ignore_index=True)
    header = [str(h).strip() for h in raw.iloc[0].fillna("")]
    if len(set(header)) < len(header) or "" in header:
        raise TableError(f"{path}: column names must be unique and non-empty; got {header}.")
    padded = raw.isna()
    ragged = padded.any(axis=1) & ~padded.all(axis=1)
    if ragged.any():
        row = int(ragged.to_numpy().argmax())
        line = row if columns is not None else row + 1  # the header given, not read from the file
        raise TableError(
            f"{path}, line {line}: {int((~padded.iloc[row]).sum())} fields but the header "
            f"has {len(header)} {fix}."
        )
    body = raw.iloc[1:][~padded.iloc[1:].all(axis=1)]
    body = body.apply(lambda column: column.str.strip()).astype(object)
    body.columns = pd.Index(header)
    return body.where(body != "", None).reset_index(drop=True)


def _infer_numbers(column: pd.Series) -> pd.Series:
    """``column`` as numbers when every present cell parses as one, else unchanged."""
    numbers = pd.to_numeric(column, errors="coerce")
    return numbers if bool((numbers.notna() == column.notna()).all()) else column


def _cell_text(value: Any) -> str | None:
    """A Parquet cell as the text a CSV would hold (``2.0`` -> ``"2"``, ``True`` -> ``"1"``)."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    if isinstance(value, (bool, np.bool_)):
        return str(int(value))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value).strip()
    return text or None
