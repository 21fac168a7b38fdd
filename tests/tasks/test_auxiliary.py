"""Auxiliary kinds by name (``auxiliary: <kind>``): each expands to the task it means, computes
the targets that kind names (checked by hand on a small table), lives in its own section, and a
privileged column is never read to predict."""

from __future__ import annotations

import copy
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from typer.testing import CliRunner

from manytask._utils import TableError
from manytask.catalogue import REGISTRIES
from manytask.cli import app
from manytask.config import ConfigError, parse_config
from manytask.data.datasets._table import table
from manytask.demos import DEMO_CONFIG
from manytask.models import GradientReversal
from manytask.runs import build_experiment, load_run, predict_frame, train
from manytask.tasks._auxiliary import AUXILIARY, expand_auxiliary
from tests.data.datasets.test_datasets_table import AUX


def _csv(tmp_path: Path) -> Path:
    """The table test's small table of auxiliary columns, as ``people.csv``."""
    path = tmp_path / "people.csv"
    path.write_text(AUX)
    return path


BY_NAME = {
    "income_band": {"kind": "classification", "column": "income", "bins": [30, 60]},
    "income": {"auxiliary": "quantisation_smoothing"},  # its column: the task's name
    "old": {"auxiliary": "hint", "column": "age", "above": 45},
    "hours": {"auxiliary": "predicting_inputs", "column": "hours"},
    "spend": {"auxiliary": "privileged", "column": "spend"},
}


def test_every_kind_is_listed_with_its_paper_and_an_example() -> None:
    assert REGISTRIES["auxiliary"] is AUXILIARY
    names = {"hint", "quantisation_smoothing", "predicting_inputs", "privileged", "adversarial"}
    assert set(AUXILIARY.names()) == names
    listed = CliRunner().invoke(app, ["list", "auxiliary"])
    assert listed.exit_code == 0, listed.output
    for name in names:
        assert name in listed.output
        assert {"paper", "where", "example"} <= set(AUXILIARY.get(name).details)
    explained = CliRunner().invoke(app, ["explain", "hint"])
    assert "column (default None)" in explained.output and "above (required)" in explained.output
    assert "column`` defaults to the task's name" in explained.output


def test_the_table_kinds_compute_the_targets_they_name(tmp_path: Path) -> None:
    """Against hand-computed targets: bins of income and income itself (smoothing), age > 45 with
    age still an input (hint), hours and spend predicted, never inputs; spend is empty at test."""
    data = table(path=str(_csv(tmp_path)), tasks=BY_NAME, split_column="split")
    train_rows, test = data.train["people"], data.test
    assert test is not None
    assert train_rows.targets["income_band"].tolist() == [0, 0, 1, 1]
    assert train_rows.targets["income"].tolist() == [10.0, 25.0, 40.0, 55.0]
    assert train_rows.targets["old"].tolist() == [0.0, 0.0, 0.0, 1.0]
    assert train_rows.targets["hours"].tolist() == [35.0, 40.0, 45.0, 50.0]
    assert data.input_info["feature_names"] == ("age",)  # the hint's column stays; the others are predicted
    assert not bool(test.masks["spend"].any())
    roles = {t.name: t.role for t in data.tasks}
    assert roles == {"income_band": "main", "income": "auxiliary", "old": "auxiliary", "hours": "auxiliary",
                     "spend": "auxiliary"}


def test_a_kind_gives_the_same_tasks_as_the_spec_written_out(tmp_path: Path) -> None:
    written = {
        "income_band": BY_NAME["income_band"],
        "income": {"kind": "regression", "role": "auxiliary"},
        "old": {"kind": "binary", "column": "age", "above": 45, "role": "auxiliary", "from_input": True},
        "hours": {"kind": "regression", "role": "auxiliary"},
        "spend": {"kind": "regression", "role": "auxiliary"},
    }
    named = table(path=str(_csv(tmp_path)), tasks=BY_NAME, split_column="split")
    plain = table(path=str(_csv(tmp_path)), tasks=written, split_column="split")
    assert [repr(t) for t in named.tasks] == [repr(t) for t in plain.tasks]
    for name in written:
        assert torch.equal(named.train["people"].targets[name], plain.train["people"].targets[name])
    assert torch.equal(named.train["people"].inputs, plain.train["people"].inputs)  # type: ignore[arg-type]


@pytest.mark.parametrize("spec, match", [
    ({"auxiliary": "hnt", "column": "age", "above": 1}, r"Unknown auxiliary kind 'hnt'.*Did you mean 'hint'"),
    ({"auxiliary": "rotation"}, "views such as rotation"),
    ({"auxiliary": "hint", "column": "age"}, r"needs 'above' \(e.g. x: \{auxiliary: hint, column: age, above: 45\}"),
    ({"auxiliary": "hint", "above": 3}, "column 'x'"),  # the task's name, as a written-out task's column
    ({"auxiliary": "hint", "column": "age", "above": 1, "abve": 2}, "unknown key 'abve'. Did you mean 'above'"),
    ({"auxiliary": "hint", "column": "age", "above": "old"}, "above"),
    ({"auxiliary": "hint", "column": "age", "above": 1, "role": "main"}, r"sets 'role' itself \(role: 'auxiliary'\)"),
    ({"auxiliary": "adversarial"}, r"belongs under tasks.<name>, not under data.tasks"),
    ({"auxiliary": "quantisation_smoothing", "column": "hours"}, r"no task bins it: add one such as"),
    # before the fix from_input made the privileged column an input, which predict then required
    ({"auxiliary": "privileged", "column": "spend", "from_input": True}, r"sets 'from_input' itself \(from_input: F"),
    ({"auxiliary": "predicting_inputs", "column": "hours", "from_input": True}, r"sets 'from_input' itself"),
])
def test_wrong_uses_are_named_with_the_fix(tmp_path: Path, spec: dict[str, object], match: str) -> None:
    with pytest.raises(TableError, match=match):
        table(path=str(_csv(tmp_path)), tasks={"x": spec, "income_band": BY_NAME["income_band"]},
              split_column="split")


