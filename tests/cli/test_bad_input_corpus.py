"""The bad-input corpus: each case is something a user gets wrong — a config, a data file, a
checkpoint, a shape, a NaN, ranks — run through the ``manytask`` command as a user runs it. Every
case must end with exit code 2 and one ``error:`` line that names the problem (the pattern), no
traceback from inside torch, pydantic or pandas, and a finished run already on disk byte for
byte as it was."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from manytask.cli import app

runner = CliRunner()

BASE: dict[str, Any] = {
    "data": {"name": "demo", "n_train": 120, "n_val": 40, "n_test": 40},
    "model": {"encoder": {"hidden": [8]}},
    "training": {"steps": 4, "eval_every": 2, "progress": False, "device": "cpu"},
}
TABLE = "x,y,label\n1,2,a\n3,4,b\n5,6,a\n7,8,b\n9,1,a\n2,3,b\n4,5,a\n6,7,b\n8,9,a\n1,1,b\n"


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _config(tmp: Path, extra: dict[str, Any] | None = None, text: str | None = None, name: str = "c.yaml") -> str:
    path = tmp / name
    config = _merge({**BASE, "run_dir": str(tmp / "run")}, extra or {})
    path.write_text(text if text is not None else yaml.safe_dump(config))
    return str(path)


def _table_config(tmp: Path, text: str, tasks: dict[str, Any], **options: Any) -> str:
    (tmp / "t.csv").write_text(text)
    config = _merge({**BASE, "run_dir": str(tmp / "run")}, {})
    config["data"] = {"name": "table", "path": str(tmp / "t.csv"), "tasks": tasks, "split_column": None, **options}
    del config["data"]["split_column"]
    return _config(tmp, text=yaml.safe_dump(config))


def _flip_bytes(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-20] ^= 0xFF
    path.write_bytes(bytes(data))


#: name -> (build the arguments in a temporary folder holding the finished run ``done/``, pattern)
Case = Callable[[Path], list[str]]
CASES: dict[str, tuple[Case, str]] = {
    # --- configs
    "config file missing": (lambda t: ["train", str(t / "nope.yaml")], r"nope\.yaml"),
    "config not YAML": (lambda t: ["train", _config(t, text="data: {name: demo\n")], r"(YAML|yaml)"),
    "config a list": (lambda t: ["train", _config(t, text="- 1\n- 2\n")], r"mapping"),
    "a BiLSTM on vectors": (lambda t: ["train", _config(t, {"model": {"encoder": {"name": "bilstm", "hidden": 8}}})],
                            r"encoder 'bilstm' needs vocab_size, which dataset 'demo' does not give"),
    "a CNN on vectors": (lambda t: ["train", _config(t, {"model": {"encoder": {"name": "cnn", "hidden": None}}})],
                         r"'hps' with encoder 'cnn' cannot read the inputs of dataset 'demo' \(Expected"),
    "an input size the data contradicts": (lambda t: ["train", _config(t, {"model": {"encoder": {"in_features": 7}}})],
                                           r"cannot read the inputs of dataset 'demo'.*leave input sizes"),
    "a section written twice": (lambda t: ["train", _config(t, text="training: {steps: 4}\ndata: {name: demo}\n"
                                                                   "training: {eval_every: 2}\n")],
                                r"key 'training' appears twice in one mapping \(lines 1 and 3\)"),
    "unknown section": (lambda t: ["train", _config(t, {"trainig": {"steps": 3}})], r"trainig.*training"),
    "unknown key": (lambda t: ["train", _config(t, {"training": {"stepz": 3}})], r"stepz"),
    "wrong type": (lambda t: ["train", _config(t, {"training": {"steps": "many"}})], r"training\.steps"),
    "negative steps": (lambda t: ["train", _config(t, {"training": {"steps": -5}})], r"training\.steps"),
    "zero batch": (lambda t: ["train", _config(t, {"data": {"batch_size": 0}})], r"batch_size"),
    "unknown balancer": (lambda t: ["train", _config(t, {"balancer": {"name": "mgdaa"}})], r"mgdaa.*mgda"),
    "bad balancer option": (lambda t: ["train", _config(t, {"balancer": {"name": "mgda", "level": "bogus"}})],
                            r"level"),
    "unknown balancer option": (lambda t: ["train", _config(t, {"balancer": {"name": "ew", "alpha": 2}})], r"alpha"),
    "unknown model": (lambda t: ["train", _config(t, {"model": {"name": "hsp"}})], r"hsp"),
    "unknown encoder option": (lambda t: ["train", _config(t, {"model": {"encoder": {"widht": 3}}})], r"widht"),
    "unknown dataset": (lambda t: ["train", _config(t, {"data": {"name": "demoo"}})], r"demoo"),
    "unknown dataset option": (lambda t: ["train", _config(t, {"data": {"n_trian": 5}})], r"n_trian"),
    "unknown sampler": (lambda t: ["train", _config(t, {"data": {"sampler": {"name": "fair"}}})], r"fair"),
    "unknown optimizer": (lambda t: ["train", _config(t, {"optimizer": {"name": "lbfgs"}})], r"optimizer"),
    "override of an unknown task": (lambda t: ["train", _config(t, {"tasks": {"catgory": {"role": "auxiliary"}}})],
                                    r"catgory"),
    "include an unknown task": (lambda t: ["train", _config(t, {"include_tasks": ["scor"]})], r"scor"),
    "monitor of an unknown task": (lambda t: ["train", _config(t, {"training": {"monitor": "nope/accuracy"}})],
                                   r"nope"),
    "malformed --set": (lambda t: ["train", _config(t), "--set", "training.steps"], r"training\.steps"),
    "--set of an unknown key": (lambda t: ["train", _config(t), "--set", "training.stpes=3"], r"stpes"),
    "views for no task": (lambda t: ["train", _config(t, {"views": {"rotation": {}}})], r"no task names this view"),
    "a balancer without its required option": (lambda t: ["train", _config(t, {"balancer": {"name": "aux-schedule"}})],
                                               r"aux-schedule' needs option\(s\) 'steps'"),
    "a flag for a number": (lambda t: ["train", _config(t, {"balancer": {"name": "aux-schedule", "steps": True}})],
                            r"'steps'.*is a number; got True"),
    "a metric for another kind": (lambda t: ["train", _config(t, {"tasks": {"flag": {"metrics": ["rmse"]}}})],
                                  r"metric 'rmse' does not apply to a binary task"),
    "unknown view": (lambda t: ["train", _config(t, {"tasks": {"extra": {"view": "rotate", "kind": "classification",
                                                                         "num_classes": 4}}})], r"rotate"),
    "a view the inputs do not fit": (lambda t: ["train", _config(t, {"tasks": {"turns": {
        "view": "rotation", "kind": "classification", "num_classes": 4, "role": "auxiliary"}}})], r"[Rr]otation"),
    "fp16 on a CPU": (lambda t: ["train", _config(t, {"training": {"precision": "fp16"}})], r"fp16.*CUDA"),
    "a device this machine lacks": (lambda t: ["train", _config(t, {"training": {"device": "tpu"}})], r"tpu"),
    "alternating an unknown task": (lambda t: ["train", _config(t, {"training": {"alternate": [["score"], ["x"]]}})],
                                    r"alternate.*\['x'\]"),
    "a window that ends before it starts": (lambda t: ["train", _config(t, {"tasks": {"score": {"start": 5,
                                                                                             "stop": 3}}})],
                                            r"stop > start"),
    "both fraction and samples": (lambda t: ["train", _config(t, {"data": {"keep_labels": {"fraction": 0.1,
                                                                                          "samples": 3}}})],
                                  r"exactly one of fraction and samples"),
    # --- data files
    "table file missing": (lambda t: ["train", _table_config(t, TABLE, {"label": {"kind": "binary"}},
                                                             path=str(t / "no.csv"))], r"no\.csv"),
    "ragged table": (lambda t: ["train", _table_config(t, "x,label\n1,a\n2,b,3\n", {"label": {"kind": "binary"}})],
                     r"line 3"),
    "stray text in a numeric label": (lambda t: ["train", _table_config(
        t, "x,y\n" + "".join(f"{i},{i}.5\n" for i in range(20)) + "7,oops\n", {"y": {"kind": "regression"}})], r"oops"),
    "label column missing": (lambda t: ["train", _table_config(t, TABLE, {"labl": {"kind": "binary"}})], r"labl"),
    "repeated column names": (lambda t: ["train", _table_config(t, "x,x,label\n1,2,a\n", {"label": {"kind": "binary"}})],
                              r"unique"),
    "empty table": (lambda t: ["train", _table_config(t, "", {"label": {"kind": "binary"}})], r"empty"),
    "a binary label with three values": (lambda t: ["train", _table_config(
        t, "x,label\n" + "".join(f"{i},{'abc'[i % 3]}\n" for i in range(12)), {"label": {"kind": "binary"}})],
        r"label"),
    "headerless table with the wrong column count": (lambda t: ["train", _table_config(
        t, "1,2,a\n3,4,b\n", {"label": {"kind": "binary"}}, columns=["x", "label"])], r"names 2"),
    "a task name with a dot": (lambda t: ["train", _table_config(
        t, "x,wage.hr\n" + "".join(f"{i},{i}.5\n" for i in range(12)), {"wage.hr": {"kind": "regression"}})],
        r"contain no '/' or '\.'.*'wage\.hr'"),
    "a typo beside a binary positive": (lambda t: ["train", _table_config(
        t, "x,label\n" + "".join(f"{i},{['yes', 'no'][i % 2]}\n" for i in range(12)) + "3,yse\n",
        {"label": {"kind": "binary", "positive": "yes"}})], r"positive 'yes' takes one other value.*\['no', 'yse'\]"),
    "a label also excluded": (lambda t: ["train", _table_config(t, TABLE, {"label": {"kind": "classification"}},
                                                                exclude=["label"])], r"exclude"),
    # --- run directories and checkpoints
    "train into a finished run": (lambda t: ["train", _config(t), "--run-dir", str(t / "done")], r"--resume latest"),
    "resume with nothing to resume": (lambda t: ["train", _config(t), "--run-dir", str(t / "empty"), "--resume",
                                                 "latest"], r"Nothing to resume"),
    "resume shorter than its checkpoint": (lambda t: ["train", _config(t, {"training": {"steps": 2}}), "--run-dir",
                                                      str(t / "done"), "--resume", "latest"], r"at step 4 already"),
    "resume with another model": (lambda t: ["train", _config(t, {"model": {"encoder": {"hidden": [9]}}}),
                                             "--run-dir", str(t / "done"), "--resume", "latest"],
                                  r"model\.encoder\.hidden"),
    "resume from a corrupt checkpoint": (lambda t: _corrupt(t), r"(sha256|corrupt|checksum)"),
    "resume from a truncated checkpoint": (lambda t: _truncated(t), r"(corrupt|truncated|not a|cannot|could not)"),
    "init_from a missing run": (lambda t: ["train", _config(t, {"training": {"init_from": str(t / "gone")}})],
                                r"gone"),
    "init_from another architecture": (lambda t: ["train", _config(t, {"model": {"encoder": {"hidden": [5]}},
                                                                      "training": {"init_from": str(t / "done")}})],
                                       r"does not fit this model"),
    # --- NaN / inf
    "a loss that diverges": (lambda t: ["train", _config(t, {"optimizer": {"lr": 1e30}, "training": {"steps": 30}})],
                             r"(not finite|nan|inf)"),
    "an infinite input in a table": (lambda t: ["train", _table_config(
        t, "x,label\n" + "".join(f"{i},{'ab'[i % 2]}\n" for i in range(12)) + "inf,a\n",
        {"label": {"kind": "binary", "positive": "a"}})], r"inf"),
}


def _copy_done(tmp: Path, name: str) -> Path:
    import shutil

    target = tmp / name
    shutil.copytree(tmp / "done", target)
    return target


def _corrupt(tmp: Path) -> list[str]:
    run = _copy_done(tmp, "corrupt")
    for path in (run / "checkpoints").glob("step-*.safetensors"):
        _flip_bytes(path)
    return ["train", _config(tmp), "--run-dir", str(run), "--resume", "latest"]


def _truncated(tmp: Path) -> list[str]:
    run = _copy_done(tmp, "truncated")
    for path in (run / "checkpoints").glob("step-*.safetensors"):
        path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    return ["train", _config(tmp), "--run-dir", str(run), "--resume", "latest"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with a finished run in ``done/``."""
    tmp = tmp_path_factory.mktemp("corpus")
    result = runner.invoke(app, ["train", _config(tmp), "--run-dir", str(tmp / "done")])
    assert result.exit_code == 0, result.output
    return tmp


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted((folder / "done").rglob("*")) if p.is_file()}


