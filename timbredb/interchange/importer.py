"""`timbredb import embeddings DIR`: merge an interchange folder into a store, idempotently.

Files are merged table by table in dependency order (spaces and clips before the
vectors that refer to them), each file in one transaction: a corrupt file, a file
of the wrong schema, a row that refers to something neither stored nor imported,
or a conflicting row (same content key, other values — for vectors, other
bytes) is one line naming the file, and nothing of that file is merged; the
other files still are. A row already stored with the same values is skipped, so
importing a folder twice changes nothing the second time.

The Ray engine merges its batch folders with the same function (one transaction
per batch folder, existing vectors kept).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from timbredb.errors import InterchangeError, first_line
from timbredb.interchange.parquet import conform, iter_batches, matrix_of, read_file_info
from timbredb.interchange.tables import FORMAT, MANIFEST, TABLES, TableSpec
from timbredb.progress import ProgressFactory, WarnFn, ignore, silent
from timbredb.spaces import SpaceRecord
from timbredb.store import Store

#: rows merged per statement (a 512-d vector chunk is 32 MB)
CHUNK_ROWS = 16384
_ORDER = {t.name: i for i, t in enumerate(TABLES)}


@dataclass
class ImportSummary:
    """What an import did: rows added and skipped per table, and one error per file not merged."""

    files: int = 0
    files_merged: int = 0
    added: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    kept: int = 0  # vectors stored with other bytes and kept (on_conflict="keep")
    errors: list[dict[str, str]] = field(default_factory=list)
    ingest_errors: list[dict[str, Any]] = field(default_factory=list)

    def count(self, table: str, added: int, skipped: int) -> None:
        self.added[table] = self.added.get(table, 0) + added
        self.skipped[table] = self.skipped.get(table, 0) + skipped

    def to_dict(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "files_merged": self.files_merged,
            "rows_added": dict(self.added),
            "rows_skipped": dict(self.skipped),
            "errors": list(self.errors),
        }


def interchange_files(folder: Path) -> list[Path]:
    """The Parquet files under a folder (recursively), skipping hidden and temporary ones."""
    return sorted(
        p for p in folder.rglob("*.parquet")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def _check_manifest(folder: Path) -> None:
    path = folder / MANIFEST
    if not path.is_file():
        return
    try:
        fmt = json.loads(path.read_text(encoding="utf-8")).get("format", "")
    except (OSError, ValueError, AttributeError) as exc:
        raise InterchangeError(f"{path}: unreadable manifest ({first_line(exc)})") from exc
    if fmt != FORMAT:
        raise InterchangeError(f"{path}: folder written in {fmt or 'an unknown format'}; this timbredb reads {FORMAT}")


class _Merger:
    """Merges interchange files into a store."""

    def __init__(self, store: Store, summary: ImportSummary, *, run_id: int | None, imported_from: str | None,
                 on_conflict: str, replace_files: bool) -> None:
        self.store = store
        self.summary = summary
        self.run_id = run_id
        self.imported_from = imported_from
        self.on_conflict = on_conflict
        self.replace_files = replace_files
        self._spaces: dict[str, SpaceRecord] = {}

    def space(self, space_id: str, where: str) -> SpaceRecord:
        if space_id not in self._spaces:
            self._spaces = {s.space_id: s for s in self.store.spaces()}
        if space_id not in self._spaces:
            raise InterchangeError(f"{where}: vectors of space {space_id}, which is neither stored nor in the import")
        return self._spaces[space_id]

    def merge_file(self, path: Path, spec: TableSpec, pf: Any, partition: str | None) -> tuple[int, int]:
        """Merge one file (the caller holds the transaction). Returns (added, skipped)."""
        added = skipped = 0
        where = str(path)
        for batch in iter_batches(pf, path, CHUNK_ROWS):
            if not batch.num_rows:
                continue
            if spec.vectors is not None:
                a, s = self._merge_vectors(batch, spec, where, partition)
            else:
                a, s = self._merge_rows(batch, spec, where, partition if spec.partitioned else None)
            added += a
            skipped += s
        return added, skipped

    def _merge_rows(self, batch: pa.RecordBatch, spec: TableSpec, where: str, partition: str | None = None) -> tuple[int, int]:
        tbl = conform(batch, spec, where, partition=partition)
        conflict, orphan, added = self.store.merge_rows(spec.name, tbl, run_id=self.run_id,
                                                        replace_files=self.replace_files,
                                                        imported_from=self.imported_from)
        if conflict is not None:
            key, differs = conflict
            raise InterchangeError(
                f"{where}: conflicting row: {spec.name} {key} is stored with other {differs}; nothing from this file was merged"
            )
        if orphan is not None:
            # a reference to a row that is missing could have been in the import; a bad value could not
            missing = " (nor in the import)" if orphan.endswith("which is not stored") else ""
            raise InterchangeError(f"{where}: {orphan}{missing}; nothing from this file was merged")
        if spec.name == "ingest_errors":
            self.summary.ingest_errors.extend(tbl.to_pylist())
        return added, tbl.num_rows - added

    def _merge_vectors(self, batch: pa.RecordBatch, spec: TableSpec, where: str, partition: str | None) -> tuple[int, int]:
        assert spec.vectors is not None
        names = batch.schema.names
        if "space_id" in names:
            space_ids = pc.unique(batch.column("space_id")).to_pylist()
        elif partition is not None:
            space_ids = [partition]
        else:
            raise InterchangeError(f"{where}: wrong schema for table {spec.name}: no column space_id")
        added = skipped = 0
        for space_id in space_ids:
            if space_id is None:
                raise InterchangeError(f"{where}: vectors without a space_id")
            part = batch if len(space_ids) == 1 else batch.filter(pc.equal(batch.column("space_id"), space_id))
            space = self.space(space_id, where)
            a, s = self._merge_space_vectors(conform(part, spec, where, space.dim, space_id), spec, space, where)
            added += a
            skipped += s
        return added, skipped

    def _merge_space_vectors(self, tbl: pa.Table, spec: TableSpec, space: SpaceRecord, where: str) -> tuple[int, int]:
        modality = spec.vectors
        assert modality is not None
        key_col = spec.key[1]
        keys = tbl.column(key_col).to_pylist()
        if any(k is None for k in keys):
            raise InterchangeError(f"{where}: a vector without its {key_col}")
        if tbl.column("batch_key").null_count:
            raise InterchangeError(f"{where}: a vector without its batch_key")
        emb = tbl.column("embedding").combine_chunks()
        matrix = matrix_of(emb)
        bits = matrix.view(np.uint32)
        if not np.isfinite(matrix).all():
            bad = keys[int(np.flatnonzero(~np.isfinite(matrix).all(axis=1))[0])]
            raise InterchangeError(f"{where}: vector of {key_col} {bad} has NaN or infinite values")
        first: dict[str, int] = {}
        for i, k in enumerate(keys):
            j = first.setdefault(k, i)
            if j != i and not np.array_equal(bits[i], bits[j]):
                raise InterchangeError(
                    f"{where}: conflicting row: {spec.name} ({space.space_id}, {k}) is repeated with other bytes; "
                    "nothing from this file was merged"
                )
        unique = list(first)
        # which keys are stored, from the key columns alone; stored vectors are read only for those
        present = set(self.store.present_vector_keys(modality, space.space_id, unique))
        stored_keys: list[str] = []
        if present:
            ordered = [k for k in unique if k in present]
            if modality == "audio":
                stored_keys, stored = self.store.audio_matrix(space.space_id, ordered)
            else:
                stored_keys, stored = self.store.text_matrix(space.space_id, ordered)
        if stored_keys:
            rows = np.fromiter((first[k] for k in stored_keys), dtype=np.int64, count=len(stored_keys))
            differ = (bits[rows] != stored.view(np.uint32)).any(axis=1)
            if differ.any():
                if self.on_conflict != "keep":
                    k = stored_keys[int(np.flatnonzero(differ)[0])]
                    raise InterchangeError(
                        f"{where}: conflicting row: {spec.name} ({space.space_id} {space.label}, {k}) is stored with "
                        "other bytes; nothing from this file was merged"
                    )
                self.summary.kept += int(differ.sum())
        new_rows = [first[k] for k in unique if k not in present]
        if not new_rows:
            return 0, len(keys)
        fresh = tbl.take(pa.array(new_rows, pa.int64()))
        orphan = self.store.vector_orphan(modality, fresh)
        if orphan is not None:
            raise InterchangeError(f"{where}: {orphan} (nor in the import); nothing from this file was merged")
        added = self.store.merge_vectors(modality, fresh, run_id=self.run_id, imported_from=self.imported_from)
        return added, len(keys) - added


def import_directory(
    store: Store,
    folder: Path,
    *,
    run_id: int | None,
    imported_from: str | None = None,
    on_conflict: str = "error",
    replace_files: bool = False,
    one_transaction: bool = False,
    progress: ProgressFactory = silent,
    warn: WarnFn = ignore,
) -> ImportSummary:
    """Merge every interchange file under ``folder`` into a writable store.

    Args:
        run_id: the run the merged rows are recorded under.
        imported_from: recorded with each new batch (None: the vectors were computed by this run).
        on_conflict: "error" (a vector stored with other bytes fails its file) or "keep" (the
            stored vector stays; counted in ``kept``).
        replace_files: a file's (size, mtime) in the import replaces the stored one even when older
            (an ingest batch records files as they are now).
        one_transaction: merge the whole folder in one transaction and raise the first problem
            (a Ray batch); otherwise one transaction per file and problems are collected.
        warn: one line per file that could not be merged.

    Returns:
        what was added, skipped and refused.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InterchangeError(f"{folder}: no such folder")
    _check_manifest(folder)
    files = interchange_files(folder)
    if not files:
        raise InterchangeError(f"{folder}: no Parquet files to import")
    summary = ImportSummary(files=len(files))
    merger = _Merger(store, summary, run_id=run_id, imported_from=imported_from, on_conflict=on_conflict,
                     replace_files=replace_files)
    opened: list[tuple[int, Path, TableSpec, Any, str | None]] = []
    for path in files:
        try:
            spec, pf, partition = read_file_info(path, folder)
        except InterchangeError as exc:
            if one_transaction:
                raise
            _refuse(summary, path, exc, warn)
            continue
        opened.append((_ORDER[spec.name], path, spec, pf, partition))
    opened.sort(key=lambda t: (t[0], str(t[1])))
    bar = progress("import files", len(opened))
    outer = store.transaction() if one_transaction else nullcontext()
    try:
        with outer:
            for _, path, spec, pf, partition in opened:
                try:
                    with _file_transaction(store, not one_transaction):
                        added, skipped = merger.merge_file(path, spec, pf, partition)
                except duckdb.Error as exc:
                    err = InterchangeError(f"{path}: cannot be merged ({first_line(exc)}); nothing from this file was merged")
                    if one_transaction:
                        raise err from exc
                    _refuse(summary, path, err, warn)
                except InterchangeError as exc:
                    if one_transaction:
                        raise
                    _refuse(summary, path, exc, warn)
                else:
                    summary.files_merged += 1
                    summary.count(spec.name, added, skipped)
                bar.update(1)
    finally:
        bar.close()
    return summary


@contextmanager
def _file_transaction(store: Store, enabled: bool) -> Iterator[None]:
    if not enabled:
        yield
        return
    with store.transaction():
        yield


def _refuse(summary: ImportSummary, path: Path, exc: InterchangeError, warn: WarnFn) -> None:
    message = str(exc)
    summary.errors.append({"file": str(path), "error": message})
    warn(f"error: {message}")


def import_embeddings(db: Path, folder: Path, *, progress: ProgressFactory = silent, warn: WarnFn = ignore) -> ImportSummary:
    """`timbredb import embeddings DIR`: merge an interchange folder into a store (created if missing).

    The import is one run (``runs``); its batches record the folder in ``imported_from``.
    """
    folder = Path(folder)
    with Store(db) as store:
        run_id = store.start_run(f"import embeddings {folder}")
        summary = import_directory(store, folder, run_id=run_id, imported_from=str(folder.absolute()),
                                   progress=progress, warn=warn)
        store.finish_run(run_id, summary.to_dict())
    return summary
