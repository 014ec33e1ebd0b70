"""The pipelined ingest: host work in worker processes, the model in this process, the store on its own thread.

    main thread     plan: stat, look up what is stored (Ingestor._plan, in bulk)
                    → submit the files of chunks n+1 … n+depth to the workers (a bounded queue)
    worker procs    read, decode, hash, down-mix; per model: resample once per (clip, rate), cut windows;
    (forkserver)    the NumPy baselines compute their vectors right there (timbredb.ingest_worker)
    main thread     chunk n, in file order: the neural models' forward passes on the prepared windows
    writer thread   chunk n's clips, files, vectors and errors in ONE transaction; the store is released
                    between write windows (and whenever a reader waits), so readers get in

Chunks are the sequential engine's (``--batch-size`` files of the input, in order), the
windows are the same bits (``HostPrep`` runs the steps of ``EmbeddingModel.prepare``)
and the same clips share a forward pass, so the vectors are the sequential engine's bit
for bit. What is computed is decided as in the sequential engine: a clip's vector is
computed unless the store holds it or this run has already queued it (the writer may not
have committed it yet when the next chunk's question is asked; see ``_Needs``).

A kill at any moment loses only chunks whose transaction had not committed (at most
``depth`` + 1 of them); a re-run computes exactly those. Workers die with the run
(PR_SET_PDEATHSIG), and a shared-memory segment is unlinked as soon as it is mapped (one
never mapped is removed by the resource tracker when the run's processes are gone).
"""

from __future__ import annotations

import importlib.machinery
import math
import multiprocessing
import os
import queue
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from timbredb import audio as audio_mod
from timbredb.audio import Audio, StreamedAudio
from timbredb.errors import AudioError, TimbreDBError
from timbredb.ingest_worker import (
    AUDIO,
    ERROR,
    STREAM,
    VECTOR,
    WINDOWS,
    ClipInfo,
    FileResult,
    ModelPlan,
    Segment,
    WorkerConfig,
    discard,
    init_worker,
    prepare_file,
    worker_facts,
)
from timbredb.models.base import EmbeddingModel
from timbredb.parallel import cpu_count, threads_per_worker
from timbredb.store import Store

if TYPE_CHECKING:
    from timbredb.ingest.ingestor import FileClip, Ingestor, PlannedChunk, TodoFile

#: chunks prepared ahead of the one the model consumes (at least; more when many workers share a chunk)
DEPTH = 2
#: with the default --workers, fewer files than this many chunks go through the sequential engine
#: (starting the worker processes costs more than they save on a handful of files)
MIN_AUTO_CHUNKS = 2
#: seconds the writer waits for work before it checks for waiting readers (and releases the store)
WRITER_POLL_S = 0.25
#: niceness of the workers while a model's forward runs on the CPU in this process (0: none)
WORKER_NICE = 10


def default_workers(models: Sequence[EmbeddingModel], cores: int | None = None) -> int:
    """``--workers`` when not given: cores - 1, one core staying with the process that runs the model;
    every core when every model computes its vectors in the workers (the baselines); 0 on one core,
    and 0 on two cores when the forward pass runs on the CPU here (it takes both cores, and the
    sequential engine measured faster there: docs/pipeline.md, run D)."""
    cores = cores or cpu_count()
    if cores <= 1:
        return 0
    main_busy = [m for m in models if not m.pairwise and not m.worker_embeds]
    if not main_busy:
        return cores
    if cores <= 2 and any(m.device == "cpu" for m in main_busy):
        return 0
    return cores - 1


def forward_on_cpu(models: Sequence[EmbeddingModel], plans: Sequence[ModelPlan]) -> bool:
    """Whether this process runs a model's forward pass on the CPU (the workers then yield to it)."""
    return any(p.kind != VECTOR and not m.pairwise and m.device == "cpu" for m, p in zip(models, plans))


