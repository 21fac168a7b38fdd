"""Checkpoints: one safetensors file per step, written atomically; the one place that writes them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .._utils import atomic_path
from ._serialization import flatten_state, unflatten_state

__all__ = ["CheckpointError", "CheckpointManager"]

_FORMAT = "manytask-checkpoint-1"
_NAME = re.compile(r"^step-(\d+)\.safetensors$")


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, corrupt or from an incompatible run."""


class CheckpointManager:
    """Saves and loads training state under ``directory``.

    Files are ``step-000123.safetensors`` (the latest ``keep`` are kept) and ``best.safetensors``.
    A file is written to a temporary name, synced and renamed, so a crash mid-write leaves the
    previous checkpoints intact. Only rank 0 writes (``enabled=False`` elsewhere).
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
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata={"format": _FORMAT, "state": text})

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
            raise CheckpointError(
                f"Checkpoint {path} is corrupt or not a manytask checkpoint ({error}). Delete it "
                "and resume from an earlier step-*.safetensors in the same folder."
            ) from None
        if metadata.get("format") != _FORMAT:
            raise CheckpointError(
                f"{path} is not a manytask checkpoint (format {metadata.get('format')!r}, "
                f"expected {_FORMAT!r})."
            )
        return unflatten_state(metadata["state"], tensors)
