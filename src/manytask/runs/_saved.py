"""What a run keeps for later use, and a run loaded back: ``tasks.json`` (the tasks as trained:
kinds, classes, target standardisation, the encoder's input facts) and, for a table,
``preprocessing.json`` (the input encoding fitted on the training rows, and the label columns)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from .._utils import atomic_write
from ..config import Config, load_config
from ..metrics import ChunkTagging
from ..models import MultiTaskModel
from ..tasks import BinaryClassification, Classification, Regression, SequenceLabelling, Task
from ..training import CheckpointError, CheckpointManager
from ._build import build_model

__all__ = ["LoadedRun", "load_run", "save_run_spec"]

TASKS_FILE = "tasks.json"
PREPROCESSING_FILE = "preprocessing.json"
_KINDS: dict[str, type[Task]] = {c.__name__: c for c in (Classification, SequenceLabelling, BinaryClassification,
                                                          Regression, ChunkTagging)}


def _task_spec(task: Task) -> dict[str, Any]:
    values = {f.name: getattr(task, f.name) for f in dataclasses.fields(task)}
    if callable(values.get("loss")):
        values["loss"] = None  # a Python callable is not saved; predictions do not need the loss
    return {"class": type(task).__name__, "fields": values}


def _task_from_spec(spec: dict[str, Any]) -> Task:
    kind = _KINDS.get(spec["class"])
    if kind is None:
        raise CheckpointError(f"{TASKS_FILE}: task class {spec['class']!r} is not one manytask can rebuild "
                              f"({', '.join(_KINDS)}).")
    fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in spec["fields"].items()}
    return kind(**fields)


def save_run_spec(run_dir: Path, tasks: tuple[Task, ...] | list[Task], input_info: dict[str, Any]) -> None:
    """Write ``tasks.json`` (and ``preprocessing.json`` when the dataset gave one) into ``run_dir``."""
    facts = {k: v for k, v in input_info.items() if k != "preprocessing" and isinstance(v, (int, float, str, bool))}
    atomic_write(run_dir / TASKS_FILE, json.dumps({"tasks": [_task_spec(t) for t in tasks], "input_info": facts},
                                                  indent=1))
    if "preprocessing" in input_info:
        atomic_write(run_dir / PREPROCESSING_FILE, json.dumps(input_info["preprocessing"], indent=1))


@dataclass(frozen=True)
class LoadedRun:
    """A trained run: its config, tasks, model (weights of ``checkpoint``, in eval mode) and, for a
    table, the preprocessing fitted on its training rows."""

    run_dir: Path
    config: Config
    tasks: tuple[Task, ...]
    model: MultiTaskModel
    checkpoint: Path
    preprocessing: dict[str, Any] | None
    input_info: dict[str, Any]  # the encoder's input facts (in_features, vocab_size, ...)


def _checkpoint(run_dir: Path, which: str) -> Path:
    if which == "best":
        path = run_dir / "checkpoints" / "best.safetensors"
        if not path.is_file():
            raise CheckpointError(f"{run_dir} has no best checkpoint (checkpoints/best.safetensors: the run had no "
                                  "validation split, or never finished an evaluation); use --checkpoint latest.")
        return path
    if which == "latest":
        latest = CheckpointManager(run_dir / "checkpoints").latest()
        if latest is None:
            raise CheckpointError(f"{run_dir} has no checkpoint (checkpoints/step-*.safetensors).")
        return latest
    path = Path(which)
    if not path.is_file():
        raise CheckpointError(f"Checkpoint {which!r} is neither 'best', 'latest' nor a file.")
    return path


def load_run(run_dir: str | Path, checkpoint: str = "best") -> LoadedRun:
    """Load a trained run: ``manytask.load_run("runs/table").model(x)``.

    Args:
        run_dir: A run directory written by ``manytask train`` (or ``fit-linear``: its model is
            the linear functions of ``coef.csv``, whatever ``checkpoint`` says).
        checkpoint: ``"best"`` (on validation), ``"latest"`` or a checkpoint file.
    """
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        if (run_dir / "multi" / "config.yaml").is_file():
            raise FileNotFoundError(f"{run_dir} is a comparison (manytask compare): give one of its runs, the "
                                    f"multi-task {run_dir / 'multi'} or a baseline {run_dir}/single-<task>.")
        raise FileNotFoundError(f"{run_dir} is not a run directory (it has no config.yaml); give the directory "
                                "manytask train wrote.")
    if not (run_dir / TASKS_FILE).is_file():
        raise CheckpointError(f"{run_dir} has no {TASKS_FILE}: it was trained by an older manytask; train it again "
                              "to predict from it.")
    config = load_config(run_dir / "config.yaml", [])
    saved = json.loads((run_dir / TASKS_FILE).read_text())
    tasks = tuple(_task_from_spec(spec) for spec in saved["tasks"])
    preprocessing_file = run_dir / PREPROCESSING_FILE
    preprocessing = json.loads(preprocessing_file.read_text()) if preprocessing_file.is_file() else None
    if (run_dir / "coef.csv").is_file():  # a fit-linear run: its weights are coef.csv
        from ._linear import read_coef

        heads = read_coef(run_dir / "coef.csv", [t.name for t in tasks])
        return LoadedRun(run_dir, config, tasks, cast(MultiTaskModel, heads), run_dir / "coef.csv", preprocessing,
                         saved["input_info"])
    model = build_model(config, tasks, saved["input_info"])
    path = _checkpoint(run_dir, checkpoint)
    try:
        state = CheckpointManager.load(path).get("model")
    except CheckpointError as error:  # its own fix speaks of resuming: say what helps here
        raise CheckpointError(f"{error.problem} Use another checkpoint of the run: --checkpoint latest, or a "
                              f"{run_dir / 'checkpoints'}/step-*.safetensors file.") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} holds no model weights.")
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise CheckpointError(f"{path} does not fit the model of {run_dir}'s config: {str(error)[:300]}") from None
    model.eval()
    return LoadedRun(run_dir, config, tasks, model, path, preprocessing, saved["input_info"])
