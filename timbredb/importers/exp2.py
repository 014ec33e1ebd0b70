"""`timbredb import exp2`: per-condition exp2 similarities computed elsewhere.

Accepts the study's released per-model CSVs (effect_type, source_type,
descriptor, scale, orig_target_sim, manip_target_sim, delta_target_sim,
target_text) and timbredb's own export of the ``exp2_trajectories`` query (CSV
or JSON). Each problem is one line naming the file and the row; nothing of a
malformed file is written. The rows land in ``exp2_imported`` and take part in
``query exp2`` and the report like local ones.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl

from timbredb.analysis.exp2 import DEFAULT_TEMPLATE, EFFECT_ORDER
from timbredb.effects import dataset_of, effects
from timbredb.errors import AnalysisError, DatasetError, VocabularyError, first_line
from timbredb.progress import ProgressFactory, silent
from timbredb.store import Store
from timbredb.vocabularies import BARE, render_prompt

# imported files: column -> meaning, for both accepted layouts
STUDY_COLUMNS = {
    "effect": "effect_type", "source": "source_type", "descriptor": "descriptor", "strength": "scale",
    "original_cosine": "orig_target_sim", "variant_cosine": "manip_target_sim", "delta": "delta_target_sim",
    "prompt": "target_text",
}
TIMBREDB_COLUMNS = {k: k for k in STUDY_COLUMNS}
# the study's effect names, then every timbredb effect label (timbredb's own export)
EFFECT_ALIASES = {"eq": "eq", "reverb": "reverb", "rvb": "reverb", **{e: e for e in effects()}}
# the study's tolerance for delta == manip - orig and a constant baseline (np.allclose)
DELTA_ATOL, DELTA_RTOL, BASELINE_ATOL = 1e-7, 1e-5, 1e-7


def _read_frame(path: Path) -> tuple[pl.DataFrame, str]:
    """(every column as text, plus ``_line``: the file line or record number; unit) of a CSV or JSON file."""
    try:
        head = path.open("rb").read(4096).lstrip(b"\xef\xbb\xbf").lstrip()
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    if path.suffix.lower() == ".json" or head.startswith(b"["):
        try:
            records = json.loads(path.read_text(encoding="utf-8-sig"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise DatasetError(f"{path}: not valid JSON ({exc})") from exc
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise DatasetError(f"{path}: a JSON import must be a list of objects (as `--format json` writes)")
        columns = list(dict.fromkeys(k for r in records for k in r))
        data = {c: [None if r.get(c) is None else str(r.get(c)) for r in records] for c in columns}
        frame = pl.DataFrame(data, schema={c: pl.String for c in columns}) if columns else pl.DataFrame()
        return frame.with_row_index("_line", offset=1), "record"
    if not head:
        raise DatasetError(f"{path}: empty file")
    try:
        # every cell as text; validation below names the line of the first bad one
        frame = pl.read_csv(path, infer_schema=False, encoding="utf8-lossy", truncate_ragged_lines=False)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise DatasetError(f"{path}: not a CSV file this importer can read ({first_line(exc)})") from exc
    frame = frame.rename({c: c.strip().lstrip("\ufeff") for c in frame.columns})
    # the header is line 1; polars keeps blank lines as all-null rows, so row k is on line k + 2
    frame = frame.with_row_index("_line", offset=2)
    return frame.filter(~pl.all_horizontal(pl.exclude("_line").is_null())), "line"


def _template_for(prompt: str, word: str) -> str | None:
    """The template that renders ``word`` to ``prompt`` ("an echo sound" -> "a {} sound")."""
    for t in (DEFAULT_TEMPLATE, BARE):
        if render_prompt(t, word) == prompt:
            return t
    if word not in prompt:
        return None
    candidate = prompt.replace(word, "{}", 1)
    for t in (candidate, re.sub(r"(^|\s)([Aa])n \{\}", r"\1\2 {}", candidate)):
        try:
            if render_prompt(t, word) == prompt:
                return t
        except VocabularyError:  # the word itself held braces
            continue
    return candidate


def _first(path: Path, frame: pl.DataFrame, bad: pl.Expr, unit: str, message: Callable[[dict[str, Any]], str]) -> None:
    """Raise DatasetError for the first row where ``bad`` holds (rows are in file order)."""
    hit = frame.filter(bad.fill_null(False)).head(1)
    if hit.height:
        row = hit.row(0, named=True)
        raise DatasetError(f"{path}: {unit} {row['_line']}: {message(row)}")


def parse_import(path: Path) -> tuple[str, pl.DataFrame]:
    """Read and validate an exp2 results file in bulk; returns (layout, rows).

    Returns:
        the layout ("study" or "timbredb") and a frame with effect, source, descriptor,
        template, prompt, strength, original_cosine, variant_cosine, delta, line.

    Raises:
        DatasetError: one line naming the file and the first offending line/record.
    """
    raw, unit = _read_frame(path)
    present = set(raw.columns)
    layouts = {"study": STUDY_COLUMNS, "timbredb": TIMBREDB_COLUMNS}
    layout = next((name for name, cols in layouts.items() if set(cols.values()) <= present), None)
    if layout is None:
        best = min(layouts, key=lambda n: len(set(layouts[n].values()) - present))
        missing = sorted(set(layouts[best].values()) - present)
        raise DatasetError(
            f"{path}: not an exp2 results file: missing column(s) {', '.join(missing)} "
            f"(the study's per-model CSV needs {', '.join(STUDY_COLUMNS.values())}; timbredb's export "
            f"needs {', '.join(TIMBREDB_COLUMNS.values())})"
        )
    if raw.height == 0:
        raise DatasetError(f"{path}: no data rows")
    cols = layouts[layout]
    if layout == "timbredb" and "model" in present:
        names = sorted({str(v or "") for v in raw["model"].unique().to_list()})
        if len(names) > 1:
            raise DatasetError(f"{path}: holds several models ({', '.join(names)}); import one model per file")
    text = {k: pl.col(v).str.strip_chars() for k, v in cols.items()}
    df = raw.select(
        "_line",
        text["effect"].alias("effect_raw"),
        text["effect"].str.to_lowercase().replace_strict(EFFECT_ALIASES, default=None).alias("effect"),
        text["source"].alias("source"), text["descriptor"].alias("descriptor"), text["prompt"].alias("prompt"),
        *[text[k].alias(f"{k}_raw") for k in ("strength", "original_cosine", "variant_cosine", "delta")],
        (pl.col("template").str.strip_chars() if layout == "timbredb" and "template" in present
         else pl.lit(None, dtype=pl.String)).alias("given_template"),
    )
    known = ", ".join(dict.fromkeys([*EFFECT_ALIASES, *effects()]))
    _first(path, df, pl.col("effect").is_null(), unit, lambda r: f"unknown effect {r['effect_raw'] or ''!r} (known: {known})")
    datasets = {e: dataset_of(e) for e in df["effect"].unique().to_list()}
    df = df.with_columns(pl.col("effect").replace_strict(datasets, return_dtype=pl.String).alias("dataset"))
    for key in ("source", "descriptor", "prompt"):
        def blank(r: dict[str, Any], n: str = cols[key]) -> str:
            return f"empty {n}"

        _first(path, df, pl.col(key).is_null() | (pl.col(key) == ""), unit, blank)
    for key in ("strength", "original_cosine", "variant_cosine", "delta"):
        name, raw_name = cols[key], f"{key}_raw"
        raw_col = pl.col(raw_name)
        number = raw_col.cast(pl.Float64, strict=False)

        def empty(r: dict[str, Any], n: str = name) -> str:
            return f"{n} is empty"

        def not_number(r: dict[str, Any], n: str = name, c: str = raw_name) -> str:
            return f"{n} {r[c]!r} is not a number"

        def not_finite(r: dict[str, Any], n: str = name, c: str = raw_name) -> str:
            return f"{n} is {r[c]} (must be finite)"

        _first(path, df, raw_col.is_null() | (raw_col == ""), unit, empty)
        _first(path, df, number.is_null(), unit, not_number)
        _first(path, df, ~number.is_finite(), unit, not_finite)
        df = df.with_columns(number.alias(key))
    _first(path, df, ~((pl.col("strength") > 0.0) & (pl.col("strength") <= 1.0)), unit,
           lambda r: f"{cols['strength']} {r['strength']:g} is outside (0, 1]")
    diff = pl.col("variant_cosine") - pl.col("original_cosine")
    _first(path, df, (pl.col("delta") - diff).abs() > DELTA_ATOL + DELTA_RTOL * diff.abs(), unit,
           lambda r: (f"inconsistent delta: {cols['delta']} {r['delta']:.9g} != {cols['variant_cosine']} - "
                      f"{cols['original_cosine']} = {r['variant_cosine'] - r['original_cosine']:.9g}"))
    # templates: one inference per distinct (prompt, word), not per row
    pairs = df.select("prompt", "descriptor", "given_template").unique()
    inferred = [
        {"prompt": p, "descriptor": w, "given_template": g, "template": (g or _template_for(p, w))}
        for p, w, g in pairs.iter_rows()
    ]
    df = df.join(pl.DataFrame(inferred, schema={"prompt": pl.String, "descriptor": pl.String,
                                                "given_template": pl.String, "template": pl.String}),
                 on=["prompt", "descriptor", "given_template"], how="left", nulls_equal=True).sort("_line")
    _first(path, df, pl.col("template").is_null(), unit,
           lambda r: f"{cols['prompt']} {r['prompt']!r} does not contain the descriptor {r['descriptor']!r}")
    condition = ["effect", "source", "descriptor", "prompt", "strength_key"]
    df = df.with_columns(pl.col("strength").round(9).alias("strength_key"))
    dup = df.with_columns(pl.col("_line").first().over(condition).alias("_first"))
    _first(path, dup, pl.col("_line") != pl.col("_first"), unit,
           lambda r: (f"duplicate condition ({r['effect']}, {r['source']}, {r['descriptor']}, {r['strength']:g}), "
                      f"first seen on {unit} {r['_first']}"))
    baseline = ["effect", "source", "descriptor", "prompt"]
    base = df.with_columns(
        pl.col("original_cosine").first().over(baseline).alias("_orig0"),
        pl.col("_line").first().over(baseline).alias("_line0"),
    )
    _first(path, base, (pl.col("original_cosine") - pl.col("_orig0")).abs() > BASELINE_ATOL, unit,
           lambda r: (f"baseline changes with strength: {cols['original_cosine']} {r['original_cosine']:.9g} != "
                      f"{r['_orig0']:.9g} on {unit} {r['_line0']} for ({r['effect']}, {r['source']}, {r['descriptor']})"))
    out = df.select(
        "dataset", "effect", "source", "descriptor", "template", "prompt", "strength", "original_cosine",
        "variant_cosine", "delta", pl.col("_line").cast(pl.Int32).alias("line"),
    )
    return layout, out


def import_results(store: Store, file: Path, model_name: str, progress: ProgressFactory = silent) -> dict[str, Any]:
    """Load per-condition exp2 similarities computed elsewhere, filed under ``model_name``.

    Accepts the study's released per-model CSV (effect_type, source_type, descriptor,
    scale, orig_target_sim, manip_target_sim, delta_target_sim, target_text) and
    timbredb's own export of the ``exp2_trajectories`` query (CSV or JSON). Re-importing
    under the same name replaces that model's rows.

    Returns:
        a summary: model, file, layout, rows, trajectories, effects, sources,
        descriptors, replaced (rows of an earlier import under this name).

    Raises:
        DatasetError: the file is malformed (one line naming file and row).
        AnalysisError: the name is already a local model's label.
    """
    path = Path(file)
    name = model_name.strip()
    if not name:
        raise AnalysisError("--model: give a name to file the imported results under")
    if any(s.label == name for s in store.spaces()):
        raise AnalysisError(
            f"--model {name!r} is a model computed in this store; file the import under another name "
            f"(e.g. {name + '-imported'!r}) so both can be compared"
        )
    bar = progress(f"import {path.name}", 3)
    try:
        layout, rows = parse_import(path)
        bar.update(1)
        sha = _file_sha256(path)
        resolved = str(path.resolve())
        table = rows.with_columns(pl.lit(name).alias("model"), pl.lit(resolved).alias("file"),
                                  pl.lit(sha).alias("file_sha256"))
        bar.update(1)
        # one transaction: an interrupt or a failure leaves the earlier import (or none) in place
        replaced = store.replace_imported_exp2(name, table.to_arrow())
        bar.update(1)
    finally:
        bar.close()
    return {
        "model": name,
        "file": resolved,
        "layout": layout,
        "rows": rows.height,
        "trajectories": rows.select("effect", "source", "descriptor", "template").unique().height,
        "effects": sorted(rows["effect"].unique().to_list(), key=lambda e: EFFECT_ORDER.get(e, 9)),
        "sources": sorted(rows["source"].unique().to_list()),
        "descriptors": rows["descriptor"].n_unique(),
        "replaced": int(replaced),
    }


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()
