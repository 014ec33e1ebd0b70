"""Read-only SQL over the store, for exploration (`timbredb sql`).

Two independent guards: only SELECT-type statements (SELECT, WITH, FROM, VALUES,
DESCRIBE, SHOW, SUMMARIZE, EXPLAIN) pass the parser check; and the statement
runs on a connection opened read-only with external access disabled, so table
functions that read files (read_csv, read_parquet, ...), COPY, ATTACH, INSTALL
and LOAD fail even if something slipped past the first guard.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl

from timbredb.errors import ReadOnlyViolation, StoreError, TimbreDBError, first_line
from timbredb.store import Store, connect

_ALLOWED = {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN}
_CONFIG = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "lock_configuration": True,
}


def run_readonly(db_path: Path, sql: str) -> pl.DataFrame:
    """Run one read-only statement on the store and return its rows.

    Raises:
        ReadOnlyViolation: the statement writes, or reaches files outside the store.
        StoreError: no store at db_path.
        TimbreDBError: the SQL is invalid.
    """
    if not db_path.exists():
        raise StoreError(f"{db_path}: no timbredb store here; run `timbredb ingest` first or pass --db")
    Store(db_path, read_only=True).close()  # a timbredb store at the current migration, or one clear error
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise TimbreDBError(f"SQL error: {first_line(exc)}") from exc
    if len(statements) != 1:
        raise TimbreDBError(f"`timbredb sql` runs exactly one statement; got {len(statements)}")
    kind = statements[0].type
    if kind not in _ALLOWED:
        name = kind.name if hasattr(kind, "name") else str(kind)
        raise ReadOnlyViolation(
            f"refused: {name} statements are not allowed; `timbredb sql` is read-only (SELECT, WITH, DESCRIBE, SHOW, EXPLAIN)"
        )
    con = connect(db_path, read_only=True, config=_CONFIG)
    try:
        rel = con.sql(sql)
        return rel.pl() if rel is not None else pl.DataFrame()
    except duckdb.PermissionException as exc:
        raise ReadOnlyViolation(
            f"refused: the statement reaches outside the store ({first_line(exc)})"
        ) from exc
    except duckdb.Error as exc:
        msg = first_line(exc)
        if "read-only" in msg.lower() or "read only" in msg.lower():
            raise ReadOnlyViolation(f"refused: the statement writes ({msg})") from exc
        raise TimbreDBError(f"SQL error: {msg}") from exc
    finally:
        con.close()
