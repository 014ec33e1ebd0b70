"""Experiment 2: does a stronger descriptor effect move audio toward the descriptor's text?

Definitions (Deng, Pardo & Pappas; the study's ``analyze_experiment2``):

- A trajectory is one model x effect x source x descriptor (for one prompt
  template). Its points are the strengths s > 0 with
  Δ(s) = cos(variant at s, text) - cos(original, text).
- slope: least-squares slope of Δ on s (NaN with fewer than 2 distinct s).
- final Δ: Δ at the largest strength (Δ(1.0) with the default strengths).
- Pearson r and Spearman ρ of Δ vs s; NaN when either is constant.
- strictly increasing / decreasing: every step of Δ from one strength to the next
  is > 0 / < 0 (needs >= 2 strengths).

Aggregates per model and effect ("eq", "reverb", and "all" for both together):
n_trajectories; pos_slope_rate and pos_final_delta_rate (fractions 0-1 of the
trajectories with slope > 0 / final Δ > 0); all_source_consistency (fraction of
the (effect, descriptor) pairs in which every source's slope is > 0; pairs with
an undefined slope are left out);
mean_pearson_r, mean_spearman_rho, mean_slope, mean_final_delta (NaN values
excluded from the means); strict_increasing, strict_decreasing (counts).

`import_results` loads per-condition similarities computed elsewhere (the
study's per-model CSVs, or timbredb's own ``exp2_trajectories`` export) into
``exp2_imported``; they flow through the same computation.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from timbredb import queries
from timbredb.analysis.stats import nanmean, pearson, spearman
from timbredb.errors import AnalysisError, DatasetError, VocabularyError
from timbredb.store import Store
from timbredb.vocabularies import BARE, render_prompt

DEFAULT_TEMPLATE = "a {} sound"
EFFECT_ORDER = {"eq": 0, "reverb": 1, "all": 2}
SUMMARY_COLUMNS = [
    "model", "effect", "n_trajectories", "pos_slope_rate", "pos_final_delta_rate", "all_source_consistency",
    "mean_pearson_r", "mean_spearman_rho", "mean_slope", "mean_final_delta", "strict_increasing", "strict_decreasing",
]
TRAJECTORY_KEYS = ["model", "effect", "source", "descriptor", "template"]
# imported files: column -> meaning, for both accepted layouts
STUDY_COLUMNS = {
    "effect": "effect_type", "source": "source_type", "descriptor": "descriptor", "strength": "scale",
    "original_cosine": "orig_target_sim", "variant_cosine": "manip_target_sim", "delta": "delta_target_sim",
    "prompt": "target_text",
}
TIMBREDB_COLUMNS = {k: k for k in STUDY_COLUMNS}
EFFECT_ALIASES = {"eq": "eq", "reverb": "reverb", "rvb": "reverb"}
# the study's tolerance for delta == manip - orig and a constant baseline (np.allclose)
DELTA_ATOL, DELTA_RTOL, BASELINE_ATOL = 1e-7, 1e-5, 1e-7


# ---------------------------------------------------------------- trajectories
def _trajectory_row(strengths: np.ndarray, deltas: np.ndarray) -> dict[str, Any]:
    order = np.argsort(strengths, kind="stable")
    x, y = strengths[order], deltas[order]
    if x.size >= 2 and np.ptp(x) > 0:
        slope = float(np.polyfit(x, y, 1)[0])
    else:
        slope = float("nan")
    steps = np.diff(y)
    return {
        "n_strengths": int(x.size),
        "strengths": x.tolist(),
        "deltas": y.tolist(),
        "slope": slope,
        "final_delta": float(y[-1]),
        "pearson_r": pearson(x, y),
        "spearman_rho": spearman(x, y),
        "strictly_increasing": bool(steps.size > 0 and np.all(steps > 0)),
        "strictly_decreasing": bool(steps.size > 0 and np.all(steps < 0)),
    }


def trajectories(points: pl.DataFrame) -> pl.DataFrame:
    """Per-trajectory statistics from trajectory points (the ``exp2_trajectories`` query).

    Returns:
        one row per (model, effect, source, descriptor, template): origin, n_strengths,
        strengths, deltas (in strength order), slope, final_delta, pearson_r,
        spearman_rho, strictly_increasing, strictly_decreasing.
    """
    rows = []
    if points.height:
        for key, group in points.group_by(TRAJECTORY_KEYS, maintain_order=True):
            row = dict(zip(TRAJECTORY_KEYS, key))
            row["origin"] = group["origin"][0]
            row.update(_trajectory_row(group["strength"].to_numpy(), group["delta"].to_numpy()))
            rows.append(row)
    schema = {
        "model": pl.String, "effect": pl.String, "source": pl.String, "descriptor": pl.String, "template": pl.String,
        "origin": pl.String, "n_strengths": pl.Int64, "strengths": pl.List(pl.Float64), "deltas": pl.List(pl.Float64),
        "slope": pl.Float64, "final_delta": pl.Float64, "pearson_r": pl.Float64, "spearman_rho": pl.Float64,
        "strictly_increasing": pl.Boolean, "strictly_decreasing": pl.Boolean,
    }
    return pl.DataFrame(rows, schema=schema).sort(["model", "effect", "source", "descriptor"])


def _rate(values: np.ndarray) -> float:
    """Fraction of finite values > 0 (NaN when none is finite)."""
    v = values[np.isfinite(values)]
    return float(np.mean(v > 0)) if v.size else float("nan")


def summarize(traj: pl.DataFrame) -> pl.DataFrame:
    """Aggregate trajectories per model and effect, plus effect "all" (see module doc)."""
    rows = []
    for model in sorted(set(traj["model"].to_list())):
        mt = traj.filter(pl.col("model") == model)
        effects = sorted(set(mt["effect"].to_list()), key=lambda e: EFFECT_ORDER.get(e, 9))
        for effect in [*effects, "all"]:
            t = mt if effect == "all" else mt.filter(pl.col("effect") == effect)
            slope = t["slope"].to_numpy().astype(np.float64)
            final = t["final_delta"].to_numpy().astype(np.float64)
            # a pair with an undefined slope (a single strength) has no consistency
            pairs = (
                t.with_columns(pl.col("slope").fill_nan(None))
                .group_by(["effect", "descriptor"])
                .agg((pl.col("slope") > 0).all().alias("consistent"), pl.col("slope").null_count().alias("undefined"))
                .filter(pl.col("undefined") == 0)
            )
            rows.append({
                "model": model,
                "effect": effect,
                "n_trajectories": t.height,
                "pos_slope_rate": _rate(slope),
                "pos_final_delta_rate": _rate(final),
                "all_source_consistency": float(pairs["consistent"].mean()) if pairs.height else float("nan"),
                "mean_pearson_r": nanmean(t["pearson_r"].to_numpy()),
                "mean_spearman_rho": nanmean(t["spearman_rho"].to_numpy()),
                "mean_slope": nanmean(slope),
                "mean_final_delta": nanmean(final),
                "strict_increasing": int(t["strictly_increasing"].sum()),
                "strict_decreasing": int(t["strictly_decreasing"].sum()),
            })
    counts = ("n_trajectories", "strict_increasing", "strict_decreasing")
    schema = {
        c: pl.String if c in ("model", "effect") else pl.Int64 if c in counts else pl.Float64 for c in SUMMARY_COLUMNS
    }
    return pl.DataFrame(rows, schema=schema)


def study_tables(summary: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """The study's table layouts from a summary frame.

    Returns:
        {"table1": the study's ``summary.csv`` layout (per model, both effects; rates as
        fractions, 4 decimals), "table2": its ``effects.csv`` layout (per effect and
        model; rates in percent)}.
    """
    t1 = summary.filter(pl.col("effect") == "all").select(
        pl.col("model").alias("Model"),
        pl.col("pos_slope_rate").round(4).alias("Pos. slope rate ↑"),
        pl.col("pos_final_delta_rate").round(4).alias("Pos. final-Δ rate ↑"),
        pl.col("all_source_consistency").round(4).alias("All-source consistency ↑"),
        pl.col("mean_pearson_r").round(4).alias("Mean Pearson r ↑"),
        pl.col("mean_spearman_rho").round(4).alias("Mean Spearman ρ ↑"),
    )
    t2 = summary.filter(pl.col("effect") != "all").sort(
        [pl.col("effect"), pl.col("model")]
    ).select(
        pl.col("effect").alias("effect_type"),
        "model",
        (pl.col("pos_slope_rate") * 100).alias("positive_slope_rate"),
        (pl.col("pos_final_delta_rate") * 100).alias("positive_final_delta_rate"),
        "mean_slope",
        "mean_final_delta",
        "mean_pearson_r",
        "mean_spearman_rho",
        (pl.col("all_source_consistency") * 100).alias("all_source_consistency_rate"),
    )
    return {"table1": t1, "table2": t2}


def _resolve_models(store: Store, model: str | None) -> list[str] | None:
    if model is None:
        return None
    labels = [s.label for s in store.spaces(model)]
    if store.scalar("SELECT count(*) FROM exp2_imported WHERE model = ?", [model]):
        labels.append(model)
    if not labels:
        imported = [r[0] for r in store.con.execute("SELECT DISTINCT model FROM exp2_imported ORDER BY 1").fetchall()]
        known = [s.label for s in store.spaces()] + imported
        raise AnalysisError(f"no model {model!r} in the store (known: {', '.join(known) or 'none'})")
    return labels


def _explain_empty(store: Store, template: str, renderer: str | None = None) -> str:
    n_variants = store.scalar("SELECT count(*) FROM variants")
    n_imported = store.scalar("SELECT count(*) FROM exp2_imported")
    if not n_variants and not n_imported:
        return (
            "no Experiment 2 data in the store: run `timbredb ingest audealize` "
            "(or `timbredb import exp2 FILE --model NAME`)"
        )
    if renderer is not None and not store.scalar("SELECT count(*) FROM variants WHERE renderer_version = ?", [renderer]):
        known = [r[0] for r in store.con.execute("SELECT DISTINCT renderer_version FROM variants ORDER BY 1").fetchall()]
        return f"no variants rendered by {renderer!r} (stored renderer versions: {', '.join(known) or 'none'})"
    return (
        f"no trajectories for prompt template {template!r}: no text-capable model holds embeddings of both the "
        "variants and those prompts (ingest with a text-capable model, e.g. --models socialfx-eq, or pass --prompt)"
    )


def run_exp2(
    store: Store,
    model: str | None = None,
    detail: bool = False,
    template: str = DEFAULT_TEMPLATE,
    renderer: str | None = None,
    tables: bool = False,
) -> pl.DataFrame | dict[str, pl.DataFrame]:
    """Experiment 2 on what the store holds (local variants and imported results).

    Args:
        model: only this model (space label, model id, space id, or imported name).
        detail: also return the per-trajectory rows.
        template: prompt template of the target texts.
        renderer: renderer version of the local variants (None = the latest used).
        tables: return the study's table layouts (see ``study_tables``) instead.

    Returns:
        the summary frame (columns ``SUMMARY_COLUMNS``); with ``detail`` a dict
        {"summary": ..., "trajectories": ...}; with ``tables`` {"table1", "table2"}
        (plus "trajectories" with ``detail``).

    Raises:
        AnalysisError: unknown model, or nothing to analyse.
    """
    models = _resolve_models(store, model)
    points = queries.run(store, "exp2_trajectories", models=models, template=template, renderer=renderer)
    if points.height == 0:
        raise AnalysisError(_explain_empty(store, template, renderer))
    traj = trajectories(points)
    summary = summarize(traj)
    out: dict[str, pl.DataFrame] = study_tables(summary) if tables else {"summary": summary}
    if detail:
        out["trajectories"] = traj
    return out if (detail or tables) else summary


# ---------------------------------------------------------------- import
def _read_rows(path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]], str]:
    """(columns, [(line or record number, row)], unit) of a CSV or JSON file."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read ({exc})") from exc
    if path.suffix.lower() == ".json" or text.lstrip().startswith("["):
        try:
            records = json.loads(text)
        except ValueError as exc:
            raise DatasetError(f"{path}: not valid JSON ({exc})") from exc
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise DatasetError(f"{path}: a JSON import must be a list of objects (as `--format json` writes)")
        columns = list(dict.fromkeys(k for r in records for k in r))
        rows = [(i + 1, {k: "" if v is None else str(v) for k, v in r.items()}) for i, r in enumerate(records)]
        return columns, rows, "record"
    reader = csv.reader(text.splitlines())
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise DatasetError(f"{path}: empty file") from None
    rows = []
    for values in reader:
        if not any(v.strip() for v in values):
            continue
        if len(values) != len(header):
            raise DatasetError(
                f"{path}: line {reader.line_num}: {len(values)} values but the header has {len(header)} columns"
            )
        rows.append((reader.line_num, dict(zip(header, values))))
    return header, rows, "line"


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


