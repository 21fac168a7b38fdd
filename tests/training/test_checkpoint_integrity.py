"""Checkpoints carry a checksum and hold finite weights; a corrupt one is named, never resumed."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from manytask.training import CheckpointError, CheckpointManager
from manytask.training._serialization import flatten_state

from .helpers import make_trainer


def saved(tmp_path: Path) -> Path:
    trainer = make_trainer(tmp_path, 7)
    trainer.fit()
    return tmp_path / "checkpoints" / "step-000000007.safetensors"


def test_flipped_bytes_in_a_tensor_are_caught(tmp_path: Path) -> None:
    """The defect: safetensors carries no checksum, so flipped bytes resumed silently."""
    path = saved(tmp_path)
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x10  # inside the last tensor's bytes: the file still parses
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="do not match the checksum"):
        CheckpointManager.load(path)
    with pytest.raises(CheckpointError, match="do not match the checksum"):
        make_trainer(tmp_path, 14).fit(resume="latest")


def test_nan_weights_are_a_corrupt_checkpoint_not_a_divergence(tmp_path: Path) -> None:
    """The defect: NaN weights in a checkpoint were reported as a training divergence that blamed
    the learning rate and called the corrupt file "the last good checkpoint"."""
    path = saved(tmp_path)
    state = CheckpointManager.load(path)
    first = next(iter(state["model"]))
    state["model"][first][0] = float("nan")
    CheckpointManager(path.parent)._write(path, state)  # a valid file (and checksum) with NaN weights
    with pytest.raises(CheckpointError, match=f"NaN or infinite model weights \\('{first}'\\).*not a training divergence"):
        make_trainer(tmp_path, 14).fit(resume="latest")


def test_checkpoints_of_the_previous_format_still_load(tmp_path: Path) -> None:
    text, tensors = flatten_state({"model": {"w": torch.ones(2)}, "step": 3})
    path = tmp_path / "old.safetensors"
    save_file(tensors, str(path), metadata={"format": "manytask-checkpoint-1", "state": text})
    assert CheckpointManager.load(path)["step"] == 3
