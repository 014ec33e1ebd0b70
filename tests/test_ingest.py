"""Ingest of synthesized audio through the real CLI and real DuckDB files."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import CLI, db_rows
from tests.synth import SR, harmonic_tone, highpassed, lowpassed, noise, write
from timbredb.audio import content_sha256, decode


@pytest.fixture
def audio_dir(tmp_path: Path) -> Path:
    d = tmp_path / "audio"
    write(d / "dark.wav", lowpassed(noise(1.0, seed=1), 400))
    write(d / "bright.flac", highpassed(noise(1.0, seed=2), 5000))
    write(d / "nested" / "tone.ogg", harmonic_tone(220, 0.8))
    write(d / "nested" / "tone48k.aiff", harmonic_tone(330, 0.5, sr=48000), sr=48000)
    stereo = np.stack([harmonic_tone(440, 0.6), 0.5 * harmonic_tone(440, 0.6)], axis=1)
    write(d / "stereo.wav", stereo)
    (d / "notes.txt").write_text("not audio, ignored by extension")
    return d



def _ingest_json(cli: CLI, *args: str, ok: bool = True) -> dict:
    result = cli("ingest", *args, "--format", "json", ok=ok)
    return json.loads(result.stdout)


@pytest.fixture(scope="session")
def data_dir(synth_data_dir: Path) -> Path:
    """Core tests run on synthesized data (no ../shared/data needed)."""
    return synth_data_dir


def test_ingest_stores_clips_embeddings_and_provenance(cli: CLI, audio_dir: Path, db: Path) -> None:
    summary = _ingest_json(cli, str(audio_dir), "--models", "mfcc,socialfx-eq")
    assert summary["clips_added"] == 5
    assert summary["errors"] == []
    assert summary["embeddings_added"] == 10
    assert summary["text_embeddings_added"] > 0
    # every clip has one vector per space, of the space's dimension
    assert db_rows(db, "SELECT count(*) FROM audio_embeddings e JOIN spaces s USING (space_id) WHERE len(e.embedding) = s.dim") == [(10,)]
    # provenance: each batch names device, dtype and package versions
    prov = db_rows(db, "SELECT device, dtype, provenance FROM embedding_batches WHERE modality = 'audio'")
    assert prov and all(d == "cpu" and t == "float32" for d, t, _ in prov)
    assert all("numpy" in json.loads(p)["packages"] for _, _, p in prov)
    # the 48 kHz AIFF keeps its own rate in clips; channels are recorded before the down-mix
    assert db_rows(db, "SELECT channels, sample_rate FROM clips WHERE source_path LIKE '%stereo.wav'") == [(2, SR)]
    assert db_rows(db, "SELECT sample_rate FROM clips WHERE source_path LIKE '%tone48k.aiff'") == [(48000,)]
    # the similarities view has one cosine per clip x prompt for the text-capable space
    n_sim = db_rows(db, "SELECT count(*) FROM similarities WHERE model = 'socialfx-eq'")[0][0]
    n_text = db_rows(db, "SELECT count(*) FROM text_embeddings t JOIN spaces s USING (space_id) WHERE s.label = 'socialfx-eq'")[0][0]
    assert n_sim == 5 * n_text


def test_reingest_computes_nothing(cli: CLI, audio_dir: Path, db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _ingest_json(cli, str(audio_dir), "--models", "mfcc,socialfx-eq")
    before = db_rows(db, "SELECT count(*) FROM audio_embeddings")

    import timbredb.ingest.ingestor as ingest_mod
    from timbredb.models.mfcc import MFCCModel

    def fail(*a: object, **k: object) -> None:
        raise AssertionError("re-ingest must neither decode nor embed unchanged files")

    monkeypatch.setattr(ingest_mod, "open_audio", fail)
    monkeypatch.setattr(MFCCModel, "_embed_windows", fail)
    summary = _ingest_json(cli, str(audio_dir), "--models", "mfcc,socialfx-eq")
    assert summary["clips_added"] == 0 and summary["clips_skipped"] == 5
    assert summary["embeddings_added"] == 0 and summary["text_embeddings_added"] == 0
    assert db_rows(db, "SELECT count(*) FROM audio_embeddings") == before


def test_new_model_embeds_only_what_it_lacks(cli: CLI, audio_dir: Path, db: Path) -> None:
    _ingest_json(cli, str(audio_dir), "--models", "mfcc")
    summary = _ingest_json(cli, str(audio_dir), "--models", "mfcc,socialfx-eq")
    assert summary["clips_added"] == 0
    assert summary["embeddings_added"] == 5  # socialfx-eq only


def test_same_content_in_two_containers_is_one_clip(tmp_path: Path, cli: CLI, db: Path) -> None:
    x = harmonic_tone(261.6, 0.5)
    write(tmp_path / "a" / "c.wav", x, subtype="FLOAT")
    write(tmp_path / "a" / "c.flac", x)
    # FLAC is 16-bit, so only the WAV stored as float keeps the exact samples; use float in both via WAV copies
    write(tmp_path / "a" / "copy.wav", x, subtype="FLOAT")
    summary = _ingest_json(cli, str(tmp_path / "a"), "--models", "mfcc")
    assert summary["clips_added"] == 2  # c.wav == copy.wav; c.flac is quantised to 16 bit
    assert db_rows(db, "SELECT count(*) FROM clip_files") == [(3,)]


def test_content_hash_covers_rate_and_channels() -> None:
    x = np.ones((10, 1), dtype=np.float32) * 0.5
    assert content_sha256(x, 44100) != content_sha256(x, 48000)
    assert content_sha256(x, 44100) != content_sha256(np.repeat(x, 2, axis=1)[:5], 44100)


def test_stereo_is_downmixed_to_the_channel_mean(tmp_path: Path) -> None:
    left = harmonic_tone(440, 0.2)
    right = -0.25 * left
    path = write(tmp_path / "s.wav", np.stack([left, right], axis=1), subtype="FLOAT")
    audio = decode(path)
    assert audio.channels == 2
    np.testing.assert_allclose(audio.samples, (left + right) / 2, atol=1e-7)


def _wav_header(channels: int, sample_rate: int = 44100, bits: int = 16, n_bytes: int = 0) -> bytes:
    block = max(channels, 1) * bits // 8
    fmt = struct.pack("<HHIIHH", 1, channels, sample_rate, sample_rate * block, block, bits)
    return b"RIFF" + struct.pack("<I", 36 + n_bytes) + b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", n_bytes)


@pytest.fixture
def bad_dir(tmp_path: Path) -> Path:
    d = tmp_path / "bad"
    d.mkdir()
    write(d / "good.wav", harmonic_tone(220, 0.5))
    (d / "garbage.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really a wav file")
    (d / "empty.wav").write_bytes(_wav_header(1))
    (d / "zero_channels.wav").write_bytes(_wav_header(0, n_bytes=4) + b"\x00" * 4)
    nan = harmonic_tone(220, 0.5)
    nan[100] = np.nan
    write(d / "nan.wav", nan, subtype="FLOAT")
    write(d / "silent.wav", np.zeros(SR // 2, dtype=np.float32))
    write(d / "short.wav", harmonic_tone(220, 0.005))
    (d / "truncated.flac").write_bytes((write(tmp_path / "full.flac", noise(0.5)).read_bytes())[:200])
    return d


def test_bad_inputs_are_recorded_one_line_each_and_do_not_stop_the_run(cli: CLI, bad_dir: Path, db: Path) -> None:
    result = cli("ingest", str(bad_dir), "--models", "mfcc", "--format", "json")
    summary = json.loads(result.stdout)
    assert summary["clips_added"] >= 1
    by_file = {Path(e["path"]).name: e["error"] for e in summary["errors"]}
    assert set(by_file) == {"garbage.wav", "empty.wav", "zero_channels.wav", "nan.wav", "silent.wav", "short.wav", "truncated.flac"}
    assert "non-finite" in by_file["nan.wav"]
    assert "silent" in by_file["silent.wav"]
    assert "too short for mfcc" in by_file["short.wav"]
    assert "is empty" in by_file["empty.wav"]
    assert "has zero channels" in by_file["zero_channels.wav"]
    assert "unreadable" in by_file["garbage.wav"] and "unreadable" in by_file["truncated.flac"]
    for name, message in by_file.items():
        assert "\n" not in message and name in message
    # every problem is in the store too, and stderr has one line per problem
    assert db_rows(db, "SELECT count(*) FROM ingest_errors") == [(7,)]
    assert sum("error:" in line for line in result.stderr.splitlines()) == 7
    # the good file is fully embedded
    assert db_rows(db, "SELECT count(*) FROM audio_embeddings") == [(1,)]


def test_strict_exits_4_on_per_file_errors(cli: CLI, bad_dir: Path) -> None:
    result = cli("ingest", str(bad_dir), "--models", "mfcc", "--strict", ok=False)
    assert result.exit_code == 4


def test_missing_path_is_an_error_not_a_crash(cli: CLI, tmp_path: Path) -> None:
    summary = _ingest_json(cli, str(tmp_path / "nope"), "--models", "mfcc")
    assert len(summary["errors"]) == 1 and "no such file or folder" in summary["errors"][0]["error"]


def test_unknown_model_is_one_line(cli: CLI, audio_dir: Path) -> None:
    result = cli("ingest", str(audio_dir), "--models", "nosuchmodel", ok=False)
    assert result.exit_code == 1
    assert result.stderr.strip().count("\n") == 0 and "unknown model 'nosuchmodel'" in result.stderr


_CRASHER = textwrap.dedent(
    """
    import os, signal, sys
    from timbredb.models.mfcc import MFCCModel
    real = MFCCModel._embed_windows
    calls = {"n": 0}
    def crash_on_third(self, windows):
        calls["n"] += 1
        if calls["n"] == 3:
            os.kill(os.getpid(), signal.SIGKILL)  # a real kill: no cleanup, no exception handlers
        return real(self, windows)
    MFCCModel._embed_windows = crash_on_third
    from timbredb.cli import cli
    cli(sys.argv[1:], prog_name="timbredb")
    """
)


def test_kill_mid_ingest_then_rerun_leaves_no_duplicates(tmp_path: Path, data_dir: Path) -> None:
    src = tmp_path / "many"
    for i in range(12):
        write(src / f"n{i:02d}.wav", lowpassed(noise(0.3, seed=i), 300 + 200 * i))
    db = tmp_path / "k.duckdb"
    # the sequential engine (the crasher patches the model in this process; test_faults kills the pipeline)
    args = ["--db", str(db), "--data-dir", str(data_dir), "ingest", str(src), "--models", "mfcc,socialfx-eq", "--batch-size", "2",
            "--workers", "0"]
    proc = subprocess.run([sys.executable, "-c", _CRASHER, *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr  # killed by SIGKILL mid-run
    partial = db_rows(db, "SELECT count(*) FROM audio_embeddings")[0][0]
    assert 0 < partial < 24  # some batches committed, not all

    summary = _ingest_json(CLI(db, data_dir), str(src), "--models", "mfcc,socialfx-eq", "--batch-size", "2")
    assert summary["errors"] == []
    assert db_rows(db, "SELECT count(*), count(DISTINCT (space_id, clip_sha256)) FROM audio_embeddings") == [(24, 24)]
    assert db_rows(db, "SELECT count(*), count(DISTINCT clip_sha256) FROM clips") == [(12, 12)]
    assert db_rows(db, "SELECT count(*) FROM clip_files") == [(12,)]
    check = CLI(db, data_dir)("check", "--format", "json")
    assert all(r["offending_rows"] == 0 for r in json.loads(check.stdout)["integrity"])


def test_exception_mid_ingest_keeps_committed_batches(cli: CLI, tmp_path: Path, db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "few"
    for i in range(6):
        write(src / f"t{i}.wav", harmonic_tone(110 * (i + 1), 0.3))
    from timbredb.models.mfcc import MFCCModel

    real = MFCCModel._embed_windows
    calls = {"n": 0}

    def flaky(self: MFCCModel, windows: list) -> np.ndarray:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(self, windows)

    monkeypatch.setattr(MFCCModel, "_embed_windows", flaky)
    # the sequential engine: the patch is in this process (tests/test_pipeline.py interrupts the pipeline)
    result = cli("ingest", str(src), "--models", "mfcc", "--batch-size", "2", "--workers", "0", ok=False)
    assert result.exit_code == 130 and "interrupted" in result.stderr
    assert db_rows(db, "SELECT count(*) FROM audio_embeddings") == [(2,)]
    monkeypatch.setattr(MFCCModel, "_embed_windows", real)
    summary = _ingest_json(cli, str(src), "--models", "mfcc", "--batch-size", "2")
    assert summary["embeddings_added"] == 4
    assert db_rows(db, "SELECT count(*) FROM audio_embeddings") == [(6,)]


def test_changed_file_at_same_path_is_a_new_clip(cli: CLI, tmp_path: Path, db: Path) -> None:
    path = write(tmp_path / "x" / "a.wav", harmonic_tone(220, 0.3))
    _ingest_json(cli, str(path), "--models", "mfcc")
    write(path, harmonic_tone(440, 0.3))
    os.utime(path, ns=(1, 10**9))  # a different mtime even on coarse file systems
    summary = _ingest_json(cli, str(path), "--models", "mfcc")
    assert summary["clips_added"] == 1
    assert db_rows(db, "SELECT count(*) FROM clip_files") == [(1,)]
    assert db_rows(db, "SELECT count(*) FROM clips") == [(2,)]


def test_decode_reads_every_supported_container(tmp_path: Path) -> None:
    x = harmonic_tone(220, 0.3)
    for ext in ("wav", "flac", "ogg", "aiff"):
        a = decode(write(tmp_path / f"t.{ext}", x))
        assert a.sample_rate == SR and abs(a.n_frames - x.shape[0]) < 2048
    mp3 = tmp_path / "t.mp3"
    try:
        sf.write(str(mp3), x, SR, format="MP3")
    except (sf.LibsndfileError, TypeError, ValueError):
        pytest.skip("this libsndfile cannot write MP3")
    a = decode(mp3)
    assert a.sample_rate == SR and a.duration_s > 0.25
