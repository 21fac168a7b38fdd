"""``fit_linear``: configs in both task forms, and errors that name the bad key."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from manytask.config import ConfigError
from manytask.linear._cli import fit_linear


def _write_table(path: Path, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(90, 3))
    task = np.arange(90) % 3
    W = rng.normal(size=(3, 3))
    y = np.einsum("ij,ij->i", X, W[task]) + 0.1 * rng.normal(size=90)
    Y = X @ W.T
    lines = ["x1,x2,x3,group,y,ya,yb,yc,label"]
    for i in range(90):
        lines.append(
            ",".join(f"{v:.6f}" for v in X[i])
            + f",g{task[i]},{y[i]:.6f},"
            + ",".join(f"{v:.6f}" for v in Y[i])
            + f",{int(y[i] > 0)}"
        )
    path.write_text("\n".join(lines) + "\n")


def _config(tmp_path: Path, **overrides: object) -> Path:
    cfg: dict = {
        "data": {"path": "table.csv", "inputs": ["x1", "x2", "x3"], "target": "y", "task": "group"},
        "estimator": {"name": "l21", "params": {"alpha": 0.01}},
        "split": {"test_fraction": 0.25, "seed": 1},
        "output_dir": str(tmp_path / "out"),
    }
    for key, value in overrides.items():
        section, _, field = key.partition("__")
        if field:
            cfg[section][field] = value
        else:
            cfg[section] = value
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_multi_input_form(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _write_table(tmp_path / "table.csv")
    result = fit_linear(_config(tmp_path))
    assert result["metric"] == "rmse" and set(result["per_task"]) == {"g0", "g1", "g2"}
    assert result["n_test"] == 24 and result["mean"] < 0.5
    assert "mean" in capsys.readouterr().out
    coef = (tmp_path / "out" / "coef.csv").read_text().splitlines()
    assert coef[0] == "task,x1,x2,x3,intercept" and len(coef) == 4
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["mean"] == result["mean"]


def test_shared_form_and_logistic(tmp_path: Path) -> None:
    _write_table(tmp_path / "table.csv")
    data = {"path": "table.csv", "inputs": ["x1", "x2", "x3"], "targets": ["ya", "yb", "yc"]}
    result = fit_linear(_config(tmp_path, data=data, estimator={"name": "trace"}))
    assert set(result["per_task"]) == {"ya", "yb", "yc"}
    logistic = {"name": "ridge", "loss": "logistic", "params": {"alpha": 0.01}}
    data = {"path": "table.csv", "inputs": ["x1", "x2", "x3"], "target": "label", "task": "group"}
    result = fit_linear(_config(tmp_path, data=data, estimator=logistic))
    assert result["metric"] == "error_rate" and result["mean"] < 0.3


@pytest.mark.parametrize(
    "overrides, match",
    [
        (
            {"data__columns": ["x1"]},
            r"Unknown key 'data.columns'. Valid keys here: path, inputs, targets, target, task",
        ),
        ({"split__test_fraction": "half"}, r"Key 'split.test_fraction': .*number.*'half'"),
        (
            {"estimator": {"nme": "l21"}},
            r"Unknown key 'estimator.nme'. Did you mean 'estimator.name'",
        ),
        ({"data__targets": ["ya"]}, r"either 'targets'"),
        (
            {"estimator": {"name": "l22"}},
            r"'estimator.name': Unknown linear MTL regressor 'l22'. Did you mean 'l21'",
        ),
        ({"estimator": {"name": "l21", "params": {"alpa": 1}}}, r"estimator.params.*'alpa'"),
        ({"estimator": {"name": "l21", "params": {"alpha": "x"}}}, r"estimator.params.*alpha"),
        ({"data__inputs": ["x1", "x9"]}, r"Config key 'data.inputs': column 'x9'.*Columns: x1"),
        ({"data__inputs": ["x1", "group"]}, r"'data.inputs': column 'group' must hold numbers"),
    ],
)
def test_config_errors_name_the_key(tmp_path: Path, overrides: dict, match: str) -> None:
    _write_table(tmp_path / "table.csv")
    with pytest.raises(ConfigError, match=match):
        fit_linear(_config(tmp_path, **overrides))


def test_overrides_as_in_the_main_config(tmp_path: Path) -> None:
    """``key.sub=value`` overrides (``--set``) apply before validation, values parsed as YAML."""
    _write_table(tmp_path / "table.csv")
    config = _config(tmp_path)
    out = tmp_path / "other"
    result = fit_linear(config, [f"output_dir={out}", "split.test_fraction=0.5"])
    assert result["n_test"] == 45 and (out / "coef.csv").is_file()
    assert yaml.safe_load((out / "config.yaml").read_text())["split"]["test_fraction"] == 0.5
    with pytest.raises(ConfigError, match=r"Key 'split.test_fraction': .*less than 1"):
        fit_linear(config, ["split.test_fraction=1.5"])
    with pytest.raises(ConfigError, match="key.subkey=value"):
        fit_linear(config, ["split.seed"])
