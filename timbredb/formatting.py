"""Output formatting, in one place: frames -> table, CSV, JSON or Parquet.

Analyses return named frames (``dict[str, DataFrame]``). For `timbredb query`
one rule decides the shape of the output (``collapse=True``): a result of one
frame prints as that frame (JSON: a list of row objects; table and CSV: no
title), a result of several prints each under its name (JSON: an object of
lists). Other commands (``check``) always print every frame under its name.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import polars as pl

Result = pl.DataFrame | Mapping[str, pl.DataFrame]

_MAX_CELL = 48


def _clean(value: Any) -> Any:
    """JSON-safe values: NaN/inf -> null, dates and times -> ISO strings, nested lists kept."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, timedelta):
        return str(value)
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() and abs(value) >= 2**53 else float(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, Mapping):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, pl.Series):
        return [_clean(v) for v in value.to_list()]
    return value


def records(df: pl.DataFrame) -> list[dict[str, Any]]:
    return [_clean(r) for r in df.to_dicts()]


def _single(result: Any) -> Any:
    """A mapping holding exactly one frame is that frame (see the module doc)."""
    if isinstance(result, Mapping) and len(result) == 1:
        (only,) = result.values()
        if isinstance(only, pl.DataFrame):
            return only
    return result


def to_json(result: Result | list[Any] | dict[str, Any], collapse: bool = False) -> str:
    """One JSON document: a frame is a list of objects, a mapping of frames an object of lists."""
    if collapse:
        result = _single(result)
    if isinstance(result, pl.DataFrame):
        payload: Any = records(result)
    elif isinstance(result, Mapping):
        payload = {k: records(v) if isinstance(v, pl.DataFrame) else _clean(v) for k, v in result.items()}
    else:
        payload = _clean(result)
    return json.dumps(payload, indent=2, allow_nan=False)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        return f"{value:.4g}" if abs(value) >= 1e4 or (value != 0 and abs(value) < 1e-3) else f"{value:.3f}"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        text = ", ".join(value)
        return text if len(text) <= _MAX_CELL else text[: _MAX_CELL - 1] + "…"
    if isinstance(value, (list, tuple)):
        inner = ", ".join(_cell(v) for v in value[:4])
        text = f"[{inner}{', ...' if len(value) > 4 else ''}] ({len(value)})"
    else:
        text = str(value)
    return text if len(text) <= _MAX_CELL else text[: _MAX_CELL - 1] + "…"


def to_table(df: pl.DataFrame, title: str | None = None) -> str:
    """A plain fixed-width text table (numbers right-aligned)."""
    cols = df.columns
    rows = [[_cell(v) for v in row] for row in df.iter_rows()]
    widths = [max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(cols)]
    numeric = [df.schema[c].is_numeric() for c in cols]

    def fmt(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if num else c.ljust(w) for c, w, num in zip(cells, widths, numeric)).rstrip()

    lines = []
    if title:
        lines.append(title)
    lines.append(fmt(cols))
    lines.append("  ".join("-" * w for w in widths))
    lines.extend(fmt(r) for r in rows)
    if not rows:
        lines.append("(no rows)")
    return "\n".join(lines)


def to_csv(df: pl.DataFrame) -> str:
    # fixed-size arrays as lists: map_elements hands Array cells over as raw series
    df = df.with_columns([pl.col(c).arr.to_list() for c, t in df.schema.items() if isinstance(t, pl.Array)])
    flat = df.with_columns(
        [
            pl.col(c).map_elements(lambda v: json.dumps(_clean(v)), return_dtype=pl.String)
            for c, t in df.schema.items()
            if isinstance(t, (pl.List, pl.Array, pl.Struct))
        ]
    )
    buf = io.StringIO()
    flat.write_csv(buf)
    return buf.getvalue()


def render(result: Result, fmt: str, collapse: bool = False) -> str:
    """Render a frame or a mapping of named frames as table, csv or json text."""
    if fmt == "json":
        return to_json(result, collapse)
    if collapse:
        result = _single(result)
    frames = {"": result} if isinstance(result, pl.DataFrame) else dict(result)
    parts = []
    for name, df in frames.items():
        if fmt == "csv":
            parts.append((f"# {name}\n" if name else "") + to_csv(df).rstrip("\n"))
        else:
            parts.append(to_table(df, title=name or None))
    return "\n\n".join(parts)
