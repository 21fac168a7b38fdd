"""Checkpoints resume exactly: 2N steps straight == N steps + resume + N steps."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from manytask.balancing import BALANCERS, balancer_info
from manytask.models import MODELS
from manytask.training import BackwardEngine, CheckpointManager, Trainer, build_optimizer

from .helpers import make_trainer


def _cases() -> list[tuple[str, dict[str, object]]]:
    """EW, plus every stateful or random registered balancer at each of its levels."""
    cases: list[tuple[str, dict[str, object]]] = [("ew", {})]
    for name in BALANCERS.names():
        info = balancer_info(name)
        if info.stateful or info.random:
            levels = info.levels if len(info.levels) > 1 else (None,)
            cases += [(name, dict(info.example) | ({"level": lv} if lv else {})) for lv in levels]
    return cases


@pytest.mark.parametrize("balancer, options", _cases(), ids=lambda v: v if isinstance(v, str) else v.get("level", ""))
def test_resume_is_exact(tmp_path: Path, balancer: str, options: dict[str, object]) -> None:
    """Resumed at step 21 (mid-epoch, a task absent from some batches), every later update is
    bitwise the same as the straight run's."""
    n = 21  # a multiple of eval_every, so the split run evaluates at the same steps
    straight = make_trainer(tmp_path / "straight", 2 * n, balancer, **options)
    straight.fit()

    first = make_trainer(tmp_path / "split", 2 * n, balancer, **options)
    first.steps = n
    first.fit()
    resumed = make_trainer(tmp_path / "split", 2 * n, balancer, **options)
    resumed.fit(resume="latest")

    assert resumed.step == straight.step == 2 * n
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name
    for (name, a), b in zip(straight.balancer.state_dict().items(), resumed.balancer.state_dict().values()):
        if isinstance(a, torch.Tensor):
            assert torch.equal(a.nan_to_num(7.0), b.nan_to_num(7.0)), name
        else:
            assert repr(a) == repr(b), name
    assert straight.loader.state_dict()["step"] == resumed.loader.state_dict()["step"]
    straight_rows = (tmp_path / "straight" / "metrics.csv").read_text().splitlines()
    resumed_rows = (tmp_path / "split" / "metrics.csv").read_text().splitlines()
    assert len(straight_rows) == len(resumed_rows)
    strip = lambda row: row.split(",", 3)[:2] + row.split(",")[3:]  # noqa: E731 (drop time_s)
    assert [strip(r) for r in straight_rows] == [strip(r) for r in resumed_rows]


@pytest.mark.parametrize("scheme", MODELS.names())
def test_every_scheme_resumes_exactly(tmp_path: Path, scheme: str) -> None:
    """Every registered sharing scheme, resumed mid-epoch with a task absent from some batches,
    ends bitwise where the straight run does (parameters and buffers: MMoE's gate statistics)."""
    # on the one-stage MLP of make_trainer these four share nothing (relationship and branching: all per task)
    balancer = "ew" if scheme in ("independent", "soft", "relationship", "branching") else "mgda"
    n = 14
    options = {"widen_every": 10} if scheme == "adaptive" else {}  # widened at step 10, before the resume
    straight = make_trainer(tmp_path / "straight", 2 * n, balancer, scheme=scheme, model_options=options)
    straight.fit()
    first = make_trainer(tmp_path / "split", 2 * n, balancer, scheme=scheme, model_options=options)
    first.steps = n
    first.fit()
    resumed = make_trainer(tmp_path / "split", 2 * n, balancer, scheme=scheme, model_options=options)
    resumed.fit(resume="latest")
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name


def test_resume_truncates_metrics_written_after_the_checkpoint(tmp_path: Path) -> None:
    """Rows logged after the checkpoint a run resumes from are dropped and written again once
    (the former test of this name never resumed, so removing the truncation left it green)."""
    trainer = make_trainer(tmp_path, 28, eval_every=7)
    trainer.checkpoint_every = 14
    trainer.checkpoints.keep = 10
    trainer.fit()  # rows 7, 14, 21, 28; a checkpoint at 14 (and at 28, and where the monitor improved)
    rows = (tmp_path / "metrics.csv").read_text().splitlines()
    resumed = make_trainer(tmp_path, 28, eval_every=7)
    resumed.checkpoint_every = 14
    resumed.fit(resume=tmp_path / "checkpoints" / "step-000000014.safetensors")
    again = (tmp_path / "metrics.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in again[1:]] == ["7", "14", "21", "28"]
    strip = lambda row: row.split(",", 3)[:2] + row.split(",")[3:]  # noqa: E731 (drop time_s)
    assert [strip(r) for r in again] == [strip(r) for r in rows]  # an exact resume writes the same rows


def test_only_latest_checkpoints_are_kept(tmp_path: Path) -> None:
    make_trainer(tmp_path, 35, eval_every=7).fit()
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["best.safetensors", "step-000000028.safetensors", "step-000000035.safetensors"]


def test_a_non_contiguous_parameter_resumes_exactly(tmp_path: Path) -> None:
    """A checkpoint stores the optimizer's moments contiguous; restored onto a transposed
    parameter they must take its layout again, or the fused Adam step rounds differently."""

    def transposed(trainer: Trainer) -> Trainer:
        first = trainer.model.encoder.stages[0][1]  # type: ignore[union-attr, index]
        with torch.no_grad():
            first.weight = torch.nn.Parameter(first.weight.detach().T.contiguous().T)
        assert not first.weight.is_contiguous()
        trainer.optimizer = build_optimizer(trainer.model, trainer.balancer, lr=1e-2)
        trainer.engine = BackwardEngine(trainer.model, trainer.balancer)
        trainer.scheduler = None
        return trainer

    n = 14
    straight = transposed(make_trainer(tmp_path / "straight", 2 * n))
    straight.fit()
    first = transposed(make_trainer(tmp_path / "split", 2 * n))
    first.steps = n
    first.fit()
    resumed = transposed(make_trainer(tmp_path / "split", 2 * n))
    resumed.fit(resume="latest")
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name


def test_time_s_goes_on_from_the_checkpoint_after_a_resume(tmp_path: Path) -> None:
    """A resumed run's ``time_s`` continues the checkpoint's count (it restarted from 0, so a
    plot of a metric against time folded back at every resume)."""
    first = make_trainer(tmp_path, 28, eval_every=7)
    first.steps = 14
    first.fit()
    before = [float(row.split(",")[2]) for row in (tmp_path / "metrics.csv").read_text().splitlines()[1:]]
    saved = CheckpointManager.load(tmp_path / "checkpoints" / "step-000000014.safetensors")["elapsed_s"]
    assert saved >= before[-1] > before[0] > 0
    resumed = make_trainer(tmp_path, 28, eval_every=7)
    resumed.fit(resume="latest")
    times = [float(row.split(",")[2]) for row in (tmp_path / "metrics.csv").read_text().splitlines()[1:]]
    assert times[:2] == before and times[2] > saved and times == sorted(times)
    assert resumed.elapsed() >= times[-1]
