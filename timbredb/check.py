"""`timbredb check`: migrations, referential and vector integrity, FAISS staleness."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import polars as pl

from timbredb import schema
from timbredb.index import check_indexes
from timbredb.store import Store, connect

#: (name, SQL counting offending rows)
INTEGRITY_CHECKS: tuple[tuple[str, str], ...] = (
    ("audio vectors whose length differs from their space's dim",
     "SELECT count(*) FROM audio_embeddings e JOIN spaces s USING (space_id) WHERE len(e.embedding) <> s.dim"),
    ("text vectors whose length differs from their space's dim",
     "SELECT count(*) FROM text_embeddings e JOIN spaces s USING (space_id) WHERE len(e.embedding) <> s.dim"),
    ("vectors with NaN or infinite values",
     "SELECT (SELECT count(*) FROM audio_embeddings WHERE len(list_filter(embedding, lambda x: isnan(x) OR isinf(x))) > 0)"
     " + (SELECT count(*) FROM text_embeddings WHERE len(list_filter(embedding, lambda x: isnan(x) OR isinf(x))) > 0)"),
    ("audio vectors of clips that are not stored",
     "SELECT count(*) FROM audio_embeddings e ANTI JOIN clips c USING (clip_sha256)"),
    ("vectors of spaces that are not stored",
     "SELECT (SELECT count(*) FROM audio_embeddings e ANTI JOIN spaces s USING (space_id))"
     " + (SELECT count(*) FROM text_embeddings e ANTI JOIN spaces s USING (space_id))"),
    ("vectors whose batch (provenance) is not stored",
     "SELECT (SELECT count(*) FROM audio_embeddings e ANTI JOIN embedding_batches b USING (batch_id))"
     " + (SELECT count(*) FROM text_embeddings e ANTI JOIN embedding_batches b USING (batch_id))"),
    ("text vectors of unknown prompts",
     "SELECT count(*) FROM text_embeddings t ANTI JOIN prompts p ON p.prompt = t.prompt"),
    ("files pointing at clips that are not stored",
     "SELECT count(*) FROM clip_files f ANTI JOIN clips c USING (clip_sha256)"),
    ("ccmusic instruments whose recording is not stored",
     "SELECT count(*) FROM instruments i ANTI JOIN clips c USING (clip_sha256)"),
    ("timbremetrics stimuli whose audio is not stored",
     "SELECT count(*) FROM dissimilarity_stimuli d ANTI JOIN clips c USING (clip_sha256)"),
    ("exp2 variants whose rendered audio is not stored",
     "SELECT count(*) FROM variants v ANTI JOIN clips c USING (clip_sha256)"),
)


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
        con = connect(db_path, read_only=True)
        try:
            migs = [asdict(s) for s in schema.status(con)]
        finally:
            con.close()
        if any(m["status"] != "applied" for m in migs):
            return {"migrations": pl.DataFrame(migs)}, all(m["status"] in ("applied", "pending") for m in migs)
        store = Store(db_path, read_only=True)
    else:
        store = Store(db_path)  # applies pending migrations; raises on edited ones
    with store:
        migs = [asdict(s) for s in schema.status(store.con)]
        rows = [{"check": name, "offending_rows": int(store.scalar(sql))} for name, sql in INTEGRITY_CHECKS]
        indexes = [asdict(s) for s in check_indexes(store, repair=not dry_run)]
    integrity = pl.DataFrame(rows)
    ok = bool((integrity["offending_rows"] == 0).all())
    idx = pl.DataFrame(indexes) if indexes else pl.DataFrame(
        schema={"index_name": pl.String, "space_id": pl.String, "kind": pl.String, "n_rows": pl.Int64, "state": pl.String}
    )
    return {"migrations": pl.DataFrame(migs), "integrity": integrity, "indexes": idx}, ok