def plan_for(model: EmbeddingModel, data_dir: str | None) -> ModelPlan:
    """How workers serve ``model``: its vectors (baselines), its windows, or the decoded clip."""
    prep = model.host_prep()
    if model.worker_embeds and prep is not None:
        return ModelPlan(VECTOR, model.label, model.space_id, prep, data_dir)
    if prep is not None:
        return ModelPlan(WINDOWS, model.label, model.space_id, prep)
    return ModelPlan(AUDIO, model.label, model.space_id)


class WorkerPool:
    """Worker processes (forkserver: started from a clean process, never forked from one holding torch
    or threads) preparing files for the models of a run."""

    def __init__(self, models: Sequence[EmbeddingModel], workers: int, batch_size: int,
                 data_dir: str | None) -> None:
        self.workers = workers
        self.plans = tuple(plan_for(m, data_dir) for m in models)
        cores = cpu_count()
        config = WorkerConfig(self.plans, batch_size, audio_mod.STREAM_SAMPLES, audio_mod.BLOCK_FRAMES,
                              threads_per_worker(cores, workers), f"tdb{os.getpid()}_", os.getpid(),
                              WORKER_NICE if forward_on_cpu(models, self.plans) else 0)
        method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
        ctx = multiprocessing.get_context(method)
        if method == "forkserver":
            # imported once by the server, not by every worker (ignored when this process already runs one)
            preload = ["timbredb.ingest_worker"]
            preload += sorted({type(m).__module__ for m, p in zip(models, self.plans) if p.kind == VECTOR})
            ctx.set_forkserver_preload(preload)
        self._pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=init_worker, initargs=(config,))

    def submit(self, path: str, needs: tuple[int, ...], keep_channels: bool) -> Future[FileResult]:
        with _main_not_imported():  # a submit may start a worker
            return self._pool.submit(prepare_file, path, needs, keep_channels)

    def facts(self) -> list[dict[str, Any]]:
        """``ingest_worker.worker_facts`` from each worker (tests); call before any file is submitted."""
        with _main_not_imported():
            futures = [self._pool.submit(worker_facts, 0.5) for _ in range(self.workers)]
        return [f.result() for f in futures]

    def close(self, pending: Sequence[Future[FileResult]] = ()) -> None:
        """Stop the workers; results that will not be consumed give their segments back."""
        for f in pending:
            f.cancel()
        self._pool.shutdown(wait=True, cancel_futures=True)
        for f in pending:
            if f.done() and not f.cancelled() and f.exception() is None:
                discard(f.result())


@contextmanager
def _main_not_imported() -> Iterator[None]:
    """Start worker processes without re-running the caller's main module in them.

    multiprocessing's spawn and forkserver children import ``__main__`` again (by path),
    so a script that calls ``run_ingest`` without an ``if __name__ == "__main__":`` guard
    would run again in every worker. Workers need nothing from it: while a worker starts,
    the main module carries a spec named ``__main__``, which the child skips.
    """
    main = sys.modules.get("__main__")
    if main is None or getattr(main, "__spec__", None) is not None:
        yield  # `python -m ...` and interactive sessions: nothing is re-run
        return
    main.__spec__ = importlib.machinery.ModuleSpec("__main__", None)
    try:
        yield
    finally:
        main.__spec__ = None


class StoreWriter:
    """The one thread that touches the store while the pipeline runs (DuckDB: one connection, one user).

    Jobs run in submission order; after each, and while idle, the store is released if it
    was held ``hold_s`` or a reader waits (``Store.release``), so write windows stay short.
    After a job fails, the later ones fail with the same error without running.
    """

    def __init__(self, store: Store, hold_s: float) -> None:
        self.store = store
        self.hold_s = hold_s
        self._jobs: queue.Queue[tuple[Future[Any], Callable[[Store], Any]] | None] = queue.Queue()
        self._failed: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="timbredb-writer", daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[[Store], Any]) -> Future[Any]:
        fut: Future[Any] = Future()
        self._jobs.put((fut, fn))
        return fut

    def _run(self) -> None:
        while True:
            try:
                item = self._jobs.get(timeout=WRITER_POLL_S)
            except queue.Empty:
                self._release()
                continue
            if item is None:
                return
            fut, fn = item
            if self._failed is not None:
                fut.set_exception(self._failed)
                continue
            try:
                fut.set_result(fn(self.store))
            except BaseException as exc:  # noqa: BLE001 - handed to the main thread through the future
                self._failed = exc
                fut.set_exception(exc)
            if self._jobs.empty():
                self._release()

    def _release(self) -> None:
        if self._failed is None:
            try:
                self.store.release(self.hold_s)
            except Exception as exc:  # noqa: BLE001 - a failed close is the next job's error
                self._failed = exc

    def close(self) -> None:
        """Run what was submitted, then stop the thread."""
        self._jobs.put(None)
        self._thread.join()


