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


def test_an_incomplete_copy_gets_what_it_lacks_once(server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from timbredb.download import COMPLETED

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TIMBREDB_OFFLINE", raising=False)
    data = tmp_path / "data"
    local = data / "timbremetrics"
    (local / "sounds" / "Toy").mkdir(parents=True)
    (local / "sounds" / "Toy" / "a.aiff").write_bytes(b"LOCAL")
    (local / "sounds" / "Mine").mkdir()
    (local / "true_dissim").mkdir()
    (local / "true_dissim" / "Mine_dissimilarity_matrix.txt").write_text("0 2\n0 0\n")
    # the archive holds Toy (present here, so left alone) and its matrix (absent here, so added)
    assert ensure_dataset("timbremetrics", data, url=f"{server}/tm.zip")
    assert (local / "sounds" / "Toy" / "a.aiff").read_bytes() == b"LOCAL"
    assert (local / "true_dissim" / "Toy_dissimilarity_matrix.txt").read_text() == "0 1\n0 0\n"
    assert (local / "true_dissim" / "Mine_dissimilarity_matrix.txt").read_text() == "0 2\n0 0\n"
    record = json.loads((local / COMPLETED).read_text())
    assert record["added"] == ["true_dissim/Toy_dissimilarity_matrix.txt"] and len(record["still_missing"]) == 21
    # the same archive is not fetched again (the server is not even asked)
    assert not ensure_dataset("timbremetrics", data, url=f"{server}/tm.zip")
    assert sorted(p.name for p in data.iterdir()) == ["timbremetrics"]
    # offline, nothing happens at all
    monkeypatch.setenv("TIMBREDB_OFFLINE", "1")
    (local / COMPLETED).unlink()
    assert not ensure_dataset("timbremetrics", data, url="http://127.0.0.1:9/never")
