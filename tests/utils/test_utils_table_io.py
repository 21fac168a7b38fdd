"""``read_table``: CSV (plain, gzipped, tab-separated) and Parquet; errors give the line."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from manytask._utils import TableError, read_table


def _write(tmp_path: Path, text: str, name: str = "t.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_text_cells_stripped_and_only_empty_cells_missing(tmp_path: Path) -> None:
    path = _write(tmp_path, " a , b ,c\n 1 , x ,NA\n\n2,, null \n")
    frame = read_table(path, text=True)
    assert list(frame.columns) == ["a", "b", "c"]
    assert frame.to_dict("list") == {"a": ["1", "2"], "b": ["x", None], "c": ["NA", "null"]}


def test_numbers_inferred_unless_text(tmp_path: Path) -> None:
    path = _write(tmp_path, "i,f,s\n1,1.5,a\n2,,3\n")
    frame = read_table(path)
    assert frame["i"].tolist() == [1, 2] and pd.api.types.is_integer_dtype(frame["i"])
    assert frame["f"].tolist()[0] == 1.5 and np.isnan(frame["f"].tolist()[1])
    assert frame["s"].tolist() == ["a", "3"]  # one non-number keeps the column as text


def test_gzip_tsv_and_separator(tmp_path: Path) -> None:
    (tmp_path / "t.tsv.gz").write_bytes(gzip.compress(b"a\tb\n1\t2\n"))
    assert read_table(tmp_path / "t.tsv.gz").to_dict("list") == {"a": [1], "b": [2]}
    path = _write(tmp_path, "a;b\n1;2\n")
    assert read_table(path, ";").to_dict("list") == {"a": [1], "b": [2]}


def test_parquet(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow", reason="pyarrow (manytask[parquet]) is not installed")
    path = tmp_path / "t.parquet"
    frame = pd.DataFrame({"x": [1.0, 2.5, None], "k": [True, False, True], "s": [" u", "", None]})
    frame.to_parquet(path)
    assert read_table(path)["x"].tolist()[:2] == [1.0, 2.5]
    assert read_table(path, text=True).to_dict("list") == {
        "x": ["1", "2.5", None],  # as a CSV would hold them
        "k": ["1", "0", "1"],
        "s": ["u", None, None],
    }


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "is empty; the first line must name the columns"),
        ("a,b\n1,2\n3\n", r"line 3: 1 fields but the header has 2 \(separator ','; set the 'sep'"),
        ("a,b\n1,2\n\n3,4,5\n", "line 4: 3 fields but the header has 2"),
        ("a,a\n1,2\n", r"column names must be unique and non-empty; got \['a', 'a'\]"),
        ("a,\n1,2\n", "column names must be unique and non-empty"),
        ("\na,b\n", "the first line is blank"),
    ],
)
def test_errors(tmp_path: Path, text: str, match: str) -> None:
    with pytest.raises(TableError, match=match):
        read_table(_write(tmp_path, text))
