"""table: a user's own CSV or Parquet file, in both forms, driven by options only (as a config)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from manytask.data import DATASETS, create_dataset
from manytask.data.datasets._files import MissingDataError
from manytask.data.datasets._table import TableError, table

CSV = """id,age,city,score,churn,grade,split
1,30,paris,1.5,1,a,train
2,40,rome,2.5,,b,train
3,50,paris,,0,,train
4,60,oslo,4.0,1,c,val
5,,rome,5.5,0,a,test
6,35,paris,6.0,,b,train
"""


def _csv(tmp_path: Path, text: str = CSV, name: str = "t.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


TASKS = {
    "score": {"kind": "regression"},
    "churn": {"kind": "binary", "role": "auxiliary"},
    "grade": {"kind": "classification", "metrics": ["accuracy", "macro_f1"]},
}


def test_one_column_per_task(tmp_path: Path) -> None:
    path = _csv(tmp_path)
    data = table(path=str(path), inputs=["age", "city"], tasks=TASKS, split_column="split")
    train, val, test = data.train["t"], data.val, data.test
    assert val is not None and test is not None
    assert (len(train), len(val), len(test)) == (4, 1, 1)
    assert data.input_info["feature_names"] == ("age", "city=paris", "city=rome")
    # Masks follow the empty cells (train rows: ids 1, 2, 3, 6).
    assert train.masks["score"].tolist() == [True, True, False, True]
    assert train.masks["churn"].tolist() == [True, False, True, False]
    assert train.masks["grade"].tolist() == [True, True, False, True]
    assert train.targets["churn"][train.masks["churn"]].tolist() == [1.0, 0.0]
    assert (
        train.targets["score"].dtype == torch.float32 and train.targets["grade"].dtype == torch.long
    )
    # Classes in sorted order; c is seen only in validation but is still a class.
    grade = data.task("grade")
    assert grade.out_features == 3 and grade.metrics == ("accuracy", "macro_f1")
    assert val.targets["grade"].tolist() == [2]
    assert data.task("churn").role == "auxiliary"
    # Standardised with training statistics; the empty age of the test row becomes the mean (0);
    # oslo (unseen in training) is all zeros.
    ages = torch.tensor([30.0, 40, 50, 35])
    expected = (60 - ages.mean()) / ages.std(unbiased=False)
    assert float(val.inputs[0, 0]) == pytest.approx(float(expected), rel=1e-5)
    assert val.inputs[0, 1:].tolist() == [0.0, 0.0]
    assert test.inputs[0].tolist() == [0.0, 0.0, 1.0]
    for task in data.tasks:
        task.check(train.targets[task.name], train.masks[task.name])


def test_defaults_use_remaining_columns_and_random_split(tmp_path: Path) -> None:
    path = _csv(tmp_path)
    data = table(
        path=str(path),
        tasks={"score": {"kind": "regression"}},
        val_fraction=0.2,
        test_fraction=0.2,
        seed=3,
    )
    names = data.input_info["feature_names"]
    assert "id" in names and "age" in names and not any(n.startswith("score") for n in names)
    assert any(n.startswith("split=") for n in names)  # not declared as split column: an input
    assert data.val is not None and data.test is not None
    assert (len(data.train["t"]), len(data.val), len(data.test)) == (4, 1, 1)
    again = table(
        path=str(path),
        tasks={"score": {"kind": "regression"}},
        val_fraction=0.2,
        test_fraction=0.2,
        seed=3,
    )
    assert torch.equal(again.train["t"].inputs, data.train["t"].inputs)


def test_multi_input_form(tmp_path: Path) -> None:
    rows = ["x1,x2,school,y"] + [f"{i},{i % 3},s{i % 4},{i * 0.5}" for i in range(40)]
    path = _csv(tmp_path, "\n".join(rows) + "\n", "schools.csv")
    data = table(
        path=str(path), target="y", task_column="school", val_fraction=0.2, test_fraction=0.2
    )
    assert [t.name for t in data.tasks] == ["s0", "s1", "s2", "s3"]
    assert all(t.kind == "regression" for t in data.tasks)
    assert data.input_info["feature_names"] == ("x1", "x2")
    for source in (data.train["schools"], data.val, data.test):
        assert source is not None
        labelled = torch.stack([source.masks[t.name] for t in data.tasks], 1)
        assert bool((labelled.sum(1) == 1).all())  # each row belongs to one task
    # The split is made within each task: 10 rows each -> 6 / 2 / 2.
    assert data.train["schools"].labelled_counts() == {"s0": 6, "s1": 6, "s2": 6, "s3": 6}
    assert data.val is not None and data.val.labelled_counts() == {
        "s0": 2,
        "s1": 2,
        "s2": 2,
        "s3": 2,
    }
    source = data.train["schools"]
    x1 = source.inputs[:, 0]
    assert abs(float(x1.mean())) < 1e-5
    ids = {name: source.targets[name][source.masks[name]] for name in ("s0", "s1")}
    assert all(float(v * 2) % 4 == 0 for v in ids["s0"])  # s0 holds rows i % 4 == 0, y = i / 2


def test_multi_input_classification_tasks(tmp_path: Path) -> None:
    rows = ["x,task,label"] + [f"{i},{'ab'[i % 2]},{'yes' if i % 3 else 'no'}" for i in range(30)]
    path = _csv(tmp_path, "\n".join(rows) + "\n")
    data = table(path=str(path), target="label", task_column="task", task_kind="binary")
    assert [t.kind for t in data.tasks] == ["binary", "binary"]


def test_parquet(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow", reason="pyarrow (manytask[parquet]) is not installed")
    pq = pytest.importorskip("pyarrow.parquet")
    frame = pa.table(
        {
            "a": [1.0, 2.0, None, 4.0, 5.0],
            "c": ["u", "v", "u", None, "v"],
            "label": [0, 1, None, 1, 0],
            "value": [0.5, None, 1.5, 2.5, 3.5],
        }
    )
    path = tmp_path / "t.parquet"
    pq.write_table(frame, path)
    data = table(
        path=str(path),
        tasks={"label": {"kind": "binary"}, "value": {"kind": "regression"}},
        val_fraction=0,
        test_fraction=0,
    )
    source = data.train["t"]
    assert source.masks["label"].tolist() == [True, True, False, True, True]
    assert source.masks["value"].tolist() == [True, False, True, True, True]
    assert data.input_info["feature_names"] == ("a", "c=u", "c=v")
    assert data.val is None and data.test is None


def test_gzipped_csv_and_positive(tmp_path: Path) -> None:
    path = tmp_path / "t.csv.gz"
    path.write_bytes(gzip.compress(b"x,outcome\n1,churned\n2,stayed\n3,churned\n4,\n"))
    data = table(
        path=str(path),
        tasks={"c": {"kind": "binary", "column": "outcome", "positive": "churned"}},
        val_fraction=0,
        test_fraction=0,
    )
    source = data.train["t"]
    assert source.targets["c"][source.masks["c"]].tolist() == [1.0, 0.0, 1.0]


def test_config_only(tmp_path: Path) -> None:
    """What the CLI does with a YAML config: validate the options, then create the dataset."""
    path = _csv(tmp_path)
    config = yaml.safe_load(f"""
