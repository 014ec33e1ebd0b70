"""Output formatting, in one place: frames -> table, CSV, JSON or Parquet.

Analyses return named frames (``dict[str, DataFrame]``). For `timbredb query`
one rule decides the shape of the output (``collapse=True``): a result of one
frame prints as that frame (JSON: a list of row objects; table and CSV: no
title), a result of several prints each under its name (JSON: an object of
lists). Other commands (``check``) always print every frame under its name.

`timbredb sql` hands over plain ``Rows`` (DuckDB's Python values) instead of a
frame when every column's values print the same either way, so that a small
statement imports no polars (see ``timbredb.sql``); every renderer takes both and
writes the same bytes.
"""

from __future__ import annotations

import io
import json
import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from timbredb._lazy import lazy

if TYPE_CHECKING:
    import polars as pl
else:
    pl = lazy("polars", globals(), "pl")

_MAX_CELL = 48


@dataclass(frozen=True)
class Rows:
    """A result as plain Python rows, rendered exactly as the frame polars would make of it.

    Attributes:
        columns: the column names (unique).
        kinds: per column, how polars would hold it: "int", "float" (float64), "bool", "str",
            "date", "datetime_us", "datetime_ms" (microsecond / millisecond time unit), "null",
            "nested" (lists, arrays and structs, as Python lists and dicts); "float32" and
            "other" print from their Python value in tables and JSON (not for CSV, where polars
            writes text of its own).
        rows: the values, one tuple per row.
    """

    columns: tuple[str, ...]
    kinds: tuple[str, ...]
    rows: Sequence[tuple[Any, ...]]

    @property
    def numeric(self) -> list[bool]:
        return [k in ("int", "float", "float32") for k in self.kinds]


if TYPE_CHECKING:
    from typing import TypeAlias

    Frame: TypeAlias = "pl.DataFrame | Rows"
    Result: TypeAlias = "Frame | Mapping[str, Frame]"


def _is_frame(value: Any) -> bool:
    if isinstance(value, Rows):
        return True
    polars = sys.modules.get("polars")  # no frame exists unless polars is imported
    return polars is not None and isinstance(value, polars.DataFrame)


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
    polars = sys.modules.get("polars")  # a Series exists only if polars is imported
    if polars is not None and isinstance(value, polars.Series):
        return [_clean(v) for v in value.to_list()]
    return value


def records(df: Frame) -> list[dict[str, Any]]:
    if isinstance(df, Rows):
        return [_clean(dict(zip(df.columns, r))) for r in df.rows]
    return [_clean(r) for r in df.to_dicts()]


def _single(result: Any) -> Any:
    """A mapping holding exactly one frame is that frame (see the module doc)."""
    if isinstance(result, Mapping) and len(result) == 1:
        (only,) = result.values()
        if _is_frame(only):
            return only
    return result


def to_json(result: Result | list[Any] | dict[str, Any], collapse: bool = False) -> str:
    """One JSON document: a frame is a list of objects, a mapping of frames an object of lists."""
    if collapse:
        result = _single(result)
    if _is_frame(result):
        payload: Any = records(result)  # type: ignore[arg-type]
    elif isinstance(result, Mapping):
        payload = {k: records(v) if _is_frame(v) else _clean(v) for k, v in result.items()}
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


def to_table(df: Frame, title: str | None = None) -> str:
    """A plain fixed-width text table (numbers right-aligned)."""
    source: Iterable[tuple[Any, ...]]
    if isinstance(df, Rows):
        cols, numeric, source = list(df.columns), df.numeric, df.rows
    else:
        cols, source = df.columns, df.iter_rows()
        numeric = [df.schema[c].is_numeric() for c in cols]
    rows = [[_cell(v) for v in row] for row in source]
    widths = [max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(cols)]

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


def _csv_field(text: str) -> str:
    """Quoted as polars quotes (only when needed: a comma, quote, line break, or the empty string)."""
    if text == "" or any(c in text for c in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text


def csv_float(value: float) -> str:
    """A float64 as polars writes it to CSV: Python's shortest round-trip digits, but positional
    from 1e-5 (Python: from 1e-4) and exponents without zero padding (1e-7, not 1e-07)."""
    if math.isnan(value):
        return "NaN"
    text = repr(value)
    if "e" not in text:
        return text
    mantissa, exp = text.split("e")
    e = int(exp)
    if e == -5:
        sign = "-" if mantissa.startswith("-") else ""
        return f"{sign}0.0000{mantissa.lstrip('-').replace('.', '')}"
    return f"{mantissa}e{'+' if e > 0 else '-'}{abs(e)}"


def _csv_value(value: Any, kind: str) -> str:
    if value is None:
        return ""
    if kind == "bool":
        return "true" if value else "false"
    if kind == "float":
        return csv_float(value)
    if kind in ("datetime_us", "datetime_ms"):
        fraction = f"{value.microsecond:06d}" if kind == "datetime_us" else f"{value.microsecond // 1000:03d}"
        return (f"{value.year:04d}-{value.month:02d}-{value.day:02d}T"
                f"{value.hour:02d}:{value.minute:02d}:{value.second:02d}.{fraction}")
    if kind == "nested":
        return _csv_field(json.dumps(_clean(value)))
    if kind == "date":
        return value.isoformat()
    if kind in ("int", "str"):
        return _csv_field(str(value))
    raise ValueError(f"no CSV rendering for a column of kind {kind!r}")


def _rows_csv(rows: Rows) -> str:
    lines = [",".join(_csv_field(c) for c in rows.columns)]
    lines.extend(",".join(_csv_value(v, k) for v, k in zip(row, rows.kinds)) for row in rows.rows)
    return "\n".join(lines) + "\n"


def to_csv(df: Frame) -> str:
    if isinstance(df, Rows):
        return _rows_csv(df)
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
    frames: dict[str, Frame] = {"": result} if _is_frame(result) else dict(result)  # type: ignore[dict-item, arg-type]
    parts = []
    for name, df in frames.items():
        if fmt == "csv":
            parts.append((f"# {name}\n" if name else "") + to_csv(df).rstrip("\n"))
        else:
            parts.append(to_table(df, title=name or None))
    return "\n\n".join(parts)
