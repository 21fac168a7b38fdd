"""Where datasets live, decided in one place."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["DEFAULT_DATA_ROOT", "data_root"]

#: The data root when neither ``root`` nor ``$MANYTASK_DATA`` is given (relative to the
#: current directory).
DEFAULT_DATA_ROOT = Path("data")


def data_root(root: str | Path | None = None) -> Path:
    """The folder holding the datasets: ``root``, else ``$MANYTASK_DATA``, else ``./data``.

    ``~`` is expanded. The folder is not required to exist: a loader that misses a file says
    where it looked and how to get it.

    Example:
        >>> data_root("~/datasets") == Path.home() / "datasets"
        True
    """
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get("MANYTASK_DATA")
    return Path(env).expanduser() if env else DEFAULT_DATA_ROOT
