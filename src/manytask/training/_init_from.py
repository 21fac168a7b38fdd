"""Start a model from another run's weights: pretrain, then fine-tune; add a task later."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from ._checkpoint import CheckpointError, CheckpointManager

__all__ = ["WeightsLoaded", "load_matching_weights", "resolve_weights"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WeightsLoaded:
    """What :func:`load_matching_weights` did, by state-dict key."""

    source: Path
    loaded: tuple[str, ...]  # copied from the checkpoint
    fresh: tuple[str, ...]  # the model's, absent from the checkpoint (a new task's head): as initialised
    ignored: tuple[str, ...]  # the checkpoint's, absent from the model (a dropped task's head)


def resolve_weights(source: str | Path) -> Path:
    """The checkpoint file ``source`` names: the file itself, or a run directory's
    ``checkpoints/best.safetensors`` (else its latest ``step-*.safetensors``)."""
    path = Path(source)
    if path.is_file():
        return path
    if path.is_dir():
        best = path / "checkpoints" / "best.safetensors"
        if best.is_file():
            return best
        latest = CheckpointManager(path / "checkpoints").latest() if (path / "checkpoints").is_dir() else None
        if latest is not None:
            return latest
        raise CheckpointError(f"init_from: run directory {path} has no checkpoint (checkpoints/best.safetensors or "
                              "step-*.safetensors); train it first, or name a checkpoint file.")
    raise CheckpointError(f"init_from: {path} does not exist; name a run directory or a .safetensors checkpoint.")


def load_matching_weights(model: nn.Module, source: str | Path) -> WeightsLoaded:
    """Copy into ``model`` every parameter and buffer of the checkpoint at ``source`` whose name
    it also has; the model's other entries keep their initial values, the checkpoint's others
    are ignored. A name with another shape raises (the architectures differ), before anything
    is copied.
    """
    path = resolve_weights(source)
    state = CheckpointManager.load(path).get("model")
    if not isinstance(state, dict):
        raise CheckpointError(f"init_from: {path} holds no model weights.")
    own = model.state_dict()
    mismatched = [f"{k}: {tuple(v.shape)} in the checkpoint, {tuple(own[k].shape)} here"
                  for k, v in state.items() if k in own and v.shape != own[k].shape]
    if mismatched:
        raise CheckpointError(f"init_from: {path} does not fit this model ({'; '.join(mismatched[:3])}"
                              f"{' ...' if len(mismatched) > 3 else ''}); build the model the checkpoint was "
                              "trained with (same model, encoder and options).")
    loaded = [k for k in state if k in own]
    if not loaded:
        raise CheckpointError(f"init_from: {path} shares no weight name with this model; build the model the "
                              "checkpoint was trained with.")
    model.load_state_dict({k: state[k] for k in loaded}, strict=False)
    report = WeightsLoaded(path, tuple(loaded), tuple(k for k in own if k not in state),
                           tuple(k for k in state if k not in own))
    log.info("manytask: started from %s: %d tensors loaded, %d fresh (%s), %d ignored (%s).", path,
             len(report.loaded), len(report.fresh), ", ".join(report.fresh[:4]) or "none",
             len(report.ignored), ", ".join(report.ignored[:4]) or "none")
    return report
