"""What `timbredb serve` answers, without any HTTP: the server's library layer.

`Explorer` holds what is shared between requests — the options, the loaded
models (each loaded once, on first use or at start-up) — and opens the store
read-only for each request, so an ingest can take the store between requests
and nothing here can ever write to it. Every method is synchronous and
CPU-bound; the web layer (``timbredb.server.app``) runs them on worker threads.

Descriptions come from ``timbredb.describe`` called with the arguments the
`describe` command passes, so an upload gets exactly the objects
`timbredb describe --format json` prints for that file.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from timbredb import __version__
from timbredb.audio import AUDIO_EXTENSIONS, probe
from timbredb.describe import audio_vector, default_text_model, describe, describe_clip, vocabulary_index
from timbredb.errors import AudioError, NotFoundError, TimbreDBError
from timbredb.index import audio_index
from timbredb.models import EmbeddingModel, availability, load, parse_name
from timbredb.parallel import workers
from timbredb.progress import WarnFn, ignore
from timbredb.server.projection import fit_projection
from timbredb.spaces import SpaceRecord
from timbredb.store import Store
from timbredb.vocabularies import BARE, BUILTIN, DEFAULT_VOCABULARY, check_template, resolve

SHA256 = re.compile(r"^[0-9a-f]{64}$")
#: formats a browser's <audio> element plays as stored; others are sent as WAV
BROWSER_TYPES = {".wav": "audio/wav", ".flac": "audio/flac", ".ogg": "audio/ogg", ".oga": "audio/ogg",
                 ".mp3": "audio/mpeg"}


class RequestError(TimbreDBError):
    """A request the server refuses, with the HTTP status that says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ServeOptions:
    """How `timbredb serve` runs.

    Attributes:
        db: the store (opened read-only per request; never created or upgraded).
        data_dir: the data root (socialfx-eq needs audealize/eqpoints.json).
        host, port: where to listen (port 0: any free port, announced at start).
        device: where neural models run.
        max_upload_bytes: largest accepted audio upload.
        max_duration_s: longest accepted audio (read from the header before decoding).
        upload_timeout_s: time a client has to send a request's whole body.
        threads: worker threads for the CPU-bound work (decoding, embedding, searching).
        max_k: largest k (descriptors or clips per answer).
        map_max_clips: most stored clips placed on a map (a deterministic subset beyond that).
        preload: models to load at start-up (others load on first use).
        access_log: log one line per request on stderr.
        store_idle_s: close the store's connections after this long without a request, so a
            writer (`timbredb ingest`) can take the store while the server is idle.
    """

    db: Path
    data_dir: Path | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    device: str = "auto"
    max_upload_bytes: int = 50 * 1024 * 1024
    max_duration_s: float = 600.0
    upload_timeout_s: float = 30.0
    threads: int = field(default_factory=workers)
    max_k: int = 1000
    map_max_clips: int = 2000
    preload: tuple[str, ...] = ()
    access_log: bool = False
    store_idle_s: float = 2.0


@dataclass
class Upload:
    """An uploaded file written to a private temporary folder (removed by ``Explorer.upload``)."""

    path: Path
    name: str  # the client's file name (a base name), used only in answers and messages


def safe_name(filename: str | None) -> str:
    """The base name of a client-supplied file name, without control characters (never used as a path)."""
    name = re.split(r"[\\/]", filename or "")[-1]
    name = "".join(ch for ch in name if ch.isprintable())[:200].strip()
    return name or "upload"


def check_sha(clip_sha256: str) -> str:
    if not SHA256.match(clip_sha256):
        raise RequestError(400, f"{clip_sha256[:80]!r} is not a clip hash (64 lowercase hex digits)")
    return clip_sha256