def _number(path: Path, where: str, column: str, value: str) -> float:
    try:
        x = float(value)
    except ValueError:
        raise DatasetError(f"{path}: {where}: {column} {value!r} is not a number") from None
    if not math.isfinite(x):
        raise DatasetError(f"{path}: {where}: {column} is {value} (must be finite)")
    return x


def parse_import(path: Path) -> tuple[str, list[dict[str, Any]]]:
    """Read and validate an exp2 results file; returns (layout, rows).

    Raises:
        DatasetError: one line naming the file and the offending line/record.
    """
    columns, raw, unit = _read_rows(path)
    present = set(columns)
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
    if not raw:
        raise DatasetError(f"{path}: no data rows")
    cols = layouts[layout]
    if layout == "timbredb" and "model" in present:
        names = sorted({r.get("model", "") for _, r in raw})
        if len(names) > 1:
            raise DatasetError(f"{path}: holds several models ({', '.join(names)}); import one model per file")
    rows: list[dict[str, Any]] = []
    seen: dict[tuple[Any, ...], int] = {}
    baseline: dict[tuple[Any, ...], tuple[float, int]] = {}
    for n, r in raw:
        where = f"{unit} {n}"
        effect_raw = r[cols["effect"]].strip()
        effect = EFFECT_ALIASES.get(effect_raw.lower())
        if effect is None:
            raise DatasetError(f"{path}: {where}: unknown effect {effect_raw!r} (known: eq, reverb)")
        source, word, prompt = r[cols["source"]].strip(), r[cols["descriptor"]].strip(), r[cols["prompt"]].strip()
        for name, value in (("source", source), ("descriptor", word), ("prompt", prompt)):
            if not value:
                raise DatasetError(f"{path}: {where}: empty {cols[name]}")
        strength = _number(path, where, cols["strength"], r[cols["strength"]])
        if not 0.0 < strength <= 1.0:
            raise DatasetError(f"{path}: {where}: {cols['strength']} {strength:g} is outside (0, 1]")
        orig = _number(path, where, cols["original_cosine"], r[cols["original_cosine"]])
        var = _number(path, where, cols["variant_cosine"], r[cols["variant_cosine"]])
        delta = _number(path, where, cols["delta"], r[cols["delta"]])
        if abs(delta - (var - orig)) > DELTA_ATOL + DELTA_RTOL * abs(var - orig):
            raise DatasetError(
                f"{path}: {where}: inconsistent delta: {cols['delta']} {delta:.9g} != "
                f"{cols['variant_cosine']} - {cols['original_cosine']} = {var - orig:.9g}"
            )
        template = "" if layout == "study" else r.get("template", "").strip()
        template = template or _template_for(prompt, word)
        if template is None:
            raise DatasetError(f"{path}: {where}: {cols['prompt']} {prompt!r} does not contain the descriptor {word!r}")
        key = (effect, source, word, prompt, round(strength, 9))
        if key in seen:
            raise DatasetError(
                f"{path}: {where}: duplicate condition ({effect}, {source}, {word}, {strength:g}), "
                f"first seen on {unit} {seen[key]}"
            )
        seen[key] = n
        bkey = key[:4]
        if bkey in baseline and abs(baseline[bkey][0] - orig) > BASELINE_ATOL:
            first, at = baseline[bkey]
            raise DatasetError(
                f"{path}: {where}: baseline changes with strength: {cols['original_cosine']} {orig:.9g} != "
                f"{first:.9g} on {unit} {at} for ({effect}, {source}, {word})"
            )
        baseline.setdefault(bkey, (orig, n))
        rows.append({
            "effect": effect, "source": source, "descriptor": word, "template": template, "prompt": prompt,
            "strength": strength, "original_cosine": orig, "variant_cosine": var, "delta": delta, "line": n,
        })
    return layout, rows


