"""The Ingestor: audio -> clips -> embeddings in every selected space, resumably.

Work is keyed by content: a file whose (path, size, mtime) is recorded is not
decoded again unless a selected space lacks its vector; a clip whose hash is
stored is not stored again; a vector present for (space, clip) is not computed
again. Clips and vectors are written in per-batch transactions, so a kill at
any point loses at most the batches in flight and a re-run adds no duplicates.

Files are planned in bulk (stat, then what the store holds, 4096 files per question),
then ingested chunk by chunk (``batch_size`` files of the input): in this process
(``workers=0``, the sequential engine), or pipelined through worker processes
(timbredb.ingest.pipeline), which gives the same vectors bit for bit.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from timbredb.audio import Audio, StreamedAudio, decode, find_audio_files, open_audio, read_pcm
from timbredb.errors import AudioError, TimbreDBError, VocabularyError
from timbredb.models.base import EmbeddingModel
from timbredb.parallel import ordered_map
from timbredb.progress import ProgressFactory, WarnFn, ignore, silent
from timbredb.store import Store
from timbredb.vocabularies import BARE, render_prompt


@dataclass
class IngestSummary:
    """What a run did. ``errors`` holds one {"path", "error"} per failed input."""

    clips_added: int = 0
    clips_skipped: int = 0
    embeddings_added: int = 0
    text_embeddings_added: int = 0
    pair_distances_added: int = 0
    errors: list[dict[str, str]] = field(default_factory=list)
    skipped_prompts: list[dict[str, str]] = field(default_factory=list)
    datasets: dict[str, dict[str, Any]] = field(default_factory=dict)
    skipped_datasets: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "clips_added": self.clips_added,
            "clips_skipped": self.clips_skipped,
            "embeddings_added": self.embeddings_added,
            "text_embeddings_added": self.text_embeddings_added,
            "pair_distances_added": self.pair_distances_added,
            "errors": list(self.errors),
            "skipped_prompts": list(self.skipped_prompts),
            "datasets": dict(self.datasets),
            "skipped_datasets": dict(self.skipped_datasets),
        }


@dataclass(frozen=True)
class FileClip:
    """A file that is stored as a clip."""

    path: Path
    clip_sha256: str


@dataclass(frozen=True)
class TodoFile:
    """A file to decode: where, its stat, and the models (indexes into ``Ingestor.all_models``) it lacks."""

    path: Path
    st: os.stat_result
    needs: tuple[int, ...]


@dataclass
class PlannedChunk:
    """``batch_size`` files of the input: those already complete, and those to decode."""

    size: int
    known: list[FileClip] = field(default_factory=list)
    todo: list[TodoFile] = field(default_factory=list)


class FileEngine(Protocol):
    """Something that does ``Ingestor.add_files`` elsewhere (``--engine ray``: timbredb.ingest.ray_engine)."""

    def add_files(self, ingestor: Ingestor, files: Sequence[Path], desc: str = "audio") -> list[FileClip]: ...


class Ingestor:
    """Stores clips and computes missing embeddings for a fixed set of models.

    Args:
        store: a writable Store.
        models: model objects (weights load only if something must be computed).
        batch_size: clips decoded and written per transaction; windows per forward pass.
        progress: factory for progress bars.
        warn: one-line warnings (e.g. prompts outside a model's vocabulary).
        command: recorded in the runs table.
        scoped: the models were selected by default: each embeds only its spec's scope (``for_dataset``).
        file_engine: runs ``add_files`` instead of this process (None: in-process, the default engine).
        workers: worker processes of the pipelined ingest (timbredb.ingest.pipeline); 0 = the sequential
            engine (everything in this process, the default here); None = ``pipeline.default_workers``
            (cores - 1, or every core when only the baselines run) for calls of at least two chunks.
        data_dir: the data root workers rebuild the baselines from (socialfx-eq reads its curves there).
    """

    def __init__(
        self,
        store: Store,
        models: Sequence[EmbeddingModel],
        *,
        batch_size: int = 16,
        progress: ProgressFactory = silent,
        warn: WarnFn = ignore,
        command: str = "ingest",
        scoped: bool = False,
        file_engine: FileEngine | None = None,
        workers: int | None = 0,
        data_dir: Path | None = None,
    ) -> None:
        if batch_size < 1:
            raise TimbreDBError(f"--batch-size must be at least 1, got {batch_size}")
        if workers is not None and workers < 0:
            raise TimbreDBError(f"--workers must be 0 or more, got {workers}")
        self.store = store
        self.models = list(models)
        self.batch_size = batch_size
        self.progress = progress
        self.warn = warn
        self.summary = IngestSummary()
        #: decode with the source channels (a policy such as ms-clap/paper does not down-mix)
        self.keep_channels = any(m.needs_channels for m in self.models)
        self.file_engine = file_engine
        self.run_id = store.start_run(command)
        self._all_models = list(self.models)
        self.scoped = scoped
        self.workers = workers
        self.data_dir = data_dir
        self._pool: Any = None
        for model in self.models:
            store.ensure_space(model.space_record())

    #: a writer releases the store before a computation when a reader waits for it, and
    #: at least this often for readers that do not say so (other DuckDB clients)
    HOLD_S = 5.0

    def pause(self, held_at_least_s: float | None = None) -> None:
        """Release the store while computing, if it was held a while (readers get in between batches)."""
        self.store.release(self.HOLD_S if held_at_least_s is None else held_at_least_s)

    @property
    def all_models(self) -> list[EmbeddingModel]:
        """Every model of the run, in order (``models`` is the subset the current dataset's scope selects)."""
        return self._all_models

    @contextmanager
    def for_dataset(self, name: str) -> Iterator[None]:
        """While ingesting dataset ``name`` (or "files"), use only the models whose scope includes it.

        Only when the models were selected by default (``scoped``); models named in --models
        embed everything.
        """
        if not self.scoped:
            yield
            return
        self.models = [m for m in self._all_models if m.spec.scope is None or name in m.spec.scope]
        try:
            yield
        finally:
            self.models = list(self._all_models)

    # ------------------------------------------------------------ errors
    def error(self, path: str, message: str, stage: str, model_id: str | None = None) -> None:
        """Record a per-input problem; the run goes on."""
        self.store.record_error(self.run_id, path, stage, message, model_id)
        self.note_error(path, message, model_id)

    def note_error(self, path: str, message: str, model_id: str | None = None) -> None:
        """A per-input problem in the summary and on stderr (``error`` also records it in the store)."""
        entry = {"path": path, "error": message}
        if model_id:
            entry["model"] = model_id
        self.summary.errors.append(entry)
        self.warn(f"error: {message}" if message.startswith(path) else f"error: {path}: {message}")

    def finish(self) -> IngestSummary:
        self.close()
        self.store.finish_run(self.run_id, self.summary.to_dict())
        return self.summary

    def close(self) -> None:
        """Stop the pipeline's worker processes, if any were started (``finish`` does this)."""
        if self._pool is not None:
            pool, self._pool = self._pool, None
            pool.close()

    # ------------------------------------------------------------ files
    def add_paths(self, targets: Iterable[str | os.PathLike[str]]) -> list[FileClip]:
        """Ingest files and folders (recursively). Returns the files stored as clips."""
        files: list[Path] = []
        for target in targets:
            p = Path(target)
            if not p.exists():
                self.error(str(p), f"{p}: does not exist", "decode")
                continue
            found = find_audio_files(p)
            if p.is_dir() and not found:
                self.warn(f"{p}: no audio files (wav, flac, ogg, aiff, mp3) found")
            files.extend(found)
        return self.add_files(files)

    def add_files(self, files: Sequence[Path], desc: str = "audio") -> list[FileClip]:
        """Decode (when needed), store and embed files, batch by batch."""
        if self.file_engine is not None:
            return self.file_engine.add_files(self, files, desc)
        chunks = self._plan(files)
        out: list[FileClip] = []
        bar = self.progress(desc, len(files))
        try:
            pool = self._worker_pool(chunks)
            if pool is not None:
                from timbredb.ingest.pipeline import run_pipelined

                return run_pipelined(self, chunks, bar, pool)
            for chunk in chunks:
                out.extend(self._add_file_chunk(chunk))
                bar.update(chunk.size)
        finally:
            bar.close()
        return out

    def _worker_pool(self, chunks: Sequence[PlannedChunk]) -> Any:
        """The pipeline's worker processes (started once per Ingestor), or None for the sequential engine."""
        from timbredb.ingest import pipeline

        busy = sum(1 for c in chunks if c.todo)
        if self.workers == 0 or busy == 0:
            return None
        n = self.workers if self.workers is not None else pipeline.default_workers(self.all_models)
        if n == 0 or (self.workers is None and busy < pipeline.MIN_AUTO_CHUNKS):
            return None
        if self._pool is None:
            self._pool = pipeline.WorkerPool(self.all_models, n, self.batch_size,
                                             str(self.data_dir) if self.data_dir else None)
        return self._pool

    #: files per question when planning (a semi-join of the store's keys against a registered batch)
    PLAN_BATCH = 4096

    def _plan(self, files: Sequence[Path]) -> list[PlannedChunk]:
        """Stat every file and ask the store, in bulk, which are complete and which models the rest lack.

        The chunks are the input's ``batch_size`` files in order (those already complete
        included), so the same files share a forward pass whatever was stored before.
        """
        stats: list[tuple[int, Path, os.stat_result]] = []
        for k, f in enumerate(files):
            path = f.resolve()
            try:
                stats.append((k, path, path.stat()))
            except OSError as exc:
                self.error(str(f), f"{f}: cannot stat ({exc.strerror})", "decode")
        vector = [(self._all_models.index(m), m) for m in self.models if not m.pairwise]
        every = tuple(i for i, _ in vector)
        chunks = [PlannedChunk(len(files[s : s + self.batch_size])) for s in range(0, len(files), self.batch_size)]
        for start in range(0, len(stats), self.PLAN_BATCH):
            part = stats[start : start + self.PLAN_BATCH]
            recorded = self.store.lookup_files([(str(p), st.st_size, st.st_mtime_ns) for _, p, st in part])
            hashes = list(dict.fromkeys(recorded.values()))
            lacking = {i: set(self.store.missing_audio(m.space_id, hashes)) for i, m in vector} if hashes else {}
            for k, path, st in part:
                chunk = chunks[k // self.batch_size]
                sha = recorded.get(str(path))
                if sha is None:
                    chunk.todo.append(TodoFile(path, st, every))
                    continue
                needs = tuple(i for i in every if sha in lacking[i])
                if needs:
                    chunk.todo.append(TodoFile(path, st, needs))
                else:
                    self.summary.clips_skipped += 1
                    chunk.known.append(FileClip(path, sha))
        return chunks

    def _add_file_chunk(self, chunk: PlannedChunk) -> list[FileClip]:
        """The sequential engine: decode a chunk on the thread pool, store it, embed it here."""
        fresh: list[tuple[Audio | StreamedAudio, Path, os.stat_result]] = []
        if chunk.todo:
            self.pause()
        decode_one = _decode_with_channels if self.keep_channels else _try_decode
        for t, decoded in zip(chunk.todo, ordered_map(decode_one, [t.path for t in chunk.todo])):
            if isinstance(decoded, AudioError):
                self.error(str(t.path), str(decoded), "decode")
            else:
                fresh.append((decoded, t.path, t.st))
        if fresh:
            with self.store.transaction():
                self._add_clips([a for a, _, _ in fresh])
                self.store.add_clip_files([(str(p), a.sha256, st.st_size, st.st_mtime_ns) for a, p, st in fresh])
        self.embed_audio([a for a, _, _ in fresh])
        return chunk.known + [FileClip(p, a.sha256) for a, p, _ in fresh]

    def _add_clips(self, clips: Sequence[Audio | StreamedAudio]) -> None:
        """Store clips (inside the caller's transaction), counting them as added or already stored."""
        added = self.store.add_clips(clips, self.run_id)
        self.summary.clips_added += added
        self.summary.clips_skipped += len(clips) - added

    # ------------------------------------------------------------ audio in memory
    def add_audio(self, clips: Sequence[Audio]) -> list[str]:
        """Store clips that exist only in memory (rendered variants) and embed them.

        Returns:
            their hashes, in order.
        """
        for start in range(0, len(clips), self.batch_size):
            chunk = clips[start : start + self.batch_size]
            with self.store.transaction():
                self._add_clips(chunk)
            self.embed_audio(chunk)
        return [a.sha256 for a in clips]

    def missing_for(self, clip_hashes: Sequence[str]) -> set[str]:
        """Hashes lacking a vector in at least one selected (vector) space, or not stored at all."""
        missing: set[str] = set()
        for m in self.models:
            if m.pairwise:
                continue  # pairwise spaces have no per-clip vector (see add_pair_distances)
            missing.update(self.store.missing_audio(m.space_id, clip_hashes))
        stored = self.store.stored_clips(clip_hashes)
        missing.update(h for h in clip_hashes if h not in stored)
        return missing

    def embed_audio(self, clips: Sequence[Audio | StreamedAudio]) -> None:
        """Compute and store the vectors each model lacks for these (stored) clips.

        Long files (StreamedAudio) are embedded one at a time, block by block, so their
        length does not raise the memory a run needs.
        """
        if not clips:
            return
        for model in self.models:
            if model.pairwise:
                continue
            need = set(self.store.missing_audio(model.space_id, [a.sha256 for a in clips]))
            todo: list[Audio] = []
            long: list[StreamedAudio] = []
            for a in clips:
                if a.sha256 not in need:
                    continue
                need.discard(a.sha256)  # the same content twice in one chunk
                try:
                    model.check_audio(a)
                except AudioError as exc:
                    self.error(a.source, str(exc), "embed", model.label)
                    continue
                if isinstance(a, StreamedAudio):
                    long.append(a)
                else:
                    todo.append(a)
            if todo:
                self.pause()
                vectors = model.embed_audio(todo, self.batch_size)
                self._write_audio(model, [a.sha256 for a in todo], vectors)
            for s in long:
                self.pause(0.0)
                try:
                    vector = model.embed_streamed(s, self.batch_size)
                except AudioError as exc:
                    self.error(s.source, str(exc), "embed", model.label)
                    continue
                self._write_audio(model, [s.sha256], vector)

    def _write_audio(self, model: EmbeddingModel, hashes: list[str], vectors: Any) -> None:
        prov = model.provenance()
        with self.store.transaction():
            # the checkpoint hash is known only once weights are loaded
            self.store.set_checkpoint_sha256(model.space_id, model.checkpoint_sha256)
            batch_id = self.store.add_batch(
                model.space_id, "audio", len(hashes), model.device, model.dtype, prov, self.run_id
            )
            self.summary.embeddings_added += self.store.insert_audio_embeddings(
                model.space_id, hashes, vectors, batch_id
            )

    # ------------------------------------------------------------ pairwise spaces
    def add_pair_distances(self, clips: Sequence[FileClip], desc: str = "pairs") -> int:
        """Compute the distances every selected pairwise space lacks for the pairs of these clips.

        A pairwise space (``timbredb.models.pairwise``) compares two clips after
        padding them to a common length, so the pairs of a dissimilarity study are
        computed here, from the files (decoded again with their channels as
        loaded), and stored keyed by both clips' hashes; a stored pair is never
        recomputed. A pair that cannot be compared is one recorded error.

        Returns:
            how many pair distances were added.
        """
        models = [m for m in self.models if m.pairwise]
        if not models:
            return 0
        files = {c.clip_sha256: c.path for c in clips}
        hashes = [c.clip_sha256 for c in clips]
        # every pair of positions i < j (two stimuli with the same audio make a pair with itself)
        pairs = [(a, b) for i, a in enumerate(hashes) for b in hashes[i + 1 :]]
        added = 0
        pcm: dict[tuple[str, int], Any] = {}
        for model in models:
            todo = self.store.missing_pairs(model.space_id, pairs)
            if not todo:
                continue
            for h in {h for p in todo for h in p}:
                key = (h, model.sample_rate)
                if key in pcm:
                    continue
                try:
                    raw, sr = read_pcm(files[h])
                    pcm[key] = model.prepare_pcm(raw, sr, str(files[h]))  # type: ignore[attr-defined]
                except AudioError as exc:
                    self.error(str(files[h]), str(exc), "embed", model.label)
            todo = [p for p in todo if (p[0], model.sample_rate) in pcm and (p[1], model.sample_rate) in pcm]
            bar = self.progress(f"{desc} {model.label}", len(todo))
            clips_pcm = {h: pcm[(h, model.sample_rate)] for p in todo for h in p}
            try:
                # one transaction per chunk: a kill loses at most the chunk in flight
                chunk = max(self.batch_size * 16, 256)
                for start in range(0, len(todo), chunk):
                    part = todo[start : start + chunk]
                    rows = []
                    for p, res in zip(part, model.pair_distances(clips_pcm, part)):  # type: ignore[attr-defined]
                        if isinstance(res, AudioError):
                            self.error(f"{files[p[0]]} + {files[p[1]]}", res.problem, "embed", model.label)
                        else:
                            rows.append((p[0], p[1], res[0], res[1], res[2]))
                    added += self._write_pairs(model, rows)
                    bar.update(len(part))
            finally:
                bar.close()
        return added

    def _write_pairs(self, model: EmbeddingModel, rows: list[tuple[str, str, float, float, int]]) -> int:
        if not rows:
            return 0
        prov = model.provenance()
        with self.store.transaction():
            batch_id = self.store.add_batch(model.space_id, "audio", len(rows), model.device, model.dtype, prov,
                                            self.run_id)
            n = self.store.insert_pair_distances(model.space_id, rows, batch_id)
        self.summary.pair_distances_added += n
        return n

    # ------------------------------------------------------------ text
    def add_descriptors(
        self, words: Sequence[str], templates: Sequence[str] = (BARE,), vocabulary: str | None = None
    ) -> list[str]:
        """Register descriptors x templates as prompts and embed them with every text model.

        Returns:
            the prompts, in (word, template) order.
        """
        if vocabulary:
            self.store.add_vocabulary(vocabulary, words)
        triples = [(w, t, render_prompt(t, w)) for w in words for t in templates]
        with self.store.transaction():
            self.store.add_prompts(triples)
        prompts = [p for _, _, p in triples]
        self.embed_prompts(prompts)
        return prompts

    def embed_prompts(self, prompts: Sequence[str]) -> None:
        """Embed the prompts each text-capable model lacks; prompts it cannot embed are skipped."""
        for model in self.models:
            if not model.spec.has_text:
                continue
            missing = self.store.missing_prompts(model.space_id, prompts)
            ok: list[str] = []
            refused: list[str] = []
            for p in missing:
                try:
                    model.check_text(p)
                except VocabularyError:
                    refused.append(p)
                    continue
                ok.append(p)
            if refused:
                for p in refused:
                    self.summary.skipped_prompts.append({"model": model.label, "prompt": p})
                shown = ", ".join(refused[:8]) + (", ..." if len(refused) > 8 else "")
                self.warn(f"{model.label}: {len(refused)} prompt(s) outside its vocabulary skipped ({shown})")
            if not ok:
                continue
            self.pause()
            vectors = model.embed_texts(ok, batch_size=max(self.batch_size, 32))
            self.store_texts(model, ok, vectors)

    def store_texts(self, model: EmbeddingModel, prompts: Sequence[str], vectors: Any) -> None:
        """Store computed text vectors (rows aligned with ``prompts``) with their batch's provenance."""
        prov = model.provenance()
        with self.store.transaction():
            batch_id = self.store.add_batch(model.space_id, "text", len(prompts), model.device, model.dtype, prov,
                                            self.run_id)
            self.summary.text_embeddings_added += self.store.insert_text_embeddings(
                model.space_id, prompts, vectors, batch_id
            )


def _try_decode(path: Path, keep_channels: bool = False) -> Audio | StreamedAudio | AudioError:
    """open_audio() that returns the per-file problem instead of raising it (for the thread pool).

    A model that reads the source channels (``ms-clap/paper``) gets them decoded whole.
    """
    try:
        return decode(path, keep_channels=True) if keep_channels else open_audio(path)
    except AudioError as exc:
        return exc


def _decode_with_channels(path: Path) -> Audio | StreamedAudio | AudioError:
    return _try_decode(path, keep_channels=True)
