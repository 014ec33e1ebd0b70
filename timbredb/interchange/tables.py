"""The Parquet interchange format: which tables it carries, their columns, keys and parts.

A timbredb interchange folder holds one Parquet dataset (a folder of files) per
table. Every file is self-contained and names its table in its key-value
metadata (``timbredb.table``), so a file can be merged on its own, in one
transaction. Vector tables are partitioned by space (``space_id=<id>/``, Hive
style, the column kept inside the files too) and hold vectors as fixed-size lists
of float32, together with the provenance of the batch that computed them, so a
vector file needs nothing else but its space and its clips.

Rows are identified by content keys (``key``); on import, a row whose key is
stored with the same ``compared`` values is skipped, and one stored with other
values is a conflict (an error naming the key).
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

#: written into every file's metadata and into the folder's manifest
FORMAT = "timbredb-parquet/1"
#: the folder's manifest file
MANIFEST = "timbredb-export.json"
#: the parts `timbredb export --what` selects from
PARTS = ("clips", "embeddings", "text", "results")

_TS = pa.timestamp("us")
_VECTOR_PLACEHOLDER = pa.list_(pa.float32())


@dataclass(frozen=True)
class TableSpec:
    """One interchange table.

    Attributes:
        name: the folder name and ``timbredb.table`` value.
        part: the `--what` part that exports it ("" = written whenever a part needs it).
        schema: columns in order; vector tables' ``embedding`` is a fixed-size list per space.
        key: the content key.
        compared: columns that must agree when the key is already stored.
        optional: columns a file may omit (filled with NULL, or now() for timestamps).
        vectors: "audio" / "text" for the vector tables (partitioned by space).
    """

    name: str
    part: str
    schema: pa.Schema
    key: tuple[str, ...]
    compared: tuple[str, ...]
    optional: tuple[str, ...] = ()
    vectors: str | None = None

    @property
    def partitioned(self) -> bool:
        return self.vectors is not None


def _schema(*fields: tuple[str, pa.DataType]) -> pa.Schema:
    return pa.schema([pa.field(n, t) for n, t in fields])


_BATCH_COLUMNS: tuple[tuple[str, pa.DataType], ...] = (
    ("batch_key", pa.string()),          # globally unique key of the batch that computed the vector
    ("batch_n_items", pa.int32()),       # how many vectors that batch computed
    ("device", pa.string()),
    ("dtype", pa.string()),
    ("provenance", pa.string()),         # JSON: package versions, platform, checkpoint sha256
    ("batch_created_at", _TS),
)
_BATCH_OPTIONAL = ("batch_n_items", "batch_created_at")

#: in import order: what a later table refers to is merged before it
TABLES: tuple[TableSpec, ...] = (
    TableSpec(
        "spaces", "",
        _schema(("space_id", pa.string()), ("label", pa.string()), ("model_id", pa.string()), ("family", pa.string()),
                ("checkpoint", pa.string()), ("checkpoint_sha256", pa.string()), ("policy", pa.string()),
                ("dim", pa.int32()), ("sample_rate", pa.int32()), ("similarity", pa.string()),
                ("modalities", pa.list_(pa.string())), ("created_at", _TS)),
        key=("space_id",),
        compared=("label", "model_id", "family", "checkpoint", "policy", "dim", "sample_rate", "similarity", "modalities"),
        optional=("checkpoint_sha256", "created_at"),
    ),
    TableSpec(
        "clips", "clips",
        _schema(("clip_sha256", pa.string()), ("source_path", pa.string()), ("duration_s", pa.float64()),
                ("channels", pa.int32()), ("sample_rate", pa.int32()), ("n_frames", pa.int64()), ("added_at", _TS)),
        key=("clip_sha256",),
        compared=("duration_s", "channels", "sample_rate", "n_frames"),
        optional=("added_at",),
    ),
    TableSpec(
        "clip_files", "clips",
        _schema(("path", pa.string()), ("clip_sha256", pa.string()), ("size_bytes", pa.int64()), ("mtime_ns", pa.int64()),
                ("seen_at", _TS)),
        key=("path",),
        compared=(),  # a file is an observation: a newer (size, mtime) replaces an older one, as in ingest
        optional=("seen_at",),
    ),
    TableSpec(
        "prompts", "text",
        _schema(("descriptor", pa.string()), ("template", pa.string()), ("prompt", pa.string())),
        key=("descriptor", "template"),
        compared=("prompt",),
    ),
    TableSpec(
        "vocabularies", "text",
        _schema(("vocabulary", pa.string()), ("descriptor", pa.string()), ("position", pa.int32())),
        key=("vocabulary", "descriptor"),
        compared=("position",),
    ),
    TableSpec(
        "audio_embeddings", "embeddings",
        _schema(("space_id", pa.string()), ("clip_sha256", pa.string()), ("embedding", _VECTOR_PLACEHOLDER),
                *_BATCH_COLUMNS),
        key=("space_id", "clip_sha256"),
        compared=("embedding",),
        optional=_BATCH_OPTIONAL,
        vectors="audio",
    ),
    TableSpec(
        "text_embeddings", "text",
        _schema(("space_id", pa.string()), ("prompt", pa.string()), ("embedding", _VECTOR_PLACEHOLDER), *_BATCH_COLUMNS),
        key=("space_id", "prompt"),
        compared=("embedding",),
        optional=_BATCH_OPTIONAL,
        vectors="text",
    ),
    TableSpec(
        "instruments", "results",
        _schema(("dataset", pa.string()), ("instrument", pa.string()), ("split", pa.string()), ("clip_sha256", pa.string()),
                ("source", pa.string())),
        key=("dataset", "instrument"),
        compared=("split", "clip_sha256"),
    ),
    TableSpec(
        "ratings", "results",
        _schema(("dataset", pa.string()), ("instrument", pa.string()), ("descriptor", pa.string()),
                ("column_name", pa.string()), ("rating", pa.float64())),
        key=("dataset", "instrument", "descriptor"),
        compared=("column_name", "rating"),
    ),
    TableSpec(
        "dissimilarity_datasets", "results",
        _schema(("dataset", pa.string()), ("collection", pa.string()), ("n_stimuli", pa.int32()),
                ("matrix_path", pa.string()), ("matrix_sha256", pa.string()), ("added_at", _TS)),
        key=("dataset",),
        compared=("collection", "n_stimuli", "matrix_sha256"),
        optional=("added_at",),
    ),
    TableSpec(
        "dissimilarity_stimuli", "results",
        _schema(("dataset", pa.string()), ("stimulus_index", pa.int32()), ("file", pa.string()), ("clip_sha256", pa.string())),
        key=("dataset", "stimulus_index"),
        compared=("file", "clip_sha256"),
    ),
    TableSpec(
        "dissimilarity_ratings", "results",
        _schema(("dataset", pa.string()), ("i", pa.int32()), ("j", pa.int32()), ("dissimilarity", pa.float64())),
        key=("dataset", "i", "j"),
        compared=("dissimilarity",),
    ),
    TableSpec(
        "exp2_sources", "results",
        _schema(("source_sha256", pa.string()), ("label", pa.string()), ("kind", pa.string()), ("origin", pa.string()),
                ("sample_rate", pa.int32()), ("channels", pa.int32()), ("duration_s", pa.float64()), ("added_at", _TS)),
        key=("source_sha256",),
        compared=("label", "kind", "sample_rate", "channels", "duration_s"),
        optional=("added_at",),
    ),
    TableSpec(
        "variants", "results",
        _schema(("source_sha256", pa.string()), ("effect", pa.string()), ("descriptor", pa.string()), ("strength", pa.float64()),
                ("renderer_version", pa.string()), ("clip_sha256", pa.string()), ("params", pa.string()),
                ("duration_s", pa.float64()), ("tail_s", pa.float64()), ("created_at", _TS), ("seen_at", _TS)),
        key=("source_sha256", "effect", "descriptor", "strength", "renderer_version"),
        compared=("clip_sha256", "params", "duration_s", "tail_s"),
        optional=("created_at", "seen_at"),
    ),
    TableSpec(
        "exp2_imported", "results",
        _schema(("model", pa.string()), ("effect", pa.string()), ("source", pa.string()), ("descriptor", pa.string()),
                ("template", pa.string()), ("prompt", pa.string()), ("strength", pa.float64()),
                ("original_cosine", pa.float64()), ("variant_cosine", pa.float64()), ("delta", pa.float64()),
                ("file", pa.string()), ("file_sha256", pa.string()), ("line", pa.int32()), ("imported_at", _TS)),
        key=("model", "effect", "source", "descriptor", "prompt", "strength"),
        compared=("template", "original_cosine", "variant_cosine", "delta", "file_sha256"),
        optional=("imported_at",),
    ),
    TableSpec(
        # per-input problems of a Ray ingest batch; not exported (errors belong to the run that met them)
        "ingest_errors", "",
        _schema(("path", pa.string()), ("stage", pa.string()), ("model_id", pa.string()), ("error", pa.string())),
        key=(),
        compared=(),
        optional=("model_id",),
    ),
)

BY_NAME: dict[str, TableSpec] = {t.name: t for t in TABLES}


def vector_type(dim: int) -> pa.DataType:
    """The Arrow type of a vector column in a space of ``dim`` dimensions."""
    return pa.list_(pa.float32(), dim)


def file_schema(spec: TableSpec, dim: int | None = None) -> pa.Schema:
    """The exact schema timbredb writes for a table (vectors as fixed-size lists of ``dim``)."""
    if spec.vectors is None:
        return spec.schema
    if dim is None:
        raise ValueError(f"{spec.name}: a vector table's schema needs the space's dim")
    i = spec.schema.get_field_index("embedding")
    return spec.schema.set(i, pa.field("embedding", vector_type(dim)))


def file_metadata(spec: TableSpec) -> dict[bytes, bytes]:
    return {b"timbredb.format": FORMAT.encode(), b"timbredb.table": spec.name.encode()}
