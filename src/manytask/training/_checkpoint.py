"""Checkpoints: one safetensors file per step, written atomically; the one place that writes them."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .._utils import atomic_path
from ._serialization import flatten_state, unflatten_state

__all__ = ["CheckpointError", "CheckpointManager"]

_FORMAT = "manytask-checkpoint-2"  # 2: a sha256 of the tensors in the metadata
_OLD_FORMATS = ("manytask-checkpoint-1",)  # read without a checksum
_NAME = re.compile(r"^step-(\d+)\.safetensors$")


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, corrupt or from an incompatible run. ``problem`` is the
    message without its fix, for callers whose fix differs (a corrupt file to start from is not
    one to resume from)."""

    def __init__(self, message: str, problem: str | None = None) -> None:
        super().__init__(message)
        self.problem = problem if problem is not None else message


_RESUME_FIX = " Delete it and resume from an earlier step-*.safetensors in the same folder."


class CheckpointManager:
    """Saves and loads training state under ``directory``.

    Files are ``step-000123.safetensors`` (the latest ``keep`` are kept) and ``best.safetensors``.
    A file is written to a temporary name, synced and renamed, so a crash mid-write leaves the
    previous checkpoints intact. Its metadata holds a sha256 of every tensor, checked on load,
    and the model weights it loads must be finite. Only rank 0 writes (``enabled=False`` elsewhere).
    """

    def __init__(self, directory: Path, keep: int = 2, enabled: bool = True) -> None:
        if keep < 1:
            raise ValueError(f"keep must be >= 1 (the latest checkpoint is needed to resume). Got {keep}.")
        self.directory = Path(directory)
        self.keep = keep
        self.enabled = enabled

    def steps(self) -> list[int]:
        """Steps with a saved checkpoint, ascending."""
        if not self.directory.is_dir():
            return []
        return sorted(int(m.group(1)) for p in self.directory.iterdir() if (m := _NAME.match(p.name)))

    def path(self, step: int) -> Path:
        return self.directory / f"step-{step:09d}.safetensors"

    @staticmethod
    def step_of(path: Path) -> int:
        """The step at which checkpoint ``path`` was written (from a step file's name, else read)."""
        named = _NAME.match(Path(path).name)
        return int(named.group(1)) if named else int(CheckpointManager.load(path)["step"])

    def latest(self) -> Path | None:
        """The newest step checkpoint, or None."""
        steps = self.steps()
        return self.path(steps[-1]) if steps else None

    def save(self, state: dict[str, Any], step: int, best: bool = False) -> Path | None:
        """Write ``state`` for ``step`` (and as ``best`` if asked); prune old step files."""
        if not self.enabled:
            return None
        path = self.path(step)
        self._write(path, state)
        if best:
            self._write(self.directory / "best.safetensors", state)
        for old in self.steps()[: -self.keep]:
            self.path(old).unlink(missing_ok=True)
        return path

    def _write(self, path: Path, state: dict[str, Any]) -> None:
        text, tensors = flatten_state(state)
        metadata = {"format": _FORMAT, "state": text, "sha256": _checksum(tensors)}
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata=metadata)

    @staticmethod
    def load(path: Path) -> dict[str, Any]:
        """Read a checkpoint; a missing or corrupt file raises :class:`CheckpointError`."""
        path = Path(path)
        if not path.is_file():
            raise CheckpointError(
                f"Checkpoint {path} does not exist. Resume from a file listed in "
                f"{path.parent}, or train without resuming."
            )
        try:
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as handle:
                metadata = handle.metadata() or {}
            tensors = load_file(str(path))
        except (SafetensorError, OSError, ValueError, RuntimeError) as error:
            problem = f"Checkpoint {path} is corrupt or not a manytask checkpoint ({error})."
            raise CheckpointError(problem + _RESUME_FIX, problem) from None
        if metadata.get("format") not in (_FORMAT, *_OLD_FORMATS):
            raise CheckpointError(
                f"{path} is not a manytask checkpoint (format {metadata.get('format')!r}, "
                f"expected {_FORMAT!r})."
            )
        if metadata["format"] == _FORMAT and metadata.get("sha256") != _checksum(tensors):
            problem = (f"Checkpoint {path} is corrupt: its tensors do not match the checksum written with them "
                       "(bytes changed on disk).")
            raise CheckpointError(problem + _RESUME_FIX, problem)
        state = unflatten_state(metadata["state"], tensors)
        _check_finite_model(path, state.get("model"))
        return state


def _checksum(tensors: Mapping[str, torch.Tensor]) -> str:
    """sha256 over the tensors' names, dtypes, shapes and bytes, in name order."""
    digest = hashlib.sha256()
    for key in sorted(tensors):
        tensor = tensors[key]
        digest.update(f"{key}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        flat = tensor.detach().reshape(-1)
        if flat.numel() and flat.stride(0) != 1:  # one element at stride != 1 (dmtrl's rank-1 rows):
            flat = flat.clone(memory_format=torch.contiguous_format)  # "contiguous", but no uint8 view
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _check_finite_model(path: Path, model: object) -> None:
    if not isinstance(model, Mapping):
        return
    for name, value in model.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point() and not bool(torch.isfinite(value).all()):
            problem = (f"Checkpoint {path} holds NaN or infinite model weights ({name!r}); it is corrupt, not a "
                       "training divergence.")
            raise CheckpointError(problem + _RESUME_FIX, problem)
