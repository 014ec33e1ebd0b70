"""`timbredb ingest --engine ray` on a real local Ray cluster (2 CPUs): the local engine's bits, kill -9 safety.

One cluster serves the module (its start-up is the cost); drivers in subprocesses join
it with --ray-address, so killing one leaves no Ray process of its own behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from tests.conftest import CLI, db_rows
from tests.synth import harmonic_tone, highpassed, lowpassed, noise, write
from timbredb.ingest import IngestOptions, run_ingest

ray = pytest.importorskip("ray")

pytestmark = pytest.mark.ray

MODELS = ["mfcc", "socialfx-eq"]


@pytest.fixture(scope="session")
def data_dir(synth_data_dir: Path) -> Path:
    """Core tests run on synthesized data (no ../shared/data needed)."""
    return synth_data_dir


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A local Ray cluster for the module; its GCS address for drivers that join it."""
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=200 * 1024 * 1024, logging_level="error",
             log_to_driver=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def _audio_folder(root: Path, n: int = 6) -> Path:
    d = root / "audio"
    for i in range(n):
        write(d / f"tone{i:02d}.wav", harmonic_tone(110.0 * (1 + i / 3), 0.4 + 0.05 * i, rolloff=0.8 + 0.2 * i))
    write(d / "dark.flac", lowpassed(noise(0.6, seed=1), 400))
    write(d / "bright.ogg", highpassed(noise(0.5, seed=2), 5000))
    write(d / "stereo48k.wav", np.stack([harmonic_tone(330, 0.5, sr=48000), 0.5 * noise(0.5, sr=48000)], axis=1), sr=48000)
    write(d / "blip.wav", harmonic_tone(440, 0.001))  # too short for both models
    (d / "broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEnot really")
    return d


def _vectors(db: Path) -> dict[tuple[str, str], bytes]:
    rows = db_rows(db, "SELECT space_id, clip_sha256, embedding FROM audio_embeddings")
    return {(s, k): np.asarray(e, dtype=np.float32).tobytes() for s, k, e in rows}


_SAME = {
    "clips": "SELECT clip_sha256, source_path, duration_s, channels, sample_rate, n_frames FROM clips ORDER BY ALL",
    "files": "SELECT path, clip_sha256, size_bytes, mtime_ns FROM clip_files ORDER BY ALL",
    "errors": "SELECT DISTINCT path, stage, model_id, error FROM ingest_errors ORDER BY ALL",
    "text": "SELECT space_id, prompt, embedding FROM text_embeddings ORDER BY ALL",
    "spaces": "SELECT space_id, label, checkpoint_sha256, policy FROM spaces ORDER BY ALL",
}


def _assert_same_store(a: Path, b: Path) -> None:
    assert _vectors(a) == _vectors(b)
    for what, sql in _SAME.items():
        assert db_rows(a, sql) == db_rows(b, sql), what


@pytest.fixture(scope="module")
def local_store(tmp_path_factory: pytest.TempPathFactory, synth_data_dir: Path) -> tuple[Path, Path]:
    """(audio folder, store) ingested by the local engine, the reference."""
    root = tmp_path_factory.mktemp("ray-ref")
    folder = _audio_folder(root)
    db = root / "local.duckdb"
    run_ingest(db, synth_data_dir, [str(folder)], IngestOptions(models=MODELS, batch_size=2))
    return folder, db


def test_ray_engine_gives_the_local_engines_bits_errors_and_counts(
    cluster: str, local_store: tuple[Path, Path], synth_data_dir: Path, tmp_path: Path
) -> None:
    folder, local_db = local_store
    db = tmp_path / "ray.duckdb"
    messages: list[str] = []
    ray_summary = run_ingest(db, synth_data_dir, [str(folder)], IngestOptions(models=MODELS, batch_size=2, engine="ray"),
                             warn=messages.append)
    local_summary = json.loads(db_rows(local_db, "SELECT summary FROM runs ORDER BY run_id DESC LIMIT 1")[0][0])
    for key in ("clips_added", "clips_skipped", "embeddings_added", "text_embeddings_added"):
        assert getattr(ray_summary, key) == local_summary[key], key
    assert sorted(map(json.dumps, ray_summary.errors)) == sorted(map(json.dumps, local_summary["errors"]))
    assert ray_summary.clips_added == 10 and len(ray_summary.errors) == 3  # broken (decode) + blip (each model)
    _assert_same_store(db, local_db)
    # provenance says which engine computed the vectors
    provs = [json.loads(p) for (p,) in db_rows(db, "SELECT provenance FROM embedding_batches WHERE modality = 'audio'")]
    assert provs and all(p["engine"] == "ray" and p["ray"] == ray.__version__ for p in provs)
    assert not (db.parent / "ray.duckdb.staging").exists() or not any((db.parent / "ray.duckdb.staging").iterdir())
    CLI(db, synth_data_dir)("check")


