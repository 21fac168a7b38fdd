"""Predictions from a trained table run: the saved preprocessing reproduces the fitted encoder,
the test rows' predictions give the metrics the run reported, nothing is refitted on new rows,
and a file that does not fit is named."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from manytask import load_run
from manytask._utils import TableError, read_table, split_indices
from manytask.cli import app
from manytask.config import parse_config
from manytask.data.datasets._table import Encoder, encode_saved
from manytask.runs import predict, predict_frame, train
from manytask.training import CheckpointError

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "table.csv"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("predict")
    shutil.copy(EXAMPLE, folder / "table.csv")
    config = yaml.safe_load((EXAMPLE.parent / "table.yaml").read_text())
    config["data"]["path"] = str(folder / "table.csv")
    config["training"] = {"steps": 60, "eval_every": 20, "progress": False}
    train(parse_config(config), run_dir=folder / "run")
    return folder / "run"


def test_the_saved_encoding_is_the_fitted_one() -> None:
    """encode_saved (numpy, from JSON) against scikit-learn's fitted ColumnTransformer, on rows with
    an unseen category, empty cells and a column empty in every training row."""
    train_rows = pd.DataFrame({"a": ["1", "2", "4", None], "c": ["x", "y", "x", "z"], "e": [None] * 4})
    new_rows = pd.DataFrame({"a": ["3", None], "c": ["w", None], "e": ["5", None]})
    encoder = Encoder.fit(train_rows, numeric=["a", "e"])
    state = json.loads(json.dumps(encoder.state()))  # through JSON, as saved
    for frame in (train_rows, new_rows):
        assert np.allclose(encode_saved(state, frame).numpy(), encoder.transform(frame).numpy(), atol=1e-6)


def test_predictions_of_the_test_rows_give_the_reported_metrics(run: Path) -> None:
    frame = read_table(EXAMPLE, text=True)
    _, _, test = split_indices(len(frame), 0.1, 0.1, seed=0)  # the table's own split (seed 0)
    rows = frame.iloc[test.numpy()].reset_index(drop=True)
    predicted = predict_frame(load_run(run), rows)
    reported = json.loads((run / "results.json").read_text())["metrics"]
    churn = rows["churn"].notna()
    accuracy = float((predicted["churn"][churn].astype(int) == rows["churn"][churn].astype(int)).mean())
    assert math.isclose(accuracy, reported["churn/accuracy"], abs_tol=1e-6)
    spend = rows["spend"].notna()
    rmse = float(np.sqrt(((predicted["spend"][spend] - rows["spend"][spend].astype(float)) ** 2).mean()))
    assert math.isclose(rmse, reported["spend/rmse"], rel_tol=1e-4)
    assert list(predicted.columns[:2]) == ["customer_id", "churn"]  # ids first, then the tasks
    assert {"segment/prob_premium", "segment/prob_standard", "segment/prob_young"} <= set(predicted.columns)


def test_nothing_is_refitted_on_the_new_rows(run: Path, tmp_path: Path) -> None:
    """One row alone gets the prediction it gets among all rows; labels are not needed."""
    frame = read_table(EXAMPLE, text=True).drop(columns=["churn", "spend", "segment"])
    everything = predict_frame(load_run(run), frame)
    one = predict_frame(load_run(run), frame.iloc[[7]].reset_index(drop=True))
    pd.testing.assert_frame_equal(one, everything.iloc[[7]].reset_index(drop=True))
    frame.iloc[[7]].to_csv(tmp_path / "one.csv", index=False)
    result = CliRunner().invoke(app, ["predict", str(run), "--data", str(tmp_path / "one.csv"),
                                      "--out", str(tmp_path / "p.csv")])
    assert result.exit_code == 0, result.output
    assert len(pd.read_csv(tmp_path / "p.csv")) == 1


def test_files_that_do_not_fit_are_named(run: Path, tmp_path: Path) -> None:
    frame = read_table(EXAMPLE, text=True)
    with pytest.raises(TableError, match=r"input column\(s\) \['plan'\] of the training table are missing"):
        predict_frame(load_run(run), frame.drop(columns=["plan"]))
    with pytest.raises(TableError, match=r"column\(s\) \['colour'\] were not in the training table"):
        predict_frame(load_run(run), frame.assign(colour="red"))
    frame.assign(age="old").to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(TableError, match="old"):
        predict(run, tmp_path / "bad.csv", out=tmp_path / "p.csv")
    with pytest.raises(CheckpointError, match="neither 'best', 'latest' nor a file"):
        load_run(run, checkpoint="newest")
    assert load_run(run, checkpoint="latest").checkpoint.name.startswith("step-")
    with pytest.raises(FileNotFoundError, match="not a run directory"):
        load_run(tmp_path)
    shutil.copytree(run, tmp_path / "comparison" / "multi")  # what manytask compare writes
    with pytest.raises(FileNotFoundError, match=r"is a comparison \(manytask compare\): give one of its runs, the "
                                                r"multi-task .*comparison/multi"):
        load_run(tmp_path / "comparison")


def test_evaluate_on_a_labelled_file_gives_the_reported_test_metrics(run: Path, tmp_path: Path,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    """The test rows of the training table, evaluated from the file, give results.json's metrics;
    a label column left out is simply no label."""
    from manytask.runs import evaluate_file

    frame = read_table(EXAMPLE, text=True)
    _, _, test = split_indices(len(frame), 0.1, 0.1, seed=0)
    frame.iloc[test.numpy()].to_csv(tmp_path / "test.csv", index=False)
    metrics = evaluate_file(run, tmp_path / "test.csv", out=tmp_path / "e.csv")
    reported = json.loads((run / "results.json").read_text())["metrics"]
    for key, value in reported.items():
        if value is not None:
            assert math.isclose(metrics[key], value, rel_tol=1e-4, abs_tol=1e-6), key
    assert pd.read_csv(tmp_path / "e.csv").columns[0].startswith("test.csv/")
    frame.iloc[test.numpy()].drop(columns=["segment"]).to_csv(tmp_path / "some.csv", index=False)
    with caplog.at_level("WARNING", logger="manytask"):
        partial = evaluate_file(run, tmp_path / "some.csv", out=tmp_path / "e2.csv")
    assert math.isnan(partial["segment/accuracy"]) and math.isclose(partial["churn/accuracy"], metrics["churn/accuracy"])
    assert "has no label for task 'segment' (column 'segment' is absent): its metrics are NaN" in caplog.text
    result = CliRunner().invoke(app, ["evaluate", str(run), "--data", str(tmp_path / "test.csv"),
                                      "--out", str(tmp_path / "e3.csv")])
    assert result.exit_code == 0 and "churn/auroc" in result.output


def test_export_from_the_command_line_gives_the_predictions(run: Path, tmp_path: Path) -> None:
    import torch

    result = CliRunner().invoke(app, ["export", str(run), "--out", str(tmp_path / "m.pt2")])
    assert result.exit_code == 0, result.output
    program = torch.export.load(str(tmp_path / "m.pt2")).module()
    frame = read_table(EXAMPLE, text=True).iloc[:20].reset_index(drop=True)
    loaded = load_run(run)
    x = encode_saved(loaded.preprocessing["encoder"], frame)  # type: ignore[index]
    with torch.no_grad():
        churn, spend, _ = program(x)
    predicted = predict_frame(loaded, frame)
    assert np.allclose(churn[:, 0].numpy(), predicted["churn/prob_1"].to_numpy(), atol=1e-6)
    assert np.allclose(spend[:, 0].numpy(), predicted["spend"].to_numpy(), atol=1e-4)


def test_every_task_class_a_dataset_makes_is_rebuilt_from_tasks_json() -> None:
    """The defect: a CoNLL-2000 run's chunk task (ChunkTagging) could not be loaded back, so
    predict, evaluate, export and relate's RSA failed on it."""
    from manytask.metrics import ChunkTagging
    from manytask.runs._saved import _task_from_spec, _task_spec
    from manytask.tasks import BinaryClassification, Regression, SequenceLabelling

    made = [ChunkTagging("chunk", tags=("O", "B-NP", "I-NP"), metrics=("chunk_f1", "accuracy"), crf=True),
            SequenceLabelling("pos", num_classes=5, attach_at=1), BinaryClassification("flag", num_labels=2),
            Regression("size", target_mean=(1.0,), target_std=(2.0,))]
    for task in made:
        assert _task_from_spec(json.loads(json.dumps(_task_spec(task)))) == task


