"""Read-only SQL over the store, for exploration (`timbredb sql`).

Two independent guards: only read statements (SELECT, WITH, FROM, VALUES,
DESCRIBE, SHOW, SUMMARIZE, EXPLAIN, PIVOT, UNPIVOT) pass the parser check, and a
statement whose kind this DuckDB's Python API does not even know is refused;
then the statement runs on a connection opened read-only with external access
disabled and the configuration locked, so table functions that read files
(read_csv, read_parquet, ...), COPY, ATTACH, INSTALL and LOAD fail even if
something slipped past the first guard.

A statement runs for at most ``timeout_s`` seconds (DuckDB's interrupt); Ctrl-C
interrupts it too. Every DuckDB type prints in every output format: types that
JSON, CSV or the terminal cannot hold as such (INTERVAL, UUID, BLOB, MAP, UNION,
TIME, HUGEINT, ...) are rendered by DuckDB as text, DECIMAL becomes DOUBLE.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from timbredb.errors import ReadOnlyViolation, StoreError, TimbreDBError, first_line
from timbredb.formatting import Rows
from timbredb.store import READER_WAIT_S, connect, lock_wait_s, verify_current

if TYPE_CHECKING:
    import polars as pl
    import pyarrow as pa

_ALLOWED = {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN}
#: first keywords of read statements that DuckDB runs as several internal statements (MULTI)
_MULTI_READS = ("PIVOT", "UNPIVOT")
_CONFIG = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "lock_configuration": True,
}
DEFAULT_TIMEOUT_S = 60.0

#: DuckDB type ids every output format holds as they are
_PLAIN = frozenset({
    "boolean", "tinyint", "smallint", "integer", "bigint", "utinyint", "usmallint", "uinteger", "ubigint",
    "float", "double", "varchar", "date", "timestamp", "timestamp_s", "timestamp_ms", "timestamp_ns",
    "timestamp with time zone", "timestamp_tz", "enum", "null", "sqlnull", "json",
})
#: what Parquet (through Arrow) cannot hold as such
_NOT_PARQUET = frozenset({"interval", "union", "varint", "bignum", "bit", "time with time zone", "time_tz"})


#: DuckDB type id -> how its values print (``formatting.Rows`` kinds), for the types whose Python
#: values (``fetchall``) are exactly those polars would give, so a text format needs no polars.
#: CSV needs more: polars writes its own text for float32 and for nanosecond or zoned timestamps,
#: so those (and any other type) go through polars.
_ROW_KINDS = {
    **dict.fromkeys(("tinyint", "smallint", "integer", "bigint", "utinyint", "usmallint", "uinteger", "ubigint"),
                    "int"),
    "double": "float", "boolean": "bool", "varchar": "str", "enum": "str", "json": "str", "date": "date",
    "timestamp": "datetime_us", "timestamp_s": "datetime_ms", "timestamp_ms": "datetime_ms",
    "null": "null", "sqlnull": "null",
}
#: printed from their Python value in tables and JSON only
_TEXT_ONLY = {"float": "float32", "timestamp_ns": "other"}


@dataclass
class Result:
    """A statement's rows: an Arrow table for Parquet output, or rows for the text formats
    (plain ``Rows`` where they print the same as a polars frame, else the frame)."""

    arrow: pa.Table | None = None
    frame: pl.DataFrame | Rows | None = None


def _row_kind(t: Any, fmt: str) -> str | None:
    """How a (cast) column prints without polars in ``fmt``, or None when it needs polars."""
    kind = t.id
    if kind in ("list", "array", "struct"):
        children = [dict(t.children)["child"]] if kind != "struct" else [v for _, v in t.children]
        return "nested" if all(_row_kind(v, "json") is not None for v in children) else None
    if kind in _ROW_KINDS:
        return _ROW_KINDS[kind]
    return _TEXT_ONLY.get(kind) if fmt != "csv" else None


def _plain(value: Any) -> Any:
    """DuckDB gives fixed-size arrays as tuples, polars as lists: lists everywhere."""
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _text_target(t: Any) -> str | None:
    """The type a column is cast to for JSON/CSV/table output (None: as it is)."""
    kind = t.id
    if kind in _PLAIN:
        return None
    if kind == "decimal":
        return "DOUBLE"
    if kind in ("list", "array"):
        child = _text_target(dict(t.children)["child"])
        if child is None:
            return None
        if child == "DOUBLE":
            return "DOUBLE[]" if kind == "list" else f"DOUBLE[{dict(t.children)['size']}]"
        return "VARCHAR"
    if kind == "struct":
        return None if all(_text_target(v) is None for _, v in t.children) else "VARCHAR"
    return "VARCHAR"


def _parquet_target(t: Any) -> str | None:
    kind = t.id
    if kind in _NOT_PARQUET:
        return "VARCHAR"
    if kind in ("list", "array", "struct", "map"):
        children = [v for k, v in t.children if k not in ("size",) and not isinstance(v, int)]
        return "VARCHAR" if any(_parquet_target(v) is not None for v in children) else None
    return None


def _cast(rel: duckdb.DuckDBPyRelation, target: Any) -> duckdb.DuckDBPyRelation:
    exprs, changed = [], False
    for i, (name, t) in enumerate(zip(rel.columns, rel.dtypes), start=1):
        quoted = '"' + str(name).replace('"', '""') + '"'
        to = target(t)
        changed |= to is not None
        # positional references: result columns may share a name
        exprs.append(f"CAST(#{i} AS {to}) AS {quoted}" if to else f"#{i} AS {quoted}")
    return rel.project(", ".join(exprs)) if changed else rel


def classify(sql: str) -> None:
    """Raise unless ``sql`` is exactly one read statement.

    Raises:
        ReadOnlyViolation: a statement that writes or reaches outside the store.
        TimbreDBError: not one statement, or invalid SQL.
    """
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise TimbreDBError(f"SQL error: {first_line(exc)}") from exc
    if len(statements) != 1:
        raise TimbreDBError(f"`timbredb sql` runs exactly one statement; got {len(statements)}")
    try:
        kind = statements[0].type
    except ValueError:
        # a statement kind this DuckDB's Python API cannot name (e.g. UPDATE EXTENSIONS)
        raise ReadOnlyViolation(
            "refused: an unknown kind of statement; `timbredb sql` is read-only (SELECT, WITH, DESCRIBE, SHOW, "
            "SUMMARIZE, EXPLAIN, PIVOT)"
        ) from None
    if kind in _ALLOWED:
        return
    first = sql.lstrip(" \t\r\n(").split(None, 1)[0].upper() if sql.strip() else ""
    if kind == duckdb.StatementType.MULTI and first in _MULTI_READS:
        return
    name = kind.name if hasattr(kind, "name") else str(kind)
    raise ReadOnlyViolation(
        f"refused: {name} statements are not allowed; `timbredb sql` is read-only (SELECT, WITH, DESCRIBE, SHOW, "
        "SUMMARIZE, EXPLAIN, PIVOT)"
    )


def run_readonly(
    db_path: Path, sql: str, timeout_s: float | None = DEFAULT_TIMEOUT_S, parquet: bool = False,
    fmt: str | None = None,
) -> Result:
    """Run one read-only statement on the store and return its rows.

    Args:
        timeout_s: stop the statement after this many seconds (None or 0: no limit).
        parquet: return an Arrow table for Parquet output (else a frame for table/CSV/JSON).
        fmt: the text format ("table", "csv", "json") the rows are for: then a result whose
            every column prints the same from DuckDB's Python values comes back as
            ``formatting.Rows``, and neither polars nor pyarrow is imported. None: always a frame.

    Raises:
        ReadOnlyViolation: the statement writes, or reaches files outside the store.
        StoreError: no store at db_path, or not a timbredb store.
        TimbreDBError: the SQL is invalid, or ran past the time limit.
        KeyboardInterrupt: Ctrl-C (the statement is interrupted first).
    """
    if not db_path.exists():
        raise StoreError(f"{db_path}: no timbredb store here; run `timbredb ingest` first or pass --db")
    with _interrupt_guard() as guard:
        # one connection (opening the store is most of a small statement's cost), checked as
        # Store(read_only=True) checks it before the statement is even parsed
        con = connect(db_path, read_only=True, config=_CONFIG, wait_s=lock_wait_s(READER_WAIT_S))
        try:
            verify_current(con, db_path)  # a timbredb store at the current migration, or one clear error
            classify(sql)
        except BaseException:
            con.close()
            raise
        guard.connection = con
        timer = threading.Timer(timeout_s, guard.time_up) if timeout_s else None
        try:
            if timer is not None:
                timer.daemon = True
                timer.start()
            return _execute(con, sql, parquet, fmt)
        except (duckdb.InterruptException, RuntimeError) as exc:
            # an interrupted result conversion surfaces as RuntimeError("Query interrupted")
            if not isinstance(exc, duckdb.InterruptException) and "interrupt" not in str(exc).lower():
                raise
            if guard.timed_out:
                raise TimbreDBError(
                    f"the statement ran past the time limit of {timeout_s:g} s and was stopped; "
                    "pass --timeout SECONDS for a longer one (0: none)"
                ) from exc
            raise KeyboardInterrupt from exc
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
            if timer is not None:
                timer.cancel()
            guard.connection = None
            con.close()


def _execute(con: duckdb.DuckDBPyConnection, sql: str, parquet: bool, fmt: str | None = None) -> Result:
    rel = con.sql(sql)
    if rel is None:
        if fmt is not None and not parquet:
            return Result(frame=Rows((), (), []))
        import polars as pl
        import pyarrow as pa

        return Result(pa.table({}), pl.DataFrame())
    if parquet:
        return Result(arrow=_cast(rel, _parquet_target).to_arrow_table())
    rel = _cast(rel, _text_target)
    if fmt is not None:
        columns = tuple(str(c) for c in rel.columns)
        kinds = [_row_kind(t, fmt) for t in rel.dtypes]
        # polars renames repeated names (a, a_1); DuckDB names are case-insensitive
        unique = len({c.lower() for c in columns}) == len(columns)
        if unique and all(k is not None for k in kinds):
            rows = rel.fetchall()
            if "nested" in kinds:
                nested = [k == "nested" for k in kinds]
                rows = [tuple(_plain(v) if n else v for v, n in zip(row, nested)) for row in rows]
            return Result(frame=Rows(columns, tuple(k for k in kinds if k is not None), rows))
    return Result(frame=rel.pl())


class _Guard:
    """Interrupts the connection's running statement on Ctrl-C or at the time limit."""

    def __init__(self) -> None:
        self.connection: duckdb.DuckDBPyConnection | None = None
        self.timed_out = False
        self.interrupted = False

    def time_up(self) -> None:
        self.timed_out = True
        self._interrupt()

    def ctrl_c(self) -> None:
        self.interrupted = True
        self._interrupt()

    def _interrupt(self) -> None:
        con = self.connection
        if con is not None:
            try:
                con.interrupt()
            except duckdb.Error:  # DuckDB already stopped the statement and the connection closed
                pass


