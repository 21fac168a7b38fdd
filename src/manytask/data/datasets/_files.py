"""Shared helpers of the dataset loaders: where files are, checksums, clear errors."""

from __future__ import annotations

import gzip
import hashlib
import io
import zlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..._utils import data_root
from .._source import TensorSource
from ._download import ChecksumError, download

__all__ = [
    "DataFile",
    "DataFormatError",
    "MissingDataError",
    "dataset_dir",
    "load_mat",
    "locate",
    "locate_all",
    "open_text",
    "read_bytes",
    "sha256_of",
    "source_from_rows",
]


class MissingDataError(FileNotFoundError):
    """A dataset file is not where the loader looked; the message says how to get it."""


class DataFormatError(ValueError):
    """A dataset file does not have the expected format, shape or label values."""


@dataclass(frozen=True)
class DataFile:
    """A file a loader reads: its name in the dataset folder, its checksum and where to get it.

    Args:
        name: Path relative to the dataset's folder (``<root>/<dataset folder>/<name>``).
        sha256: The published SHA-256 of the file, or None when unknown (not verified).
        url: Where :func:`download` fetches it from, or None when it has no public URL.
        how: How to get the file by hand when there is no URL (shown in the missing-file error).
        alternatives: Other files accepted in its place (e.g. a gzipped copy), tried in order
            after ``name``; they are never downloaded.
    """

    name: str
    sha256: str | None = None
    url: str | None = None
    how: str = ""
    alternatives: tuple[DataFile, ...] = field(default=())


def sha256_of(path: str | Path) -> str:
    """The SHA-256 of a file, as 64 hex digits."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def dataset_dir(root: str | Path | None, folder: str) -> Path:
    """``<root>/<folder>``, where root defaults to ``$MANYTASK_DATA``, else ``./data``."""
    return data_root(root) / folder


def _verify(path: Path, file: DataFile, dataset: str) -> None:
    if file.sha256 is None:
        return
    got = sha256_of(path)
    if got != file.sha256:
        raise ChecksumError(
            f"Dataset {dataset!r}: {path} has SHA-256 {got}, but the published file has "
            f"{file.sha256}. The file is corrupt, truncated or a different version: delete it and "
            "fetch it again (download=True), or pass verify=False if you changed it on purpose."
        )


def locate(
    folder: Path,
    file: DataFile,
    dataset: str,
    *,
    download_missing: bool = False,
    verify: bool = True,
) -> Path:
    """The path of ``file`` in ``folder`` (else of its first alternative present), verified with
    every other form present; downloaded first when missing and asked to.

    Raises:
        MissingDataError: The file (and its alternatives) are absent and ``download_missing`` is
            False or there is no URL. The message names the file, where the loader looked and how
            to get it.
        ChecksumError: The file's SHA-256 differs from the published one (with ``verify``).
    """
    present = [(folder / c.name, c) for c in (file, *file.alternatives) if (folder / c.name).is_file()]
    if verify:  # every form present: a loader may read another one than the first found
        for path, candidate in present:
            _verify(path, candidate, dataset)
    if present:
        return present[0][0]
    target = folder / file.name
    if download_missing and file.url:
        return download(file.url, target, file.sha256)
    looked = ", ".join(str(folder / c.name) for c in (file, *file.alternatives))
    if file.url:
        checksum = f" (SHA-256 {file.sha256})" if file.sha256 else ""
        how = (
            f"Pass download=True to fetch it from {file.url}{checksum}, or download it yourself "
            f"and save it as {target}."
        )
        if file.how:
            how += f" {file.how}"
    else:
        how = file.how or f"Place the file at {target}."
        if download_missing:
            how = "It has no public download URL. " + how
    raise MissingDataError(
        f"Dataset {dataset!r} needs the file {file.name!r}, which was not found (looked for: "
        f"{looked}). The loader looks in <root>/{folder.name}, where root is the 'root' option, "
        f"else $MANYTASK_DATA, else ./data. {how}"
    )


def locate_all(
    folder: Path,
    files: Sequence[DataFile],
    dataset: str,
    *,
    download_missing: bool = False,
    verify: bool = True,
) -> list[Path]:
    """:func:`locate` for each file, in order."""
    return [
        locate(folder, f, dataset, download_missing=download_missing, verify=verify) for f in files
    ]


def read_bytes(path: Path) -> bytes:
    """The content of ``path``, decompressed if its name ends with ``.gz``."""
    data = path.read_bytes()
    if path.name.endswith(".gz"):
        try:
            return gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as error:
            raise DataFormatError(f"{path} is truncated or not a gzip file ({type(error).__name__}: {error}); "
                                  "delete it and fetch it again.") from error
    return data


def load_mat(path: Path) -> dict[str, np.ndarray]:
    """The variables of a MATLAB ``.mat`` file (scipy's ``loadmat``).

    Raises:
        DataFormatError: the file is truncated or not a ``.mat`` file.
    """
    from scipy.io import loadmat

    try:
        return loadmat(path)  # type: ignore[no-any-return]
    except (OSError, ValueError, TypeError) as error:  # scipy's reader: no class of its own
        raise DataFormatError(
            f"{path} is truncated or not a MATLAB file ({type(error).__name__}: {error}); delete it "
            "and fetch it again."
        ) from error


@contextmanager
def open_text(path: Path, encoding: str = "utf-8") -> Iterator[io.TextIOBase]:
    """``path`` opened as text, decompressed on the fly if its name ends with ``.gz``.

    Raises:
        DataFormatError: the file is truncated or corrupt (a cut-off download read with
            ``verify=False``), raised from inside the ``with`` block while it is read.
    """
    try:
        if path.name.endswith(".gz"):
            with io.TextIOWrapper(gzip.open(path, "rb"), encoding=encoding, newline="") as f:
                yield f
        else:
            with open(path, encoding=encoding, newline="") as f:
                yield f
    except (EOFError, gzip.BadGzipFile, zlib.error, UnicodeDecodeError) as error:
        raise DataFormatError(
            f"{path} is truncated or corrupt ({type(error).__name__}: {error}); delete it and "
            "fetch it again."
        ) from error


def source_from_rows(
    x: np.ndarray | Tensor,
    targets: Mapping[str, np.ndarray | Tensor],
    masks: Mapping[str, np.ndarray | Tensor] | None,
    rows: Tensor | np.ndarray,
    name: str,
) -> TensorSource | None:
    """A :class:`TensorSource` of the given ``rows`` (None when there are none).

    Rows are gathered with numpy (one thread, no copy of untouched rows), which is much faster
    than indexing many per-task tensors with torch on a busy machine.
    """
    rows = np.asarray(rows, dtype=np.int64)
    if rows.size == 0:
        return None

    def take(a: np.ndarray | Tensor) -> Tensor:
        array = a.numpy() if isinstance(a, Tensor) else a
        return torch.from_numpy(np.ascontiguousarray(array[rows]))

    return TensorSource(
        take(x),
        {k: take(v) for k, v in targets.items()},
        {k: take(v) for k, v in masks.items()} if masks is not None else None,
        name,
    )


def standardize_columns(x: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Standardise columns with the statistics of ``rows``; constant columns are kept as they are."""
    mean, std = x[rows].mean(0), x[rows].std(0)
    constant = std == 0
    mean[constant], std[constant] = 0.0, 1.0
    return (x - mean) / std