def test_a_header_only_file_and_an_out_that_is_a_directory_are_named(run: Path, tmp_path: Path) -> None:
    """Before the fix a header-only file crashed in a reshape and a directory --out gave an
    IsADirectoryError traceback from the atomic rename."""
    frame = read_table(EXAMPLE, text=True)
    frame.iloc[:0].to_csv(tmp_path / "empty.csv", index=False)
    frame.iloc[:3].to_csv(tmp_path / "three.csv", index=False)
    for command in ("predict", "evaluate"):
        result = CliRunner().invoke(app, [command, str(run), "--data", str(tmp_path / "empty.csv")])
        assert result.exit_code == 2 and "holds no rows" in result.output, result.output
    (tmp_path / "folder").mkdir()
    for command in (["predict", str(run), "--data", str(tmp_path / "three.csv")], ["export", str(run)]):
        result = CliRunner().invoke(app, [*command, "--out", str(tmp_path / "folder")])
        assert result.exit_code == 2 and "it is a directory; name a file" in result.output, result.output


def test_a_corrupt_best_checkpoint_points_to_another_checkpoint_not_to_resuming(run: Path, tmp_path: Path) -> None:
    """Before the fix predict said 'Delete it and resume', which does not help a prediction."""
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    best = copy / "checkpoints" / "best.safetensors"
    best.write_bytes(best.read_bytes()[:-30])
    frame = read_table(EXAMPLE, text=True)
    frame.iloc[:3].to_csv(tmp_path / "three.csv", index=False)
    result = CliRunner().invoke(app, ["predict", str(copy), "--data", str(tmp_path / "three.csv")])
    assert result.exit_code == 2 and "--checkpoint latest" in result.output and "resume" not in result.output
    latest = CliRunner().invoke(app, ["predict", str(copy), "--data", str(tmp_path / "three.csv"), "--checkpoint",
                                      "latest"])
    assert latest.exit_code == 0, latest.output