@contextmanager
def _interrupt_guard() -> Iterator[_Guard]:
    """While a statement runs, a Ctrl-C interrupts DuckDB from a watcher thread.

    The main thread is inside DuckDB and runs no Python signal handler until the
    statement ends, and the signal may land on one of DuckDB's own threads; so the
    watcher listens on Python's signal wake-up file descriptor, to which the
    interpreter's C-level handler writes on whichever thread the signal arrives.
    Outside the main thread DuckDB's own handling is left in place.
    """
    import os
    import select

    guard = _Guard()
    if threading.current_thread() is not threading.main_thread():
        yield guard
        return
    wake_r, wake_w = os.pipe()
    stop_r, stop_w = os.pipe()
    os.set_blocking(wake_w, False)

    def watch() -> None:
        while True:
            ready, _, _ = select.select([wake_r, stop_r], [], [])
            if stop_r in ready:
                return
            if int(signal.SIGINT) in os.read(wake_r, 64):  # the interpreter writes each signal's number
                guard.ctrl_c()

    previous = signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
    watcher = threading.Thread(target=watch, name="timbredb-sql-sigint", daemon=True)
    watcher.start()
    try:
        yield guard
    finally:
        signal.set_wakeup_fd(previous)
        os.write(stop_w, b"x")
        watcher.join(1.0)
        for fd in (wake_r, wake_w, stop_r, stop_w):
            os.close(fd)
