"""Downloading one file safely: to a temporary file, checksum verified, then an atomic rename."""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request
from pathlib import Path

from ..._utils import atomic_path

__all__ = ["ChecksumError", "DownloadError", "download"]

_CHUNK = 1 << 20


class DownloadError(OSError):
    """A file could not be fetched (network error, HTTP error status)."""


class ChecksumError(ValueError):
    """A file's SHA-256 differs from the published one."""


def download(
    url: str, dest: str | Path, sha256: str | None = None, *, timeout: float = 60.0
) -> Path:
    """Fetch ``url`` into ``dest``, verifying its SHA-256 when one is given.

    The bytes go to a temporary file beside ``dest``; only when the transfer is complete and
    the checksum matches is it renamed to ``dest`` (atomically, on the same file system). On any
    failure the temporary file is removed, so ``dest`` is either absent or complete and verified.

    Args:
        url: Where to fetch from (``http``, ``https`` or ``file``).
        dest: The file to create (parent folders are created).
        sha256: The expected SHA-256 as 64 hex digits, or None to skip verification.
        timeout: Seconds to wait for the server at each read.

    Returns:
        ``dest`` as a :class:`~pathlib.Path`.

    Raises:
        DownloadError: The server answered with an error status, or the network failed.
        ChecksumError: The bytes received do not have the expected SHA-256.
    """
    dest = Path(dest)
    if sha256 is not None and (
        len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256.lower())
    ):
        raise ValueError(
            f"The 'sha256' parameter of download must be 64 hex digits. Got {sha256!r}."
        )
    digest = hashlib.sha256()
    with atomic_path(dest) as tmp:
        with open(tmp, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response:
                    while chunk := response.read(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
            except urllib.error.HTTPError as error:
                error.close()
                raise DownloadError(
                    f"Could not download {url}: the server answered HTTP {error.code} "
                    f"({error.reason}). Check the URL, or fetch the file by hand and save it as "
                    f"{dest}."
                ) from None
            except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
                reason = getattr(error, "reason", error)
                raise DownloadError(
                    f"Could not download {url}: {reason}. Check your network connection, or "
                    f"fetch the file by hand and save it as {dest}."
                ) from None
        got = digest.hexdigest()
        if sha256 is not None and got != sha256.lower():
            raise ChecksumError(
                f"The file downloaded from {url} has SHA-256 {got}, expected {sha256.lower()}; "
                f"it was not saved. The server may serve a different version of the file, or the "
                f"transfer was corrupted: try again, or fetch it by hand and save it as {dest}."
            )
    return dest
