"""Atomic file writes: a temporary file beside the target, synced, then renamed over it."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_path", "atomic_write"]


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is synced and renamed to ``path``.

    For writers that take a file name (``safetensors.save_file``, a download loop). Parent
    folders are created. If the block raises, the temporary file is removed and ``path`` is
    left as it was, so readers see either the old file or the complete new one.

    Example:
        >>> with atomic_path(tmp_dir / "weights.bin") as tmp:  # doctest: +SKIP
        ...     tmp.write_bytes(b"...")
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"Cannot write {path}: it is a directory; name a file (a path inside it).")
    path.parent.mkdir(parents=True, exist_ok=True)
    # the temporary name keeps the file's suffix: writers that check it (torch.export) stay quiet
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=f".tmp{path.suffix}")
    os.close(fd)
    tmp = Path(name)
    # mkstemp makes the file private (0600), and so do writers that recreate it (safetensors): give
    # it, once written, the mode an ordinary write would: the old file's, or the umask's default for
    # a new one (a run directory shared with a team stays readable)
    mode = path.stat().st_mode & 0o7777 if path.exists() else 0o666 & ~_umask()
    try:
        yield tmp
        os.chmod(tmp, mode)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _umask() -> int:
    """The process's umask (read by setting it and putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, data: str | bytes, encoding: str = "utf-8") -> None:
    """Write ``data`` (text or bytes) to ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        if isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            tmp.write_text(data, encoding=encoding)
