"""Train one configured run and evaluate its best checkpoint."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
import torch.distributed
import yaml

from .._utils import atomic_write
from ..config import Config, ConfigError, TrainingConfig
from ..data import MultiTaskData
from ..evaluation import evaluate
from ..tasks import Task
from ..training import Ranks, TrainResult, init_from_env, resolve_device
from ._build import build_experiment, save_config
from ._run_dir import RunDirError, check_resume, claim
from ._saved import save_run_spec

__all__ = ["RunResult", "train"]


def _cost(result: TrainResult, device: str) -> dict[str, float | str]:
    """Seconds per training step (this session's steps, no evaluation) and peak memory in MB:
    CUDA's peak allocation on a GPU, the process's peak resident size on CPU."""
    import torch

    from .._utils._peak_memory import own_peak_rss_mb

    if device.startswith("cuda") and torch.cuda.is_available():
        peak, kind = torch.cuda.max_memory_allocated() / 2**20, "cuda_max_allocated"
    else:
        peak, kind = own_peak_rss_mb(), "process_max_rss"
    return {"seconds_per_step": result.train_seconds / max(1, result.steps_run), "peak_memory_mb": peak,
            "peak_memory_kind": kind}


@dataclass
class RunResult:
    """A finished run: training outcome and the best checkpoint's metrics on the test split."""

    train: TrainResult
    test: dict[str, float]
    split: str
    run_dir: Path
    primary: tuple[str, ...] = ()  # "<task>/<primary metric>" of the main tasks
    roles: dict[str, str] = field(default_factory=dict)  # task name -> main | auxiliary | adversarial

    def by_role(self) -> dict[str, dict[str, float]]:
        """The test metrics grouped by their task's role (main first), for reports."""
        groups: dict[str, dict[str, float]] = {}
        for key, value in self.test.items():
            groups.setdefault(self.roles.get(key.split("/", 1)[0], "main"), {})[key] = value
        return {role: groups[role] for role in ("main", "auxiliary", "adversarial") if role in groups}

    def mean_primary(self) -> tuple[float, list[str]]:
        """Mean of the main tasks' primary metric where defined, and the keys left out (NaN)."""
        undefined = [k for k in self.primary if not math.isfinite(self.test.get(k, math.nan))]
        values = [self.test[k] for k in self.primary if k not in undefined]
        return (sum(values) / len(values) if values else math.nan), undefined


def ranks_of(config: Config) -> Ranks | None:
    """The data-parallel ranks ``torchrun`` started this process among (None in one process),
    the process group on the config's device."""
    try:
        device = resolve_device(config.training.device)
    except ValueError as error:
        raise ConfigError(f"Config key 'training.device': {error}") from None
    return init_from_env(device)


def on_rank_zero(ranks: Ranks | None, check: Callable[[], object], what: str) -> None:
    """Run ``check`` (a run-directory check that may write) on rank 0 only; every rank hears its
    verdict, so that a refusal stops them all instead of leaving the others waiting."""
    if ranks is None:
        check()
        return
    problem: Exception | None = None
    if ranks.is_main:
        try:
            check()
        except Exception as error:
            problem = error
    said: list[str | None] = [str(problem) if problem is not None else None]
    torch.distributed.broadcast_object_list(said, src=0)
    if problem is not None:
        raise problem
    if said[0] is not None:
        raise RunDirError(f"Rank 0 refused {what}: {said[0]}")


def try_report(directory: Path) -> None:
    """Write ``report.html``; a report that fails is said, never fatal to the run it reports."""
    from ..report import write_report

    try:
        print(f"Report: {write_report(directory)}")
    except Exception as error:  # the run's own files are written: say why the report is missing
        print(f"manytask: no report for {directory}: {type(error).__name__}: {error}. The run's files are "
              f"complete; retry with `manytask report {directory}`.")


def _stretched_schedules(run_dir: Path, config: Config, tasks: Sequence[Task]) -> str | None:
    """What a resume that changes ``training.steps`` stretches: the schedules that follow the
    run's length (the cosine learning rate, Ganin's reversal ramp, the annealed sampler) continue
    on the new length,
    so the run is no longer the one trained with that length from the start."""
    old = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
    before = (old.get("training") or {}).get("steps", TrainingConfig().steps)
    if before == config.training.steps:
        return None
    stretched = ["the cosine learning rate"] if config.optimizer.scheduler == "cosine" else []
    if config.data.sampler.name == "annealed":  # its α runs over the epochs that training.steps gives
        stretched.append("the annealed sampler's schedule")
    stretched += [f"the reversal ramp of {t.name!r}" for t in tasks
                  if t.role == "adversarial" and t.reversal_schedule == "ganin"]
    if not stretched:
        return None
    return (f"manytask: training.steps changes from {before} to {config.training.steps} on this resume; "
            f"{' and '.join(stretched)} follow{'s' if len(stretched) == 1 else ''} the run's length and continue on "
            "the new one, so the result "
            f"differs from a run trained with steps: {config.training.steps} from the start.")


def config_of_run(config: Config, only: Sequence[str] | None) -> Config:
    """The config a run of ``only`` (a single-task or pair run of compare and relate) trains and
    saves: ``include_tasks`` names its tasks, so that its config.yaml retrains or resumes it."""
    return config if only is None else config.model_copy(update={"include_tasks": list(only)})


def train(
    config: Config,
    resume: Path | str | Literal["latest"] | None = None,
    data: MultiTaskData | None = None,
    only: list[str] | None = None,
    run_dir: Path | str | None = None,
    overwrite: bool = False,
    report: bool = True,
) -> RunResult:
    """Train ``config``, reload the best checkpoint, evaluate it on the test split (else val).

    Writes ``config.yaml``, ``metrics.csv``, ``checkpoints/`` and ``results.json`` in the run
    directory. A directory holds one run: a fresh run into a directory that holds another
    raises :class:`RunDirError` unless ``overwrite`` (which deletes that run first); a resume
    must use the run's own config, except for :data:`RESUMABLE_KEYS`. Nothing is written (or
    deleted) before these checks pass and the experiment is built from the config. Then
    ``report.html`` (unless ``report`` or ``logging.report`` is off).
    """
    target = Path(run_dir if run_dir is not None else config.run_dir)
    config = config_of_run(config, only)
    ranks = ranks_of(config)
    on_rank_zero(ranks, lambda: claim(target, overwrite=overwrite, delete=False) if resume is None
                 else check_resume(target, config), f"the run directory {target}")
    experiment = build_experiment(config, data=data, only=only, run_dir=target, ranks=ranks,
                                  resuming=resume is not None)
    if resume is None:  # the config built: only now does --overwrite delete the old run
        on_rank_zero(ranks, lambda: claim(target, overwrite=overwrite), f"the run directory {target}")
    if resume is not None and (done := experiment.trainer.checkpoint_step(resume)) > config.training.steps:
        raise RunDirError(f"Cannot resume {target} with training.steps: {config.training.steps}: its checkpoint is "
                          f"at step {done} already. Resume with training.steps >= {done}; a shorter run is a new run "
                          "(another directory).")
    if ranks is None or ranks.is_main:
        stretched = _stretched_schedules(target, config, experiment.tasks) if resume is not None else None
        if stretched is not None:
            print(stretched)
        if experiment.started_from is not None:
            print(experiment.started_from)
        save_config(config, experiment.run_dir)
        save_run_spec(experiment.run_dir, experiment.tasks, dict(experiment.data.input_info))
    result = experiment.trainer.fit(resume=resume)
    if ranks is not None and not ranks.is_main:  # rank 0 evaluates the best checkpoint and writes the results
        torch.distributed.barrier()
        return RunResult(result, {}, "", experiment.run_dir)
    experiment.trainer.load_best()
    split = "test" if experiment.data.test is not None else "val"
    source = experiment.data.test if experiment.data.test is not None else experiment.data.val
    metrics = {}
    if source is not None:
        metrics = evaluate(experiment.model, experiment.tasks, source, config.data.eval_batch_size,
                           experiment.trainer.device, views=experiment.trainer.views)
    cost = _cost(result, str(experiment.trainer.device))
    previous = experiment.run_dir / "results.json"
    if result.steps_run == 0 and previous.is_file():  # a finished run resumed: nothing new was timed
        cost = json.loads(previous.read_text()).get("cost", cost)
    summary = {
        "split": split,
        "metrics": {k: (None if math.isnan(v) else v) for k, v in metrics.items()},
        "cost": cost,
        "steps": result.steps,
        "best_step": result.best_step,
        "monitor": result.monitor,
        "stopped_early": result.stopped_early,
    }
    atomic_write(experiment.run_dir / "results.json", json.dumps(summary, indent=2))
    structure = experiment.model.structure_report()
    if structure is not None:  # a learned sharing structure (learning to branch)
        atomic_write(experiment.run_dir / "structure.txt", structure + "\n")
        print(f"Learned structure of {config.model.name} (saved in {experiment.run_dir / 'structure.txt'}):\n"
              f"{structure}")
    if config.logging.report and report:
        try_report(experiment.run_dir)
    mains = [t for t in experiment.tasks if t.role == "main"] or list(experiment.tasks)
    primary = tuple(f"{t.name}/{t.metrics[0]}" for t in mains)
    roles: dict[str, str] = {t.name: t.role for t in experiment.tasks}
    if ranks is not None:
        torch.distributed.barrier()
    return RunResult(result, metrics, split, experiment.run_dir, primary, roles)
