"""Quiet paths the review found: each now raises a named error or shows what happened."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from manytask._registry import OptionsError, Registry
from manytask.evaluation import format_mean_std, mean_std
from manytask.metrics import delta_m
from manytask.training._run_logger import RunLogger, UnknownColumnError

if TYPE_CHECKING:
    from collections import OrderedDict  # never imported at run time


def test_mean_std_tables_say_how_many_values_they_cover() -> None:
    """The defect: mean_std dropped non-finite values with no mark."""
    assert mean_std([1.0, math.nan, 3.0]) == (2.0, math.sqrt(2.0), 2, 3)  # mean, std over 2 of 3
    assert format_mean_std([1.0, math.nan, 3.0], 1) == "2.0 ± 1.4 (2 of 3)"
    assert format_mean_std([math.nan, math.nan]) == "– (0 of 2)"
    assert format_mean_std([1.0, 3.0], 1) == "2.0 ± 1.4"


def test_delta_m_divides_by_the_baselines_magnitude() -> None:
    # a negative baseline (log-likelihood, higher is better): -2 -> -1 is a 50 % improvement
    assert delta_m({"t/ll": -1.0}, {"t/ll": -2.0}, {"t/ll": True}) == pytest.approx(50.0)
    with pytest.raises(ZeroDivisionError, match="baseline of 't/ll' is 0"):
        delta_m({"t/ll": -1.0}, {"t/ll": 0.0}, {"t/ll": True})


def test_one_unresolvable_annotation_leaves_the_others_validated() -> None:
    """The defect: any failure to read annotations turned type validation off entirely."""
    registry: Registry[object] = Registry("thing")

    def factory(size: int = 3, table: OrderedDict | None = None) -> object:  # noqa: F821
        return size

    registry.register("t")(factory)
    with pytest.raises(OptionsError, match="Option 'size' of thing 't'"):
        registry.validate("t", {"size": "many"})
    assert registry.validate("t", {"table": {"a": 1}}) == {"table": {"a": 1}}


def test_run_logger_refuses_a_column_it_does_not_have(tmp_path: Path) -> None:
    """The defect: unknown columns were dropped from metrics.csv silently."""
    logger = RunLogger(tmp_path, ["val/a/rmse"], progress=False)
    logger.start(None)
    logger.log({"step": 1, "epoch": 0, "val/a/rmse": 0.5})
    with pytest.raises(UnknownColumnError, match=r"^metrics.csv has no column for \['val/b/rmse'\]"):
        logger.log({"step": 2, "epoch": 0, "val/b/rmse": 0.5})
    logger.close()
    assert (tmp_path / "metrics.csv").read_text().splitlines() == ["step,epoch,val/a/rmse", "1,0,0.5"]


def test_cli_shows_user_errors_in_one_line_and_bugs_with_their_traceback(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The defect: every ValueError/KeyError became a one-line "user error", hiding bugs."""
    import yaml
    from typer.testing import CliRunner

    import manytask.runs as runs
    from manytask.cli._app import app

    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"balancer": {"name": "dwa", "temperature": -1.0},
                                    "training": {"steps": 2, "progress": False}, "run_dir": str(tmp_path / "r")}))
    user = CliRunner().invoke(app, ["train", str(path)])
    assert user.exit_code == 2 and "Config section 'balancer': The 'temperature' parameter of DWA" in user.output

    def broken(*args: object, **kwargs: object) -> None:
        raise KeyError("an internal key")

    monkeypatch.setattr(runs, "train", broken)
    bug = CliRunner().invoke(app, ["train", str(path)])
    assert bug.exit_code == 1 and isinstance(bug.exception, KeyError)  # not swallowed as a user error