@dataclass
class _Needs:
    """A question to the store (which clips lack a vector in each space), asked on the writer thread.

    Asked when ``after_jobs`` write jobs had been submitted, it sees every one of them (the
    writer runs jobs in order) and none after: ``_Pipeline.unseen`` holds what those write.
    """

    future: Future[dict[str, set[str]]]
    after_jobs: int


@dataclass
class _ChunkWork:
    """One chunk: its plan and the workers' futures, one per file to decode."""

    planned: PlannedChunk
    futures: list[Future[FileResult]]
    needs: _Needs | None = None


#: (path, message, stage, model label) of a per-input problem
_Error = tuple[str, str, str, "str | None"]


@dataclass
class _Fresh:
    """A decoded file of the chunk: its plan, the worker's result, the clip, the mapped segment."""

    todo: TodoFile
    result: FileResult
    clip: ClipInfo | StreamedAudio
    seg: Segment | None


def run_pipelined(ingestor: Ingestor, chunks: Sequence[PlannedChunk], bar: Any, pool: WorkerPool) -> list[FileClip]:
    """Ingest planned chunks through ``pool`` (see module doc). Returns the files stored as clips."""
    return _Pipeline(ingestor, chunks, bar, pool).run()


class _Pipeline:
    def __init__(self, ingestor: Ingestor, chunks: Sequence[PlannedChunk], bar: Any, pool: WorkerPool) -> None:
        from timbredb.ingest.ingestor import Ingestor

        self.ing = ingestor
        self.chunks = list(chunks)
        self.bar = bar
        self.pool = pool
        self.models = [m for m in ingestor.models if not m.pairwise]
        self.index = {id(m): i for i, m in enumerate(ingestor.all_models)}
        self.depth = max(DEPTH, math.ceil(2 * pool.workers / ingestor.batch_size))
        self.work: deque[_ChunkWork] = deque()
        self.next_chunk = 0
        self.writer = StoreWriter(ingestor.store, Ingestor.HOLD_S)
        self.jobs: deque[Future[tuple[int, int, int]]] = deque()
        self.n_jobs = 0
        #: (write job number, space_id -> clip hashes it writes) for the jobs a question may not have seen
        self.unseen: deque[tuple[int, dict[str, set[str]]]] = deque()

    # ------------------------------------------------------------ the loop
    def run(self) -> list[FileClip]:
        out: list[FileClip] = []
        current: _ChunkWork | None = None
        try:
            self._fill()
            while self.work:
                current = self.work.popleft()
                out.extend(self._consume(current))
                current = None
                self._fill()
                self._collect(block=False)
        except BaseException:
            # the chunk being consumed too: its finished results hold segments nobody mapped yet
            pending = [*([current] if current is not None else []), *self.work]
            self.pool.close([f for w in pending for f in w.futures])
            if self.ing._pool is self.pool:
                self.ing._pool = None  # closed: a later call on this Ingestor starts new workers
            self.writer.close()  # what was computed and queued is still written
            raise
        self.writer.close()
        self._collect(block=True)
        return out

    def _fill(self) -> None:
        """Submit the files of the next chunks while fewer than ``depth`` chunks wait to be consumed."""
        while self.next_chunk < len(self.chunks) and len(self.work) < self.depth:
            planned = self.chunks[self.next_chunk]
            futures = [self.pool.submit(str(t.path), t.needs, self.ing.keep_channels) for t in planned.todo]
            self.work.append(_ChunkWork(planned, futures))
            self.next_chunk += 1

    def _collect(self, block: bool) -> None:
        """Fold finished write jobs into the summary; re-raise a failed one (one line, exit 1).

        Also the queue's bound on the write side: at most ``depth`` + 1 jobs wait for the writer.
        """
        s = self.ing.summary
        while self.jobs and (block or self.jobs[0].done() or len(self.jobs) > self.depth + 1):
            clips_added, clips_skipped, embeddings_added = self.jobs.popleft().result()
            s.clips_added += clips_added
            s.clips_skipped += clips_skipped
            s.embeddings_added += embeddings_added

    # ------------------------------------------------------------ what the store lacks
    def _ask(self, hashes: list[str]) -> _Needs:
        spaces = [m.space_id for m in self.models]

        def question(store: Store) -> dict[str, set[str]]:
            return {sid: set(store.missing_audio(sid, hashes)) for sid in spaces}

        return _Needs(self.writer.submit(question), self.n_jobs)

    def _missing(self, needs: _Needs) -> dict[str, set[str]]:
        """The answer less what this run queued and the question could not see."""
        missing = needs.future.result()
        while self.unseen and self.unseen[0][0] < needs.after_jobs:
            self.unseen.popleft()  # later questions see these too
        for _, written in self.unseen:
            for sid, keys in written.items():
                if sid in missing:
                    missing[sid] -= keys
        return missing

    # ------------------------------------------------------------ one chunk
    def _results(self, w: _ChunkWork) -> list[FileResult]:
        try:
            return [f.result() for f in w.futures]
        except BrokenProcessPool as exc:
            raise TimbreDBError(
                f"an ingest worker process died ({exc}); what was stored is kept: re-run to resume "
                "(--workers 0 runs without worker processes)"
            ) from exc

    def _consume(self, w: _ChunkWork) -> list[FileClip]:
        from timbredb.ingest.ingestor import FileClip

        planned = w.planned
        if not planned.todo:
            self.bar.update(planned.size)
            return list(planned.known)
        results = self._results(w)
        errors: list[_Error] = []
        fresh: list[_Fresh] = []
        writes: list[tuple[EmbeddingModel, list[str], Any]] = []
        try:
            for t, r in zip(planned.todo, results):
                if r.error is not None or r.clip is None:
                    errors.append((str(t.path), r.error or f"{t.path}: not decoded", "decode", None))
                    continue
                seg = Segment(r.shm) if r.shm is not None else None
                r.shm = None
                fresh.append(_Fresh(t, r, r.clip, seg))
            if fresh:
                needs = w.needs or self._ask([f.clip.sha256 for f in fresh])
                missing = self._missing(needs)
                for model in self.models:
                    self._embed(model, fresh, missing.get(model.space_id, set()), errors, writes)
        finally:
            for f in fresh:
                if f.seg is not None:
                    f.seg.close()  # the arrays that viewed it went with _embed's frame
        self._ask_ahead()
        self._write(fresh, errors, writes)
        self.bar.update(planned.size)
        return list(planned.known) + [FileClip(f.todo.path, f.clip.sha256) for f in fresh]

    def _ask_ahead(self) -> None:
        """Ask the next chunk's question before this chunk's write when its files are ready:
        it then runs while this chunk's forward results are written, not after."""
        if not self.work:
            return
        nxt = self.work[0]
        if nxt.needs is not None or not nxt.futures or not all(f.done() for f in nxt.futures):
            return
        if any(f.exception() is not None for f in nxt.futures):
            return  # raised when that chunk is consumed
        hashes = [r.clip.sha256 for r in (f.result() for f in nxt.futures) if r.clip is not None]
        if hashes:
            nxt.needs = self._ask(hashes)

    def _embed(self, model: EmbeddingModel, fresh: list[_Fresh], need: set[str],
               errors: list[_Error], writes: list[tuple[EmbeddingModel, list[str], Any]]) -> None:
        """One model's vectors for the chunk: from the workers, or by its forward pass here."""
        i = self.index[id(model)]
        batch = self.ing.batch_size
        hashes: list[str] = []
        per_clip: list[list[Any]] = []
        rows: list[Any] = []
        long: list[tuple[str, Any]] = []  # (hash, a vector from a worker, or the StreamedAudio to embed here)
        for f in fresh:
            clip, seg = f.clip, f.seg
            h = clip.sha256
            if h not in need:
                continue
            need.discard(h)  # the same content twice in one chunk
            out = f.result.outputs.get(i)
            if out is None:
                raise TimbreDBError(f"{model.label}: internal: {clip.source} was not prepared for this model")
            kind, payload = out
            if kind == ERROR:
                errors.append((clip.source, payload, "embed", model.label))
            elif kind == STREAM or (kind == VECTOR and isinstance(clip, StreamedAudio)):
                long.append((h, payload if kind == VECTOR else clip))
            elif kind == VECTOR:
                hashes.append(h)
                rows.append(payload)
            elif kind == WINDOWS:
                assert seg is not None
                hashes.append(h)
                per_clip.append([seg.array(ref) for ref in payload])
            elif kind == AUDIO:
                assert seg is not None
                mono, chans = payload
                a = Audio(seg.array(mono), clip.sample_rate, clip.channels, h, clip.source,
                          None if chans is None else seg.array(chans))
                try:
                    model.check_audio(a)
                except AudioError as exc:
                    errors.append((clip.source, str(exc), "embed", model.label))
                    continue
                hashes.append(h)
                per_clip.append(model.prepare(a))
        if per_clip:
            writes.append((model, hashes, model.embed_prepared(per_clip, batch)))
        elif rows:
            writes.append((model, hashes, np.concatenate(rows, axis=0)))
        del per_clip
        for h, item in long:
            if isinstance(item, StreamedAudio):
                try:
                    item = model.embed_streamed(item, batch)
                except AudioError as exc:
                    errors.append((item.source, str(exc), "embed", model.label))
                    continue
            writes.append((model, [h], item))

    def _write(self, fresh: list[_Fresh], errors: list[_Error],
               writes: list[tuple[EmbeddingModel, list[str], Any]]) -> None:
        """Report the chunk's problems now; queue its rows as one write job (one transaction)."""
        for path, message, _, label in errors:
            self.ing.note_error(path, message, label)
        run_id = self.ing.run_id
        clips = [f.clip for f in fresh]
        files = [(str(f.todo.path), f.clip.sha256, f.todo.st.st_size, f.todo.st.st_mtime_ns) for f in fresh]
        batches = []
        for model, hashes, vectors in writes:
            prov = model.provenance()  # loads the model where it was not (baselines computed in workers)
            batches.append((model.space_id, model.checkpoint_sha256, model.device, model.dtype, prov, hashes,
                            vectors))

        def job(store: Store) -> tuple[int, int, int]:
            for path, message, stage, label in errors:
                store.record_error(run_id, path, stage, message, label)
            added = embedded = 0
            with store.transaction():
                if clips:
                    added = store.add_clips(clips, run_id)
                    store.add_clip_files(files)
                for sid, sha, device, dtype, prov, hashes, vectors in batches:
                    # the checkpoint hash is known only once weights are loaded
                    store.set_checkpoint_sha256(sid, sha)
                    batch_id = store.add_batch(sid, "audio", len(hashes), device, dtype, prov, run_id)
                    embedded += store.insert_audio_embeddings(sid, hashes, vectors, batch_id)
            return added, len(clips) - added, embedded

        self.jobs.append(self.writer.submit(job))
        written: dict[str, set[str]] = {}
        for model, hashes, _ in writes:
            written.setdefault(model.space_id, set()).update(hashes)
        self.unseen.append((self.n_jobs, written))
        self.n_jobs += 1
