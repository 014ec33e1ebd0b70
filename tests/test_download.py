"""Dataset download into the data dir, against a local HTTP server serving a GitHub-style archive."""

from __future__ import annotations

import http.server
import threading
import zipfile
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from timbredb.download import ensure_dataset
from timbredb.errors import DatasetError


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    root = tmp_path / "www"
    root.mkdir()
    with zipfile.ZipFile(root / "tm.zip", "w") as zf:
        zf.writestr("timbremetrics-abc123/README.md", "not extracted")
        zf.writestr("timbremetrics-abc123/timbremetrics/sounds/Toy/a.aiff", b"AIFF")
        zf.writestr("timbremetrics-abc123/timbremetrics/true_dissim/Toy_dissimilarity_matrix.txt", "0 1\n0 0\n")
    (root / "broken.zip").write_bytes(b"not a zip")
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_downloads_and_extracts_only_the_data(server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TIMBREDB_OFFLINE", raising=False)
    data = tmp_path / "data"
    assert ensure_dataset("timbremetrics", data, url=f"{server}/tm.zip")
    assert (data / "timbremetrics" / "sounds" / "Toy" / "a.aiff").read_bytes() == b"AIFF"
    assert (data / "timbremetrics" / "true_dissim" / "Toy_dissimilarity_matrix.txt").exists()
    assert not (data / "timbremetrics" / "README.md").exists()
    assert not ensure_dataset("timbremetrics", data, url=f"{server}/tm.zip")  # present: nothing to do
    assert [p.name for p in data.iterdir()] == ["timbremetrics"]  # no temporary folders left


def test_failures_are_one_line_and_leave_nothing(server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TIMBREDB_OFFLINE", raising=False)
    data = tmp_path / "data"
    with pytest.raises(DatasetError, match="unusable"):
        ensure_dataset("timbremetrics", data, url=f"{server}/broken.zip")
    with pytest.raises(DatasetError, match="download from .*missing.zip failed"):
        ensure_dataset("timbremetrics", data, url=f"{server}/missing.zip")
    assert not (data / "timbremetrics").exists() and list(data.iterdir()) == []


def test_offline_never_downloads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert not ensure_dataset("timbremetrics", tmp_path, url="http://127.0.0.1:9/never")
