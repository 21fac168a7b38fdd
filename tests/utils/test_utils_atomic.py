"""``atomic_write`` / ``atomic_path``: the target is either the old file or the complete new one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from manytask._utils import atomic_path, atomic_write


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("data", ["héllo\nworld\n", b"\x00\x01bytes"])
def test_writes_text_and_bytes_creating_folders(tmp_path: Path, data: str | bytes) -> None:
    path = tmp_path / "a" / "b" / "file"
    atomic_write(path, data)
    got = path.read_bytes() if isinstance(data, bytes) else path.read_text(encoding="utf-8")
    assert got == data
    assert _leftovers(path.parent) == ["file"]


def test_replaces_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "f.txt"
    path.write_text("old")
    atomic_write(path, "new")
    assert path.read_text() == "new" and _leftovers(tmp_path) == ["f.txt"]


def test_a_failing_writer_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_path(path) as tmp:
            tmp.write_bytes(b"half")
            assert tmp.parent == tmp_path and tmp.name.startswith(".f.bin.")
            raise RuntimeError("disk full")
    assert path.read_bytes() == b"old" and _leftovers(tmp_path) == ["f.bin"]


def test_atomic_path_takes_a_writer_that_wants_a_file_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
    path = tmp_path / "weights.bin"
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:  # e.g. safetensors.save_file(tensors, str(tmp))
            handle.write(b"w" * 10)
        assert not path.exists()  # nothing visible until the block ends
    assert path.read_bytes() == b"w" * 10 and synced  # synced before the rename
    assert _leftovers(tmp_path) == ["weights.bin"]


def test_a_new_file_gets_the_umask_mode_and_a_replaced_file_keeps_its_own(tmp_path: Path) -> None:
    """mkstemp's private 0600 must not leak: a run directory shared with a team stays readable."""
    old = os.umask(0o022)
    try:
        atomic_write(tmp_path / "new.csv", "a")
        assert (tmp_path / "new.csv").stat().st_mode & 0o777 == 0o644  # what open(..., "w") gives
        kept = tmp_path / "kept.csv"
        kept.write_text("old")
        kept.chmod(0o640)
        atomic_write(kept, "new")
        assert kept.stat().st_mode & 0o777 == 0o640
    finally:
        os.umask(old)


def test_a_writer_that_recreates_the_file_privately_still_gives_the_umask_mode(tmp_path: Path) -> None:
    """Before the fix checkpoints were 0600 whatever the umask: safetensors recreates the file it
    writes as owner-only, after atomic_path had set the mode. The name keeps the suffix, so
    torch.export no longer warns that its archive does not end in .pt2."""
    import torch
    from safetensors.torch import save_file

    old = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "w.safetensors") as tmp:
            assert tmp.name.endswith(".safetensors")
            save_file({"x": torch.zeros(2)}, str(tmp))
        assert (tmp_path / "w.safetensors").stat().st_mode & 0o777 == 0o644
    finally:
        os.umask(old)