def test_a_batch_written_but_not_merged_is_merged_by_the_next_run_not_recomputed(
    cluster: str, local_store: tuple[Path, Path], synth_data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from timbredb.ingest import ray_engine

    folder, local_db = local_store
    db = tmp_path / "ray.duckdb"
    staging = tmp_path / "ray.duckdb.staging"
    real_merge = ray_engine.RayEngine._merge
    calls = {"n": 0}

    def merge_then_die(self: object, ingestor: object, batch: Path) -> dict[str, str]:
        calls["n"] += 1
        if calls["n"] == 3:  # the third batch is on disk, then the process "dies" before merging it
            raise KeyboardInterrupt
        return real_merge(self, ingestor, batch)  # type: ignore[arg-type]

    monkeypatch.setattr(ray_engine.RayEngine, "_merge", merge_then_die)
    with pytest.raises(KeyboardInterrupt):
        run_ingest(db, synth_data_dir, [str(folder)], IngestOptions(models=MODELS, batch_size=2, engine="ray"))
    monkeypatch.setattr(ray_engine.RayEngine, "_merge", real_merge)
    left = [p for p in staging.iterdir() if not p.name.startswith(".")]
    assert len(left) == 1
    (staging / ".batch-half-written.123.tmp").mkdir()  # what a kill during a write leaves
    # batches merge in file order: [blip, bright] and [broken, dark] are stored (broken as an error),
    # [stereo48k, tone00] waits in staging
    assert db_rows(db, "SELECT count(*) FROM clip_files")[0][0] == 3
    assert pq.read_metadata(left[0] / "clip_files" / "part-00000.parquet").num_rows == 2
    messages: list[str] = []
    run_ingest(db, synth_data_dir, [str(folder)], IngestOptions(models=MODELS, batch_size=2, engine="ray"),
               warn=messages.append)
    assert any("merged 1 batch folder(s)" in m for m in messages), messages
    # 11 files: bright, dark (stored) and stereo48k, tone00 (leftover) are complete; blip (too short) and
    # broken (unreadable) are tried again, as the local engine does, with tone01..tone05
    todo = [m for m in messages if m.startswith("ray: ") and "to embed" in m]
    assert todo == ["ray: 7 file(s) to embed in 4 batch(es), 4 already stored"], messages
    assert not any(staging.iterdir())
    _assert_same_store(db, local_db)
    CLI(db, synth_data_dir)("check")


_DRIVER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from timbredb.ingest import IngestOptions, run_ingest

    class Lines:
        def __init__(self, desc, total=None):
            self.done = 0
        def update(self, n=1):
            self.done += n
            print(f"merged {self.done}", file=sys.stderr, flush=True)
        def close(self):
            pass

    db, data, folder, address = sys.argv[1:5]
    run_ingest(Path(db), Path(data), [folder], IngestOptions(models=["mfcc", "socialfx-eq"], batch_size=1,
               engine="ray", ray_address=address), progress=Lines)
    """
)


def test_kill_9_mid_run_then_rerun_gives_exactly_the_expected_rows(
    cluster: str, synth_data_dir: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "many"
    for i in range(12):
        write(folder / f"t{i:02d}.wav", harmonic_tone(100.0 + 37 * i, 0.6, rolloff=1.0 + (i % 5) / 4))
    reference = tmp_path / "local.duckdb"
    run_ingest(reference, synth_data_dir, [str(folder)], IngestOptions(models=MODELS, batch_size=1))
    db = tmp_path / "ray.duckdb"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", _DRIVER, str(db), str(synth_data_dir), str(folder), cluster],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        assert proc.stderr is not None
        for line in proc.stderr:
            if line.startswith("merged 3"):
                break
            assert time.monotonic() < deadline, "the Ray job did not get going"
        else:
            pytest.fail(f"the driver ended before it was killed (exit {proc.wait()})")
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and anything it started
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    stored = db_rows(db, "SELECT count(*) FROM clip_files")[0][0]
    assert 3 <= stored < 12
    assert db_rows(db, "SELECT count(*) FROM audio_embeddings")[0][0] == 2 * stored  # a batch is all or nothing
    # the re-run, through the real CLI joining the same cluster
    rerun = subprocess.run(
        [sys.executable, "-m", "timbredb", "--db", str(db), "--data-dir", str(synth_data_dir), "ingest", str(folder),
         "--models", ",".join(MODELS), "--batch-size", "1", "--engine", "ray", "--ray-address", cluster,
         "--format", "json"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert rerun.returncode == 0, rerun.stderr
    summary = json.loads(rerun.stdout)
    leftover = [line for line in rerun.stderr.splitlines() if "batch folder(s) an interrupted run left" in line]
    recovered = int(leftover[0].split("merged ")[1].split(" ")[0]) if leftover else 0
    assert f"ray: {12 - stored - recovered} file(s) to embed" in rerun.stderr
    assert summary["clips_added"] == 12 - stored and summary["errors"] == []
    _assert_same_store(db, reference)
    assert db_rows(db, "SELECT count(*), count(DISTINCT clip_sha256) FROM clips") == [(12, 12)]
    CLI(db, synth_data_dir)("check")
