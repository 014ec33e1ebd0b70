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
excluded from the means); strict_increasing, strict_decreasing (counts); note
("circular" where the model's text side is the data that rendered the effect:
socialfx-eq's text vector of a word is the Audealize EQ curve that made its EQ
variants, so its EQ rates say little about hearing).

Words with identical parameters (e.g. the Audealize reverb words big = church =
hall = loud = spacious = strong) render identical audio. By default each word is
its own trajectory, as in the study: the same variants scored against different
target texts. With ``distinct=True`` (`--distinct-variants`) the words of one
source whose variants are the same clips count once: their Δ is averaged over
the words at each strength and the trajectory is named "big=church=...".

Results computed elsewhere (``timbredb.importers.exp2``, `timbredb import exp2`)
sit in ``exp2_imported`` and flow through the same computation.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from timbredb import queries
from timbredb.analysis.stats import nanmean, pearson, spearman
from timbredb.effects import ORDER, resolve
from timbredb.errors import AnalysisError
from timbredb.store import Store

DEFAULT_TEMPLATE = "a {} sound"
#: effects in listing order ("all", the selected effects together, last)
EFFECT_ORDER = ORDER
SUMMARY_COLUMNS = [
    "model", "effect", "n_trajectories", "pos_slope_rate", "pos_final_delta_rate", "all_source_consistency",
    "mean_pearson_r", "mean_spearman_rho", "mean_slope", "mean_final_delta", "strict_increasing", "strict_decreasing",
    "note",
]
#: (model id, effect) pairs whose text side is the data that rendered the effect
CIRCULAR = {("socialfx-eq", "eq"): "circular", ("socialfx-eq", "all"): "circular (eq)"}
TRAJECTORY_KEYS = ["model", "effect", "source", "descriptor", "template"]


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
    schema: dict[str, Any] = {
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


def summarize(traj: pl.DataFrame, model_ids: dict[str, str] | None = None) -> pl.DataFrame:
    """Aggregate trajectories per model and effect, plus effect "all" (see module doc).

    Args:
        model_ids: label -> model id of the local models, for the "circular" note.
    """
    model_ids = model_ids or {}
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
                "all_source_consistency": float(pairs["consistent"].to_numpy().mean()) if pairs.height else float("nan"),
                "mean_pearson_r": nanmean(t["pearson_r"].to_numpy()),
                "mean_spearman_rho": nanmean(t["spearman_rho"].to_numpy()),
                "mean_slope": nanmean(slope),
                "mean_final_delta": nanmean(final),
                "strict_increasing": int(t["strictly_increasing"].sum()),
                "strict_decreasing": int(t["strictly_decreasing"].sum()),
                "note": _note(model_ids.get(model), effect, t),
            })
    counts = ("n_trajectories", "strict_increasing", "strict_decreasing")
    schema = {
        c: pl.String if c in ("model", "effect", "note") else pl.Int64 if c in counts else pl.Float64
        for c in SUMMARY_COLUMNS
    }
    return pl.DataFrame(rows, schema=schema)


def _note(model_id: str | None, effect: str, traj: pl.DataFrame) -> str | None:
    if model_id is None or (effect == "all" and not (traj["effect"] == "eq").any()):
        return None
    return CIRCULAR.get((model_id, effect))


def distinct_variants(points: pl.DataFrame, groups: pl.DataFrame) -> pl.DataFrame:
    """Points with the words of one source whose variants are the same clips merged into one trajectory.

    Args:
        points: rows of the ``exp2_trajectories`` query.
        groups: rows of the ``exp2_variant_groups`` query.

    Returns:
        the same columns; merged trajectories have descriptor "w1=w2=..." (sorted), their
        prompt the sorted prompts joined by " | ", and Δ (and both cosines) averaged over the words.
    """
    keys = ["effect", "source", "descriptor", "renderer_version"]
    keyed = points.join(groups.select(*keys, "variant_group"), on=keys, how="left").with_columns(
        # imported results carry no clips: each word stays its own trajectory
        pl.coalesce(pl.col("variant_group"), pl.col("descriptor")).alias("variant_group")
    )
    by = ["model", "effect", "source", "template", "variant_group", "strength"]
    merged = keyed.group_by(by, maintain_order=True).agg(
        pl.col("descriptor").unique().sort().str.join("=").alias("descriptor"),
        pl.col("prompt").unique().sort().str.join(" | ").alias("prompt"),
        pl.col("original_cosine").mean(), pl.col("variant_cosine").mean(), pl.col("delta").mean(),
        pl.col("origin").first(), pl.col("renderer_version").first(),
    )
    return merged.select(points.columns).sort("model", "effect", "source", "descriptor", "strength")


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


