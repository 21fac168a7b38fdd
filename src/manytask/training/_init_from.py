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

    def __str__(self) -> str:
        return (f"manytask: started from {self.source}: {len(self.loaded)} tensors loaded, {len(self.fresh)} fresh "
                f"({', '.join(self.fresh[:4]) or 'none'}{', ...' if len(self.fresh) > 4 else ''}), "
                f"{len(self.ignored)} ignored ({', '.join(self.ignored[:4]) or 'none'}"
                f"{', ...' if len(self.ignored) > 4 else ''}).")


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
    it also has; the model's task-specific entries the checkpoint lacks (a new task's head) keep
    their initial values, and the checkpoint's task-specific entries the model lacks (a dropped
    task's head) are ignored. A name with another shape, or a shared (trunk) weight that only one
    side has, raises (the architectures differ), before anything is copied.
    """
    path = resolve_weights(source)
    try:
        state = CheckpointManager.load(path).get("model")
    except CheckpointError as error:  # its own fix speaks of resuming: say what helps here
        raise CheckpointError(f"init_from: {error.problem} Start from another checkpoint of that run "
                              "(its checkpoints/step-*.safetensors), or train it again.") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"init_from: {path} holds no model weights.")
    own = model.state_dict()
    mismatched = [f"{k}: {tuple(v.shape)} in the checkpoint, {tuple(own[k].shape)} here"
                  for k, v in state.items() if k in own and v.shape != own[k].shape]
    trunk = _shared_names(model)
    roots = {n.split(".")[0] for n in trunk} - {n.split(".")[0] for n in own if n not in trunk}
    mismatched += [f"{k}: here, not in the checkpoint" for k in own if k in trunk and k not in state]
    mismatched += [f"{k}: in the checkpoint, not here" for k in state if k not in own and k.split(".")[0] in roots]
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
    log.info("%s", report)
    return report


def _shared_names(model: nn.Module) -> set[str]:
    """The state-dict names of the model's shared parameters (none for a plain module)."""
    shared = getattr(model, "shared_parameters", None)
    ids = {id(p) for p in shared()} if callable(shared) else set()
    return {n for n, p in model.named_parameters() if id(p) in ids}
