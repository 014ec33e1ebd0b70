"""`timbredb ingest --engine ray`: audio files embedded on a Ray cluster, merged like a Parquet import.

    manifest (path, size, mtime of what is not stored yet, in chunks of --batch-size files)
      → Ray Data: CPU tasks (map_batches)  decode, down-mix, content hash, per model resample + windows
      → actor pool (map_batches, ActorPoolStrategy; num_gpus=1 per actor when the cluster has GPUs)
                                           load each model once per actor, embed the prepared windows
      → the driver writes each chunk as a batch folder of interchange Parquet files in
        ``<store>.staging/`` (temporary name, then renamed), merges it with
        ``timbredb.interchange.import_directory`` in one transaction, and deletes it.

Both stages call the same functions as the local engine (``audio.decode``,
``EmbeddingModel.prepare`` and ``embed_prepared``), on the same chunks of files, so
the vectors are the local engine's bit for bit on CPU. A job killed at any point
loses nothing: merged chunks are in the store, written batch folders are merged
by the next run before it builds its manifest, and only files with neither are
computed again. Per-file problems travel as rows of the batch (``ingest_errors``)
and are recorded as the local engine records them.

On a laptop ``ray.init()`` starts a local cluster (stopped again at the end); with
``--ray-address`` the driver joins a running cluster, whose workers must be able
to read the audio paths and the data dir and have timbredb installed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from timbredb.audio import decode
from timbredb.errors import AudioError, InterchangeError, ModelUnavailableError, TimbreDBError, first_line
from timbredb.ingest.ingestor import FileClip, Ingestor
from timbredb.interchange.parquet import write_table_atomic
from timbredb.interchange.tables import BY_NAME

#: the staging folder beside a store
STAGING_SUFFIX = ".staging"
#: a file of the manifest: (path, size_bytes, mtime_ns, indexes of the models it lacks)
_Todo = tuple[str, int, int, list[int]]


@dataclass(frozen=True)
class ModelSet:
    """How workers rebuild the driver's models (the same names and options give the same spaces)."""

    names: tuple[str, ...]
    device: str = "auto"
    dtype: str = "float32"
    data_dir: str | None = None
    weights: str | None = None
    allow_unpinned: bool = False

    def load(self) -> list[Any]:
        from timbredb.models import load

        data_dir = Path(self.data_dir) if self.data_dir else None
        return [load(n, device=self.device, dtype=self.dtype, data_dir=data_dir, weights=self.weights,
                     allow_unpinned=self.allow_unpinned) for n in self.names]


_MODEL_CACHE: dict[ModelSet, list[Any]] = {}


def _models(spec: ModelSet) -> list[Any]:
    """The models of a set, built once per worker process (building reads data files; weights load lazily)."""
    if spec not in _MODEL_CACHE:
        _MODEL_CACHE[spec] = spec.load()
    return _MODEL_CACHE[spec]


# ---------------------------------------------------------------- the two stages (run on Ray workers)
def decode_stage(batch: dict[str, Any], models: ModelSet) -> dict[str, Any]:
    """CPU stage: each row is a chunk of files; decode them and prepare windows for the models each lacks."""
    mods = _models(models)
    payloads = []
    for paths, sizes, mtimes, needs in zip(batch["paths"], batch["sizes"], batch["mtimes"], batch["needs"]):
        files: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        for path, size, mtime, need in zip(paths, sizes, mtimes, needs):
            try:
                # a model that reads the source channels (ms-clap/paper) gets them, as in the local engine
                audio = decode(path, keep_channels=any(mods[int(i)].needs_channels for i in need))
            except AudioError as exc:
                errors.append({"path": str(path), "stage": "decode", "model_id": None, "error": str(exc)})
                continue
            prepared: dict[int, list[Any]] = {}
            for i in need:
                model = mods[int(i)]
                try:
                    prepared[int(i)] = model.prepare(audio)
                except AudioError as exc:
                    errors.append({"path": audio.source, "stage": "embed", "model_id": model.label, "error": str(exc)})
            files.append({
                "path": str(path), "size_bytes": int(size), "mtime_ns": int(mtime), "clip_sha256": audio.sha256,
                "source_path": audio.source, "duration_s": audio.duration_s, "channels": audio.channels,
                "sample_rate": audio.sample_rate, "n_frames": audio.n_frames, "prepared": prepared,
            })
        payloads.append(pickle.dumps({"files": files, "errors": errors}, protocol=5))
    return {"chunk": np.asarray(batch["chunk"]), "payload": np.asarray(payloads, dtype=object)}


