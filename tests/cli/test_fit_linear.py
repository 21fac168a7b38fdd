"""``manytask fit-linear`` through the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml
from typer.testing import CliRunner

from manytask.cli import app


def test_fit_linear_on_a_table(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rows = ["x1,x2,y,task"]
    for task in range(3):
        w = np.array([1.0, -2.0]) + 0.1 * task
        for _ in range(40):
            x = rng.normal(size=2)
            rows.append(f"{x[0]},{x[1]},{x @ w + 0.01 * rng.normal()},{task}")
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    config = {"data": {"path": "t.csv", "inputs": ["x1", "x2"], "target": "y", "task": "task"},
              "estimator": {"name": "l21", "loss": "squared", "params": {"alpha": 0.001}},
              "split": {"test_fraction": 0.25, "seed": 0}, "output_dir": str(tmp_path / "out")}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    result = CliRunner().invoke(app, ["fit-linear", str(tmp_path / "c.yaml")])
    assert result.exit_code == 0, result.output
    assert "mean" in result.output and (tmp_path / "out" / "coef.csv").is_file()

    other = tmp_path / "other"
    args = ["fit-linear", str(tmp_path / "c.yaml"), "--set", f"output_dir={other}"]
    overridden = CliRunner().invoke(app, [*args, "--set", "estimator.params.alpha=0.01"])
    assert overridden.exit_code == 0, overridden.output
    assert yaml.safe_load((other / "config.yaml").read_text())["estimator"]["params"] == {
        "alpha": 0.01
    }
    typo = CliRunner().invoke(app, [*args, "--set", "estimator.nam=l21"])
    assert typo.exit_code == 2 and "Did you mean 'estimator.name'" in typo.output

    config["estimator"]["name"] = "l2l"
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(config))
    bad = CliRunner().invoke(app, ["fit-linear", str(tmp_path / "bad.yaml")])
    assert bad.exit_code == 2 and "l2l" in bad.output
