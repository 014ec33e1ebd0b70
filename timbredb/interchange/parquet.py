"""Reading and writing interchange files: Arrow batches <-> the exact file schema of each table.

Writing casts every column to the table's schema and vectors to fixed-size lists
of float32. Reading accepts what other tools write too (DuckDB's ``COPY ... TO``
with ``PARTITION_BY``: plain lists, the partition column only in the path,
narrower integer types), checks it and converts it to the same schema; anything
that does not fit is an ``InterchangeError`` naming the file and the column.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from numpy.typing import NDArray

from timbredb.errors import InterchangeError, first_line
from timbredb.interchange.tables import BY_NAME, FORMAT, TableSpec, file_metadata, file_schema, vector_type

_PARTITION = re.compile(r"^space_id=(.+)$")


def vectors_to_fixed(column: pa.Array | pa.ChunkedArray, dim: int, where: str) -> pa.FixedSizeListArray:
    """A vector column (list, large list or fixed-size list of float32) as fixed-size lists of ``dim``.

    Raises:
        InterchangeError: null vectors, another length, or values that are not float32.
    """
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    t = arr.type
    if not (pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)):
        raise InterchangeError(f"{where}: column embedding is {t}, expected a list of float32")
    if t.value_type != pa.float32():
        # a cast from float64 would change the bits; the interchange carries vectors as computed
        raise InterchangeError(f"{where}: column embedding holds {t.value_type}, expected float32")
    if arr.null_count:
        raise InterchangeError(f"{where}: column embedding has {arr.null_count} null vector(s)")
    if pa.types.is_fixed_size_list(t):
        if t.list_size != dim:
            raise InterchangeError(f"{where}: vectors have {t.list_size} dimensions, the space has {dim}")
        values = arr.flatten()
    else:
        lengths = pc.list_value_length(arr)
        if len(arr) and (pc.min(lengths).as_py() != dim or pc.max(lengths).as_py() != dim):
            bad = pc.min(lengths).as_py() if pc.min(lengths).as_py() != dim else pc.max(lengths).as_py()
            raise InterchangeError(f"{where}: a vector has {bad} dimensions, the space has {dim}")
        values = arr.flatten()
    if values.null_count:
        raise InterchangeError(f"{where}: column embedding has null values inside vectors")
    return pa.FixedSizeListArray.from_arrays(values, dim)


def matrix_of(column: pa.FixedSizeListArray) -> NDArray[np.float32]:
    """The (n, dim) float32 matrix of a fixed-size-list vector column (zero copy where Arrow allows)."""
    dim = column.type.list_size
    flat = column.flatten().to_numpy(zero_copy_only=False)
    return np.asarray(flat, dtype=np.float32).reshape(len(column), dim)


def conform(batch: pa.RecordBatch | pa.Table, spec: TableSpec, where: str, dim: int | None = None,
            partition: str | None = None) -> pa.Table:
    """A batch with exactly the table's file schema (columns in order, types cast, vectors fixed-size).

    Args:
        partition: the ``space_id`` of a Hive partition folder, for files that keep it only in the path.

    A column the table's ``optional`` names is filled with NULL when missing, one its
    ``defaults`` names with its default (files written before a migration added it).

    Raises:
        InterchangeError: a required column is missing or a column cannot be cast.
    """
    tbl = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
    schema = file_schema(spec, dim) if spec.vectors is not None else spec.schema
    defaults = dict(spec.defaults)
    columns = []
    for field in schema:
        if field.name in tbl.column_names:
            col = tbl.column(field.name)
        elif field.name == "space_id" and partition is not None:
            col = pa.chunked_array([pa.array([partition] * tbl.num_rows, pa.string())])
        elif field.name in spec.optional:
            col = pa.chunked_array([pa.nulls(tbl.num_rows, field.type)])
        elif field.name in defaults:
            col = pa.chunked_array([pa.array([defaults[field.name]] * tbl.num_rows, field.type)])
        else:
            raise InterchangeError(f"{where}: wrong schema for table {spec.name}: no column {field.name}")
        if field.name == "embedding":
            assert dim is not None
            columns.append(vectors_to_fixed(col, dim, where))
            continue
        if col.type != field.type:
            try:
                col = pc.cast(col, field.type, safe=True)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
                raise InterchangeError(
                    f"{where}: wrong schema for table {spec.name}: column {field.name} is {col.type}, "
                    f"expected {field.type} ({first_line(exc)})"
                ) from exc
        columns.append(col)
    return pa.Table.from_arrays(columns, schema=schema)


class DatasetWriter:
    """Writes one table's rows as ``part-NNNNN.parquet`` files in a folder, at most ``rows_per_file`` each."""

    def __init__(self, folder: Path, spec: TableSpec, dim: int | None = None, rows_per_file: int = 100_000) -> None:
        self.folder = folder
        self.spec = spec
        self.dim = dim
        self.rows_per_file = max(1, rows_per_file)
        self.schema = file_schema(spec, dim).with_metadata(file_metadata(spec))
        self.files: list[Path] = []
        self.rows = 0
        self._writer: pq.ParquetWriter | None = None
        self._in_file = 0

    def _open(self) -> pq.ParquetWriter:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"part-{len(self.files):05d}.parquet"
        self.files.append(path)
        self._in_file = 0
        # no dictionary for vectors: they never repeat, and encoding them costs time
        dictionary = [f.name for f in self.schema if f.name != "embedding"]
        return pq.ParquetWriter(path, self.schema, use_dictionary=dictionary, write_statistics=dictionary)

    def write(self, batch: pa.RecordBatch | pa.Table) -> None:
        tbl = conform(batch, self.spec, str(self.folder), self.dim).replace_schema_metadata(self.schema.metadata)
        start = 0
        while start < tbl.num_rows:
            if self._writer is None or self._in_file >= self.rows_per_file:
                self.close()
                self._writer = self._open()
            take = min(tbl.num_rows - start, self.rows_per_file - self._in_file)
            self._writer.write_table(tbl.slice(start, take), row_group_size=16384)
            self._in_file += take
            self.rows += take
            start += take

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def read_file_info(path: Path, root: Path) -> tuple[TableSpec, pq.ParquetFile, str | None]:
    """Open an interchange file: its table (from its metadata, else its folder), reader, and partition.

    Raises:
        InterchangeError: not a readable Parquet file, or not of a known table.
    """
    try:
        pf = pq.ParquetFile(path)
        schema = pf.schema_arrow
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise InterchangeError(f"{path}: not a readable Parquet file ({first_line(exc)})") from exc
    meta = schema.metadata or {}
    fmt = meta.get(b"timbredb.format", b"").decode()
    if fmt and fmt.split("/")[0] == FORMAT.split("/")[0] and fmt != FORMAT:
        raise InterchangeError(f"{path}: written in {fmt}; this timbredb reads {FORMAT} (upgrade timbredb)")
    rel = path.relative_to(root).parts
    name = meta.get(b"timbredb.table", b"").decode() or (rel[0] if len(rel) > 1 else "")
    spec = BY_NAME.get(name)
    if spec is None:
        raise InterchangeError(
            f"{path}: not a timbredb interchange file (no timbredb.table in its metadata, and its folder "
            f"{name or '(none)'} is not a table: {', '.join(BY_NAME)})"
        )
    partition = None
    for part in rel[:-1]:
        m = _PARTITION.match(part)
        if m:
            partition = m.group(1)
    return spec, pf, partition


def iter_batches(pf: pq.ParquetFile, path: Path, rows: int) -> Iterator[pa.RecordBatch]:
    """The file's rows in record batches; a corrupt page is an InterchangeError naming the file."""
    try:
        yield from pf.iter_batches(batch_size=rows)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise InterchangeError(f"{path}: corrupt Parquet data ({first_line(exc)})") from exc


def write_table_atomic(path: Path, spec: TableSpec, tbl: pa.Table, dim: int | None = None) -> None:
    """Write one interchange file under a temporary name and rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    schema = file_schema(spec, dim).with_metadata(file_metadata(spec))
    pq.write_table(conform(tbl, spec, str(path), dim).replace_schema_metadata(schema.metadata), tmp)
    os.replace(tmp, path)


__all__ = [
    "DatasetWriter", "conform", "iter_batches", "matrix_of", "read_file_info", "vector_type", "vectors_to_fixed",
    "write_table_atomic",
]
