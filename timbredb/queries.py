"""Named SQL files in queries/: loading and running them with named parameters.

Each file starts with a header of comment lines:

    -- name: exp1_pairs
    -- params: {"model": null, "template": "{}"}
    -- One line or more saying what the query returns, and each output column.

``params`` is a JSON object of every ``$parameter`` the SQL uses with its
default; the SQL text is never formatted with strings, only bound.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from typing import Any

import polars as pl

from timbredb.errors import TimbreDBError
from timbredb.resources import query_files
from timbredb.store import Store

_PARAM = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


@dataclass(frozen=True)
class Query:
    name: str
    doc: str
    params: dict[str, Any]
    sql: str


def _parse(fname: str, text: str) -> Query:
    name = None
    params: dict[str, Any] = {}
    doc = []
    body_start = 0
    lines = text.splitlines()
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
                raise TimbreDBError(f"queries/{fname}: params header is not JSON ({exc})") from exc
        else:
            doc.append(content)
    else:
        body_start = len(lines)
    if name is None or name != fname[:-4]:
        raise TimbreDBError(f"queries/{fname}: header must start with '-- name: {fname[:-4]}'")
    sql = "\n".join(lines[body_start:]).strip().rstrip(";")
    used = set(_PARAM.findall(sql))
    if used != set(params):
        raise TimbreDBError(
            f"queries/{fname}: params header {sorted(params)} does not match the SQL's parameters {sorted(used)}"
        )
    return Query(name=name, doc="\n".join(doc).strip(), params=params, sql=sql)


@cache
def all_queries() -> dict[str, Query]:
    return {fname[:-4]: _parse(fname, text) for fname, text in sorted(query_files().items())}


def get(name: str) -> Query:
    queries = all_queries()
    if name not in queries:
        raise TimbreDBError(f"no query named {name!r}; known: {', '.join(queries)}")
    return queries[name]


def run(store: Store, name: str, **params: Any) -> pl.DataFrame:
    """Run a named query; parameters not given take the header's defaults."""
    q = get(name)
    unknown = set(params) - set(q.params)
    if unknown:
        raise TimbreDBError(f"query {name}: unknown parameter(s) {', '.join(sorted(unknown))}")
    bound = {**q.params, **params}
    return store.frame(q.sql, bound if bound else None)