class EmbedStage:
    """Actor stage: the models load once per actor; each row's prepared windows become vectors."""

    def __init__(self, models: ModelSet, batch_size: int) -> None:
        self.models = _models(models)
        self.batch_size = batch_size

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        out = [pickle.dumps(self._embed(pickle.loads(p)), protocol=5) for p in batch["payload"]]
        return {"chunk": np.asarray(batch["chunk"]), "payload": np.asarray(out, dtype=object)}

    def _embed(self, decoded: dict[str, Any]) -> dict[str, pa.Table]:
        files = decoded["files"]
        tables: dict[str, pa.Table] = {}
        if files:
            tables["clips"] = pa.Table.from_pylist(
                [{k: f[k] for k in ("clip_sha256", "source_path", "duration_s", "channels", "sample_rate", "n_frames")}
                 for f in files], schema=_schema("clips"))
            tables["clip_files"] = pa.Table.from_pylist(
                [{k: f[k] for k in ("path", "clip_sha256", "size_bytes", "mtime_ns")} for f in files],
                schema=_schema("clip_files"))
        spaces = []
        for i, model in enumerate(self.models):
            # the same content twice in one chunk is embedded once, as the local engine does
            seen: set[str] = set()
            todo = []
            for f in files:
                if i in f["prepared"] and f["clip_sha256"] not in seen:
                    seen.add(f["clip_sha256"])
                    todo.append(f)
            if not todo:
                continue
            vectors = model.embed_prepared([f["prepared"][i] for f in todo], self.batch_size)
            prov = {**model.provenance(), "engine": "ray", "ray": _ray_version()}
            hashes = [f["clip_sha256"] for f in todo]
            key = hashlib.sha256(
                "\n".join([model.space_id, json.dumps(prov, sort_keys=True), *hashes]).encode()
            ).hexdigest()[:32]
            n = len(todo)
            tables[f"audio_embeddings/space_id={model.space_id}"] = pa.table({
                "space_id": pa.array([model.space_id] * n, pa.string()),
                "clip_sha256": pa.array(hashes, pa.string()),
                "embedding": pa.FixedSizeListArray.from_arrays(
                    pa.array(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1), pa.float32()), model.dim),
                "batch_key": pa.array([key] * n, pa.string()),
                "batch_n_items": pa.array([n] * n, pa.int32()),
                "device": pa.array([model.device] * n, pa.string()),
                "dtype": pa.array([model.dtype] * n, pa.string()),
                "provenance": pa.array([json.dumps(prov, sort_keys=True)] * n, pa.string()),
            })
            rec = model.space_record()
            spaces.append({
                "space_id": rec.space_id, "label": rec.label, "model_id": rec.model_id, "family": rec.family,
                "checkpoint": rec.checkpoint, "checkpoint_sha256": model.checkpoint_sha256,
                "policy": json.dumps(rec.policy, sort_keys=True), "dim": rec.dim, "sample_rate": rec.sample_rate,
                "similarity": rec.similarity, "modalities": list(rec.modalities), "comparison": rec.comparison,
            })
        if spaces:
            tables["spaces"] = pa.Table.from_pylist(spaces, schema=_schema("spaces"))
        if decoded["errors"]:
            tables["ingest_errors"] = pa.Table.from_pylist(decoded["errors"], schema=_schema("ingest_errors"))
        return tables


def _schema(table: str) -> pa.Schema:
    spec = BY_NAME[table]
    return pa.schema([f for f in spec.schema
                      if f.name not in spec.optional or f.name in ("checkpoint_sha256", "model_id", "comparison")])


def _ray_version() -> str:
    import ray

    return str(ray.__version__)


# ---------------------------------------------------------------- the driver
@dataclass(frozen=True)
class RaySettings:
    """Where and how wide the Ray job runs.

    Attributes:
        address: a running cluster to join (``ray://`` or ``host:port``); None starts a local one.
        actors: embedding actors; None = one per GPU of the cluster, else one.
        num_cpus: CPUs of a local cluster (None: Ray's default, every CPU).
        object_store_memory: bytes of a local cluster's object store (None: Ray's default).
    """

    address: str | None = None
    actors: int | None = None
    num_cpus: int | None = None
    object_store_memory: int | None = None


