"""A trained model as a ``torch.export`` program: ``manytask export RUN_DIR`` (``model.pt2``).

The program takes the encoded inputs (a batch of any size) and returns one tensor per task, in
the run's task order, as ``Task.predictions`` gives them: class probabilities, binary
probabilities, regression values on the targets' scale. Every registered sharing scheme exports
on an MLP backbone except ``adaptive`` (its routing caches are Python state), tested by a round
trip that gives the same outputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from .._utils import atomic_path
from ..models import MultiTaskModel
from ..tasks import Task
from ._saved import load_run

__all__ = ["ExportError", "export_model", "export_run"]


class ExportError(RuntimeError):
    """The model cannot be exported (``torch.export`` refused it); the message says why."""


class _Predictions(nn.Module):
    """``x -> (task_1's predictions, ..., task_T's)``."""

    def __init__(self, model: MultiTaskModel, tasks: Sequence[Task]) -> None:
        super().__init__()
        self.model = model
        self.tasks = list(tasks)

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        outputs = self.model(x, [t.name for t in self.tasks])
        return tuple(t.predictions(outputs[t.name]) for t in self.tasks)


def export_model(model: MultiTaskModel, tasks: Sequence[Task], example: Tensor) -> torch.export.ExportedProgram:
    """Export ``model`` (in eval mode) for inputs shaped like ``example``, any batch size."""
    model.eval()
    try:
        return torch.export.export(_Predictions(model, tasks), (example,),
                                   dynamic_shapes=({0: torch.export.Dim("batch")},))
    except Exception as error:  # torch.export's own errors are many and deep: name the model and the first line
        raise ExportError(f"torch.export cannot trace {type(model).__name__}: "
                          f"{str(error).strip().splitlines()[0][:300]}") from None


def export_run(run_dir: str | Path, out: str | Path | None = None, checkpoint: str = "best") -> Path:
    """Export the run's model to ``out`` (default ``<run_dir>/model.pt2``); vector inputs only
    (``in_features`` known). Load it with ``torch.export.load(path).module()``."""
    run = load_run(run_dir, checkpoint)
    facts = run.input_info
    if "in_features" not in facts:
        raise ExportError(f"{run_dir}: export from the command line needs vector inputs (in_features); in Python, "
                          "manytask.runs.export_model(run.model, run.tasks, example_inputs) exports any shape.")
    tasks = [t for t in run.tasks if t.view is None]
    program = export_model(run.model, tasks, torch.zeros(2, int(facts["in_features"])))
    target = Path(out) if out is not None else Path(run_dir) / "model.pt2"
    with atomic_path(target) as tmp:
        torch.export.save(program, str(tmp))
    return target
