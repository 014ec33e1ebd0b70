"""The server's library layer (timbredb.server.service) in process: model policy, store pool, names."""

from __future__ import annotations

import io
import time
from pathlib import Path

import duckdb
import pytest

from tests.synth import harmonic_tone, write
from timbredb.server.service import Explorer, RequestError, ServeOptions, safe_name


@pytest.fixture(scope="module")
def mfcc_only(tmp_path_factory: pytest.TempPathFactory, synth_data_dir: Path) -> Path:
    from timbredb.ingest import IngestOptions, run_ingest

    root = tmp_path_factory.mktemp("serve-service")
    for i in range(3):
        write(root / "clips" / f"t{i}.wav", harmonic_tone(200.0 + 50 * i, 0.4))
    db = root / "mfcc.duckdb"
    summary = run_ingest(db, synth_data_dir, [str(root / "clips")], IngestOptions(models=["mfcc"]))
    assert not summary.errors
    return db


def test_only_the_stores_spaces_and_preloaded_models_are_loaded(mfcc_only: Path, synth_data_dir: Path) -> None:
    explorer = Explorer(ServeOptions(db=mfcc_only, data_dir=synth_data_dir))
    try:
        with pytest.raises(RequestError, match="has no space in this store") as info:
            explorer.model("socialfx-eq")
        assert info.value.status == 400
        assert explorer.model("mfcc").label == "mfcc"
        assert explorer.model("mfcc") is explorer.model("mfcc")  # loaded once
        assert explorer.loaded_models() == ["mfcc"]
    finally:
        explorer.close()
    preloaded = Explorer(ServeOptions(db=mfcc_only, data_dir=synth_data_dir, preload=("socialfx-eq",)))
    try:
        preloaded.preload()
        assert preloaded.loaded_models() == ["socialfx-eq"]
        sound = write(mfcc_only.parent / "up.wav", harmonic_tone(300.0, 0.5))
        with preloaded.upload(io.BytesIO(sound.read_bytes()), "up.wav") as up:
            out, _ = preloaded.describe_upload(up, ["socialfx-eq"], k=3)
        assert out[0]["model"] == "socialfx-eq" and len(out[0]["descriptors"]) == 3
    finally:
        preloaded.close()


def test_the_pool_lets_a_writer_in_once_idle(mfcc_only: Path, synth_data_dir: Path) -> None:
    explorer = Explorer(ServeOptions(db=mfcc_only, data_dir=synth_data_dir, store_idle_s=0.3))
    try:
        explorer.spaces()
        assert explorer._pool.open_connections() >= 1
        with pytest.raises(duckdb.Error):
            duckdb.connect(str(mfcc_only)).close()  # held while requests come (in process: a config clash)
        deadline = time.monotonic() + 10
        while explorer._pool.open_connections() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert explorer._pool.open_connections() == 0
        duckdb.connect(str(mfcc_only)).close()  # a writer gets in
        assert [s["model"] for s in explorer.spaces()] == ["mfcc"]  # and the next request reopens
    finally:
        explorer.close()
    assert explorer._pool.open_connections() == 0


def test_uploads_are_removed_even_when_refused(mfcc_only: Path, synth_data_dir: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    explorer = Explorer(ServeOptions(db=mfcc_only, data_dir=synth_data_dir, max_upload_bytes=1000))
    try:
        for payload, status in [(b"x" * 2000, 413), (b"not audio", 415), (b"", 422)]:
            with pytest.raises(RequestError) as info, explorer.upload(io.BytesIO(payload), "a.wav"):
                pass
            assert info.value.status == status
        assert list(tmp_path.iterdir()) == []
    finally:
        explorer.close()


@pytest.mark.parametrize(("given", "expected"), [
    ("song.wav", "song.wav"), ("../../etc/passwd", "passwd"), ("C:\\Users\\me\\a b.flac", "a b.flac"),
    ("", "upload"), (None, "upload"), ("/", "upload"), ("bell\x07\x1b.wav", "bell.wav"), ("x" * 500, "x" * 200),
])
def test_safe_name(given: str | None, expected: str) -> None:
    assert safe_name(given) == expected