data:
  name: table
  path: {path}
  inputs: [age, city]
  split_column: split
  tasks:
    score: {{kind: regression}}
    churn: {{kind: binary, role: auxiliary}}
    grade: {{kind: classification, classes: [a, b, c]}}
""")["data"]
    name = config.pop("name")
    options = DATASETS.validate(name, config)
    data = create_dataset(name, **options)
    assert [t.name for t in data.tasks] == ["score", "churn", "grade"]


def test_example_table_loads() -> None:
    path = Path(__file__).resolve().parents[3] / "examples" / "table.csv"
    assert path.stat().st_size < 50_000
    data = table(
        path=str(path),
        inputs=["age", "income", "region", "plan", "tenure_months"],
        tasks={
            "churn": {"kind": "binary"},
            "spend": {"kind": "regression"},
            "segment": {"kind": "classification", "role": "auxiliary"},
        },
    )
    assert data.input_info["in_features"] == 10
    counts = data.train["table"].labelled_counts()
    assert counts["spend"] > counts["churn"] > counts["segment"] > 0  # partial labels


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        (
            {"tasks": {"score": {"kind": "regression"}}, "inputs": ["agee"]},
            TableError,
            "no column 'agee'.*Did you mean 'age'",
        ),
        ({"tasks": {"scor": {"kind": "regression"}}}, TableError, "no column 'scor'.*'score'"),
        ({"tasks": {"score": {"kind": "regresion"}}}, TableError, "'kind' must be one of"),
        (
            {"tasks": {"score": {"kind": "regression", "colum": "x"}}},
            TableError,
            "unknown key 'colum'.*'column'",
        ),
        (
            {"tasks": {"churn": {"kind": "binary"}}, "inputs": ["churn"]},
            TableError,
            "cannot be inputs",
        ),
        ({"tasks": {"city": {"kind": "binary"}}}, TableError, "binary labels must be 0/1"),
        (
            {"tasks": {"grade": {"kind": "classification", "classes": ["a", "b"]}}},
            TableError,
            r"labels \['c'\] are not among the task's classes",
        ),
        (
            {"tasks": {"age": {"kind": "regression"}}, "inputs": ["city"], "split_column": "id"},
            TableError,
            "must hold train, val or test",
        ),
        ({}, TableError, "needs its tasks"),
        ({"tasks": {"score": {"kind": "regression"}}, "target": "score"}, TableError, "not both"),
        ({"target": "score"}, TableError, "needs both"),
        (
            {"tasks": {"score": {"kind": "regression"}}, "val_fraction": 0.6, "test_fraction": 0.5},
            ValueError,
            "must be < 1",
        ),
    ],
)
def test_option_errors(
    tmp_path: Path, options: dict[str, object], error: type[Exception], match: str
) -> None:
    path = _csv(tmp_path)
    with pytest.raises(error, match=match):
        table(path=str(path), **options)  # type: ignore[arg-type]


def test_empty_label_column(tmp_path: Path) -> None:
    path = _csv(tmp_path, "x,y,z\n1,,a\n2,,b\n")
    with pytest.raises(TableError, match="task 'y' has no label at all"):
        table(path=str(path), tasks={"y": {"kind": "regression"}}, inputs=["x"])


def test_no_label_in_training_split(tmp_path: Path) -> None:
    path = _csv(tmp_path, "x,y,s\n1,,train\n2,3.0,test\n3,,train\n")
    with pytest.raises(TableError, match="no label in the training split"):
        table(path=str(path), tasks={"y": {"kind": "regression"}}, split_column="s")


def test_numeric_column_with_text(tmp_path: Path) -> None:
    """The defect: one stray string one-hot encoded a whole numeric column (10 inputs became 252)."""
    path = _csv(tmp_path, "x,y\n1,1.0\nabc,2.0\n3,1.0\n")
    with pytest.raises(TableError, match=r"input column 'x' is numeric in 2 of 3 cells but not in 1 \(row 3: 'abc'\).*'categorical'"):
        table(path=str(path), tasks={"y": {"kind": "regression"}}, val_fraction=0, test_fraction=0)
    data = table(path=str(path), tasks={"y": {"kind": "regression"}}, categorical=["x"], val_fraction=0, test_fraction=0)
    assert data.input_info["feature_names"] == ("x=1", "x=3", "x=abc")  # declared categorical
    path = _csv(tmp_path, "x,y\nred,1.0\nblue,2.0\n3,1.0\n", "text.csv")
    data = table(path=str(path), tasks={"y": {"kind": "regression"}}, val_fraction=0, test_fraction=0)
    assert data.input_info["feature_names"] == ("x=3", "x=blue", "x=red")  # mostly text: categorical
    path = _csv(tmp_path, "x,y\n1,1.0\n2,oops\n", "bad.csv")
    with pytest.raises(TableError, match="column 'y' is numeric but holds 'oops'"):
        table(path=str(path), tasks={"y": {"kind": "regression"}}, val_fraction=0, test_fraction=0)


def test_missing_file(tmp_path: Path) -> None:
    _csv(tmp_path, name="customers.csv")
    with pytest.raises(MissingDataError) as info:
        table(path=str(tmp_path / "customer.csv"), tasks={"y": {"kind": "regression"}})
    message = str(info.value)
    assert str(tmp_path / "customer.csv") in message and "customers.csv" in message
    with pytest.raises(TableError, match="needs the 'path' option"):
        table(tasks={"y": {"kind": "regression"}})


def test_ragged_csv(tmp_path: Path) -> None:
    path = _csv(tmp_path, "a,b\n1,2\n3\n")
    with pytest.raises(TableError, match="line 3: 1 fields but the header has 2"):
        table(path=str(path), tasks={"b": {"kind": "regression"}})


def test_statistics_come_from_training_rows_only(tmp_path: Path) -> None:
    """Mean, std and categories from the training split only, checked by hand with numpy."""
    rng = np.random.default_rng(0)
    n = 60
    x = rng.normal(3.0, 2.0, size=n)
    x[rng.permutation(n)[:5]] = np.nan  # some empty cells
    cities = rng.choice(["oslo", "paris", "rome"], size=n)
    lines = ["row,x,city"] + [
        f"{i},{'' if np.isnan(v) else f'{v:.6f}'},{c}" for i, (v, c) in enumerate(zip(x, cities))
    ]
    path = _csv(tmp_path, "\n".join(lines) + "\n")
    data = table(
        path=str(path),
        inputs=["x", "city"],
        tasks={"row": {"kind": "regression"}},
        val_fraction=0.25,
        test_fraction=0.25,
        seed=5,
    )
    parts = {"train": data.train["t"], "val": data.val, "test": data.test}
    # The label is the row number: it says which rows each split holds.
    rows = {k: s.targets["row"].numpy().astype(int) for k, s in parts.items() if s is not None}
    assert sorted(np.concatenate(list(rows.values())).tolist()) == list(range(n))
    written = np.array([np.nan if np.isnan(v) else float(f"{v:.6f}") for v in x])
    train_x = written[rows["train"]]
    mean, std = np.nanmean(train_x), np.nanstd(train_x)
    all_mean = np.nanmean(written)
    assert abs(mean - all_mean) > 1e-3  # the test can tell train-only from all-row statistics
    seen = sorted(set(cities[rows["train"]]))
    assert data.input_info["feature_names"] == ("x", *(f"city={c}" for c in seen))
    for name, source in parts.items():
        assert source is not None
        r = rows[name]
        expected_x = np.where(np.isnan(written[r]), 0.0, (written[r] - mean) / std)
        np.testing.assert_allclose(source.inputs[:, 0].numpy(), expected_x, rtol=1e-5, atol=1e-6)
        one_hot = (cities[r][:, None] == np.array(seen)[None, :]).astype(np.float32)
        np.testing.assert_array_equal(source.inputs[:, 1:].numpy(), one_hot)


def test_unseen_and_empty_categories_encode_as_all_zeros(tmp_path: Path) -> None:
    text = (
        "code,size,y,split\n"
        "a,1,1.0,train\nb,2,2.0,train\na,3,3.0,train\n"  # training categories: a, b
        "z,4,4.0,val\n"  # z: unseen in training
        ",5,5.0,test\nb,100,6.0,test\n"  # empty cell; b seen
    )
    path = _csv(tmp_path, text)
    data = table(
        path=str(path),
        inputs=["code", "size"],
        categorical=["size"],  # numbers, one-hot encoded: 4, 5 and 100 are unseen
        tasks={"y": {"kind": "regression"}},
        split_column="split",
    )
    assert data.input_info["feature_names"] == (
        "code=a", "code=b", "size=1", "size=2", "size=3"
    )  # fmt: skip
    assert data.val is not None and data.test is not None
    assert data.train["t"].inputs.tolist() == [
        [1, 0, 1, 0, 0],
        [0, 1, 0, 1, 0],
        [1, 0, 0, 0, 1],
    ]
    assert data.val.inputs.tolist() == [[0, 0, 0, 0, 0]]
    assert data.test.inputs.tolist() == [[0, 0, 0, 0, 0], [0, 1, 0, 0, 0]]


def test_a_continuous_column_as_classification_warns_with_the_count(tmp_path: Path) -> None:
    rows = "\n".join(f"{i},{i * 0.37:.2f}" for i in range(150))
    path = _csv(tmp_path, "x,y\n" + rows + "\n")
    with pytest.warns(UserWarning, match="classification over 150 distinct numeric values.*kind: regression"):
        table(path=str(path), tasks={"y": {"kind": "classification"}}, val_fraction=0, test_fraction=0)


AUX = """age,income,hours,spend,split
20,10,35,1.0,train
30,25,40,2.0,train
40,40,45,,train
50,55,50,4.0,train
60,70,38,5.0,val
70,85,42,,test
"""


def test_auxiliary_kinds_from_columns(tmp_path: Path) -> None:
    """Quantisation smoothing (a binned main target beside its continuous value), a hint derived
    from an input that stays an input, a predicted input, and privileged information (a column
    empty in the test rows), each from one column, against hand-computed targets."""
    path = _csv(tmp_path, AUX)
    tasks = {
        "income_band": {"kind": "classification", "column": "income", "bins": [30, 60]},
        "income": {"kind": "regression", "role": "auxiliary"},
        "old": {"kind": "binary", "column": "age", "above": 45, "role": "auxiliary", "from_input": True},
        "hours": {"kind": "regression", "role": "auxiliary"},
        "spend": {"kind": "regression", "role": "auxiliary"},
    }
    data = table(path=str(path), tasks=tasks, split_column="split")
    train, test = data.train["t"], data.test
    assert test is not None
    assert train.targets["income_band"].tolist() == [0, 0, 1, 1]  # 10, 25 < 30 <= 40, 55 < 60
    assert test.targets["income_band"].tolist() == [2]  # 85 >= 60
    assert [t.num_classes for t in data.tasks if t.name == "income_band"] == [3]
    assert train.targets["old"].tolist() == [0.0, 0.0, 0.0, 1.0]
    assert data.input_info["feature_names"] == ("age",)  # income, hours and spend are predicted, not read
    assert not bool(test.masks["spend"].any())  # privileged: never labelled at test time


@pytest.mark.parametrize("spec, match", [
    ({"kind": "regression", "column": "age", "above": 3}, "'above' applies to kind binary"),
    ({"kind": "binary", "column": "age", "bins": [3]}, "'bins' applies to kind classification"),
    ({"kind": "classification", "column": "age", "bins": [3, 2]}, "'bins' must be increasing"),
    ({"kind": "classification", "column": "age", "bins": [3], "classes": ["a", "b"]}, "not both"),
    # a NaN threshold labelled every row 0; an explicit null column read a column named 'None'
    ({"kind": "binary", "column": "age", "above": float("nan")}, "'above' must be a finite number. Got nan"),
    ({"kind": "binary", "column": "age", "above": "45"}, "'above' must be a finite number. Got '45'"),
    ({"kind": "binary", "column": None, "above": 3}, "'column' is empty; name a column, or leave the key out"),
])
def test_auxiliary_kind_errors(tmp_path: Path, spec: dict[str, object], match: str) -> None:
    with pytest.raises(TableError, match=match):
        table(path=str(_csv(tmp_path, AUX)), tasks={"x": spec, "hours": {"kind": "regression"}}, split_column="split")


def test_a_headerless_file_with_its_columns_named(tmp_path: Path) -> None:
    """A file such as the census KDD data has no header row: ``columns`` names them and the first
    line is data; the table reads as the same file with a header."""
    body = CSV.split("\n", 1)[1]
    header = CSV.split("\n", 1)[0].split(",")
    gz = tmp_path / "plain.csv.gz"
    gz.write_bytes(gzip.compress(body.encode()))
    named = table(path=str(gz), columns=header, inputs=["age", "city"], tasks=TASKS, split_column="split")
    headed = table(path=str(_csv(tmp_path)), inputs=["age", "city"], tasks=TASKS, split_column="split")
    assert torch.equal(named.train["plain"].inputs, headed.train["t"].inputs)  # type: ignore[arg-type]
    assert torch.equal(named.train["plain"].targets["score"], headed.train["t"].targets["score"])
    with pytest.raises(TableError, match="rows have 7 fields but 'columns' names 6"):
        table(path=str(gz), columns=header[:-1], tasks=TASKS)


def test_excluded_columns_are_never_read(tmp_path: Path) -> None:
    path = _csv(tmp_path)
    data = table(path=str(path), tasks={"score": {"kind": "regression"}}, split_column="split", exclude=["id", "grade"])
    assert data.input_info["feature_names"] == ("age", "city=paris", "city=rome", "churn")  # no id, no grade
    with pytest.raises(TableError, match=r"\['score'\] are listed in 'exclude' and also read"):
        table(path=str(path), tasks={"score": {"kind": "regression"}}, split_column="split", exclude=["score"])
    with pytest.raises(TableError, match="no column 'nope'"):
        table(path=str(path), tasks={"score": {"kind": "regression"}}, exclude=["nope"])


def test_an_identifier_column_is_not_one_hot_encoded_silently(tmp_path: Path) -> None:
    """Before the fix an id column (a different text in every row) became one input feature per
    row, none shared by any other row or by a test row."""
    rows = "".join(f"r{i},{i % 7},{i % 3}\n" for i in range(40))
    path = _csv(tmp_path, "id,x,y\n" + rows)
    with pytest.raises(TableError, match=r"input column 'id' has a different value in each of its \d+ training rows "
                                         r"\(an identifier\?\).*exclude: \[id\].*'categorical'"):
        table(path=str(path), tasks={"y": {"kind": "regression"}})
    assert table(path=str(path), tasks={"y": {"kind": "regression"}}, exclude=["id"]).input_info["in_features"] == 1
    forced = table(path=str(path), tasks={"y": {"kind": "regression"}}, categorical=["id"])
    assert forced.input_info["in_features"] > 20
