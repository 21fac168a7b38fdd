"""download() and locate() against a real HTTP server on 127.0.0.1 serving files the test writes."""

from __future__ import annotations

import functools
import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from manytask.data.datasets._download import ChecksumError, DownloadError, download
from manytask.data.datasets._files import DataFile, MissingDataError, locate, sha256_of


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """``(base_url, served_folder)``: an HTTP server in a thread, stopped after the test."""
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(served))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/", served
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_download_success(server: tuple[str, Path], tmp_path: Path) -> None:
    url, served = server
    payload = bytes(range(256)) * 5000  # > one read chunk
    (served / "data.bin").write_bytes(payload)
    dest = tmp_path / "out" / "sub" / "data.bin"
    got = download(url + "data.bin", dest, hashlib.sha256(payload).hexdigest())
    assert got == dest
    assert dest.read_bytes() == payload
    assert _leftovers(dest.parent) == ["data.bin"]


def test_download_without_checksum(server: tuple[str, Path], tmp_path: Path) -> None:
    url, served = server
    (served / "a.txt").write_text("hello")
    assert download(url + "a.txt", tmp_path / "a.txt").read_text() == "hello"


def test_download_checksum_mismatch_leaves_no_file(
    server: tuple[str, Path], tmp_path: Path
) -> None:
    url, served = server
    (served / "data.bin").write_bytes(b"the real bytes")
    out = tmp_path / "out"
    with pytest.raises(ChecksumError, match="expected " + "0" * 64 + "; it was not saved"):
        download(url + "data.bin", out / "data.bin", "0" * 64)
    assert _leftovers(out) == []


def test_download_checksum_mismatch_keeps_existing_file(
    server: tuple[str, Path], tmp_path: Path
) -> None:
    url, served = server
    (served / "data.bin").write_bytes(b"new")
    dest = tmp_path / "data.bin"
    dest.write_bytes(b"old")
    with pytest.raises(ChecksumError):
        download(url + "data.bin", dest, "0" * 64)
    assert dest.read_bytes() == b"old"
    assert _leftovers(tmp_path) == ["data.bin", "served"]


def test_download_404(server: tuple[str, Path], tmp_path: Path) -> None:
    url, _ = server
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(url + "missing.bin", tmp_path / "out" / "missing.bin")
    assert _leftovers(tmp_path / "out") == []


def test_download_unreachable(tmp_path: Path) -> None:
    # Port 9 (discard) on localhost: nothing listens there in a test environment.
    with pytest.raises(DownloadError, match="Could not download"):
        download("http://127.0.0.1:9/x", tmp_path / "x", timeout=5)
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("bad", ["abc", "g" * 64])
def test_download_rejects_malformed_checksum(bad: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'sha256' parameter"):
        download("http://127.0.0.1:9/x", tmp_path / "x", bad)


def test_locate_downloads_only_when_asked(server: tuple[str, Path], tmp_path: Path) -> None:
    url, served = server
    (served / "f.txt").write_text("content")
    file = DataFile("f.txt", sha256=hashlib.sha256(b"content").hexdigest(), url=url + "f.txt")
    folder = tmp_path / "root" / "mydata"
    with pytest.raises(MissingDataError) as info:
        locate(folder, file, "mydata")
    message = str(info.value)
    assert "'f.txt'" in message and str(folder / "f.txt") in message
    assert "download=True" in message and url + "f.txt" in message
    assert not folder.exists()
    path = locate(folder, file, "mydata", download_missing=True)
    assert path.read_text() == "content"
    assert sha256_of(path) == file.sha256
    # Present now: found without the network, and verified.
    assert locate(folder, file, "mydata") == path


def test_locate_verifies_and_accepts_alternatives(tmp_path: Path) -> None:
    alt = DataFile("f.txt.gz", sha256=hashlib.sha256(b"zipped").hexdigest())
    file = DataFile("f.txt", sha256="1" * 64, url="http://127.0.0.1:9/f.txt", alternatives=(alt,))
    (tmp_path / "f.txt.gz").write_bytes(b"zipped")
    assert locate(tmp_path, file, "d") == tmp_path / "f.txt.gz"
    (tmp_path / "f.txt").write_bytes(b"not the published file")
    with pytest.raises(ChecksumError, match="verify=False"):
        locate(tmp_path, file, "d")
    assert locate(tmp_path, file, "d", verify=False) == tmp_path / "f.txt"


def test_locate_without_url_says_how(tmp_path: Path) -> None:
    file = DataFile("secret.mat", how="Ask the authors for secret.mat.")
    with pytest.raises(MissingDataError, match="Ask the authors"):
        locate(tmp_path, file, "d", download_missing=True)


def test_dataset_download_option(
    server: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A loader with download=True fetches its missing file, verifies it and loads it."""
    import zipfile

    from manytask.data.datasets import _conll2000

    url, served = server
    with zipfile.ZipFile(served / "conll2000.zip", "w") as z:
        z.writestr("conll2000/train.txt", "He PRP B-NP\nran VBD B-VP\n\nShe PRP B-NP\n")
        z.writestr("conll2000/test.txt", "He PRP B-NP\n")
    file = DataFile(
        "conll2000.zip", sha256=sha256_of(served / "conll2000.zip"), url=url + "conll2000.zip"
    )
    monkeypatch.setattr(_conll2000, "FILES", (file,))
    root = tmp_path / "data"
    with pytest.raises(MissingDataError, match="download=True"):
        _conll2000.conll2000(root=str(root), verify=False)
    data = _conll2000.conll2000(root=str(root), download=True, verify=False, val_fraction=0)
    assert (root / "conll2000" / "conll2000.zip").is_file()
    assert len(data.train["conll2000"]) == 2
    # A server answering with other bytes: checksum error, and no file is left behind.
    bad = DataFile("conll2000.zip", sha256="0" * 64, url=url + "conll2000.zip")
    monkeypatch.setattr(_conll2000, "FILES", (bad,))
    with pytest.raises(ChecksumError):
        _conll2000.conll2000(root=str(tmp_path / "other"), download=True, verify=False)
    assert _leftovers(tmp_path / "other" / "conll2000") == []


def test_every_form_present_is_verified_not_only_the_first(tmp_path: Path) -> None:
    """A loader may read another form than the first found (SARCOS reads the .gz first): with the
    published .csv beside a changed .csv.gz, loading must fail, not read the changed file."""
    import gzip
    import shutil

    from manytask.data.datasets import sarcos

    shared = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "sarcos" / "sub_sarcos.csv.gz"
    if not shared.is_file():
        pytest.skip("the shared SARCOS data is not beside the repository")
    folder = tmp_path / "sarcos"
    folder.mkdir()
    text = gzip.decompress(shared.read_bytes())
    (folder / "sub_sarcos.csv").write_bytes(text)  # the published plain file
    changed = b"9" + text[1:]
    (folder / "sub_sarcos.csv.gz").write_bytes(gzip.compress(changed))
    with pytest.raises(ChecksumError, match="sub_sarcos.csv.gz"):
        sarcos(root=str(tmp_path), source="subsample")
    shutil.rmtree(folder)
    folder.mkdir()
    (folder / "sub_sarcos.csv").write_bytes(text)
    assert sarcos(root=str(tmp_path), source="subsample").train  # the plain one alone
