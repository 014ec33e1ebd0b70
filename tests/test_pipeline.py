"""The pipelined ingest (timbredb.ingest.pipeline): worker processes, a bounded queue, a writer thread.

Checked against the sequential engine (``--workers 0``) on real files and real stores: the same
rows bit for bit (clips, files, vectors, batches, errors), streamed long files, errors, re-ingest,
a failure mid-run, and what the workers look like from inside (no torch, a BLAS thread budget).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pytest

from tests.conftest import CLI, db_rows
from tests.synth import harmonic_tone, lowpassed, noise, write
from timbredb import audio as audio_mod
from timbredb.ingest import pipeline
from timbredb.models import load
from timbredb.models.base import EmbeddingModel, ModelSpec
from timbredb.parallel import one_blas_thread, threads_per_worker
from timbredb.store import Store

MODELS = "mfcc,socialfx-eq,mss"


@pytest.fixture(scope="session")
def data_dir(synth_data_dir: Path) -> Path:
    return synth_data_dir


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Files of several rates, lengths and layouts, one of them twice, one unreadable, one too short."""
    d = tmp_path_factory.mktemp("pipeline-audio")
    for i in range(13):
        write(d / f"n{i:02d}.wav", lowpassed(noise(0.3 + 0.1 * (i % 4), seed=i), 300 + 170 * i))
    write(d / "stereo.flac", np.stack([harmonic_tone(440, 0.7), 0.5 * noise(0.7, seed=40)], axis=1))
    write(d / "rate48k.wav", harmonic_tone(330, 0.6, sr=48000), sr=48000)
    write(d / "same-as-n00.wav", lowpassed(noise(0.3, seed=0), 300))
    write(d / "short.wav", noise(0.01, seed=41))  # too short for every model: one error per model
    (d / "broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk")
    # 3 s of stereo: over the lowered STREAM_SAMPLES below, so it is streamed block by block
    write(d / "long.wav", np.stack([harmonic_tone(220, 3.0), 0.3 * noise(3.0, seed=42)], axis=1))
    return d


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Twelve ordinary files (every one is stored with every vector)."""
    d = tmp_path_factory.mktemp("pipeline-clean")
    for i in range(12):
        write(d / f"c{i:02d}.wav", lowpassed(noise(0.25 + 0.05 * (i % 3), seed=100 + i), 250 + 210 * i))
    return d


def dump(db: Path) -> dict[str, Any]:
    """Everything an ingest decides, in a comparable form (vectors as their exact bytes)."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        return {
            "clips": con.execute("SELECT clip_sha256, source_path, duration_s, channels, sample_rate, n_frames "
                                 "FROM clips ORDER BY ALL").fetchall(),
            "files": con.execute("SELECT path, clip_sha256, size_bytes, mtime_ns FROM clip_files ORDER BY ALL").fetchall(),
            "vectors": [(s, c, np.asarray(e, dtype=np.float32).tobytes()) for s, c, e in con.execute(
                "SELECT space_id, clip_sha256, embedding FROM audio_embeddings ORDER BY ALL").fetchall()],
            # the same batches, in the same order, holding the same clips
            "batches": con.execute(
                "SELECT b.batch_id, b.space_id, b.n_items, b.device, b.dtype, list(e.clip_sha256 ORDER BY e.clip_sha256) "
                "FROM embedding_batches b LEFT JOIN audio_embeddings e USING (batch_id) WHERE b.modality = 'audio' "
                "GROUP BY ALL ORDER BY b.batch_id").fetchall(),
            "errors": con.execute("SELECT path, stage, model_id, error FROM ingest_errors ORDER BY ALL").fetchall(),
        }
    finally:
        con.close()


def _ingest(db: Path, data_dir: Path, folder: Path, *extra: str) -> dict[str, Any]:
    out = CLI(db, data_dir)("ingest", str(folder), "--models", MODELS, "--batch-size", "3", "--format", "json", *extra)
    return json.loads(out.stdout)