class RayEngine:
    """The `--engine ray` file engine an Ingestor hands its files to (see module doc)."""

    def __init__(self, settings: RaySettings, models: ModelSet) -> None:
        self.settings = settings
        self.models = models
        self._started = False

    # ------------------------------------------------------------ cluster
    def _ray(self) -> Any:
        try:
            import ray
            import ray.data
        except ImportError as exc:
            raise ModelUnavailableError(
                "--engine ray needs Ray Data: pip install 'torch==2.13.0' 'timbredb[ray]'"
            ) from exc
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.ERROR,
                                      "log_to_driver": False}
            if self.settings.address is None:
                if self.settings.num_cpus is not None:
                    kwargs["num_cpus"] = self.settings.num_cpus
                if self.settings.object_store_memory is not None:
                    kwargs["object_store_memory"] = self.settings.object_store_memory
            try:
                ray.init(address=self.settings.address, **kwargs)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                where = f"the Ray cluster at {self.settings.address}" if self.settings.address else "a local Ray cluster"
                raise TimbreDBError(f"--engine ray: cannot start or join {where} ({first_line(exc)})") from exc
            self._started = True
        logging.getLogger("ray.data").setLevel(logging.ERROR)
        ctx = ray.data.DataContext.get_current()
        # progress is the driver's (stderr, per merged batch); Ray's own bars and banners would interleave
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
        ctx.enable_auto_log_stats = False
        # batches come back (and merge) in file order: the store's rows and batch ids are then the
        # local engine's, and progress counts files from the start; the decode and embed stages still overlap
        ctx.execution_options.preserve_order = True
        return ray

    def close(self) -> None:
        """Stop the local cluster this engine started (a joined or already running one is left alone)."""
        if self._started:
            import ray

            ray.shutdown()
            self._started = False

    # ------------------------------------------------------------ files
    def add_files(self, ingestor: Ingestor, files: Sequence[Path], desc: str = "audio") -> list[FileClip]:
        """What ``Ingestor.add_files`` does, on Ray. Returns the files stored as clips, in input order."""
        staging = ingestor.store.path.with_name(ingestor.store.path.name + STAGING_SUFFIX)
        self._merge_leftovers(ingestor, staging)
        known, todo = self._manifest(ingestor, files)
        stored: dict[str, str] = {str(f.path): f.clip_sha256 for f in known}
        if todo:
            chunks = [todo[i : i + ingestor.batch_size] for i in range(0, len(todo), ingestor.batch_size)]
            ingestor.warn(f"ray: {len(todo)} file(s) to embed in {len(chunks)} batch(es), {len(known)} already stored")
            bar = ingestor.progress(f"{desc} (ray)", len(todo))
            try:
                for chunk, tables in self._run(ingestor, chunks):
                    folder = self._write_batch(staging, chunks[chunk], tables)
                    stored.update(self._merge(ingestor, folder))
                    bar.update(len(chunks[chunk]))
            finally:
                bar.close()
        order = [str(Path(f).resolve()) for f in files]
        return [FileClip(Path(p), stored[p]) for p in dict.fromkeys(order) if p in stored]

    def _manifest(self, ingestor: Ingestor, files: Sequence[Path]) -> tuple[list[FileClip], list[_Todo]]:
        """Files already complete (as FileClips) and the rest as (path, size, mtime_ns, models it lacks)."""
        stats = []
        for f in files:
            path = Path(f).resolve()
            try:
                st = path.stat()
            except OSError as exc:
                ingestor.error(str(f), f"{f}: cannot stat ({exc.strerror})", "decode")
                continue
            stats.append((path, st.st_size, st.st_mtime_ns))
        known: list[FileClip] = []
        todo: list[_Todo] = []
        seen: set[str] = set()
        store = ingestor.store
        full = ingestor.all_models
        for start in range(0, len(stats), 4096):
            part = stats[start : start + 4096]
            recorded = store.lookup_files([(str(p), s, m) for p, s, m in part])
            hashes = list(dict.fromkeys(recorded.values()))
            # a semi-join on the key columns (Store.missing_audio's list_contains scans every row per key)
            # indexes into the full model set the workers rebuild (a dataset's scope may select fewer);
            # pairwise spaces have no per-clip vector
            lacking = {full.index(m): set(hashes) - set(store.present_vector_keys("audio", m.space_id, hashes))
                       for m in ingestor.models if not m.pairwise}
            for path, size, mtime in part:
                if str(path) in seen:
                    continue
                seen.add(str(path))
                sha = recorded.get(str(path))
                if sha is None:
                    todo.append((str(path), size, mtime, sorted(lacking)))
                    continue
                need = [i for i, miss in lacking.items() if sha in miss]
                if need:
                    todo.append((str(path), size, mtime, need))
                else:
                    ingestor.summary.clips_skipped += 1
                    known.append(FileClip(path, sha))
        return known, todo

    def _run(self, ingestor: Ingestor, chunks: list[list[_Todo]]) -> Iterator[tuple[int, dict[str, pa.Table]]]:
        ray = self._ray()
        rows = [
            {"chunk": i, "paths": [c[0] for c in chunk], "sizes": [c[1] for c in chunk], "mtimes": [c[2] for c in chunk],
             "needs": [c[3] for c in chunk]}
            for i, chunk in enumerate(chunks)
        ]
        gpus = int(ray.cluster_resources().get("GPU", 0))
        use_gpus = gpus > 0 and self.models.device in ("auto", "cuda")
        actors = self.settings.actors or (gpus if use_gpus else 1)
        # one block per chunk: a chunk is one decode task and one actor call, so batches form
        # exactly as the local engine's (the same files, in the same order, share a forward pass)
        ds = ray.data.from_items(rows, override_num_blocks=len(rows))
        ds = ds.map_batches(decode_stage, batch_size=1, batch_format="numpy", fn_kwargs={"models": self.models},
                            num_cpus=1)
        ds = ds.map_batches(
            EmbedStage, batch_size=1, batch_format="numpy",
            fn_constructor_kwargs={"models": self.models, "batch_size": ingestor.batch_size},
            compute=ray.data.ActorPoolStrategy(size=actors), num_gpus=1 if use_gpus else 0, num_cpus=0 if use_gpus else 1,
        )
        for row in ds.iter_rows():
            yield int(row["chunk"]), pickle.loads(row["payload"])

    @staticmethod
    def _batch_name(chunk: Sequence[_Todo]) -> str:
        key = "\n".join(f"{p}\x00{s}\x00{m}\x00{n}" for p, s, m, n in chunk)
        return "batch-" + hashlib.sha256(key.encode()).hexdigest()[:24]

    def _write_batch(self, staging: Path, chunk: Sequence[_Todo], tables: dict[str, pa.Table]) -> Path:
        """Write a chunk's tables as one batch folder: under a temporary name, then renamed into place."""
        final = staging / self._batch_name(chunk)
        tmp = staging / f".{final.name}.{os.getpid()}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        dims = {m.space_id: m.dim for m in _models(self.models)}
        for rel, tbl in tables.items():
            table = rel.split("/")[0]
            dim = dims[rel.split("=", 1)[1]] if table == "audio_embeddings" else None
            write_table_atomic(tmp / rel / "part-00000.parquet", BY_NAME[table], tbl, dim)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        return final

    def _merge(self, ingestor: Ingestor, folder: Path) -> dict[str, str]:
        """Merge one batch folder in one transaction, count it into the run's summary, delete it.

        Returns:
            path -> clip hash of the files the batch stored.
        """
        from timbredb.interchange import import_directory

        summary = import_directory(ingestor.store, folder, run_id=ingestor.run_id, on_conflict="keep",
                                   replace_files=True, one_transaction=True)
        s = ingestor.summary
        s.clips_added += summary.added.get("clips", 0)
        s.clips_skipped += summary.skipped.get("clips", 0)
        s.embeddings_added += summary.added.get("audio_embeddings", 0)
        for e in summary.ingest_errors:
            entry = {"path": e["path"], "error": e["error"]}
            if e.get("model_id"):
                entry["model"] = e["model_id"]
            s.errors.append(entry)
            message = e["error"]
            ingestor.warn(f"error: {message}" if message.startswith(e["path"]) else f"error: {e['path']}: {message}")
        files = _batch_files(folder)
        shutil.rmtree(folder)
        return files

    def _merge_leftovers(self, ingestor: Ingestor, staging: Path) -> None:
        """Merge the batch folders a killed run wrote but did not merge; drop half-written ones."""
        if not staging.is_dir():
            return
        done = 0
        for entry in sorted(staging.iterdir()):
            if entry.name.startswith("."):
                shutil.rmtree(entry, ignore_errors=True)  # a temporary folder: its chunk is recomputed
                continue
            if not entry.is_dir():
                continue
            try:
                self._merge(ingestor, entry)
            except InterchangeError as exc:
                ingestor.warn(f"{entry}: unreadable batch from an interrupted run, computed again ({exc})")
                shutil.rmtree(entry, ignore_errors=True)
                continue
            done += 1
        if done:
            ingestor.warn(f"ray: merged {done} batch folder(s) an interrupted run left in {staging}")


def _batch_files(folder: Path) -> dict[str, str]:
    import pyarrow.parquet as pq

    path = folder / "clip_files" / "part-00000.parquet"
    if not path.is_file():
        return {}
    tbl = pq.read_table(path, columns=["path", "clip_sha256"])
    return dict(zip(tbl.column("path").to_pylist(), tbl.column("clip_sha256").to_pylist()))