def test_other_keys_of_the_section_stay_beside_the_kind(tmp_path: Path) -> None:
    data = table(path=str(_csv(tmp_path)), split_column="split", tasks={
        "income_band": BY_NAME["income_band"],
        "old": {"auxiliary": "hint", "column": "age", "above": 45, "metrics": ["auroc"]}})
    old = next(t for t in data.tasks if t.name == "old")
    assert old.metrics == ("auroc",) and old.role == "auxiliary"
    assert expand_auxiliary("d", {"auxiliary": "adversarial", "reversal": 0.5, "lr": 0.01}, "tasks", ["lr"]) == {
        "role": "adversarial", "reversal": 0.5, "reversal_schedule": "ganin", "lr": 0.01}


def _demo(tmp_path: Path, **sections: object) -> dict[str, object]:
    raw = copy.deepcopy(DEMO_CONFIG)
    raw["run_dir"] = str(tmp_path)
    raw.update(sections)
    return raw


def test_adversarial_by_name_is_a_reversed_head_with_the_papers_schedule(tmp_path: Path) -> None:
    cfg = parse_config(_demo(tmp_path, tasks={"score": {"auxiliary": "adversarial", "reversal": 0.5, "lr": 0.01}},
                             training={"steps": 5, "progress": False}))
    assert cfg.tasks["score"].role == "adversarial" and cfg.tasks["score"].lr == 0.01
    assert (cfg.tasks["score"].reversal, cfg.tasks["score"].reversal_schedule) == (0.5, "ganin")
    experiment = build_experiment(cfg)
    head = experiment.model.heads["score"][0]
    assert isinstance(head, GradientReversal) and head.scale == 0.5 and head.schedule == "ganin"
    assert expand_auxiliary("d", {"auxiliary": "adversarial"}, "tasks") == {
        "role": "adversarial", "reversal": 1.0, "reversal_schedule": "ganin"}


def test_a_table_kind_in_the_tasks_section_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"tasks.*'hint' belongs under data.tasks.<name> of the table dataset"):
        parse_config(_demo(tmp_path, tasks={"score": {"auxiliary": "hint", "column": "x", "above": 1}}))


def test_a_privileged_column_is_never_read_to_predict(tmp_path: Path) -> None:
    """Trained with spend as privileged information; the rows to predict have no spend column at
    all, and the predictions do not change when spend holds anything (it is not an input)."""
    rows = pd.DataFrame({"age": range(20, 80, 2), "hours": [30 + i % 7 for i in range(30)]})
    rows["income"] = rows["age"] * 1.5 + rows["hours"]
    rows["spend"] = rows["income"] / 10
    path = tmp_path / "rows.csv"
    rows.to_csv(path, index=False)
    config = {"seed": 0, "data": {"name": "table", "path": str(path), "batch_size": 8, "tasks": {
        "income": {"kind": "regression"}, "spend": {"auxiliary": "privileged", "column": "spend"}}},
        "model": {"name": "hps", "encoder": {"name": "mlp", "hidden": [8]}},
        "training": {"steps": 6, "eval_every": 3, "progress": False}}
    train(parse_config(yaml.safe_load(yaml.safe_dump(config))), run_dir=tmp_path / "run")
    run = load_run(tmp_path / "run")
    without = predict_frame(run, rows.drop(columns=["income", "spend"]))
    scrambled = predict_frame(run, rows.drop(columns=["income"]).assign(spend=-1e6))
    assert "spend" in without.columns  # its head still predicts it
    pd.testing.assert_series_equal(without["income"], scrambled["income"])


def test_the_adversarial_kind_takes_the_documented_key_and_lists_valid_keys_once() -> None:
    """Before the fix ``reversal_schedule`` (the key the docs name) was refused with 'leave it
    out', which silently gave Ganin's ramp; the kind's own option was called ``schedule``."""
    assert expand_auxiliary("d", {"auxiliary": "adversarial", "reversal_schedule": "constant"}, "tasks") == {
        "role": "adversarial", "reversal": 1.0, "reversal_schedule": "constant"}
    with pytest.raises(ValueError, match="Valid keys") as caught:
        expand_auxiliary("d", {"auxiliary": "hint", "above": 1, "kolumn": "age"}, "table", ["kind", "column", "role"])
    listed = str(caught.value).split("Valid keys", 1)[1]
    assert listed.count("'column'") <= 1 and listed.count("'kind'") <= 1


def test_a_hint_on_a_text_column_says_what_fixes_a_hint(tmp_path: Path) -> None:
    """Before the fix it told the user to list the column under 'categorical', which does not help."""
    path = tmp_path / "t.csv"
    path.write_text("city,y\na,1\nb,2\na,3\nb,4\n")
    with pytest.raises(TableError, match=r"holds 'a'. 'above' compares numbers: name a numeric column, or use "
                                         r"'positive: <value>'"):
        table(path=str(path), tasks={"y": {"kind": "regression"}, "big": {"auxiliary": "hint", "column": "city",
                                                                            "above": 1}})