def test_pipelined_ingest_writes_the_sequential_engines_rows_bit_for_bit(
        tmp_path: Path, data_dir: Path, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audio_mod, "STREAM_SAMPLES", 200_000)  # workers get the parent's threshold
    monkeypatch.setattr(audio_mod, "BLOCK_FRAMES", 50_000)
    started: list[int] = []
    real_pool = pipeline.WorkerPool

    class CountingPool(real_pool):  # type: ignore[misc, valid-type]
        def __init__(self, *a: Any, **k: Any) -> None:
            super().__init__(*a, **k)
            started.append(self.workers)

    monkeypatch.setattr(pipeline, "WorkerPool", CountingPool)
    seq = _ingest(tmp_path / "seq.duckdb", data_dir, folder, "--workers", "0")
    assert started == []
    piped = _ingest(tmp_path / "piped.duckdb", data_dir, folder, "--workers", "2")
    assert started == [2]
    assert piped == seq
    assert seq["clips_added"] == 17 and seq["clips_skipped"] == 1  # same-as-n00 is n00's clip
    # short.wav is a clip with no vector; mss (whole clips only) cannot stream long.wav
    assert seq["embeddings_added"] == 3 * 16 - 1
    errors = sorted((Path(e["path"]).name, e.get("model")) for e in seq["errors"])
    assert errors == [("broken.wav", None), ("long.wav", "mss"), ("short.wav", "mfcc"), ("short.wav", "mss"),
                      ("short.wav", "socialfx-eq")]
    a, b = dump(tmp_path / "seq.duckdb"), dump(tmp_path / "piped.duckdb")
    for table in a:
        assert a[table] == b[table], table
    # the long file was streamed (one batch of its own per model, as the sequential engine writes it)
    long_sha = db_rows(tmp_path / "piped.duckdb", "SELECT clip_sha256 FROM clips WHERE source_path LIKE '%long.wav'")[0][0]
    assert sum(1 for *_, clips in b["batches"] if clips == [long_sha]) == 2