class StorePool:
    """Read-only connections to the store, one per concurrent request, closed when idle.

    Opening a store costs tens of milliseconds (DuckDB loads the catalogue, timbredb
    checks the migrations), so connections are reused while requests keep coming. But
    while any connection is open, DuckDB's file lock keeps every writer out, so once no
    request has used the store for ``idle_s`` seconds all connections are closed and
    `timbredb ingest` (or `check`) can take the store; the next request reopens it and
    sees what was written.
    """

    def __init__(self, path: Path, idle_s: float) -> None:
        self.path = path
        self.idle_s = idle_s
        self._idle: list[Store] = []
        self._busy = 0
        self._last_used = 0.0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self._janitor = threading.Thread(target=self._close_when_idle, name="timbredb-store-pool", daemon=True)
        self._janitor.start()

    @contextmanager
    def connection(self) -> Iterator[Store]:
        with self._lock:
            store = self._idle.pop() if self._idle else None
            self._busy += 1
        try:
            if store is None:
                store = Store(self.path, read_only=True)
        except BaseException:
            with self._lock:
                self._busy -= 1
            raise
        try:
            yield store
        finally:
            with self._lock:
                self._busy -= 1
                self._last_used = time.monotonic()
                if self._closed:
                    store.close()
                else:
                    self._idle.append(store)
            self._wake.set()

    def _close_when_idle(self) -> None:
        while True:
            with self._lock:
                if self._closed:
                    return
                wait: float | None
                if self._busy:
                    wait = self.idle_s  # woken when a request releases its connection
                elif not self._idle:
                    wait = None  # nothing open: sleep until a connection is released
                else:
                    wait = self._last_used + self.idle_s - time.monotonic()
                    if wait <= 0:
                        # closed under the lock, so no request can take one being closed
                        for store in self._idle:
                            store.close()
                        self._idle = []
                        continue
            self._wake.wait(wait)
            self._wake.clear()

    def open_connections(self) -> int:
        with self._lock:
            return len(self._idle) + self._busy

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        self._wake.set()
        for store in idle:
            store.close()