def import_results(store: Store, file: Path, model_name: str) -> dict[str, Any]:
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
    layout, rows = parse_import(path)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    resolved = str(path.resolve())
    with store.transaction() as con:
        replaced = con.execute("SELECT count(*) FROM exp2_imported WHERE model = ?", [name]).fetchall()[0][0]
        con.execute("DELETE FROM exp2_imported WHERE model = ?", [name])
        con.executemany(
            "INSERT INTO exp2_imported (model, effect, source, descriptor, template, prompt, strength, "
            "original_cosine, variant_cosine, delta, file, file_sha256, line) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (name, r["effect"], r["source"], r["descriptor"], r["template"], r["prompt"], r["strength"],
                 r["original_cosine"], r["variant_cosine"], r["delta"], resolved, sha, r["line"])
                for r in rows
            ],
        )
    return {
        "model": name,
        "file": resolved,
        "layout": layout,
        "rows": len(rows),
        "trajectories": len({(r["effect"], r["source"], r["descriptor"], r["template"]) for r in rows}),
        "effects": sorted({r["effect"] for r in rows}, key=lambda e: EFFECT_ORDER[e]),
        "sources": sorted({r["source"] for r in rows}),
        "descriptors": len({r["descriptor"] for r in rows}),
        "replaced": int(replaced),
    }