def test_reingest_with_workers_starts_none_and_adds_nothing(tmp_path: Path, data_dir: Path, clean: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "again.duckdb"
    _ingest(db, data_dir, clean, "--workers", "2")
    before = dump(db)

    def refuse(*a: Any, **k: Any) -> None:
        raise AssertionError("nothing to decode: no worker may start")

    monkeypatch.setattr(pipeline, "WorkerPool", refuse)
    again = _ingest(db, data_dir, clean, "--workers", "2")
    assert (again["clips_added"], again["clips_skipped"], again["embeddings_added"]) == (0, 12, 0)
    assert dump(db) == before


def test_a_new_model_on_stored_files_goes_through_the_workers_for_that_model_only(
        tmp_path: Path, data_dir: Path, folder: Path) -> None:
    db = tmp_path / "grow.duckdb"
    cli = CLI(db, data_dir)
    cli("ingest", str(folder), "--models", "mfcc", "--batch-size", "3", "--workers", "2")
    grown = json.loads(cli("ingest", str(folder), "--models", "mfcc,socialfx-eq", "--batch-size", "3",
                           "--workers", "2", "--format", "json").stdout)
    assert grown["clips_added"] == 0 and grown["embeddings_added"] == 16  # not short.wav
    ref = tmp_path / "ref.duckdb"
    CLI(ref, data_dir)("ingest", str(folder), "--models", "mfcc,socialfx-eq", "--batch-size", "3", "--workers", "0")
    assert dump(db)["vectors"] == dump(ref)["vectors"]


def test_a_failure_mid_run_keeps_the_committed_chunks_and_stops_the_workers(
        tmp_path: Path, data_dir: Path, clean: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The writer fails on its third chunk (an interrupt): exit 130, earlier chunks kept whole, no worker left."""
    db = tmp_path / "fail.duckdb"
    real = Store.insert_audio_embeddings
    calls = {"n": 0}
    processes: list[Any] = []
    real_pool = pipeline.WorkerPool

    class WatchedPool(real_pool):  # type: ignore[misc, valid-type]
        def close(self, *a: Any, **k: Any) -> None:
            processes.extend((self._pool._processes or {}).values())
            super().close(*a, **k)

    def flaky(self: Store, *a: Any, **k: Any) -> int:
        calls["n"] += 1
        if calls["n"] == 7:  # the first model of the third chunk (three models per chunk)
            raise KeyboardInterrupt
        return real(self, *a, **k)

    monkeypatch.setattr(Store, "insert_audio_embeddings", flaky)
    monkeypatch.setattr(pipeline, "WorkerPool", WatchedPool)
    result = CLI(db, data_dir)("ingest", str(clean), "--models", MODELS, "--batch-size", "3", "--workers", "2",
                              ok=False)
    assert result.exit_code == 130 and "interrupted" in result.stderr
    # two chunks of three files, each with its three vectors, committed together; nothing of the third
    assert db_rows(db, "SELECT count(*), count(DISTINCT clip_sha256) FROM audio_embeddings") == [(18, 6)]
    assert db_rows(db, "SELECT count(*) FROM clip_files") == [(6,)]
    assert processes and not any(p.is_alive() for p in processes)
    # every shared-memory segment of this run was unlinked, those of chunks prepared ahead included
    if Path("/dev/shm").is_dir():
        assert not list(Path("/dev/shm").glob(f"tdb{os.getpid()}_*"))
    monkeypatch.setattr(Store, "insert_audio_embeddings", real)
    resumed = _ingest(db, data_dir, clean, "--workers", "2")
    assert (resumed["clips_added"], resumed["embeddings_added"]) == (6, 18)
    ref = tmp_path / "ref.duckdb"
    _ingest(ref, data_dir, clean, "--workers", "0")
    assert dump(db)["vectors"] == dump(ref)["vectors"]


def test_an_interrupt_while_a_chunks_results_arrive_leaves_no_shared_memory(
        tmp_path: Path, data_dir: Path, clean: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C while the second chunk's files are prepared (its results hold segments nobody mapped yet):
    exit 130, the first chunk kept, and every segment of the run unlinked."""
    real = pipeline._Pipeline._results
    calls = {"n": 0}

    def interrupted(self: Any, w: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:
            for f in w.futures:
                f.result()  # prepared, in shared memory, not consumed
            raise KeyboardInterrupt
        return real(self, w)

    monkeypatch.setattr(pipeline._Pipeline, "_results", interrupted)
    spec = ModelSpec(id="windowed", family="test", checkpoint="c", dim=4, sample_rate=22050, modalities=("audio",),
                     license="-", description="-", loader="-")
    model = _Windowed(spec)  # served as windows: the workers hand them over in shared memory
    from timbredb.ingest import Ingestor

    with Store(tmp_path / "int.duckdb") as store:
        ing = Ingestor(store, [model], batch_size=3, workers=2)
        try:
            with pytest.raises(KeyboardInterrupt):
                ing.add_paths([clean])
            if Path("/dev/shm").is_dir():
                assert not list(Path("/dev/shm").glob(f"tdb{os.getpid()}_*"))
            assert ing._pool is None  # closed with the run, not handed to the next call
            # the same Ingestor goes on with new workers (the interrupted ones are gone) and completes the rest
            monkeypatch.setattr(pipeline._Pipeline, "_results", real)
            ing.add_paths([clean])
        finally:
            summary = ing.finish()
    n = len(list(clean.glob("*.wav")))
    # the first chunk was committed before the interrupt (skipped now), the rest computed by the second call
    assert (summary.clips_added + summary.clips_skipped, summary.clips_skipped) == (n, 3)
    assert db_rows(tmp_path / "int.duckdb", "SELECT count(*), count(DISTINCT clip_sha256) FROM audio_embeddings") == [
        (n, n)]


def test_workers_import_no_torch_and_keep_to_their_thread_budget(data_dir: Path) -> None:
    models = [load("mfcc"), load("socialfx-eq", data_dir=data_dir)]
    pool = pipeline.WorkerPool(models, 2, 4, str(data_dir))
    try:
        facts = pool.facts()
    finally:
        pool.close()
    assert len({f["pid"] for f in facts}) == 2
    budget = threads_per_worker(pipeline.cpu_count(), 2)
    own_nice = os.nice(0)
    for f in facts:
        assert not f["torch"] and not f["duckdb"]
        assert f["threads"] and all(n <= budget for _, n in f["threads"])
        # only baselines: nothing runs a forward here, the workers keep this process's priority
        assert f["nice"] == own_nice


def test_workers_yield_to_a_forward_pass_on_the_cpu_of_this_process() -> None:
    spec = ModelSpec(id="neural", family="x", checkpoint="c", dim=4, sample_rate=16000, modalities=("audio",),
                     license="-", description="-", loader="-")
    neural, mfcc = _Neural(spec), load("mfcc")
    plans = [pipeline.plan_for(m, None) for m in (neural, mfcc)]
    assert pipeline.forward_on_cpu([neural, mfcc], plans)
    assert not pipeline.forward_on_cpu([mfcc], plans[1:])
    pool = pipeline.WorkerPool([neural], 1, 4, None)
    try:
        facts = pool.facts()
    finally:
        pool.close()
    assert facts[0]["nice"] == min(19, os.nice(0) + pipeline.WORKER_NICE)


def test_threads_per_worker_never_oversubscribes() -> None:
    for cores in range(1, 33):
        for workers in range(1, 40):
            n = threads_per_worker(cores, workers)
            assert n >= 1 and (n * workers <= cores or n == 1)


class _Neural(EmbeddingModel):
    """A stand-in for a model whose forward pass runs in the main process (not a baseline)."""

    def _embed_windows(self, windows: list[np.ndarray]) -> np.ndarray:
        return np.zeros((len(windows), self.dim), dtype=np.float32)


class _OnGpu(_Neural):
    @property
    def device(self) -> str:
        return "cuda"


def test_default_workers_leave_a_core_for_the_model_unless_only_baselines_run() -> None:
    spec = ModelSpec(id="neural", family="x", checkpoint="c", dim=4, sample_rate=16000, modalities=("audio",),
                     license="-", description="-", loader="-")
    neural, mfcc, pairwise = _Neural(spec), load("mfcc"), load("mfcc-frames")
    assert pipeline.default_workers([neural, mfcc], cores=16) == 15
    assert pipeline.default_workers([mfcc, pairwise], cores=16) == 16
    assert pipeline.default_workers([neural], cores=1) == 0
    # a forward pass on the CPU of a 2-core machine takes both cores: the sequential engine
    assert pipeline.default_workers([neural, mfcc], cores=2) == 0
    assert pipeline.default_workers([mfcc], cores=2) == 2
    on_gpu = _OnGpu(spec)
    assert pipeline.default_workers([on_gpu, mfcc], cores=2) == 1
    assert pipeline.default_workers([on_gpu], cores=16) == 15
    # how each is served: the baseline's vectors in the workers, the neural model's windows
    assert pipeline.plan_for(mfcc, None).kind == "vector"
    assert pipeline.plan_for(neural, None).kind == "windows"


def test_baseline_vectors_do_not_depend_on_the_blas_thread_count() -> None:
    from threadpoolctl import threadpool_info, threadpool_limits

    model = load("mfcc")
    x = (harmonic_tone(200, 2.0) + 0.05 * noise(2.0, seed=5)).astype(np.float32)
    with threadpool_limits(1):
        one = model._embed_windows([x])
    with threadpool_limits(4):
        many = model._embed_windows([x])
        after = {i["filepath"]: i["num_threads"] for i in threadpool_info()}
        with one_blas_thread():
            inside = {i["filepath"]: i["num_threads"] for i in threadpool_info()}
        restored = {i["filepath"]: i["num_threads"] for i in threadpool_info()}
    assert one.tobytes() == many.tobytes()
    # numpy's BLAS (not faiss's or torch's, which other tests may have loaded)
    numpys = [f for f in inside if "numpy" in Path(f).parts or any(p.startswith("numpy.") for p in Path(f).parts)]
    assert numpys and all(inside[f] == 1 for f in numpys) and restored == after


class _Windowed(EmbeddingModel):
    """A model served as windows (not a baseline): the workers resample and cut, this process embeds.

    Its vectors are exact functions of the window samples, so any difference in the windows
    (a resampler, an offset, a padding, a batch that mixes clips up) changes their bits.
    """

    def default_policy(self) -> Any:
        from timbredb.models.base import WindowPolicy

        return WindowPolicy(kind="consecutive", window_s=0.2, hop_s=0.15, pad="repeatpad", pooling="mean-l2")

    def _embed_windows(self, windows: list[np.ndarray]) -> np.ndarray:
        w = np.stack(windows).astype(np.float64)
        feats = [w.mean(axis=1), w.std(axis=1), np.abs(w).max(axis=1), np.abs(np.diff(w, axis=1)).sum(axis=1)]
        return np.stack(feats, axis=1).astype(np.float32)


def test_a_windowed_models_vectors_through_the_workers_are_the_sequential_engines_bit_for_bit(
        tmp_path: Path, clean: Path) -> None:
    spec = ModelSpec(id="windowed", family="test", checkpoint="c", dim=4, sample_rate=22050, modalities=("audio",),
                     license="-", description="-", loader="-")
    folder = tmp_path / "audio"
    folder.mkdir()
    for f in sorted(clean.glob("*.wav"))[:7]:
        (folder / f.name).write_bytes(f.read_bytes())
    write(folder / "r48k.wav", harmonic_tone(330, 0.9, sr=48000), sr=48000)  # a second source rate
    write(folder / "stereo.wav", np.stack([harmonic_tone(220, 0.5), 0.4 * noise(0.5, seed=7)], axis=1))
    model = _Windowed(spec)
    assert pipeline.plan_for(model, None).kind == "windows"
    dumps = []
    for workers in (0, 2):
        db = tmp_path / f"w{workers}.duckdb"
        with Store(db) as store:
            from timbredb.ingest import Ingestor

            ing = Ingestor(store, [model], batch_size=3, workers=workers)
            try:
                ing.add_paths([folder])
            finally:
                summary = ing.finish()
        assert (summary.clips_added, summary.embeddings_added, summary.errors) == (9, 9, [])
        dumps.append(dump(db))
    for table in ("clips", "files", "vectors", "batches"):
        assert dumps[0][table] == dumps[1][table], table
    assert len(dumps[0]["batches"]) == 3  # chunks of three files, one forward batch each way
