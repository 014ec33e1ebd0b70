"""Every named SQL statement parses, documents itself, and runs on a filled store with the columns it declares."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from timbredb import queries
from timbredb.resources import _PACKAGE
from timbredb.store import Store

STORE_SOURCE = (_PACKAGE / "store.py").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def store(filled_db: Path) -> Iterator[Store]:
    s = Store(filled_db, read_only=True)
    yield s
    s.close()


def test_there_are_query_files_and_statements() -> None:
    assert queries.all_queries(), "queries/ holds no .sql files"
    assert queries.all_statements(), "timbredb/statements/ holds no .sql files"


@pytest.mark.parametrize("name", sorted(queries.all_queries()))
def test_query_runs_on_a_filled_store_with_its_declared_columns(name: str, store: Store) -> None:
    q = queries.get(name)
    assert len(q.doc) > 20, f"queries/{name}.sql needs a doc comment saying what it returns"
    assert q.columns, f"queries/{name}.sql needs a '-- columns:' header line"
    df = queries.run(store, name)
    assert tuple(df.columns) == q.columns, f"queries/{name}.sql returns {df.columns}, declares {q.columns}"
    assert df.height > 0, f"queries/{name}.sql returns no rows on a store holding every dataset"


def _is_select(q: queries.Query) -> bool:
    return re.match(r"^\s*(SELECT|WITH)\b", q.sql, re.IGNORECASE) is not None


@pytest.mark.parametrize("name", sorted(queries.all_statements()))
def test_statement_is_documented_used_and_runs(name: str, store: Store) -> None:
    q = queries.statement(name)
    assert len(q.doc) > 10, f"{q.file}: {name} needs a doc comment"
    # every statement is used by the store (no dead SQL), and only the store uses statements
    assert f'"{name}"' in STORE_SOURCE or name.startswith("check_"), f"{name} is not used by timbredb/store.py"
    returns_rows = _is_select(q) or "RETURNING" in q.sql.upper()
    assert (q.columns is not None) == returns_rows, f"{q.file}: {name}: '-- columns:' iff it returns rows"
    if _is_select(q) and "_timbredb_batch" not in q.sql:  # those read a batch the store registers
        df = store.frame(q.sql, queries.bind(q, {}) or None)
        assert tuple(df.columns) == q.columns, f"{name} returns {df.columns}, declares {q.columns}"


def test_check_statements_are_all_run_by_check() -> None:
    from timbredb.check import integrity_checks

    used = {stmt for _, stmt in integrity_checks()}
    declared = {n for n in queries.all_statements() if n.startswith("check_")}
    assert used == declared


def test_a_query_with_a_wrong_params_header_is_refused() -> None:
    from timbredb.errors import TimbreDBError

    with pytest.raises(TimbreDBError, match="params header"):
        queries.parse_file("x.sql", "-- name: x\n-- params: {}\n-- a doc line\nSELECT $missing")
    with pytest.raises(TimbreDBError, match="no SQL"):
        queries.parse_file("x.sql", "-- name: x\n-- params: {}\n")
