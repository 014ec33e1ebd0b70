"""`timbredb check`: migrations, referential and vector integrity, FAISS staleness.

Without ``--dry-run`` it is the one command that upgrades a store written by an
older timbredb (every other command says to run it) and that repairs stale
FAISS indexes; with ``--dry-run`` it writes nothing.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import polars as pl

from timbredb import schema
from timbredb.datasets.registry import DATASETS
from timbredb.index import check_indexes
from timbredb.store import READER_WAIT_S, Store, connect, lock_wait_s, not_timbredb

#: (what the offending rows are, the statement in timbredb/statements/check.sql that counts them)
CORE_CHECKS: tuple[tuple[str, str], ...] = (
    ("audio vectors whose length differs from their space's dim", "check_audio_dim"),
    ("text vectors whose length differs from their space's dim", "check_text_dim"),
    ("vectors with NaN or infinite values", "check_non_finite"),
    ("audio vectors of clips that are not stored", "check_audio_orphans"),
    ("vectors of spaces that are not stored", "check_space_orphans"),
    ("vectors whose batch (provenance) is not stored", "check_batch_orphans"),
    ("text vectors of unknown prompts", "check_prompt_orphans"),
    ("files pointing at clips that are not stored", "check_file_orphans"),
    ("pair distances of unknown clips or of spaces that are not pairwise", "check_pair_orphans"),
    ("pair distances that are NaN, infinite or negative", "check_pair_non_finite"),
    # issue 15: fine-tuned spaces
    ("fine-tuned spaces whose space or base space is missing, or whose weights changed", "check_finetune_orphans"),
)


def integrity_checks() -> tuple[tuple[str, str], ...]:
    """The core checks, then each registered dataset's own."""
    return CORE_CHECKS + tuple(c for d in DATASETS for c in d.integrity)


def _empty_indexes() -> pl.DataFrame:
    return pl.DataFrame(
        schema={"index_name": pl.String, "space_id": pl.String, "kind": pl.String, "n_rows": pl.Int64, "state": pl.String,
                "index_type": pl.String, "nprobe": pl.Int64, "recall_at_10": pl.Float64}
    )


def _with_search_params(store: Store, row: dict[str, object]) -> dict[str, object]:
    """An index row with how it searches: flat (exact) or ivf, its nprobe and measured recall@10."""
    params = store.index_params(str(row["index_name"])) or {}
    return {**row, "index_type": params.get("index_type"), "nprobe": params.get("nprobe"),
            "recall_at_10": params.get("recall_at_10")}


def run_check(db_path: Path, dry_run: bool = False) -> tuple[dict[str, pl.DataFrame], bool]:
    """Check (and unless dry_run, migrate and repair) a store.

    Returns:
        ({"migrations", "integrity", "indexes"} frames, ok) where ok is False when
        an integrity check found offending rows.
    """
    if dry_run:
        if not db_path.exists():
            migs = [asdict(schema.MigrationStatus(m.version, m.name, "pending", m.sha256)) for m in schema.available_migrations()]
            return {"migrations": pl.DataFrame(migs)}, True
        con = connect(db_path, read_only=True, wait_s=lock_wait_s(READER_WAIT_S))
        try:
            if not schema.has_ledger(con) and not schema.is_empty(con):
                raise not_timbredb(db_path)
            migs = [asdict(s) for s in schema.status(con)]
        finally:
            con.close()
        if any(m["status"] != "applied" for m in migs):
            return {"migrations": pl.DataFrame(migs)}, all(m["status"] in ("applied", "pending") for m in migs)
        store = Store(db_path, read_only=True)
    else:
        store = Store(db_path, upgrade=True)  # applies pending migrations; raises on edited ones
    with store:
        migs = [asdict(s) for s in store.migration_status()]
        rows = [{"check": name, "offending_rows": store.count(stmt)} for name, stmt in integrity_checks()]
        ok = all(r["offending_rows"] == 0 for r in rows)
        # indexes are rebuilt from the vectors: never from vectors that failed a check
        indexes = [_with_search_params(store, asdict(s)) for s in check_indexes(store, repair=ok and not dry_run)]
    integrity = pl.DataFrame(rows)
    idx = pl.DataFrame(indexes) if indexes else _empty_indexes()
    return {"migrations": pl.DataFrame(migs), "integrity": integrity, "indexes": idx}, ok
