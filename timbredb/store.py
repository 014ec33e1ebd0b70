"""The DuckDB store: the source of truth for clips, spaces, embeddings and results.

A Store wraps one DuckDB connection and owns every statement run on it: the SQL
lives in ``timbredb/statements/*.sql`` (the analyses' in ``queries/``), and no
other module touches the connection. Three ways to open one:

* read-only (``sql``, ``query``, ``report``, ``describe``, ``serve``): the file
  must be a timbredb store at the current migration; nothing is ever written.
* writable (``ingest``, ``import``): a missing or empty file becomes a new store
  (every migration in one transaction, so a kill leaves no half-made store);
  an existing store must be at the current migration.
* ``upgrade=True`` (``check``): also applies pending migrations to a store
  written by an older timbredb, each in its own transaction with its record.

A DuckDB file of another application is "not a timbredb store" in every mode.
Every write that must survive a kill happens inside ``transaction()``; rows are
keyed by content hashes and inserted with ``INSERT OR IGNORE``, so a re-run of
interrupted work adds no duplicates.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import duckdb

from timbredb import schema
from timbredb._lazy import lazy
from timbredb.errors import StoreError, first_line
from timbredb.queries import bind, statement
from timbredb.spaces import SpaceRecord, match

# NumPy, polars and pyarrow load on first use: `timbredb sql` opens a Store and needs none of them
if TYPE_CHECKING:
    import numpy as np
    import polars as pl
    import pyarrow as pa
    from numpy.typing import NDArray

    from timbredb.audio import ClipRecord
else:
    np = lazy("numpy", globals(), "np")
    pl = lazy("polars", globals(), "pl")
    pa = lazy("pyarrow", globals(), "pa")

#: the name a registered Arrow batch has inside statements
BATCH = "_timbredb_batch"
#: seconds a reader waits for a writer to pause ($TIMBREDB_LOCK_WAIT_S overrides)
READER_WAIT_S = 15.0
#: seconds a writer waits to reopen a store it released while a reader holds it
WRITER_WAIT_S = 120.0


def _vectors_to_arrow(matrix: NDArray[np.float32]) -> pa.Array:
    m = np.ascontiguousarray(matrix, dtype=np.float32)
    flat = pa.array(m.reshape(-1), type=pa.float32())
    return pa.FixedSizeListArray.from_arrays(flat, m.shape[1]).cast(pa.list_(pa.float32()))


def _arrow_to_matrix(column: pa.ChunkedArray, n: int) -> NDArray[np.float32]:
    if n == 0:
        return np.zeros((0, 0), dtype=np.float32)
    arr = column.combine_chunks()
    if isinstance(arr, pa.ListArray) and arr.type.value_type == pa.float32() and arr.null_count == 0 \
            and arr.values.null_count == 0:
        # the float32 values buffer itself, the array flatten().to_numpy() returns (zero-copy,
        # read-only) without their imports: flatten() imports pyarrow.compute and to_numpy()
        # pandas, together most of a `timbredb query` run's CPU time
        buffers = arr.buffers()  # list validity, offsets, values validity, values
        offsets = np.frombuffer(buffers[1], dtype=np.int32, count=len(arr) + 1, offset=arr.offset * 4)
        start, stop = int(offsets[0]), int(offsets[-1])
        flat = np.frombuffer(buffers[3], dtype=np.float32, count=stop - start, offset=(arr.values.offset + start) * 4)
    else:
        flat = arr.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    return flat.reshape(n, -1)


def _series_to_matrix(column: pl.Series, n: int) -> NDArray[np.float32]:
    """``_arrow_to_matrix`` of a polars list-of-float32 column (the read paths of the analyses,
    which then need no pyarrow)."""
    if n == 0:
        return np.zeros((0, 0), dtype=np.float32)
    if column.dtype == pl.List(pl.Float32) and column.null_count() == 0:
        flat = column.explode()  # an empty list explodes to a null
        if flat.null_count() == 0:
            return flat.to_numpy().reshape(n, -1)
    return _arrow_to_matrix(pa.chunked_array([column.to_arrow()]), n)


def lock_wait_s(default: float) -> float:
    """How long to wait for a store another process holds: $TIMBREDB_LOCK_WAIT_S, else ``default``."""
    try:
        return max(0.0, float(os.environ.get("TIMBREDB_LOCK_WAIT_S", default)))
    except ValueError:
        return default


def connect(
    path: str | Path, *, read_only: bool = False, config: dict[str, Any] | None = None, wait_s: float = 0.0
) -> duckdb.DuckDBPyConnection:
    """Open a DuckDB connection to a store file; DuckDB's errors become one-line StoreErrors naming it.

    Args:
        wait_s: while another process holds the file, retry this long before giving up
            (an ingest holds it only in short write windows).

    Raises:
        StoreError: the file is locked by another process, unreadable, or not a DuckDB database.
    """
    deadline = time.monotonic() + wait_s
    marker: Path | None = None
    try:
        while True:
            try:
                return duckdb.connect(str(path), read_only=read_only, config=config or {})
            except duckdb.IOException as exc:
                if "lock" not in first_line(exc).lower() or time.monotonic() >= deadline:
                    _refuse(path, exc)
                if marker is None and read_only:
                    marker = _announce_waiting(Path(path))
                time.sleep(0.02)
            except duckdb.Error as exc:
                raise StoreError(f"{path}: not a DuckDB store ({first_line(exc)})") from exc
    finally:
        if marker is not None:
            marker.unlink(missing_ok=True)


def waiting_dir(path: Path) -> Path:
    """Where readers waiting for a store say so (the system's temp folder: nothing is written near the store)."""
    import hashlib
    import tempfile

    key = hashlib.sha256(str(Path(path).resolve()).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / "timbredb-waiting" / key


def _announce_waiting(path: Path) -> Path | None:
    """Leave a marker naming this process, so the writer pauses at its next batch boundary."""
    try:
        folder = waiting_dir(path)
        folder.mkdir(parents=True, exist_ok=True)
        marker = folder / str(os.getpid())
        marker.write_text(str(os.getpid()))
        return marker
    except OSError:
        return None  # no temp folder: plain polling


def readers_waiting(path: Path) -> bool:
    """Whether a live process waits to read the store (stale markers of dead processes are removed)."""
    folder = waiting_dir(path)
    try:
        names = os.listdir(folder)
    except OSError:
        return False
    alive = False
    for name in names:
        try:
            os.kill(int(name), 0)
            alive = True
        except (ValueError, ProcessLookupError):
            (folder / name).unlink(missing_ok=True)
        except PermissionError:
            alive = True  # another user's live process
    return alive


def _refuse(path: str | Path, exc: duckdb.Error) -> NoReturn:
    msg = first_line(exc)
    if "lock" in msg.lower():
        raise StoreError(f"{path}: the store is in use by another process ({msg})") from exc
    if "not a valid duckdb database" in msg.lower():
        raise StoreError(f"{path}: not a DuckDB store ({msg})") from exc
    raise StoreError(f"{path}: cannot open the store ({msg})") from exc


def not_timbredb(path: Path) -> StoreError:
    return StoreError(
        f"{path}: not a timbredb store (a DuckDB file without timbredb's schema_migrations table); "
        "pass --db with a timbredb store or a new file name"
    )


def _behind(path: Path, applied: int, total: int) -> StoreError:
    return StoreError(
        f"{path}: the store is at migration {applied} of {total} (written by an older timbredb); "
        f"run `timbredb --db {path} check` to upgrade it"
    )


def verify_current(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Raise StoreError unless the connection's database is a timbredb store at the current migration."""
    if not schema.has_ledger(con):
        raise not_timbredb(path)
    schema.verify(con)
    applied, total = schema.position(con)
    if applied < total:
        raise _behind(path, applied, total)


class Store:
    """A timbredb DuckDB file.

    Args:
        path: the .duckdb file.
        read_only: open without write access; the store must exist and be current.
        upgrade: (writable only) apply pending migrations of an older store.
    """

    def __init__(self, path: str | Path, *, read_only: bool = False, upgrade: bool = False) -> None:
        self.path = Path(path)
        self.read_only = read_only
        self._depth = 0
        if read_only and not self.path.exists():
            raise StoreError(f"{self.path}: no timbredb store here; run `timbredb ingest` first or pass --db")
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._con: duckdb.DuckDBPyConnection | None = connect(
            self.path, read_only=read_only, wait_s=lock_wait_s(READER_WAIT_S if read_only else 0.0)
        )
        self._held_since = time.monotonic()
        try:
            if read_only:
                verify_current(self.con, self.path)
            elif schema.is_empty(self.con):
                schema.create(self.con)
            elif not schema.has_ledger(self.con):
                raise not_timbredb(self.path)
            elif upgrade:
                schema.migrate(self.con)
            else:
                verify_current(self.con, self.path)
        except BaseException:
            # a failed migration or check must not leave the file open (a writer holds its lock)
            self.con.close()
            raise

    # ------------------------------------------------------------ basics
    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        """The connection; a writer that released the file between batches opens it again here."""
        if self._con is None:
            self._con = connect(self.path, read_only=self.read_only, wait_s=lock_wait_s(WRITER_WAIT_S))
            self._held_since = time.monotonic()
        return self._con

    def release(self, held_at_least_s: float = 0.0) -> bool:
        """Close the connection so other processes can open the file (it reopens on the next statement).

        DuckDB lets one process at a time hold a store file, readers included; an ingest
        releases it while it computes, so `sql`, `query` and `describe` get in between its
        write windows. A no-op inside a transaction, when already released, and when the
        connection is younger than ``held_at_least_s`` (reconnecting costs a little) unless
        a reader is waiting for the file (see ``readers_waiting``).

        Returns:
            whether the file was released.
        """
        if self._con is None or self._depth or self.read_only:
            return False
        if time.monotonic() - self._held_since < held_at_least_s and not readers_waiting(self.path):
            return False
        self._con.close()
        self._con = None
        return True

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def index_dir(self) -> Path:
        """Folder beside the store that holds its FAISS index files."""
        return self.path.with_name(self.path.name + ".faiss")

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All statements inside commit together or not at all; a nested block joins the outer one."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self.con.execute("BEGIN TRANSACTION")
        self._depth = 1
        try:
            yield
        except BaseException:
            self._depth = 0
            self.con.execute("ROLLBACK")
            raise
        self._depth = 0
        self.con.execute("COMMIT")

    def frame(self, sql: str, params: dict[str, Any] | Sequence[Any] | None = None) -> pl.DataFrame:
        """Run one read statement's SQL and return a polars DataFrame (``queries.run`` uses this)."""
        import polars as pl

        rel = self.con.sql(sql, params=params) if params else self.con.sql(sql)
        if rel is None:
            return pl.DataFrame()
        # through the Arrow C stream interface: the same frame as rel.pl(), without importing pyarrow
        return pl.DataFrame(rel)

    def _run(self, stmt: str, /, **params: Any) -> list[tuple[Any, ...]]:
        """Execute a named statement; fetchall, since DuckDB refuses other work on an unfinished result."""
        q = statement(stmt)
        bound = bind(q, params)
        return self.con.execute(q.sql, bound if bound else None).fetchall()

    def _many(self, stmt: str, rows: Sequence[dict[str, Any]], /) -> None:
        if rows:
            q = statement(stmt)
            self.con.executemany(q.sql, [bind(q, r) for r in rows])

    def _value(self, stmt: str, /, **params: Any) -> Any:
        rows = self._run(stmt, **params)
        return rows[0][0] if rows else None

    def _arrow(self, stmt: str, /, **params: Any) -> pa.Table:
        q = statement(stmt)
        return self.con.sql(q.sql, params=bind(q, params) or None).to_arrow_table()

    def _keyed_vectors(self, stmt: str, /, **params: Any) -> tuple[list[str], NDArray[np.float32]]:
        """A statement's ``k`` and ``embedding`` columns as (keys, (n, dim) float32 matrix)."""
        q = statement(stmt)
        df = pl.DataFrame(self.con.sql(q.sql, params=bind(q, params) or None))
        keys = df["k"].to_list()
        return keys, _series_to_matrix(df["embedding"], len(keys))

    @contextmanager
    def _registered(self, tbl: pa.Table | pl.DataFrame) -> Iterator[None]:
        """Expose an Arrow table (or a polars frame) to the statements under the name ``_timbredb_batch``."""
        self.con.register(BATCH, tbl)
        try:
            yield
        except BaseException:
            # inside a transaction a failed statement aborts it, and unregister would then fail too,
            # hiding the error that matters; a name left registered is replaced by the next register
            with suppress(duckdb.Error):
                self.con.unregister(BATCH)
            raise
        self.con.unregister(BATCH)

    def table_exists(self, name: str) -> bool:
        return bool(self._value("table_exists", name=name))

    def migration_status(self) -> list[schema.MigrationStatus]:
        """Applied/pending/modified state of every migration (writes nothing)."""
        return schema.status(self.con)

    def count(self, name: str) -> int:
        """The single count a named statement returns (integrity checks)."""
        return int(self._value(name) or 0)

    # ------------------------------------------------------------ runs and errors
    def start_run(self, command: str) -> int:
        from timbredb import __version__

        return int(self._value("run_start", command=command, version=__version__))

    def finish_run(self, run_id: int, summary: dict[str, Any]) -> None:
        self._run("run_finish", run_id=run_id, summary=json.dumps(summary))

    def record_error(
        self, run_id: int | None, path: str, stage: str, error: str, model_id: str | None = None
    ) -> None:
        self._run("error_record", run_id=run_id, path=path, stage=stage, model_id=model_id, error=error)

    # ------------------------------------------------------------ clips
    def lookup_files(self, files: Sequence[tuple[str, int, int]]) -> dict[str, str]:
        """path -> clip hash, for the (path, size, mtime_ns) triples recorded exactly so."""
        if not files:
            return {}
        tbl = pa.table(
            {
                "path": pa.array([f[0] for f in files], pa.string()),
                "size_bytes": pa.array([f[1] for f in files], pa.int64()),
                "mtime_ns": pa.array([f[2] for f in files], pa.int64()),
            }
        )
        with self._registered(tbl):
            return dict(self._run("files_lookup"))

    def add_clips(self, clips: Sequence[ClipRecord], run_id: int | None = None) -> int:
        """Insert clips whose content is not stored yet. Returns how many were added."""
        if not clips:
            return 0
        tbl = pa.table(
            {
                "clip_sha256": pa.array([a.sha256 for a in clips], pa.string()),
                "source_path": pa.array([a.source for a in clips], pa.string()),
                "duration_s": pa.array([a.duration_s for a in clips], pa.float64()),
                "channels": pa.array([a.channels for a in clips], pa.int32()),
                "sample_rate": pa.array([a.sample_rate for a in clips], pa.int32()),
                "n_frames": pa.array([a.n_frames for a in clips], pa.int64()),
                "run_id": pa.array([run_id] * len(clips), pa.int64()),
            }
        )
        with self._registered(tbl):
            return int(self._run("clips_add")[0][0])

    def add_clip_files(self, files: Sequence[tuple[str, str, int, int]]) -> None:
        """Record (path, clip hash, size, mtime_ns) rows; a path seen before is updated."""
        if not files:
            return
        tbl = pa.table(
            {
                "path": pa.array([f[0] for f in files], pa.string()),
                "clip_sha256": pa.array([f[1] for f in files], pa.string()),
                "size_bytes": pa.array([f[2] for f in files], pa.int64()),
                "mtime_ns": pa.array([f[3] for f in files], pa.int64()),
            }
        )
        with self._registered(tbl):
            self._run("clip_files_upsert")

    def stored_clips(self, clip_hashes: Sequence[str]) -> set[str]:
        """The hashes among ``clip_hashes`` that are stored as clips."""
        if not clip_hashes:
            return set()
        return {r[0] for r in self._run("clips_stored", hashes=list(clip_hashes))}

    def clip_path(self, clip_sha256: str) -> str | None:
        """A file that currently holds the clip (for re-decoding), else its first source."""
        path = self._value("clip_path", h=clip_sha256)
        return None if path is None else str(path)

    def clip_info(self, clip_sha256: str) -> dict[str, Any] | None:
        """A stored clip's record plus the labels of the spaces holding its vector; None if not stored."""
        rows = self._run("clip_info", h=clip_sha256)
        if not rows:
            return None
        keys = ("clip_sha256", "source_path", "duration_s", "channels", "sample_rate", "n_frames")
        out = dict(zip(keys, rows[0]))
        out["models"] = [r[0] for r in self._run("clip_space_labels", h=clip_sha256)]
        return out

    def clip_files(self, clip_sha256: str) -> list[tuple[str, int, int]]:
        """(path, size_bytes, mtime_ns) of every file recorded as holding the clip, the last seen first."""
        return [(str(r[0]), int(r[1]), int(r[2])) for r in self._run("clip_files_of", h=clip_sha256)]

    # ------------------------------------------------------------ spaces
    def ensure_space(self, rec: SpaceRecord) -> None:
        self._run(
            "space_ensure", space_id=rec.space_id, label=rec.label, model_id=rec.model_id, family=rec.family,
            checkpoint=rec.checkpoint, checkpoint_sha256=rec.checkpoint_sha256,
            policy=json.dumps(rec.policy, sort_keys=True), dim=rec.dim, sample_rate=rec.sample_rate,
            similarity=rec.similarity, modalities=list(rec.modalities), comparison=rec.comparison,
        )

    def set_checkpoint_sha256(self, space_id: str, sha256: str | None) -> None:
        """Fill in a space's checkpoint hash once it is known (after the weights load)."""
        self._run("space_set_checkpoint_sha256", space_id=space_id, sha=sha256)

    def spaces(self, model: str | None = None) -> list[SpaceRecord]:
        """Stored spaces, or those a ``--model`` value names (see ``timbredb.spaces.match``)."""
        rows = [
            SpaceRecord(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6]), r[7], r[8], r[9], tuple(r[10]), r[11])
            for r in self._run("spaces_all")
        ]
        return match(rows, model)

    def add_batch(
        self,
        space_id: str,
        modality: str,
        n_items: int,
        device: str,
        dtype: str,
        provenance: dict[str, Any],
        run_id: int | None,
    ) -> int:
        return int(
            self._value(
                "batch_add", space_id=space_id, run_id=run_id, modality=modality, n_items=n_items, device=device,
                dtype=dtype, provenance=json.dumps(provenance, sort_keys=True),
            )
        )

    # ------------------------------------------------------------ embeddings
    def missing_audio(self, space_id: str, clip_hashes: Sequence[str]) -> list[str]:
        """The hashes (in input order, without repeats) with no audio embedding in the space."""
        if not clip_hashes:
            return []
        have = {r[0] for r in self._run("audio_present", space_id=space_id, keys=list(clip_hashes))}
        return [k for k in dict.fromkeys(clip_hashes) if k not in have]

    def missing_prompts(self, space_id: str, prompts: Sequence[str]) -> list[str]:
        """The prompts (in input order, without repeats) with no text embedding in the space."""
        if not prompts:
            return []
        have = {r[0] for r in self._run("text_present", space_id=space_id, keys=list(prompts))}
        return [k for k in dict.fromkeys(prompts) if k not in have]

    def insert_audio_embeddings(
        self, space_id: str, clip_hashes: Sequence[str], vectors: NDArray[np.float32], batch_id: int
    ) -> int:
        """Insert vectors (rows aligned with ``clip_hashes``); existing keys are left alone."""
        return self._insert_vectors("audio_insert", "clip_sha256", space_id, clip_hashes, vectors, batch_id)

    def insert_text_embeddings(
        self, space_id: str, prompts: Sequence[str], vectors: NDArray[np.float32], batch_id: int
    ) -> int:
        return self._insert_vectors("text_insert", "prompt", space_id, prompts, vectors, batch_id)

    def _insert_vectors(
        self,
        name: str,
        key: str,
        space_id: str,
        keys: Sequence[str],
        vectors: NDArray[np.float32],
        batch_id: int,
    ) -> int:
        if len(keys) != vectors.shape[0]:
            raise StoreError(f"{len(keys)} keys but {vectors.shape[0]} vectors")
        if not keys:
            return 0
        tbl = pa.table(
            {
                "space_id": pa.array([space_id] * len(keys), pa.string()),
                key: pa.array(list(keys), pa.string()),
                "embedding": _vectors_to_arrow(vectors),
                "batch_id": pa.array([batch_id] * len(keys), pa.int64()),
            }
        )
        with self._registered(tbl):
            return int(self._run(name)[0][0])

    def audio_matrix(
        self, space_id: str, clip_hashes: Sequence[str] | None = None
    ) -> tuple[list[str], NDArray[np.float32]]:
        """Audio vectors of a space, ordered by hash (or in the order given)."""
        if clip_hashes is None:
            return self._keyed_vectors("audio_vectors_all", space_id=space_id)
        return self._keyed_vectors("audio_vectors_of", space_id=space_id, keys=list(clip_hashes))

    def text_matrix(self, space_id: str, prompts: Sequence[str]) -> tuple[list[str], NDArray[np.float32]]:
        """Text vectors of a space for the given prompts (those stored), in the order given."""
        return self._keyed_vectors("text_vectors_of", space_id=space_id, keys=list(prompts))

    def count_audio(self, space_id: str) -> int:
        return int(self._value("audio_count", space_id=space_id))

    # ------------------------------------------------------------ pairwise spaces
    @staticmethod
    def _pair_table(pairs: Sequence[tuple[str, str]]) -> pl.DataFrame:
        # a polars frame, not pa.array/pa.table: those import pandas (half a second of a `query exp3`)
        canon = [(a, b) if a <= b else (b, a) for a, b in pairs]
        return pl.DataFrame({"clip_sha256_a": [p[0] for p in canon], "clip_sha256_b": [p[1] for p in canon]},
                            schema={"clip_sha256_a": pl.String, "clip_sha256_b": pl.String})

    def missing_pairs(self, space_id: str, pairs: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
        """The pairs (as (smaller, larger) hash, in input order, without repeats) a pairwise space lacks."""
        if not pairs:
            return []
        with self._registered(self._pair_table(pairs)):
            have = {(str(a), str(b)) for a, b in self._run("pairs_present", space_id=space_id)}
        canon = [(a, b) if a <= b else (b, a) for a, b in pairs]
        return [p for p in dict.fromkeys(canon) if p not in have]

    def insert_pair_distances(
        self, space_id: str, rows: Sequence[tuple[str, str, float, float, int]], batch_id: int
    ) -> int:
        """Insert (clip a, clip b, cosine distance, L2 distance, padded samples) rows; stored pairs are kept."""
        if not rows:
            return 0
        canon = [(a, b, c, d, n) if a <= b else (b, a, c, d, n) for a, b, c, d, n in rows]
        tbl = pa.table({
            "space_id": pa.array([space_id] * len(canon), pa.string()),
            "clip_sha256_a": pa.array([r[0] for r in canon], pa.string()),
            "clip_sha256_b": pa.array([r[1] for r in canon], pa.string()),
            "cosine_distance": pa.array([float(r[2]) for r in canon], pa.float64()),
            "l2_distance": pa.array([float(r[3]) for r in canon], pa.float64()),
            "n_samples": pa.array([int(r[4]) for r in canon], pa.int64()),
            "batch_id": pa.array([batch_id] * len(canon), pa.int64()),
        })
        with self._registered(tbl):
            return int(self._run("pairs_insert")[0][0])

    def pair_distances(
        self, space_id: str, pairs: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], tuple[float, float]]:
        """(smaller hash, larger hash) -> (cosine distance, L2 distance) of the stored pairs among ``pairs``."""
        if not pairs:
            return {}
        with self._registered(self._pair_table(pairs)):
            return {(str(a), str(b)): (float(c), float(d)) for a, b, c, d in self._run("pairs_of", space_id=space_id)}

    def pair_clips(self, space_id: str) -> list[str]:
        """Every clip that takes part in a stored pair of a pairwise space, by hash."""
        return [str(r[0]) for r in self._run("pairs_clips", space_id=space_id)]

    def count_pairs(self, space_id: str | None = None) -> int:
        return int(self._value("pairs_count", space_id=space_id))

    # ------------------------------------------------------------ vocabularies and prompts
    def add_vocabulary(self, name: str, words: Sequence[str]) -> None:
        """Store a named word list (replacing an older list of that name)."""
        with self.transaction():
            self._run("vocabulary_delete", name=name)
            self._many(
                "vocabulary_insert",
                [{"name": name, "word": w, "position": i} for i, w in enumerate(dict.fromkeys(words))],
            )

    def vocabulary(self, name: str) -> list[str]:
        return [r[0] for r in self._run("vocabulary_words", name=name)]

    def vocabularies(self) -> dict[str, list[str]]:
        """Every stored word list: name -> words in their stored order."""
        out: dict[str, list[str]] = {}
        for name, word in self._run("vocabularies_all"):
            out.setdefault(name, []).append(word)
        return out

    def add_prompts(self, pairs: Sequence[tuple[str, str, str]]) -> None:
        """Record (descriptor, template, prompt) triples."""
        self._many("prompt_add", [{"descriptor": d, "template": t, "prompt": p} for d, t, p in pairs])

    def all_prompts(self) -> list[str]:
        return [r[0] for r in self._run("prompts_all")]

    # ------------------------------------------------------------ FAISS index records
    def index_text_rows(self, space_id: str, prompts: Sequence[str]) -> list[tuple[str, int]]:
        """(prompt, batch_id) of the stored text vectors among ``prompts``, in their order."""
        return [(r[0], int(r[1])) for r in self._run("index_text_rows", space_id=space_id, prompts=list(prompts))]

    def index_audio_rows(self, space_id: str) -> list[tuple[str, int]]:
        """(clip hash, batch_id) of every audio vector of a space, by hash."""
        return [(r[0], int(r[1])) for r in self._run("index_audio_rows", space_id=space_id)]

    def index_record(self, name: str) -> tuple[str, int, str, str | None, str | None] | None:
        """(path, n_rows, store_state, file_sha256, keys_sha256) an index was recorded with, or None."""
        rows = self._run("index_record", name=name)
        if not rows:
            return None
        path, n_rows, state, file_sha, keys_sha = rows[0]
        return str(path), int(n_rows), str(state), file_sha, keys_sha

    def index_records(self) -> list[tuple[str, str, str, str]]:
        """(index_name, space_id, kind, path) of every recorded index."""
        return [(str(r[0]), str(r[1]), str(r[2]), str(r[3])) for r in self._run("index_records_all")]

    def record_index(
        self, name: str, space_id: str, kind: str, path: str, n_rows: int, state: str,
        file_sha256: str | None = None, keys_sha256: str | None = None,
    ) -> None:
        with self.transaction():
            self._run("index_upsert", name=name, space_id=space_id, kind=kind, path=path, n_rows=n_rows, state=state,
                      file_sha256=file_sha256, keys_sha256=keys_sha256)

    def forget_index(self, name: str) -> None:
        self._run("index_delete", name=name)

    # ------------------------------------------------------------ rated datasets (exp1)
    def replace_rated_dataset(
        self,
        dataset: str,
        instruments: Sequence[tuple[str, str, str, str]],
        ratings: Sequence[tuple[str, str, str, float]],
        run_id: int | None,
    ) -> None:
        """Replace a rated dataset's stimuli and ratings in one transaction.

        Args:
            instruments: (instrument, split, clip_sha256, source) rows.
            ratings: (instrument, descriptor, column_name, rating) rows.
        """
        with self.transaction():
            self._run("rated_delete_ratings", dataset=dataset)
            self._run("rated_delete_instruments", dataset=dataset)
            self._many("rated_insert_instrument", [
                {"dataset": dataset, "instrument": i, "split": s, "clip_sha256": h, "source": src, "run_id": run_id}
                for i, s, h, src in instruments
            ])
            self._many("rated_insert_rating", [
                {"dataset": dataset, "instrument": i, "descriptor": d, "column_name": c, "rating": v}
                for i, d, c, v in ratings
            ])

    def count_ratings(self, dataset: str) -> int:
        return int(self._value("ratings_count", dataset=dataset))

    # ------------------------------------------------------------ listeners, SDs, imported exp1 (issue 11)
    def replace_listener_data(
        self,
        dataset: str,
        listeners: Sequence[tuple[str, str, str, float, str]] | None,
        sds: Sequence[tuple[str, str, float, int, str]] | None,
    ) -> None:
        """Replace a rated dataset's per-listener ratings and/or SDs in one transaction.

        Args:
            listeners: (instrument, descriptor, listener, rating, source) rows; None leaves them as stored.
            sds: (instrument, descriptor, sd, n_listeners, source) rows; None leaves them as stored.
        """
        with self.transaction():
            self._write_listener_data(dataset, listeners, sds)

    def _write_listener_data(
        self,
        dataset: str,
        listeners: Sequence[tuple[str, str, str, float, str]] | None,
        sds: Sequence[tuple[str, str, float, int, str]] | None,
    ) -> None:
        if listeners is not None:
            self._run("listener_delete", dataset=dataset)
            self._many("listener_insert", [
                {"dataset": dataset, "instrument": i, "descriptor": d, "listener": li, "rating": v, "source": src}
                for i, d, li, v, src in listeners
            ])
        if sds is not None:
            self._run("sd_delete", dataset=dataset)
            self._many("sd_insert", [
                {"dataset": dataset, "instrument": i, "descriptor": d, "sd": sd, "n_listeners": n, "source": src}
                for i, d, sd, n, src in sds
            ])

    def replace_rated_with_listeners(
        self,
        dataset: str,
        instruments: Sequence[tuple[str, str, str, str]],
        ratings: Sequence[tuple[str, str, str, float]],
        listeners: Sequence[tuple[str, str, str, float, str]],
        sds: Sequence[tuple[str, str, float, int, str]],
        run_id: int | None,
    ) -> None:
        """Replace everything stored of a rated dataset (stimuli, means, listeners, SDs) in one transaction."""
        with self.transaction():
            self._run("rated_delete_ratings", dataset=dataset)
            self._run("rated_delete_instruments", dataset=dataset)
            self._many("rated_insert_instrument", [
                {"dataset": dataset, "instrument": i, "split": s, "clip_sha256": h, "source": src, "run_id": run_id}
                for i, s, h, src in instruments
            ])
            self._many("rated_insert_rating", [
                {"dataset": dataset, "instrument": i, "descriptor": d, "column_name": c, "rating": v}
                for i, d, c, v in ratings
            ])
            self._write_listener_data(dataset, listeners, sds)

    def listener_counts(self, dataset: str) -> tuple[int, int]:
        """(per-listener ratings, per-stimulus SDs) stored for a rated dataset."""
        rows = self._run("listener_count", dataset=dataset)
        return int(rows[0][0]), int(rows[0][1])

    def rated_dataset_names(self) -> list[str]:
        """Every rated dataset with stimuli, listener ratings or SDs."""
        return [str(r[0]) for r in self._run("rated_dataset_names")]

    def replace_imported_exp1(self, dataset: str, rows_by_model: Mapping[str, Sequence[dict[str, Any]]]) -> dict[str, int]:
        """Replace the exp1 rows filed under each model name, all in one transaction.

        Returns:
            model -> how many rows an earlier import under that name held.
        """
        replaced: dict[str, int] = {}
        with self.transaction():
            for model, rows in rows_by_model.items():
                replaced[model] = int(self._value("exp1_imported_count", dataset=dataset, model=model))
                self._run("exp1_imported_delete", dataset=dataset, model=model)
                self._many("exp1_imported_insert", [{"dataset": dataset, "model": model, **r} for r in rows])
        return replaced

    def imported_exp1_models(self, dataset: str | None = None) -> list[str]:
        return [str(r[0]) for r in self._run("exp1_imported_models", dataset=dataset)]

    # ------------------------------------------------------------ dissimilarity studies (exp3)
    def replace_dissimilarity_study(
        self,
        dataset: str,
        collection: str,
        matrix_path: str,
        matrix_sha256: str,
        stimuli: Sequence[tuple[str, str]],
        ratings: Sequence[tuple[int, int, float]],
        run_id: int | None,
    ) -> None:
        """Replace a study's record, stimuli (file, clip hash; matrix order) and ratings (i, j, value)."""
        with self.transaction():
            for name in ("dissim_delete_ratings", "dissim_delete_stimuli", "dissim_delete_dataset"):
                self._run(name, dataset=dataset)
            self._run(
                "dissim_insert_dataset", dataset=dataset, collection=collection, n_stimuli=len(stimuli),
                matrix_path=matrix_path, matrix_sha256=matrix_sha256, run_id=run_id,
            )
            self._many("dissim_insert_stimulus", [
                {"dataset": dataset, "stimulus_index": k, "file": f, "clip_sha256": h}
                for k, (f, h) in enumerate(stimuli)
            ])
            self._many("dissim_insert_rating", [
                {"dataset": dataset, "i": i, "j": j, "dissimilarity": v} for i, j, v in ratings
            ])

    # ------------------------------------------------------------ effect variants (exp2)
    def exp2_source_labels(self) -> dict[str, str]:
        """source hash -> label of every stored exp2 source."""
        return dict(self._run("exp2_source_labels"))

    def add_exp2_source(
        self, sha256: str, label: str, kind: str, origin: str, sample_rate: int, channels: int, duration_s: float,
        renderer_version: str, dataset: str = "audealize",
    ) -> None:
        """Record a source (kept if present) and mark its variants of this renderer and dataset as used, together."""
        with self.transaction():
            self._run(
                "exp2_source_add", sha=sha256, label=label, kind=kind, origin=origin, sample_rate=sample_rate,
                channels=channels, duration_s=duration_s,
            )
            self._run("exp2_variants_touch", sha=sha256, version=renderer_version, dataset=dataset)

    def variants_of(
        self, source_sha256: str, renderer_version: str, dataset: str = "audealize"
    ) -> dict[tuple[str, str, float], str]:
        """(effect, descriptor, strength rounded to 1e-6) -> clip hash of a source's stored variants."""
        return {
            (e, d, round(float(s), 6)): h
            for e, d, s, h in self._run("exp2_variants_of", sha=source_sha256, version=renderer_version,
                                        dataset=dataset)
        }

    def exp2_effects(self) -> list[tuple[str, str, int]]:
        """(dataset, effect, rows) of the stored variants (originals excluded) and imported rows."""
        return [(str(d), str(e), int(n)) for d, e, n in self._run("exp2_effects_stored")]

    def upsert_variants(self, rows: Sequence[dict[str, Any]]) -> None:
        """Record rendered variants (keys of ``exp2_variant_upsert``) in one transaction."""
        if rows:
            with self.transaction():
                self._many("exp2_variant_upsert", rows)

    def count_variants(self, renderer: str | None = None) -> int:
        return int(self._value("exp2_variants_count", renderer=renderer))

    def renderer_versions(self) -> list[str]:
        return [r[0] for r in self._run("exp2_renderer_versions")]

    def imported_exp2_models(self) -> list[str]:
        return [r[0] for r in self._run("exp2_imported_models")]

    def count_imported_exp2(self, model: str | None = None) -> int:
        return int(self._value("exp2_imported_count", model=model))

    def replace_imported_exp2(self, model: str, rows: pa.Table) -> int:
        """Replace the exp2 rows filed under ``model`` by ``rows`` (columns of exp2_imported), in bulk.

        Returns:
            how many rows the earlier import under this name had.
        """
        with self.transaction():
            replaced = self.count_imported_exp2(model)
            self._run("exp2_imported_delete", model=model)
            with self._registered(rows):
                self._run("exp2_imported_insert")
        return replaced

    # ------------------------------------------------------------ what the report shows
    def vector_counts(self) -> dict[tuple[str, str], int]:
        """(space_id, modality) -> number of vectors."""
        return {(r[0], r[1]): int(r[2]) for r in self._run("report_vector_counts")}

    def batch_provenance(self) -> list[tuple[str, str, str, Any]]:
        """(space_id, device, dtype, provenance JSON) of every batch, oldest first."""
        return [(str(r[0]), str(r[1]), str(r[2]), r[3]) for r in self._run("report_batches")]

    def runs(self) -> list[tuple[Any, ...]]:
        """(run_id, command, version, started_at, finished_at, summary) of every run."""
        return self._run("report_runs")

    def table_counts(self) -> dict[str, int]:
        """Rows per base table."""
        out = {}
        for (name,) in self._run("report_tables"):
            # identifiers come from the catalogue, not from the user; quoted anyway
            quoted = '"' + str(name).replace('"', '""') + '"'
            out[str(name)] = int(self.con.execute(f"SELECT count(*) FROM {quoted}").fetchall()[0][0])
        return out

    # ------------------------------------------------------------ fine-tuned spaces (issue 15)
    def _frame(self, stmt: str, /, **params: Any) -> pl.DataFrame:
        q = statement(stmt)
        return self.frame(q.sql, bind(q, params) or None)

    def finetune_points(
        self, space_id: str, effects: Sequence[str], template: str, renderer: str | None = None
    ) -> pl.DataFrame:
        """The exp2 variants a fine-tuning run can learn from in one space (columns of ``finetune_points``)."""
        return self._frame("finetune_points", space_id=space_id, effects=list(effects), template=template,
                           renderer=renderer)

    def text_matrix_all(self, space_id: str) -> tuple[list[str], NDArray[np.float32]]:
        """Every text vector of a space, ordered by prompt."""
        tbl = self._arrow("text_vectors_all", space_id=space_id)
        keys = tbl.column("k").to_pylist()
        return keys, _arrow_to_matrix(tbl.column("embedding"), len(keys))

    def exp2_sources(self) -> list[dict[str, Any]]:
        """Every stored exp2 source: source_sha256, label, kind, origin, sample_rate, channels, duration_s."""
        keys = ("source_sha256", "label", "kind", "origin", "sample_rate", "channels", "duration_s")
        return [dict(zip(keys, r)) for r in self._run("exp2_sources_all")]

    def variant_rows(self, clip_hashes: Sequence[str]) -> dict[str, dict[str, Any]]:
        """clip hash -> how it was rendered (source_sha256, dataset, effect, descriptor, strength,
        renderer_version, params as JSON text), for the clips among ``clip_hashes`` that are exp2 variants."""
        if not clip_hashes:
            return {}
        keys = ("clip_sha256", "source_sha256", "dataset", "effect", "descriptor", "strength", "renderer_version",
                "params")
        return {str(r[0]): dict(zip(keys, r)) for r in self._run("clip_variant_rows", hashes=list(clip_hashes))}

    def finetune(self, key: str) -> dict[str, Any] | None:
        """The fine-tuning record (weights included) of the space whose id or label is ``key``; None if none."""
        rows = self._run("finetune_of", key=key)
        if not rows:
            return None
        keys = ("space_id", "label", "base_space_id", "base_label", "method", "seed", "config", "split",
                "train_data_sha256", "weights", "weights_sha256", "history", "seconds", "run_id", "created_at")
        out = dict(zip(keys, rows[0]))
        for k in ("config", "split", "history"):
            out[k] = json.loads(out[k])
        out["weights"] = bytes(out["weights"])
        return out

    def finetunes(self) -> list[dict[str, Any]]:
        """Every fine-tuning record without its weights, oldest first."""
        keys = ("space_id", "label", "base_space_id", "base_label", "method", "seed", "train_data_sha256",
                "weights_sha256", "seconds", "created_at")
        return [dict(zip(keys, r)) for r in self._run("finetunes_all")]

    def add_tuned_space(
        self,
        rec: SpaceRecord,
        record: dict[str, Any],
        audio: tuple[Sequence[str], NDArray[np.float32]],
        text: tuple[Sequence[str], NDArray[np.float32]],
        device: str,
        dtype: str,
        provenance: dict[str, Any],
        command: str,
    ) -> dict[str, int]:
        """Store a fine-tuned space whole: its run, space row, record (weights included) and every
        vector, in one transaction, so a kill or an error leaves nothing of it.

        Args:
            record: the keys of ``finetune_insert`` except run_id (config, split and history as
                JSON-able objects, weights as bytes).
            audio, text: (keys, vectors) rows of the new space.
            provenance: the batches' provenance (what made the vectors).

        Returns:
            {"run_id", "audio_vectors", "text_vectors"}.
        """
        with self.transaction():
            run_id = self.start_run(command)
            self.ensure_space(rec)
            self._run("finetune_insert", **{**record, "config": json.dumps(record["config"], sort_keys=True),
                                            "split": json.dumps(record["split"], sort_keys=True),
                                            "history": json.dumps(record["history"]), "run_id": run_id})
            counts = {"run_id": run_id, "audio_vectors": 0, "text_vectors": 0}
            for modality, (keys, vectors) in (("audio", audio), ("text", text)):
                if not len(keys):
                    continue
                batch = self.add_batch(rec.space_id, modality, len(keys), device, dtype, provenance, run_id)
                insert = self.insert_audio_embeddings if modality == "audio" else self.insert_text_embeddings
                counts[f"{modality}_vectors"] = insert(rec.space_id, keys, vectors, batch)
            self.finish_run(run_id, {"finetune": rec.label, **{k: v for k, v in counts.items() if k != "run_id"}})
        return counts

    # ------------------------------------------------------------ Parquet interchange (timbredb.interchange)
    #: interchange table -> the statement that exports it
    _EXPORTS: dict[str, str] = {
        "spaces": "export_spaces", "finetunes": "export_finetunes", "clips": "export_clips", "clip_files": "export_clip_files",
        "prompts": "export_prompts", "vocabularies": "export_vocabularies",
        "audio_embeddings": "export_audio_embeddings", "text_embeddings": "export_text_embeddings",
        "instruments": "export_instruments", "ratings": "export_ratings",
        "dissimilarity_datasets": "export_dissimilarity_datasets",
        "dissimilarity_stimuli": "export_dissimilarity_stimuli",
        "dissimilarity_ratings": "export_dissimilarity_ratings",
        "exp2_sources": "export_exp2_sources", "variants": "export_variants", "exp2_imported": "export_exp2_imported",
        "pair_distances": "export_pair_distances", "listener_ratings": "export_listener_ratings",
        "rating_sds": "export_rating_sds", "exp1_imported": "export_exp1_imported",
    }
    #: interchange table -> (conflict check, reference check, merge) statements; None where there is none
    _MERGES: dict[str, tuple[str | None, str | None, str]] = {
        "spaces": ("import_spaces_conflicts", None, "import_spaces_merge"),
        "finetunes": ("import_finetunes_conflicts", "import_finetunes_orphans", "import_finetunes_merge"),
        "clips": ("import_clips_conflicts", None, "import_clips_merge"),
        "clip_files": (None, "import_clip_files_orphans", "import_clip_files_merge"),
        "prompts": ("import_prompts_conflicts", None, "import_prompts_merge"),
        "vocabularies": ("import_vocabularies_conflicts", None, "import_vocabularies_merge"),
        "instruments": ("import_instruments_conflicts", "import_instruments_orphans", "import_instruments_merge"),
        "ratings": ("import_ratings_conflicts", "import_ratings_orphans", "import_ratings_merge"),
        "dissimilarity_datasets": ("import_dissimilarity_datasets_conflicts", None, "import_dissimilarity_datasets_merge"),
        "dissimilarity_stimuli": ("import_dissimilarity_stimuli_conflicts", "import_dissimilarity_stimuli_orphans",
                                  "import_dissimilarity_stimuli_merge"),
        "dissimilarity_ratings": ("import_dissimilarity_ratings_conflicts", "import_dissimilarity_ratings_orphans",
                                  "import_dissimilarity_ratings_merge"),
        "exp2_sources": ("import_exp2_sources_conflicts", None, "import_exp2_sources_merge"),
        "variants": ("import_variants_conflicts", "import_variants_orphans", "import_variants_merge"),
        "exp2_imported": ("import_exp2_imported_conflicts", None, "import_exp2_imported_merge"),
        "pair_distances": ("import_pair_distances_conflicts", "import_pair_distances_orphans",
                           "import_pair_distances_merge"),
        # listener data may exist without stimuli (CCMusic's listener files come without recordings)
        "listener_ratings": ("import_listener_ratings_conflicts", None, "import_listener_ratings_merge"),
        "rating_sds": ("import_rating_sds_conflicts", None, "import_rating_sds_merge"),
        "exp1_imported": ("import_exp1_imported_conflicts", None, "import_exp1_imported_merge"),
        "ingest_errors": (None, None, "import_ingest_errors_merge"),
    }

    def export_reader(self, table: str, rows_per_batch: int = 16384, **params: Any) -> pa.RecordBatchReader:
        """Stream a table's rows for a Parquet export (never the whole table in memory at once).

        Args:
            table: an interchange table name (``timbredb.interchange.tables``).
            rows_per_batch: rows per Arrow record batch.
            params: the export statement's parameters (``space_ids``, ``space_id``, ...).
        """
        q = statement(self._EXPORTS[table])
        return self.con.sql(q.sql, params=bind(q, params) or None).to_arrow_reader(rows_per_batch)

    def space_vector_counts(self, space_id: str) -> tuple[int, int, int]:
        """(audio vectors, text vectors, pair distances) a space holds."""
        row = self._run("export_count_vectors", space_id=space_id)[0]
        return int(row[0]), int(row[1]), int(row[2])

    def merge_rows(
        self, table: str, tbl: pa.Table, *, run_id: int | None = None, replace_files: bool = False,
        imported_from: str | None = None,
    ) -> tuple[tuple[str, str] | None, str | None, int]:
        """Merge rows of a (non-vector) interchange table; the caller holds the transaction.

        Rows with batch columns (pair distances) record each batch not yet known first, under
        ``run_id`` and ``imported_from``, as vectors do.

        Returns:
            (conflict, orphan, added): the first (key, differing columns) stored with other
            values, else None; a description of the first row referring to something not
            stored, else None; and how many rows were added. Nothing is written when either
            of the first two is not None.
        """
        conflicts, orphans, merge = self._MERGES[table]
        with self._registered(tbl):
            if conflicts is not None:
                rows = self._run(conflicts)
                if rows:
                    return (str(rows[0][0]), str(rows[0][1])), None, 0
            if orphans is not None:
                rows = self._run(orphans)
                if rows:
                    return None, str(rows[0][0]), 0
            if table == "clip_files":
                self._run("import_clip_files_update", replace=replace_files)
            if table == "pair_distances":
                self._run("import_pair_distances_batches", run_id=run_id, imported_from=imported_from)
            params: dict[str, Any] = {"run_id": run_id} if "run_id" in statement(merge).params else {}
            added = int(self._run(merge, **params)[0][0])
            if table == "spaces":
                self._run("import_spaces_fill")
            return None, None, added

    def vector_orphan(self, modality: str, tbl: pa.Table) -> str | None:
        """The first vector of an interchange batch whose clip (audio) or prompt (text) is not stored."""
        name = "import_audio_embeddings_orphans" if modality == "audio" else "import_text_embeddings_orphans"
        with self._registered(tbl):
            rows = self._run(name)
        return str(rows[0][0]) if rows else None

    def present_vector_keys(self, modality: str, space_id: str, keys: Sequence[str]) -> list[str]:
        """The keys (clip hashes or prompts) among ``keys`` that have a vector in the space (any order)."""
        if not keys:
            return []
        name = "import_audio_present" if modality == "audio" else "import_text_present"
        return [r[0] for r in self._run(name, space_id=space_id, keys=list(keys))]

    def merge_vectors(self, modality: str, tbl: pa.Table, *, run_id: int | None, imported_from: str | None) -> int:
        """Insert new vectors of an interchange batch (rows with batch_key and provenance columns).

        Each batch named by a ``batch_key`` not recorded yet is recorded first, with the
        provenance, size and time it was computed with; the caller holds the transaction.

        Returns:
            how many vectors were added.
        """
        insert = "import_audio_insert" if modality == "audio" else "import_text_insert"
        with self._registered(tbl):
            self._run("import_vector_batches", modality=modality, run_id=run_id, imported_from=imported_from)
            return int(self._run(insert)[0][0])

    # ------------------------------------------------------------ approximate search (timbredb.ann)
    def iter_audio_vectors(self, space_id: str, rows: int = 16384) -> Iterator[tuple[list[str], NDArray[np.float32]]]:
        """A space's audio vectors in storage order, ``rows`` at a time: (keys, (n, dim) matrix) chunks.

        Only one chunk is in memory at a time; the connection is busy until the iterator is exhausted.
        """
        q = statement("ann_vectors_stream")
        reader = self.con.sql(q.sql, params=bind(q, {"space_id": space_id})).to_arrow_reader(rows)
        for batch in reader:
            if batch.num_rows:
                keys = batch.column(0).to_pylist()
                yield keys, _arrow_to_matrix(pa.chunked_array([batch.column(1)]), len(keys))

    def audio_vectors_range(self, space_id: str, lo: str, hi: str) -> tuple[list[str], NDArray[np.float32]]:
        """The audio vectors of a space with ``lo <= clip hash < hi`` (in no particular order)."""
        return self._keyed_vectors("ann_vectors_range", space_id=space_id, lo=lo, hi=hi)

    def record_index_params(
        self, name: str, index_type: str, nlist: int | None = None, nprobe: int | None = None,
        recall_at_10: float | None = None, recall_queries: int | None = None,
    ) -> None:
        """Record how a (recorded) index searches and the recall@10 measured when it was built."""
        self._run("ann_params_record", name=name, index_type=index_type, nlist=nlist, nprobe=nprobe,
                  recall_at_10=recall_at_10, recall_queries=recall_queries)

    def index_params(self, name: str) -> dict[str, Any] | None:
        """{index_type, nlist, nprobe, recall_at_10, recall_queries} of a recorded index, or None."""
        rows = self._run("ann_params_of", name=name)
        if not rows:
            return None
        return dict(zip(("index_type", "nlist", "nprobe", "recall_at_10", "recall_queries"), rows[0]))

    @contextmanager
    def memory_limit(self, limit: str) -> Iterator[None]:
        """DuckDB's memory limit lowered to ``limit`` (e.g. "512MB") inside the block, then back to the default.

        A streamed index build reads every vector once; without this DuckDB's buffer pool would keep
        them cached, a second copy of the matrix beside the index.
        """
        self._run("memory_limit_set", limit=limit)
        try:
            yield
        finally:
            self._run("memory_limit_reset")