def test_the_corpus_is_large_enough() -> None:
    assert len(CASES) + len(TORCHRUN_CASES) >= 40


@pytest.mark.parametrize("name", list(CASES))
def test_each_bad_input_gets_a_named_error(finished: Path, tmp_path: Path, name: str) -> None:
    import shutil

    shutil.copytree(finished / "done", tmp_path / "done")
    build, pattern = CASES[name]
    before = _snapshot(tmp_path)
    result = runner.invoke(app, build(tmp_path))
    output = result.output
    assert result.exit_code == 2, f"{name}: exit {result.exit_code}\n{output}\n{result.exception!r}"
    assert "Traceback" not in output, output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert output.count("error:") == 1, output
    message = output[output.index("error:"):]
    assert re.search(pattern, message), f"{name}: {message!r} does not match {pattern!r}"
    assert _snapshot(tmp_path) == before, f"{name}: the finished run changed"


#: Cases that need two processes: the ranks must agree to stop, not hang.
TORCHRUN_CASES: dict[str, tuple[Callable[[Path], list[str]], str]] = {
    "ranks: a run directory rank 0 refuses": (
        lambda t: ["train", _config(t), "--run-dir", str(t / "done")], r"--resume latest"),
    "ranks: a batch smaller than the ranks": (
        lambda t: ["train", _config(t, {"data": {"batch_size": 1}}), "--run-dir", str(t / "tiny")],
        r"cannot be shared by 2 ranks"),
}


@pytest.mark.parametrize("name", list(TORCHRUN_CASES))
def test_ranks_stop_together_with_a_named_error(finished: Path, tmp_path: Path, name: str) -> None:
    import shutil

    shutil.copytree(finished / "done", tmp_path / "done")
    build, pattern = TORCHRUN_CASES[name]
    before = _snapshot(tmp_path)
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "-m", "manytask",
                           *build(tmp_path)], capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert "error:" in done.stderr and re.search(pattern, done.stderr), done.stderr[-3000:]
    ours = done.stderr.split("elastic/multiprocessing/api.py")[0]  # then torchrun's own report of the exit
    assert "Traceback" not in ours and ours.count("error:") == 2, ours  # each rank: one named line
    assert _snapshot(tmp_path) == before