def test_unseen_categories_are_said_with_their_counts(run: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Before the fix a column whose every cell was unseen (Female for female, 4.0 for 4) was
    encoded as all zeros without a word, and every prediction changed."""
    frame = read_table(EXAMPLE, text=True).iloc[:4].reset_index(drop=True)
    with caplog.at_level("WARNING", logger="manytask"):
        predict_frame(load_run(run), frame)
    assert "hold categories" not in caplog.text
    column = next(c for c in load_run(run).preprocessing["encoder"]["steps"] if "categories" in c)["column"]
    frame[column] = ["Klingon", "Klingon", "Vulcan", None]
    with caplog.at_level("WARNING", logger="manytask"):
        predict_frame(load_run(run), frame)
    assert (f"column {column!r}: 3 of its 3 filled cells hold categories the training rows did not have "
            "('Klingon' x2, 'Vulcan' x1)") in caplog.text


def test_a_run_on_a_headerless_table_reads_new_headerless_rows_by_its_names(tmp_path: Path) -> None:
    """Before the fix predict took the first data row for a header and said every input was
    missing."""
    frame = read_table(EXAMPLE, text=True)
    frame.to_csv(tmp_path / "bare.csv", index=False, header=False)
    config = yaml.safe_load((EXAMPLE.parent / "table.yaml").read_text())
    config["data"] |= {"path": str(tmp_path / "bare.csv"), "columns": list(frame.columns)}
    config["training"] = {"steps": 10, "eval_every": 10, "progress": False}
    run_dir = train(parse_config(config), run_dir=tmp_path / "run", report=False).run_dir
    rows = frame.iloc[:5]
    expected = predict_frame(load_run(run_dir), rows.reset_index(drop=True))
    inputs = config["data"]["inputs"]
    rows.to_csv(tmp_path / "all.csv", index=False, header=False)  # the training file's layout
    rows[inputs].to_csv(tmp_path / "inputs.csv", index=False, header=False)  # the inputs alone
    rows.to_csv(tmp_path / "named.csv", index=False)  # with a header row
    for name in ("all", "inputs", "named"):
        written = predict(run_dir, tmp_path / f"{name}.csv", out=tmp_path / f"{name}.out.csv")
        got = pd.read_csv(written)
        assert np.allclose(got["spend"], expected["spend"], atol=1e-5), name
    rows[inputs[:3]].to_csv(tmp_path / "three.csv", index=False, header=False)
    with pytest.raises(TableError, match=r"trained on a table without a header row, of 9 columns.*5 inputs; this "
                                         r"file's first line has 3 fields"):
        predict(run_dir, tmp_path / "three.csv")


def test_the_documented_preprocessing_gives_the_exported_models_input(run: Path, tmp_path: Path) -> None:
    """docs/concepts.md: x for model.pt2 from preprocessing.json alone, by the rule it states,
    equals encode_rows, and the program's outputs are predict's."""
    import torch

    from manytask.runs import encode_rows, export_run

    rows = read_table(EXAMPLE, text=True).iloc[:6].reset_index(drop=True)
    rows.loc[0, "region"] = None  # an empty text cell
    saved = json.loads((run / "preprocessing.json").read_text())
    parts = []
    for step in saved["encoder"]["steps"]:
        cells = rows[step["column"]]
        if "categories" in step:
            parts.append(np.array([[float(c == k) for k in step["categories"]] for c in cells]))
        else:
            values = np.array([float(c) if c not in (None, "") else np.nan for c in cells])
            parts.append(np.nan_to_num((values - step["mean"]) / step["scale"])[:, None])
    by_hand = np.concatenate(parts, axis=1)
    x = encode_rows(load_run(run), rows)
    assert np.allclose(x.numpy(), by_hand, atol=1e-6)
    program = torch.export.load(str(export_run(run, tmp_path / "m.pt2"))).module()
    outputs = program(x)
    names = [t["fields"]["name"] for t in json.loads((run / "tasks.json").read_text())["tasks"]]
    spend = outputs[names.index("spend")].reshape(-1).detach().numpy()
    assert np.allclose(spend, predict_frame(load_run(run), rows)["spend"], atol=1e-5)


def test_a_probability_of_exactly_one_half_is_the_negative_class_as_the_metrics_count_it(run: Path) -> None:
    """predict wrote class 1 at p = 0.5 (>= 0.5) where accuracy and F1 count class 0 (> 0.5)."""
    import torch

    loaded = load_run(run)
    head = loaded.model.heads["churn"]
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()  # logit 0: p = 0.5 on every row
    predicted = predict_frame(loaded, read_table(EXAMPLE, text=True).head(5))
    assert (predicted["churn/prob_1"] == 0.5).all() and (predicted["churn"] == 0).all()