# ---------------------------------------------------------------- two crowds, one word: Audealize vs SAFE EQ
#: the frequencies (Hz) the two crowds' EQ responses are compared at: Audealize's 40 band centres
RESPONSE_RATE = 44100
RESPONSE_SAMPLES = 1 << 16


def eq_response_db(effect: str, parameters: dict[str, float] | list[float]) -> np.ndarray:
    """Magnitude response (dB) of a word's full-strength EQ at the 40 Audealize centres (44.1 kHz).

    Measured, not derived: a unit impulse through the renderer itself (``timbredb.dsp`` for
    Audealize's 40-band EQ, ``timbredb.dsp_plugins`` for SAFE's 5 bands), then an FFT.
    """
    from timbredb import dsp, dsp_plugins
    from timbredb.datasets.safedb import EQ_PARAMS, safe_eq

    impulse = np.zeros(RESPONSE_SAMPLES)
    impulse[0] = 1.0
    if effect == "eq":
        h = dsp.apply_eq(impulse, RESPONSE_RATE, dsp.eq_gains_db(np.asarray(parameters, dtype=np.float64), 1.0))
    else:
        assert isinstance(parameters, dict)
        values = tuple(float(parameters[p.name]) for p in EQ_PARAMS)
        h = dsp_plugins.apply_safe_eq(impulse, RESPONSE_RATE, safe_eq(values))
    spec = np.abs(np.fft.rfft(h[:, 0].astype(np.float64)))
    bins = np.rint(np.asarray(dsp.EQ_CENTRES_HZ) * RESPONSE_SAMPLES / RESPONSE_RATE).astype(int)
    return 20.0 * np.log10(np.maximum(spec[bins], 1e-12))


