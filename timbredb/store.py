"""The DuckDB store: the source of truth for clips, spaces, embeddings and results.

A Store wraps one DuckDB connection. Writers apply pending migrations on open;
read-only stores (``timbredb sql``, ``query``) refuse to open a missing file.
Every write that must survive a kill happens inside ``transaction()``; rows are
keyed by content hashes and inserted with ``INSERT OR IGNORE``, so a re-run of
interrupted work adds no duplicates.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa
from numpy.typing import NDArray

from timbredb import __version__, schema
from timbredb.audio import Audio
from timbredb.errors import StoreError, first_line


@dataclass(frozen=True)
class SpaceRecord:
    """One embedding space as stored."""

    space_id: str
    label: str
    model_id: str
    family: str
    checkpoint: str
    checkpoint_sha256: str | None
    policy: dict[str, Any]
    dim: int
    sample_rate: int
    similarity: str
    modalities: tuple[str, ...]


def _vectors_to_arrow(matrix: NDArray[np.float32]) -> pa.Array:
    m = np.ascontiguousarray(matrix, dtype=np.float32)
    flat = pa.array(m.reshape(-1), type=pa.float32())
    return pa.FixedSizeListArray.from_arrays(flat, m.shape[1]).cast(pa.list_(pa.float32()))


def _arrow_to_matrix(column: pa.ChunkedArray, n: int) -> NDArray[np.float32]:
    if n == 0:
        return np.zeros((0, 0), dtype=np.float32)
    arr = column.combine_chunks()
    flat = arr.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    return flat.reshape(n, -1)


def connect(
    path: str | Path, *, read_only: bool = False, config: dict[str, Any] | None = None
) -> duckdb.DuckDBPyConnection:
    """Open a DuckDB connection to a store file; DuckDB's errors become one-line StoreErrors naming it.

    Raises:
        StoreError: the file is locked by another process, unreadable, or not a DuckDB database.
    """
    try:
        return duckdb.connect(str(path), read_only=read_only, config=config or {})
    except duckdb.IOException as exc:
        msg = first_line(exc)
        if "lock" in msg.lower():
            raise StoreError(f"{path}: the store is in use by another process ({msg})") from exc
        raise StoreError(f"{path}: cannot open the store ({msg})") from exc
    except duckdb.Error as exc:
        raise StoreError(f"{path}: not a DuckDB store ({first_line(exc)})") from exc


def upgrade_store(path: Path) -> list[str]:
    """Apply pending migrations to an existing store; returns their names."""
    try:
        con = duckdb.connect(str(path))
    except duckdb.Error as exc:
        raise StoreError(
            f"{path}: the store needs a schema upgrade but cannot be opened for writing ({first_line(exc)})"
        ) from exc
    try:
        return schema.migrate(con)
    finally:
        con.close()


class Store:
    """A timbredb DuckDB file.

    Args:
        path: the .duckdb file.
        read_only: open without write access (and without migrating).
    """

    def __init__(self, path: str | Path, *, read_only: bool = False) -> None:
        self.path = Path(path)
        self.read_only = read_only
        if read_only and not self.path.exists():
            raise StoreError(f"{self.path}: no timbredb store here; run `timbredb ingest` first or pass --db")
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.con = connect(self.path, read_only=read_only)
        try:
            if not read_only:
                schema.migrate(self.con)
            else:
                schema.verify(self.con)
                if any(s.status == "pending" for s in schema.status(self.con)):
                    # a store written by an older timbredb: upgrade it, then read
                    self.con.close()
                    upgrade_store(self.path)
                    self.con = connect(self.path, read_only=True)
        except BaseException:
            # a failed migration or check must not leave the file open (a writer holds its lock)
            self.con.close()
            raise

    # ------------------------------------------------------------ basics
    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def index_dir(self) -> Path:
        """Folder beside the store that holds its FAISS index files."""
        return self.path.with_name(self.path.name + ".faiss")

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """All statements inside commit together or not at all."""
        self.con.execute("BEGIN TRANSACTION")
        try:
            yield self.con
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        self.con.execute("COMMIT")

    def frame(self, sql: str, params: dict[str, Any] | Sequence[Any] | None = None) -> pl.DataFrame:
        """Run a read query and return a polars DataFrame."""
        rel = self.con.sql(sql, params=params) if params else self.con.sql(sql)
        if rel is None:
            return pl.DataFrame()
        return rel.pl()

    def scalar(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> Any:
        # fetchall: DuckDB refuses other work on a connection with an unfinished result
        rows = self.con.execute(sql, params or []).fetchall()
        return rows[0][0] if rows else None

    def table_exists(self, name: str) -> bool:
        return bool(
            self.scalar(
                "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name]
            )
        )

    # ------------------------------------------------------------ runs and errors
    def start_run(self, command: str) -> int:
        return int(
            self.scalar(
                "INSERT INTO runs (command, timbredb_version) VALUES (?, ?) RETURNING run_id",
                [command, __version__],
            )
        )

    def finish_run(self, run_id: int, summary: dict[str, Any]) -> None:
        self.con.execute(
            "UPDATE runs SET finished_at = now(), summary = ? WHERE run_id = ?",
            [json.dumps(summary), run_id],
        )

    def record_error(
        self, run_id: int | None, path: str, stage: str, error: str, model_id: str | None = None
    ) -> None:
        self.con.execute(
            "INSERT INTO ingest_errors (run_id, path, stage, model_id, error) VALUES (?, ?, ?, ?, ?)",
            [run_id, path, stage, model_id, error],
        )

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
        with self._registered(tbl) as name:
            rows = self.con.execute(
                f"SELECT f.path, f.clip_sha256 FROM {name} q JOIN clip_files f USING (path, size_bytes, mtime_ns) "
                "JOIN clips c USING (clip_sha256)"
            ).fetchall()
        return dict(rows)

    def add_clips(self, clips: Sequence[Audio], run_id: int | None = None) -> int:
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
        with self._registered(tbl) as name:
            # the same content twice in one call is one clip: keep the first
            return int(
                self.con.execute(
                    "INSERT OR IGNORE INTO clips (clip_sha256, source_path, duration_s, channels, sample_rate, n_frames, run_id) "
                    f"SELECT DISTINCT ON (clip_sha256) * FROM {name}"
                ).fetchall()[0][0]
            )

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
        with self._registered(tbl) as name:
            self.con.execute(
                f"INSERT INTO clip_files (path, clip_sha256, size_bytes, mtime_ns) SELECT DISTINCT ON (path) * FROM {name} "
                "ON CONFLICT (path) DO UPDATE SET clip_sha256 = excluded.clip_sha256, "
                "size_bytes = excluded.size_bytes, mtime_ns = excluded.mtime_ns, seen_at = now()"
            ).fetchall()

    @contextmanager
    def _registered(self, tbl: pa.Table) -> Iterator[str]:
        """Expose an Arrow table to SQL under a temporary name."""
        name = "_timbredb_batch"
        self.con.register(name, tbl)
        try:
            yield name
        finally:
            self.con.unregister(name)

    def clip_path(self, clip_sha256: str) -> str | None:
        """A file that currently holds the clip (for re-decoding), else its first source."""
        return self.scalar(
            "SELECT coalesce((SELECT path FROM clip_files WHERE clip_sha256 = $h ORDER BY seen_at DESC LIMIT 1), "
            "(SELECT source_path FROM clips WHERE clip_sha256 = $h))",
            {"h": clip_sha256},
        )

    # ------------------------------------------------------------ spaces
    def ensure_space(self, rec: SpaceRecord) -> None:
        self.con.execute(
            "INSERT OR IGNORE INTO spaces (space_id, label, model_id, family, checkpoint, checkpoint_sha256, "
            "policy, dim, sample_rate, similarity, modalities) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                rec.space_id, rec.label, rec.model_id, rec.family, rec.checkpoint, rec.checkpoint_sha256,
                json.dumps(rec.policy, sort_keys=True), rec.dim, rec.sample_rate, rec.similarity,
                list(rec.modalities),
            ],
        )

    def spaces(self, model: str | None = None) -> list[SpaceRecord]:
        """Stored spaces, optionally those whose label, model id or space id equals ``model``."""
        columns = (
            "SELECT space_id, label, model_id, family, checkpoint, checkpoint_sha256, policy, dim, "
            "sample_rate, similarity, modalities FROM spaces"
        )
        if model is None:
            rows = self.con.execute(f"{columns} ORDER BY label").fetchall()
        else:
            rows = self.con.execute(f"{columns} WHERE label = ? OR space_id = ? ORDER BY label", [model, model]).fetchall()
            if not rows:
                # a bare model id also matches its non-default spaces (other checkpoints, policies, weights)
                rows = self.con.execute(f"{columns} WHERE model_id = ? ORDER BY label", [model]).fetchall()
        return [
            SpaceRecord(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6]), r[7], r[8], r[9], tuple(r[10]))
            for r in rows
        ]

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
            self.scalar(
                "INSERT INTO embedding_batches (batch_id, space_id, run_id, modality, n_items, device, dtype, provenance) "
                "VALUES (nextval('batch_id_seq'), ?, ?, ?, ?, ?, ?, ?) RETURNING batch_id",
                [space_id, run_id, modality, n_items, device, dtype, json.dumps(provenance, sort_keys=True)],
            )
        )

    # ------------------------------------------------------------ embeddings
    def missing_audio(self, space_id: str, clip_hashes: Sequence[str]) -> list[str]:
        """The hashes (in input order, without repeats) with no audio embedding in the space."""
        return self._missing("audio_embeddings", "clip_sha256", space_id, clip_hashes)

    def _missing(self, table: str, key: str, space_id: str, keys: Sequence[str]) -> list[str]:
        # table and key are this module's own identifiers, never user input
        if not keys:
            return []
        have = {
            r[0]
            for r in self.con.execute(
                f"SELECT {key} FROM {table} WHERE space_id = ? AND list_contains(?, {key})",
                [space_id, list(keys)],
            ).fetchall()
        }
        return [k for k in dict.fromkeys(keys) if k not in have]

    def insert_audio_embeddings(
        self, space_id: str, clip_hashes: Sequence[str], vectors: NDArray[np.float32], batch_id: int
    ) -> int:
        """Insert vectors (rows aligned with ``clip_hashes``); existing keys are left alone."""
        return self._insert_vectors("audio_embeddings", "clip_sha256", space_id, clip_hashes, vectors, batch_id)

    def insert_text_embeddings(
        self, space_id: str, prompts: Sequence[str], vectors: NDArray[np.float32], batch_id: int
    ) -> int:
        return self._insert_vectors("text_embeddings", "prompt", space_id, prompts, vectors, batch_id)

    def _insert_vectors(
        self,
        table: str,
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
        with self._registered(tbl) as name:
            added = self.con.execute(
                f"INSERT OR IGNORE INTO {table} (space_id, {key}, embedding, batch_id) "
                f"SELECT DISTINCT ON ({key}) space_id, {key}, embedding, batch_id FROM {name}"
            ).fetchall()[0][0]
        return int(added)

    def audio_matrix(
        self, space_id: str, clip_hashes: Sequence[str] | None = None
    ) -> tuple[list[str], NDArray[np.float32]]:
        """Audio vectors of a space, ordered by hash (or in the order given)."""
        if clip_hashes is None:
            tbl = self.con.sql(
                "SELECT clip_sha256 AS k, embedding FROM audio_embeddings WHERE space_id = $s ORDER BY k",
                params={"s": space_id},
            ).to_arrow_table()
        else:
            tbl = self.con.sql(
                "SELECT e.clip_sha256 AS k, e.embedding FROM unnest($keys) WITH ORDINALITY AS w(k, i) "
                "JOIN audio_embeddings e ON e.clip_sha256 = w.k AND e.space_id = $s ORDER BY w.i",
                params={"s": space_id, "keys": list(clip_hashes)},
            ).to_arrow_table()
        keys = tbl.column("k").to_pylist()
        return keys, _arrow_to_matrix(tbl.column("embedding"), len(keys))

    def text_matrix(self, space_id: str, prompts: Sequence[str]) -> tuple[list[str], NDArray[np.float32]]:
        """Text vectors of a space for the given prompts (those stored), in the order given."""
        tbl = self.con.sql(
            "SELECT e.prompt AS k, e.embedding FROM unnest($keys) WITH ORDINALITY AS w(k, i) "
            "JOIN text_embeddings e ON e.prompt = w.k AND e.space_id = $s ORDER BY w.i",
            params={"s": space_id, "keys": list(prompts)},
        ).to_arrow_table()
        keys = tbl.column("k").to_pylist()
        return keys, _arrow_to_matrix(tbl.column("embedding"), len(keys))

    def missing_prompts(self, space_id: str, prompts: Sequence[str]) -> list[str]:
        """The prompts (in input order, without repeats) with no text embedding in the space."""
        return self._missing("text_embeddings", "prompt", space_id, prompts)

    # ------------------------------------------------------------ vocabularies and prompts
    def add_vocabulary(self, name: str, words: Sequence[str]) -> None:
        """Store a named word list (replacing an older list of that name)."""
        with self.transaction():
            self.con.execute("DELETE FROM vocabularies WHERE vocabulary = ?", [name])
            self.con.executemany(
                "INSERT INTO vocabularies (vocabulary, descriptor, position) VALUES (?, ?, ?)",
                [(name, w, i) for i, w in enumerate(dict.fromkeys(words))],
            )

    def vocabulary(self, name: str) -> list[str]:
        return [
            r[0]
            for r in self.con.execute(
                "SELECT descriptor FROM vocabularies WHERE vocabulary = ? ORDER BY position", [name]
            ).fetchall()
        ]

    def vocabularies(self) -> dict[str, list[str]]:
        """Every stored word list: name -> words in their stored order."""
        out: dict[str, list[str]] = {}
        for name, word in self.con.execute(
            "SELECT vocabulary, descriptor FROM vocabularies ORDER BY vocabulary, position"
        ).fetchall():
            out.setdefault(name, []).append(word)
        return out

    def add_prompts(self, pairs: Sequence[tuple[str, str, str]]) -> None:
        """Record (descriptor, template, prompt) triples."""
        if pairs:
            self.con.executemany(
                "INSERT OR IGNORE INTO prompts (descriptor, template, prompt) VALUES (?, ?, ?)", list(pairs)
            )

    def all_prompts(self) -> list[str]:
        return [r[0] for r in self.con.execute("SELECT DISTINCT prompt FROM prompts ORDER BY prompt").fetchall()]