class Explorer:
    """The server's state and answers (see the module doc)."""

    def __init__(self, options: ServeOptions, warn: WarnFn = ignore) -> None:
        self.options = options
        self.warn = warn
        self._models: dict[str, EmbeddingModel] = {}
        self._models_lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}
        self._run_locks: dict[str, threading.Lock] = {}
        self._pool = StorePool(options.db, options.store_idle_s)
        # fail at start-up, not on the first request, when the store cannot be served
        with self.store():
            pass

    # ------------------------------------------------------------ shared state
    @contextmanager
    def store(self) -> Iterator[Store]:
        """A read-only store connection for one request (from the pool)."""
        with self._pool.connection() as store:
            yield store

    def close(self) -> None:
        self._pool.close()

    def model(self, name: str | None) -> EmbeddingModel:
        """The loaded model for a --model value (describe's default model when None); loaded once.

        Only models whose space is in the store, or that were preloaded, are loaded: a
        client must not make the server load every checkpoint it can name.

        Raises:
            RequestError: 400 when the model's space is not in the store.
        """
        key = name or default_text_model(self.options.data_dir)
        with self._models_lock:
            m = self._models.get(key)
            if m is not None:
                return m
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:  # one load per model; requests for other models are not held up
            with self._models_lock:
                m = self._models.get(key)
            if m is not None:
                return m
            # store_path: a fine-tuned space's weights live in the store (issue 15)
            m = load(key, device=self.options.device, data_dir=self.options.data_dir, store_path=self.options.db)
            if key not in self.options.preload:
                with self.store() as store:
                    stored = {s.space_id for s in store.spaces()}
                if m.space_id not in stored:
                    raise RequestError(400, f"model {m.label!r} has no space in this store (see /api/spaces); "
                                            "the server describes with the store's spaces and preloaded models")
            m.ensure_loaded()
            with self._models_lock:
                self._run_locks.setdefault(m.label, threading.Lock())
                self._models[key] = m
            return m

    @contextmanager
    def running(self, model: EmbeddingModel) -> Iterator[None]:
        """Serialise the work of a neural model; the baselines are stateless NumPy and run in parallel.

        A neural model is one torch module and one tokenizer shared by every request:
        Hugging Face fast tokenizers refuse concurrent use ("Already borrowed") and a
        forward pass already uses every core, so one request at a time per model.
        """
        if model.spec.family == "baseline":
            yield
            return
        with self._run_locks[model.label]:
            yield

    def loaded_models(self) -> list[str]:
        with self._models_lock:
            return sorted({m.label for m in self._models.values()})

    def preload(self) -> None:
        for name in self.options.preload:
            self.model(name)

    def _k(self, k: int) -> int:
        if not 1 <= k <= self.options.max_k:
            raise RequestError(400, f"k must be between 1 and {self.options.max_k}, got {k}")
        return k

    def _vocabulary(self, store: Store, vocabulary: str | None) -> tuple[str, list[str]]:
        # allow_files=False: a client must never make the server read a file
        return resolve(vocabulary or DEFAULT_VOCABULARY, self.options.data_dir, store.vocabularies(), allow_files=False)

    # ------------------------------------------------------------ uploads
    @contextmanager
    def upload(self, source: Any, filename: str | None) -> Iterator[Upload]:
        """Copy an uploaded file object into a private temporary folder, check it, remove it afterwards.

        The content is checked by reading its header (the extension is only a hint to the
        second decoder); its duration must be within the limit before anything is decoded.

        Raises:
            RequestError: 413 too large or too long, 415 not audio, 422 empty.
        """
        name = safe_name(filename)
        suffix = Path(name).suffix.lower()
        folder = Path(tempfile.mkdtemp(prefix="timbredb-serve-"))
        try:
            path = folder / ("upload" + (suffix if suffix in AUDIO_EXTENSIONS else ""))
            with open(path, "wb") as out:
                shutil.copyfileobj(source, out, 1 << 20)
            size = path.stat().st_size
            limit = self.options.max_upload_bytes
            if size > limit:
                raise RequestError(413, f"{name}: the upload is {size} bytes; the limit is {limit} bytes")
            if size == 0:
                raise RequestError(422, f"{name}: the upload is empty (0 bytes)")
            try:
                info = probe(path)
            except AudioError as exc:
                raise RequestError(415, f"{name}: {exc.problem.replace(str(path), name)}") from exc
            if info.duration_s > self.options.max_duration_s:
                raise RequestError(
                    413, f"{name}: {info.duration_s:.1f} s of audio; the limit is {self.options.max_duration_s:g} s"
                )
            yield Upload(path, name)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    # ------------------------------------------------------------ answers
    def health(self) -> dict[str, Any]:
        with self.store() as store:
            spaces = store.spaces()
            counts = store.vector_counts()
        return {
            "status": "ok",
            "version": __version__,
            "store": str(self.options.db),
            "read_only": True,
            "spaces": len(spaces),
            "audio_vectors": sum(n for (_, kind), n in counts.items() if kind == "audio"),
            "models_loaded": self.loaded_models(),
        }

    def spaces(self) -> list[dict[str, Any]]:
        """Every stored space with its vector counts and whether this server can embed uploads in it."""
        with self.store() as store:
            spaces = store.spaces()
            counts = store.vector_counts()
        out = []
        for s in spaces:
            usable, reason = self._usable(s)
            out.append({
                "model": s.label, "model_id": s.model_id, "space_id": s.space_id, "family": s.family,
                "checkpoint": s.checkpoint, "checkpoint_sha256": s.checkpoint_sha256, "policy": s.policy_name,
                "dim": s.dim, "sample_rate": s.sample_rate, "similarity": s.similarity,
                "modalities": list(s.modalities),
                "n_audio": counts.get((s.space_id, "audio"), 0), "n_text": counts.get((s.space_id, "text"), 0),
                "usable": usable, "reason": reason,
            })
        return out

    def _usable(self, space: SpaceRecord) -> tuple[bool, str]:
        try:
            spec, checkpoint = parse_name(space.label.partition("/")[0])
        except TimbreDBError as exc:
            return False, str(exc)
        avail = availability(spec, self.options.data_dir, checkpoint)
        return avail.usable, avail.reason

    def vocabularies(self) -> list[dict[str, Any]]:
        """The vocabularies a request may name: built-in, socialfx-eq (when its data is here), stored."""
        with self.store() as store:
            stored = store.vocabularies()
        out = [{"name": n, "source": "built-in", "n_words": len(w), "default": n == DEFAULT_VOCABULARY}
               for n, w in BUILTIN.items()]
        try:
            _, words = resolve("socialfx-eq", self.options.data_dir)
            out.append({"name": "socialfx-eq", "source": "data", "n_words": len(words), "default": False})
        except TimbreDBError:
            pass
        out += [{"name": n, "source": "stored", "n_words": len(w), "default": False} for n, w in stored.items()
                if n not in BUILTIN and n != "socialfx-eq"]
        return out

    def describe_upload(
        self, upload: Upload, models: Sequence[str], *, k: int = 5, vocabulary: str | None = None,
        template: str = BARE, n_clips: int = 0, rank: str = "calibrated",
    ) -> tuple[list[dict[str, Any]], list[str]]:
        """What `timbredb describe FILE --model M -k K --vocabulary V --prompt T --clips N --format json`
        prints for each model, with ``file`` the upload's name; and the warnings describe gave.

        Raises:
            RequestError: 422 when the audio decodes to something unusable (empty, silent, too short...).
        """
        self._k(k)
        if n_clips:
            self._k(n_clips)
        check_template(template)
        names: list[str | None] = list(models) or [None]
        loaded = [self.model(n) for n in names]
        warnings: list[str] = []
        out: list[dict[str, Any]] = []
        with self.store() as store:
            vocab_name, words = self._vocabulary(store, vocabulary)
            for m in loaded:
                with self.running(m):
                    results, errors = describe(store, [str(upload.path)], m, words, vocab_name, k=k,
                                               template=template, n_clips=n_clips, rank=rank, save=False,
                                               warn=warnings.append)
                if errors:
                    raise RequestError(422, errors[0].replace(str(upload.path), upload.name))
                for r in results:
                    d = r.to_dict(with_clips=n_clips > 0)
                    d["file"] = upload.name
                    out.append(d)
        return out, warnings

    def clip(self, clip_sha256: str) -> dict[str, Any]:
        """A stored clip's record, the spaces holding it, and its audio URL when a recorded file is readable."""
        check_sha(clip_sha256)
        with self.store() as store:
            info = store.clip_info(clip_sha256)
            if info is None:
                raise NotFoundError(f"clip {clip_sha256} is not in the store")
            playable = self._playable_file(store, clip_sha256) is not None
        info["audio_url"] = f"/api/clips/{clip_sha256}/audio" if playable else None
        return info

    def _playable_file(self, store: Store, clip_sha256: str) -> Path | None:
        """A file recorded for the clip that still has the size and mtime it was recorded with.

        Only paths recorded in the store are ever read, and only while they hold what was
        recorded; the client names a clip hash, never a path.
        """
        for path, size, mtime_ns in store.clip_files(clip_sha256):
            try:
                st = os.stat(path)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode) and st.st_size == size and st.st_mtime_ns == mtime_ns and os.access(path, os.R_OK):
                return Path(path)
        return None

    def clip_audio(self, clip_sha256: str) -> tuple[Path, str | None]:
        """(file, media type) to send for a clip; media type None means "decode and send as WAV".

        Raises:
            NotFoundError: unknown clip, or none of its recorded files is readable unchanged.
        """
        check_sha(clip_sha256)
        with self.store() as store:
            if store.clip_info(clip_sha256) is None:
                raise NotFoundError(f"clip {clip_sha256} is not in the store")
            path = self._playable_file(store, clip_sha256)
        if path is None:
            raise NotFoundError(f"clip {clip_sha256}: no file recorded for it is readable here unchanged")
        return path, BROWSER_TYPES.get(path.suffix.lower())

    def _space(self, store: Store, model: str) -> SpaceRecord:
        spaces = store.spaces(model)
        if not spaces:
            raise NotFoundError(f"no stored space matches model {model!r}; see /api/spaces")
        if len(spaces) > 1:
            raise RequestError(400, f"model {model!r} names {len(spaces)} spaces ({', '.join(s.label for s in spaces)}); "
                                    "pass one label")
        return spaces[0]

    def similar(self, clip_sha256: str, models: Sequence[str], k: int = 10) -> list[dict[str, Any]]:
        """The k nearest stored clips of a stored clip in each space (exact FAISS search, itself excluded)."""
        check_sha(clip_sha256)
        self._k(k)
        with self.store() as store:
            info = store.clip_info(clip_sha256)
            if info is None:
                raise NotFoundError(f"clip {clip_sha256} is not in the store")
            labels = list(models) or info["models"]
            out = []
            for label in labels:
                space = self._space(store, label)
                keys, vector = store.audio_matrix(space.space_id, [clip_sha256])
                if not keys:
                    raise NotFoundError(f"clip {clip_sha256} has no {space.label} vector in the store")
                index = audio_index(store, space.space_id)
                hits = [(h, s) for h, s in index.search(vector, k + 1)[0] if h != clip_sha256][:k]
                out.append({
                    "clip_sha256": clip_sha256,
                    "model": space.label,
                    "similar_clips": [
                        {"clip_sha256": h, "source_path": store.clip_path(h), "score": s,
                         "audio_url": f"/api/clips/{h}/audio" if self._playable_file(store, h) else None}
                        for h, s in hits
                    ],
                })
        return out

    def descriptors(
        self, clip_sha256: str, models: Sequence[str], *, k: int = 5, vocabulary: str | None = None,
        template: str = BARE,
    ) -> tuple[list[dict[str, Any]], list[str]]:
        """The k nearest descriptors of a stored clip's stored vector, per model (describe's ranking)."""
        check_sha(clip_sha256)
        self._k(k)
        check_template(template)
        warnings: list[str] = []
        with self.store() as store:
            info = store.clip_info(clip_sha256)
            if info is None:
                raise NotFoundError(f"clip {clip_sha256} is not in the store")
            names = list(models) or [
                s.label for label in info["models"] for s in store.spaces(label) if s.has_text and s.label == label
            ]
            if not names:
                raise RequestError(400, f"clip {clip_sha256} has no vector in a text-capable space; pass model=")
            vocab_name, words = self._vocabulary(store, vocabulary)
            out = []
            for name in names:
                m = self.model(name)
                with self.running(m):
                    d = describe_clip(store, clip_sha256, m, words, vocab_name, k=k, template=template,
                                      warn=warnings.append)
                out.append({"clip_sha256": clip_sha256, **d.to_dict()})
        return out, warnings

    def space_map(
        self, model: str | None, *, vocabulary: str | None = None, template: str = BARE, upload: Upload | None = None,
    ) -> dict[str, Any]:
        """A 2-D PCA map of a space: its stored clips, the vocabulary's words, and the upload.

        See ``timbredb.server.projection`` for the projection. The clips are the whole space
        up to ``map_max_clips`` (beyond that the first ones by hash, an unbiased subset).

        Raises:
            RequestError: 422 when the upload decodes to something unusable.
        """
        check_template(template)
        m = self.model(model)
        with self.store() as store:
            rows = store.index_audio_rows(m.space_id)
            n_total = len(rows)
            hashes = [h for h, _ in rows[: self.options.map_max_clips]]
            keys, clips = store.audio_matrix(m.space_id, hashes) if hashes else ([], None)
            word_keys: list[str] = []
            words_matrix = None
            vocab_name = None
            if m.spec.has_text:
                vocab_name, words = self._vocabulary(store, vocabulary)
                with self.running(m):
                    index, descriptor_of, _ = vocabulary_index(store, m, words, vocab_name, template, warn=ignore)
                word_keys = [descriptor_of.get(p, p) for p in index.keys]
                # the index holds the L2-normalised text vectors, in the vocabulary's order
                words_matrix = index.index.reconstruct_n(0, len(index.keys))
            upload_vector = None
            if upload is not None:
                from timbredb.audio import decode

                try:
                    audio = decode(upload.path)
                    with self.running(m):
                        upload_vector = audio_vector(store, m, audio)
                except AudioError as exc:
                    raise RequestError(422, f"{upload.name}: {exc.problem.replace(str(upload.path), upload.name)}") from exc
            paths = {h: store.clip_path(h) for h in keys}
        if clips is None and words_matrix is None:
            raise RequestError(400, f"the store holds no {m.label} vectors to map")
        proj = fit_projection(clips, words_matrix)
        out: dict[str, Any] = {
            "model": m.label,
            "vocabulary": vocab_name,
            "template": template if m.spec.has_text else None,
            "n_clips_total": n_total,
            "explained_variance_ratio": proj.explained_variance_ratio,
            "clips": [],
            "words": [],
            "upload": None,
        }
        if clips is not None:
            xy = proj.audio(clips)
            out["clips"] = [{"clip_sha256": h, "source_path": paths[h], "x": float(p[0]), "y": float(p[1])}
                            for h, p in zip(keys, xy)]
        if words_matrix is not None:
            xy = proj.text(words_matrix)
            out["words"] = [{"descriptor": w, "x": float(p[0]), "y": float(p[1])} for w, p in zip(word_keys, xy)]
        if upload is not None and upload_vector is not None:
            p = proj.audio(upload_vector)[0]
            out["upload"] = {"file": upload.name, "x": float(p[0]), "y": float(p[1])}
        return out