def eq_crowds(store: Store, traj: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """Do Audealize's and SAFE-DB's EQ settings for the same word agree, and move a model the same way?

    For every word with stored variants of both ``eq`` (Audealize) and ``safe-eq`` (SAFE-DB):
    the two full-strength magnitude responses at the 40 Audealize centres (dB) and their
    Pearson r; then, per model, the trajectory slopes of the two EQs per source.

    Args:
        traj: per-trajectory rows (``trajectories``) including both effects.

    Returns:
        {"eq_words": word, safe_contributions, response_r, response_rmsd_db, mean_gain_db_audealize,
        mean_gain_db_safe; "eq_agreement": model, word, source, slope_audealize, slope_safe, same_sign;
        "eq_agreement_summary": model, n_words, n_pairs, sign_agreement (share of (word, source)
        pairs whose slopes have the same sign), slope_r (Pearson r of the slopes over the pairs; NaN
        with fewer than 3), slope_rho (Spearman)}.
    """
    import json

    settings = queries.run(store, "exp2_eq_words")
    by = {(r["effect"], r["descriptor"]): r for r in settings.iter_rows(named=True)}
    shared = sorted(w for e, w in by if e == "eq" and ("safe-eq", w) in by)
    words = []
    for w in shared:
        ra = eq_response_db("eq", json.loads(by[("eq", w)]["parameters"]))
        rb = eq_response_db("safe-eq", json.loads(by[("safe-eq", w)]["parameters"]))
        words.append({
            "word": w, "safe_contributions": by[("safe-eq", w)]["contributions"],
            "response_r": pearson(ra, rb), "response_rmsd_db": float(np.sqrt(np.mean((ra - rb) ** 2))),
            "mean_gain_db_audealize": float(ra.mean()), "mean_gain_db_safe": float(rb.mean()),
        })
    words_df = pl.DataFrame(words, schema={
        "word": pl.String, "safe_contributions": pl.Int64, "response_r": pl.Float64, "response_rmsd_db": pl.Float64,
        "mean_gain_db_audealize": pl.Float64, "mean_gain_db_safe": pl.Float64,
    })
    t = traj.filter(pl.col("effect").is_in(["eq", "safe-eq"]) & pl.col("descriptor").is_in(shared))
    a = t.filter(pl.col("effect") == "eq").select("model", "source", pl.col("descriptor").alias("word"),
                                                   pl.col("slope").alias("slope_audealize"))
    b = t.filter(pl.col("effect") == "safe-eq").select("model", "source", pl.col("descriptor").alias("word"),
                                                        pl.col("slope").alias("slope_safe"))
    pairs = a.join(b, on=["model", "word", "source"], how="inner").select(
        "model", "word", "source", "slope_audealize", "slope_safe",
        ((pl.col("slope_audealize") > 0) == (pl.col("slope_safe") > 0)).alias("same_sign"),
    ).sort("model", "word", "source")
    summary = []
    for (m,), g in pairs.group_by("model", maintain_order=True):
        x, y = g["slope_audealize"].to_numpy(), g["slope_safe"].to_numpy()
        ok = np.isfinite(x) & np.isfinite(y)
        summary.append({
            "model": m, "n_words": g["word"].n_unique(), "n_pairs": int(ok.sum()),
            "sign_agreement": float(np.mean(np.sign(x[ok]) == np.sign(y[ok]))) if ok.any() else float("nan"),
            "slope_r": pearson(x[ok], y[ok]) if ok.sum() >= 3 else float("nan"),
            "slope_rho": spearman(x[ok], y[ok]) if ok.sum() >= 3 else float("nan"),
        })
    summary_df = pl.DataFrame(summary, schema={
        "model": pl.String, "n_words": pl.Int64, "n_pairs": pl.Int64, "sign_agreement": pl.Float64,
        "slope_r": pl.Float64, "slope_rho": pl.Float64,
    })
    return {"eq_words": words_df, "eq_agreement": pairs, "eq_agreement_summary": summary_df}


def _resolve_models(store: Store, model: str | None) -> list[str] | None:
    if model is None:
        return None
    labels = [s.label for s in store.spaces(model)]
    if store.count_imported_exp2(model):
        labels.append(model)
    if not labels:
        imported = store.imported_exp2_models()
        known = [s.label for s in store.spaces()] + imported
        raise AnalysisError(f"no model {model!r} in the store (known: {', '.join(known) or 'none'})")
    return labels


def _explain_empty(store: Store, template: str, renderer: str | None = None, effects: list[str] | None = None) -> str:
    n_variants = store.count_variants()
    n_imported = store.count_imported_exp2()
    if not n_variants and not n_imported:
        return (
            "no Experiment 2 data in the store: run `timbredb ingest audealize` "
            "(or `timbredb import exp2 FILE --model NAME`)"
        )
    stored = sorted({e for _, e, _ in store.exp2_effects()}, key=lambda e: EFFECT_ORDER.get(e, 99))
    if effects is not None and not set(effects) & set(stored):
        return (
            f"no variants of {', '.join(effects)} in the store (stored effects: {', '.join(stored) or 'none'}); "
            "pick them with --effect (a label, a kind such as compression, a dataset such as safedb, or every)"
        )
    if renderer is not None and not store.count_variants(renderer):
        known = store.renderer_versions()
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
    distinct: bool = False,
    effect: str | None = None,
    compare_eq: bool = False,
) -> dict[str, pl.DataFrame]:
    """Experiment 2 on what the store holds (local variants and imported results).

    Args:
        model: only this model (space label, model id, space id, or imported name).
        detail: also return the per-trajectory rows.
        template: prompt template of the target texts.
        renderer: renderer version of the local variants (None = per descriptor dataset, the latest used).
        tables: return the study's table layouts (see ``study_tables``) instead.
        distinct: count words with identical variants once (see the module doc).
        effect: which effects (``timbredb.effects.resolve``: labels, kinds, datasets or "every");
            None = the study's EQ and reverb. "all" aggregates the selected effects.
        compare_eq: also return the Audealize vs SAFE-DB EQ comparison of shared words
            (``eq_crowds``: "eq_words", "eq_agreement", "eq_agreement_summary").

    Returns:
        {"summary": per model and effect (columns ``SUMMARY_COLUMNS``)}; with ``tables``
        {"table1", "table2"} (the study's layouts) instead; with ``detail`` also
        "trajectories" (one row per trajectory).

    Raises:
        AnalysisError: unknown model, or nothing to analyse.
    """
    models = _resolve_models(store, model)
    chosen = resolve(effect)
    points = queries.run(store, "exp2_trajectories", models=models, template=template, renderer=renderer,
                         effects=chosen).drop("dataset")
    if points.height == 0:
        raise AnalysisError(_explain_empty(store, template, renderer, chosen))
    if distinct:
        points = distinct_variants(points, queries.run(store, "exp2_variant_groups"))
    traj = trajectories(points)
    summary = summarize(traj, {s.label: s.model_id for s in store.spaces()})
    out: dict[str, pl.DataFrame] = study_tables(summary) if tables else {"summary": summary}
    if detail:
        out["trajectories"] = traj
    if compare_eq:
        both = trajectories(queries.run(store, "exp2_trajectories", models=models, template=template,
                                        renderer=renderer, effects=["eq", "safe-eq"]).drop("dataset"))
        out.update(eq_crowds(store, both))
    return out
