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

Every base table of a store is either carried here (``TABLES``, each naming the
store columns it does not carry in ``not_carried``) or listed, with the reason, in
``NOT_CARRIED``; tests/test_interchange.py checks both against a fresh store, so
a migration that adds a table or a column fails the tests until the interchange
says what becomes of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
        defaults: columns a file written before they existed may omit, filled with this value
            (the one the migration that added them gave the rows already stored).
        vectors: "audio" / "text" for the vector tables.
        batched: rows carry the provenance of the batch that computed them (``batch_key`` and
            the other batch columns, instead of the store's ``batch_id``); such tables are
            partitioned by space.
        not_carried: the store table's columns the interchange does not carry (the run that
            wrote a row belongs to the store that ran it; ``batch_id`` travels as the batch columns).
    """

    name: str
    part: str
    schema: pa.Schema
    key: tuple[str, ...]
    compared: tuple[str, ...]
    optional: tuple[str, ...] = ()
    defaults: tuple[tuple[str, Any], ...] = ()
    vectors: str | None = None
    batched: bool = False
    not_carried: tuple[str, ...] = ()

    @property
    def partitioned(self) -> bool:
        return self.batched

    @property
    def store_columns(self) -> tuple[str, ...]:
        """The columns of the store table this one carries (the batch columns stand for ``batch_id``)."""
        batch = {n for n, _ in _BATCH_COLUMNS} if self.batched else set()
        return tuple(n for n in self.schema.names if n not in batch)


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
                ("modalities", pa.list_(pa.string())), ("created_at", _TS), ("comparison", pa.string())),
        key=("space_id",),
        compared=("label", "model_id", "family", "checkpoint", "policy", "dim", "sample_rate", "similarity", "modalities",
                  "comparison"),
        # comparison (migration 0007): a file without it is read as 'pairwise' for dim 0, else 'vector'
        optional=("checkpoint_sha256", "created_at", "comparison"),
    ),
    TableSpec(
        # what made a fine-tuned space (`timbredb finetune`, migration 0009): written with its space, so the
        # importing store can compare it with its base (`query finetune`) and embed new audio in it
        "finetunes", "",
        _schema(("space_id", pa.string()), ("label", pa.string()), ("base_space_id", pa.string()),
                ("base_label", pa.string()), ("method", pa.string()), ("seed", pa.int64()), ("config", pa.string()),
                ("split", pa.string()), ("train_data_sha256", pa.string()), ("weights", pa.binary()),
                ("weights_sha256", pa.string()), ("history", pa.string()), ("seconds", pa.float64()),
                ("created_at", _TS)),
        key=("space_id",),
        compared=("base_space_id", "method", "seed", "train_data_sha256", "weights_sha256"),
        optional=("created_at",),
        not_carried=("run_id",),
    ),
    TableSpec(
        "clips", "clips",
        _schema(("clip_sha256", pa.string()), ("source_path", pa.string()), ("duration_s", pa.float64()),
                ("channels", pa.int32()), ("sample_rate", pa.int32()), ("n_frames", pa.int64()), ("added_at", _TS)),
        key=("clip_sha256",),
        compared=("duration_s", "channels", "sample_rate", "n_frames"),
        optional=("added_at",),
        not_carried=("run_id",),
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
        batched=True,
        not_carried=("batch_id",),
    ),
    TableSpec(
        # the distances of a pairwise space (migration 0007), one row per pair (smaller hash first)
        "pair_distances", "embeddings",
        _schema(("space_id", pa.string()), ("clip_sha256_a", pa.string()), ("clip_sha256_b", pa.string()),
                ("cosine_distance", pa.float64()), ("l2_distance", pa.float64()), ("n_samples", pa.int64()),
                *_BATCH_COLUMNS),
        key=("space_id", "clip_sha256_a", "clip_sha256_b"),
        compared=("cosine_distance", "l2_distance", "n_samples"),
        optional=_BATCH_OPTIONAL,
        batched=True,
        not_carried=("batch_id",),
    ),
    TableSpec(
        "text_embeddings", "text",
        _schema(("space_id", pa.string()), ("prompt", pa.string()), ("embedding", _VECTOR_PLACEHOLDER), *_BATCH_COLUMNS),
        key=("space_id", "prompt"),
        compared=("embedding",),
        optional=_BATCH_OPTIONAL,
        vectors="text",
        batched=True,
        not_carried=("batch_id",),
    ),
    TableSpec(
        "instruments", "results",
        _schema(("dataset", pa.string()), ("instrument", pa.string()), ("split", pa.string()), ("clip_sha256", pa.string()),
                ("source", pa.string())),
        key=("dataset", "instrument"),
        compared=("split", "clip_sha256"),
        not_carried=("run_id",),
    ),
    TableSpec(
        "ratings", "results",
        _schema(("dataset", pa.string()), ("instrument", pa.string()), ("descriptor", pa.string()),
                ("column_name", pa.string()), ("rating", pa.float64())),
        key=("dataset", "instrument", "descriptor"),
        compared=("column_name", "rating"),
    ),
    TableSpec(
        # one listener's rating (migration 0006); a dataset may have them without stimuli (CCMusic's files)
        "listener_ratings", "results",
        _schema(("dataset", pa.string()), ("instrument", pa.string()), ("descriptor", pa.string()),
                ("listener", pa.string()), ("rating", pa.float64()), ("source", pa.string())),
        key=("dataset", "instrument", "descriptor", "listener"),
        compared=("rating",),
    ),
    TableSpec(
        # the listeners' published SD of a stimulus on a descriptor (migration 0006)
        "rating_sds", "results",
        _schema(("dataset", pa.string()), ("instrument", pa.string()), ("descriptor", pa.string()), ("sd", pa.float64()),
                ("n_listeners", pa.int32()), ("source", pa.string())),
        key=("dataset", "instrument", "descriptor"),
        compared=("sd", "n_listeners"),
    ),
    TableSpec(
        # exp1 results computed elsewhere (`timbredb import exp1`, migration 0006)
        "exp1_imported", "results",
        _schema(("dataset", pa.string()), ("model", pa.string()), ("model_id", pa.string()), ("level", pa.string()),
                ("split", pa.string()), ("unit", pa.string()), ("pearson_r", pa.float64()), ("spearman_rho", pa.float64()),
                ("file", pa.string()), ("file_sha256", pa.string()), ("line", pa.int32()), ("imported_at", _TS)),
        key=("dataset", "model", "level", "split", "unit"),
        compared=("model_id", "pearson_r", "spearman_rho", "file_sha256"),
        optional=("imported_at",),
    ),
    TableSpec(
        "dissimilarity_datasets", "results",
        _schema(("dataset", pa.string()), ("collection", pa.string()), ("n_stimuli", pa.int32()),
                ("matrix_path", pa.string()), ("matrix_sha256", pa.string()), ("added_at", _TS)),
        key=("dataset",),
        compared=("collection", "n_stimuli", "matrix_sha256"),
        optional=("added_at",),
        not_carried=("run_id",),
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
        _schema(("source_sha256", pa.string()), ("dataset", pa.string()), ("effect", pa.string()),
                ("descriptor", pa.string()), ("strength", pa.float64()), ("renderer_version", pa.string()),
                ("clip_sha256", pa.string()), ("params", pa.string()), ("duration_s", pa.float64()), ("tail_s", pa.float64()),
                ("created_at", _TS), ("seen_at", _TS)),
        key=("source_sha256", "dataset", "effect", "descriptor", "strength", "renderer_version"),
        compared=("clip_sha256", "params", "duration_s", "tail_s"),
        optional=("created_at", "seen_at"),
        # the descriptor dataset of the effect (migration 0007, which filed the rows before it as Audealize's)
        defaults=(("dataset", "audealize"),),
        not_carried=("run_id",),
    ),
    TableSpec(
        "exp2_imported", "results",
        _schema(("model", pa.string()), ("dataset", pa.string()), ("effect", pa.string()), ("source", pa.string()),
                ("descriptor", pa.string()), ("template", pa.string()), ("prompt", pa.string()), ("strength", pa.float64()),
                ("original_cosine", pa.float64()), ("variant_cosine", pa.float64()), ("delta", pa.float64()),
                ("file", pa.string()), ("file_sha256", pa.string()), ("line", pa.int32()), ("imported_at", _TS)),
        key=("model", "dataset", "effect", "source", "descriptor", "prompt", "strength"),
        compared=("template", "original_cosine", "variant_cosine", "delta", "file_sha256"),
        optional=("imported_at",),
        defaults=(("dataset", "audealize"),),  # as for variants (migration 0007)
    ),
    TableSpec(
        # per-input problems of a Ray ingest batch; not exported (errors belong to the run that met them)
        "ingest_errors", "",
        _schema(("path", pa.string()), ("stage", pa.string()), ("model_id", pa.string()), ("error", pa.string())),
        key=(),
        compared=(),
        optional=("model_id",),
        not_carried=("run_id", "created_at"),
    ),
)

BY_NAME: dict[str, TableSpec] = {t.name: t for t in TABLES}

#: the store's base tables the interchange does not carry, and why (a new table must be
#: carried by ``TABLES`` or named here; tests/test_interchange.py checks it on a fresh store)
NOT_CARRIED: dict[str, str] = {
    # the commands that ran belong to the store that ran them; an import is a run of its own
    "runs": "the store's own command history",
    # the ledger of the migrations applied to this file; a fresh store applies its own
    "schema_migrations": "the store's own migration ledger",
    # index files live beside the store and are rebuilt from the vectors (`timbredb index`)
    "faiss_indexes": "records of index files beside the store (rebuilt from the vectors)",
    # carried as the batch columns of every vector and pair row (batch_key, device, dtype, provenance, ...)
    "embedding_batches": "carried as the batch columns of the vector and pair-distance rows",
    # problems met by a past run; only a Ray batch folder carries its own, to the run that merges it
    "ingest_errors": "problems of the store's past runs (only Ray batch folders carry them)",
}


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
