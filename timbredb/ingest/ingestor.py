"""The Ingestor: audio -> clips -> embeddings in every selected space, resumably.

Work is keyed by content: a file whose (path, size, mtime) is recorded is not
decoded again unless a selected space lacks its vector; a clip whose hash is
stored is not stored again; a vector present for (space, clip) is not computed
again. Clips and vectors are written in per-batch transactions, so a kill at
any point loses at most the batch in flight and a re-run adds no duplicates.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from timbredb.audio import Audio, decode, find_audio_files
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
    errors: list[dict[str, str]] = field(default_factory=list)
    skipped_prompts: list[dict[str, str]] = field(default_factory=list)
    datasets: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "clips_added": self.clips_added,
            "clips_skipped": self.clips_skipped,
            "embeddings_added": self.embeddings_added,
            "text_embeddings_added": self.text_embeddings_added,
            "errors": list(self.errors),
            "skipped_prompts": list(self.skipped_prompts),
            "datasets": dict(self.datasets),
        }


@dataclass(frozen=True)
class FileClip:
    """A file that is stored as a clip."""

    path: Path
    clip_sha256: str


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
        file_engine: runs ``add_files`` instead of this process (None: in-process, the default engine).
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
        file_engine: FileEngine | None = None,
    ) -> None:
        if batch_size < 1:
            raise TimbreDBError(f"--batch-size must be at least 1, got {batch_size}")
        self.store = store
        self.models = list(models)
        self.batch_size = batch_size
        self.progress = progress
        self.warn = warn
        self.summary = IngestSummary()
        self.file_engine = file_engine
        self.run_id = store.start_run(command)
        for model in self.models:
            store.ensure_space(model.space_record())

    # ------------------------------------------------------------ errors
    def error(self, path: str, message: str, stage: str, model_id: str | None = None) -> None:
        """Record a per-input problem; the run goes on."""
        self.store.record_error(self.run_id, path, stage, message, model_id)
        entry = {"path": path, "error": message}
        if model_id:
            entry["model"] = model_id
        self.summary.errors.append(entry)
        self.warn(f"error: {message}" if message.startswith(path) else f"error: {path}: {message}")

    def finish(self) -> IngestSummary:
        self.store.finish_run(self.run_id, self.summary.to_dict())
        return self.summary

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
        out: list[FileClip] = []
        bar = self.progress(desc, len(files))
        try:
            for start in range(0, len(files), self.batch_size):
                chunk = files[start : start + self.batch_size]
                out.extend(self._add_file_chunk(chunk))
                bar.update(len(chunk))
        finally:
            bar.close()
        return out

    def _add_file_chunk(self, chunk: Sequence[Path]) -> list[FileClip]:
        known: list[FileClip] = []
        stats: list[tuple[Path, os.stat_result]] = []
        for f in chunk:
            path = f.resolve()
            try:
                stats.append((path, path.stat()))
            except OSError as exc:
                self.error(str(f), f"{f}: cannot stat ({exc.strerror})", "decode")
        recorded = self.store.lookup_files([(str(p), st.st_size, st.st_mtime_ns) for p, st in stats])
        lacking = self.missing_for(list(recorded.values())) if recorded else set()
        to_decode: list[tuple[Path, os.stat_result]] = []
        for path, st in stats:
            sha = recorded.get(str(path))
            if sha is not None and sha not in lacking:
                self.summary.clips_skipped += 1
                known.append(FileClip(path, sha))
            else:
                to_decode.append((path, st))
        fresh: list[tuple[Audio, Path, os.stat_result]] = []
        for (path, st), decoded in zip(to_decode, ordered_map(_try_decode, [p for p, _ in to_decode])):
            if isinstance(decoded, AudioError):
                self.error(str(path), str(decoded), "decode")
            else:
                fresh.append((decoded, path, st))
        with self.store.transaction():
            self._add_clips([a for a, _, _ in fresh])
            self.store.add_clip_files([(str(p), a.sha256, st.st_size, st.st_mtime_ns) for a, p, st in fresh])
        self.embed_audio([a for a, _, _ in fresh])
        return known + [FileClip(p, a.sha256) for a, p, _ in fresh]

    def _add_clips(self, clips: Sequence[Audio]) -> None:
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
        """Hashes lacking a vector in at least one selected space (or not stored at all)."""
        missing: set[str] = set()
        for m in self.models:
            missing.update(self.store.missing_audio(m.space_id, clip_hashes))
        stored = self.store.stored_clips(clip_hashes)
        missing.update(h for h in clip_hashes if h not in stored)
        return missing

    def embed_audio(self, clips: Sequence[Audio]) -> None:
        """Compute and store the vectors each model lacks for these (stored) clips."""
        if not clips:
            return
        for model in self.models:
            need = set(self.store.missing_audio(model.space_id, [a.sha256 for a in clips]))
            todo: list[Audio] = []
            for a in clips:
                if a.sha256 not in need:
                    continue
                need.discard(a.sha256)  # the same content twice in one chunk
                try:
                    model.check_audio(a)
                except AudioError as exc:
                    self.error(a.source, str(exc), "embed", model.label)
                    continue
                todo.append(a)
            if not todo:
                continue
            vectors = model.embed_audio(todo, self.batch_size)
            self._write_audio(model, [a.sha256 for a in todo], vectors)

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


def _try_decode(path: Path) -> Audio | AudioError:
    """decode() that returns the per-file problem instead of raising it (for the thread pool)."""
    try:
        return decode(path)
    except AudioError as exc:
        return exc
