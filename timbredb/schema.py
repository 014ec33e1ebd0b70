"""Numbered, append-only, transactional schema migrations.

Each ``migrations/NNNN_<verb>_<object>.sql`` file runs in one transaction with
the row that records it (version, name, sha256 of the file). A migration whose
file changed after it was applied is an error; listing pending migrations
writes nothing.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import duckdb

from timbredb.errors import MigrationError, first_line
from timbredb.resources import migration_files

_NAME = re.compile(r"^(\d{4})_([a-z0-9]+(?:_[a-z0-9]+)*)\.sql$")
_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       VARCHAR NOT NULL,
    sha256     VARCHAR NOT NULL,
    applied_at TIMESTAMP NOT NULL DEFAULT current_timestamp
)
"""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.sql.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class MigrationStatus:
    version: int
    name: str
    status: str  # applied | pending | modified | unknown
    sha256: str


def available_migrations() -> list[Migration]:
    """All migration files, ordered by version; malformed names are an error."""
    out = []
    for fname, sql in migration_files().items():
        m = _NAME.match(fname)
        if not m:
            raise MigrationError(f"migrations/{fname}: name must be NNNN_<verb>_<object>.sql")
        out.append(Migration(int(m.group(1)), fname[:-4], sql))
    out.sort(key=lambda m: m.version)
    versions = [m.version for m in out]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"migrations/: duplicate version numbers in {versions}")
    return out


def has_ledger(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the database holds timbredb's migration ledger (is a timbredb store)."""
    return bool(
        con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_migrations'"
        ).fetchall()[0][0]
    )


def is_empty(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the database holds no table or view at all (a new file)."""
    return not con.execute("SELECT count(*) FROM information_schema.tables").fetchall()[0][0]


def _applied(con: duckdb.DuckDBPyConnection) -> dict[int, tuple[str, str]]:
    if not has_ledger(con):
        return {}
    return {v: (n, h) for v, n, h in con.execute("SELECT version, name, sha256 FROM schema_migrations").fetchall()}


def status(con: duckdb.DuckDBPyConnection) -> list[MigrationStatus]:
    """Applied/pending/modified state of every migration. Writes nothing."""
    applied = _applied(con)
    rows = []
    known = set()
    for mig in available_migrations():
        known.add(mig.version)
        if mig.version not in applied:
            rows.append(MigrationStatus(mig.version, mig.name, "pending", mig.sha256))
        elif applied[mig.version][1] != mig.sha256:
            rows.append(MigrationStatus(mig.version, mig.name, "modified", mig.sha256))
        else:
            rows.append(MigrationStatus(mig.version, mig.name, "applied", mig.sha256))
    for version, (name, sha) in sorted(applied.items()):
        if version not in known:
            rows.append(MigrationStatus(version, name, "unknown", sha))
    return rows


def verify(con: duckdb.DuckDBPyConnection) -> None:
    """Raise MigrationError if an applied migration's file was edited or is missing."""
    for st in status(con):
        if st.status == "modified":
            raise MigrationError(
                f"migrations/{st.name}.sql was edited after it was applied to this store; "
                "add a new migration instead of changing an applied one"
            )
        if st.status == "unknown":
            raise MigrationError(
                f"this store has migration {st.version} ({st.name}) that this timbredb does not know; "
                "upgrade timbredb"
            )


def position(con: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    """(migrations applied, migrations this timbredb knows). Writes nothing."""
    rows = status(con)
    return sum(1 for r in rows if r.status == "applied"), len(available_migrations())


def create(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Apply every migration to an empty database in one transaction.

    A new store is therefore either complete or absent: a kill during its
    creation leaves no half-migrated store behind.

    Returns:
        The names of the migrations applied.
    """
    migrations = available_migrations()
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(_LEDGER)
        for mig in migrations:
            con.execute(mig.sql)
            con.execute(
                "INSERT INTO schema_migrations (version, name, sha256) VALUES (?, ?, ?)",
                [mig.version, mig.name, mig.sha256],
            )
        con.execute("COMMIT")
    except duckdb.Error as exc:
        con.execute("ROLLBACK")
        raise MigrationError(f"creating the store failed: {first_line(exc)}") from exc
    return [m.name for m in migrations]


def migrate(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Apply pending migrations, each in its own transaction with its record.

    Returns:
        The names of the migrations applied.
    """
    con.execute(_LEDGER)
    verify(con)
    done = []
    for st in status(con):
        if st.status != "pending":
            continue
        mig = next(m for m in available_migrations() if m.version == st.version)
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(mig.sql)
            con.execute(
                "INSERT INTO schema_migrations (version, name, sha256) VALUES (?, ?, ?)",
                [mig.version, mig.name, mig.sha256],
            )
            con.execute("COMMIT")
        except duckdb.Error as exc:
            con.execute("ROLLBACK")
            raise MigrationError(f"migrations/{mig.name}.sql failed: {first_line(exc)}") from exc
        done.append(mig.name)
    return done
