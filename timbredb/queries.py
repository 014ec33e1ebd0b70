"""Named SQL: the analyses in ``queries/*.sql`` and the store's own statements in
``timbredb/statements/*.sql``, loaded and run with bound parameters.

Every statement starts with a header of comment lines:

    -- name: exp1_pairs
    -- params: {"space_ids": null, "template": "{}"}
    -- columns: model, space_id, instrument, ...
    -- One line or more saying what the statement does or returns.

``params`` is a JSON object of every ``$parameter`` the SQL uses with its
default; the SQL text is never formatted with strings, only bound. ``columns``
(for statements that return rows) lists the output columns in order; a test
runs every statement that returns rows on a filled store and compares.

A file in ``queries/`` holds one query named after the file (these are the
documented analyses users read). A file in ``timbredb/statements/`` holds any
number of statements, aiosql-style, each starting at its own ``-- name:`` line.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from timbredb.errors import TimbreDBError
from timbredb.resources import query_files, statement_files

if TYPE_CHECKING:
    import polars as pl

    from timbredb.store import Store

_PARAM = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


@dataclass(frozen=True)
class Query:
    """One named SQL statement.

    Attributes:
        name: what callers use.
        doc: the header's prose.
        params: every $parameter with its default.
        sql: the statement (no trailing semicolon).
        columns: output columns in order (None for statements that return no rows).
        file: the file it came from, for messages.
    """

    name: str
    doc: str
    params: dict[str, Any]
    sql: str
    columns: tuple[str, ...] | None
    file: str


def _parse_block(where: str, lines: list[str]) -> Query:
    name = None
    params: dict[str, Any] = {}
    columns: tuple[str, ...] | None = None
    doc: list[str] = []
    body_start = len(lines)
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped.startswith("--"):
            body_start = i
            break
        content = stripped[2:].strip()
        if content.startswith("name:"):
            name = content[5:].strip()
        elif content.startswith("params:"):
            try:
                params = json.loads(content[7:].strip())
            except ValueError as exc:
                raise TimbreDBError(f"{where}: params header is not JSON ({exc})") from exc
        elif content.startswith("columns:"):
            columns = tuple(c.strip() for c in content[8:].split(",") if c.strip())
        else:
            doc.append(content)
    if not name:
        raise TimbreDBError(f"{where}: a statement must start with '-- name: NAME'")
    sql = "\n".join(lines[body_start:]).strip().rstrip(";").strip()
    if not sql:
        raise TimbreDBError(f"{where}: statement {name!r} has no SQL")
    used = set(_PARAM.findall(_strip_comments(sql)))
    if used != set(params):
        raise TimbreDBError(
            f"{where}: {name}: params header {sorted(params)} does not match the SQL's parameters {sorted(used)}"
        )
    return Query(name=name, doc="\n".join(doc).strip(), params=params, sql=sql, columns=columns, file=where)


def _strip_comments(sql: str) -> str:
    return "\n".join(line.split("--", 1)[0] for line in sql.splitlines())


def parse_file(where: str, text: str) -> list[Query]:
    """Every statement of a file; each begins at a ``-- name:`` line."""
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if line.strip().startswith("-- name:")]
    if not starts:
        raise TimbreDBError(f"{where}: no '-- name: NAME' header")
    if any(line.strip() and not line.strip().startswith("--") for line in lines[: starts[0]]):
        raise TimbreDBError(f"{where}: SQL before the first '-- name:' header")
    bounds = [*starts, len(lines)]
    return [_parse_block(where, lines[a:b]) for a, b in zip(bounds, bounds[1:])]


@cache
def all_queries() -> dict[str, Query]:
    """The analyses of ``queries/``: one per file, named after the file."""
    out: dict[str, Query] = {}
    for fname, text in sorted(query_files().items()):
        where = f"queries/{fname}"
        parsed = parse_file(where, text)
        if len(parsed) != 1 or parsed[0].name != fname[:-4]:
            raise TimbreDBError(f"{where}: must hold one query, with header '-- name: {fname[:-4]}'")
        out[parsed[0].name] = parsed[0]
    return out


@cache
def all_statements() -> dict[str, Query]:
    """The store's own statements (``timbredb/statements/*.sql``), by name."""
    out: dict[str, Query] = {}
    for fname, text in sorted(statement_files().items()):
        for q in parse_file(f"timbredb/statements/{fname}", text):
            if q.name in out or q.name in all_queries():
                raise TimbreDBError(f"{q.file}: statement name {q.name!r} is used twice")
            out[q.name] = q
    return out


def get(name: str) -> Query:
    queries = all_queries()
    if name not in queries:
        raise TimbreDBError(f"no query named {name!r}; known: {', '.join(queries)}")
    return queries[name]


def statement(name: str) -> Query:
    statements = all_statements()
    if name not in statements:
        raise TimbreDBError(f"no statement named {name!r}")
    return statements[name]


def bind(q: Query, params: dict[str, Any]) -> dict[str, Any]:
    """The header's defaults overridden by ``params``; unknown names are an error."""
    unknown = set(params) - set(q.params)
    if unknown:
        raise TimbreDBError(f"query {q.name}: unknown parameter(s) {', '.join(sorted(unknown))}")
    return {**q.params, **params}


def run(store: Store, name: str, **params: Any) -> pl.DataFrame:
    """Run a named analysis query; parameters not given take the header's defaults."""
    q = get(name)
    return store.frame(q.sql, bind(q, params) or None)
