"""The report's Experiment 2 section: the study's Tables 1-2, Figure 4 trajectories, slope heat map."""

from __future__ import annotations

import duckdb
import polars as pl

from timbredb.analysis.exp2 import run_exp2
from timbredb.errors import TimbreDBError
from timbredb.report import figures
from timbredb.report.context import ReportContext, next_colour
from timbredb.report.html import Section
from timbredb.report.published import compare, no_counterpart_text

_EXP2_METRICS = ("pos_slope_rate", "pos_final_delta_rate", "all_source_consistency", "mean_pearson_r",
                 "mean_spearman_rho", "mean_slope", "mean_final_delta")


def section(ctx: ReportContext) -> Section:
    sec = Section("exp2", "Experiment 2 — descriptor effects (EQ and reverb)")
    hint = "Run `timbredb ingest audealize` with a text-capable model, then `timbredb report` again."
    try:
        # detail=True: the summary and the per-trajectory rows in one pass
        res = run_exp2(ctx.store, detail=True)
    except (TimbreDBError, duckdb.Error) as exc:
        return _published(ctx, sec.failed(exc, hint))
    summary = res["summary"]
    sec.note(
        "Per trajectory (model × effect × source × word): Δ(s) = cos(variant at strength s, “a word sound”) − "
        "cos(original, same text); slope = least-squares slope of Δ on s; final Δ = Δ(1.0). Rates are shares of "
        "trajectories; all-source consistency is the share of (effect, word) pairs whose every source has a "
        "positive slope. The study used guitar, piano and a mixture (120 trajectories per model, 60 per effect); "
        "compare n_trajectories before reading differences."
    )
    pub = ctx.published_frame("exp2")
    table1 = summary.filter(pl.col("effect") == "all")
    table2 = summary.filter(pl.col("effect") != "all").sort("model", "effect")
    sec.add(ctx.writer.table(table1.sort("model"), "exp2_table1", "Table 1: per model, both effects together."))
    sec.add(ctx.writer.table(table2, "exp2_table2", "Table 2: per model and effect."))
    if not pub.is_empty():
        cmp = compare(summary, pub, ["effect"], _EXP2_METRICS, ctx.counterparts)
        if cmp.height:
            sec.add(ctx.writer.table(
                cmp.sort("model", "effect", "metric"), "exp2_vs_published",
                "This store vs published (Tables 1 and 2 of the study): difference = local − published "
                "(rates as fractions)." + ctx.counterparts.policy_caption(cmp["model"].to_list())))
        else:
            sec.note(no_counterpart_text(summary, pub))
        _published(ctx, sec)

    points, slopes = _points(res["trajectories"])
    effects = [ctx.effect] if ctx.effect else sorted(points["effect"].unique().to_list())
    present = [w for w in ctx.words
               if points.filter(pl.col("word") == w, pl.col("effect").is_in(effects)).height]
    words = present
    chosen = "the chosen words " + ", ".join(f"“{w}”" for w in ctx.words)
    missing = [w for w in ctx.words if w not in present]
    if present and missing:
        sec.note(f"Not in the store for {', '.join(effects)} (no trajectory with an embedded prompt): "
                 f"{', '.join(missing)}.")
    if not present:
        ranked = (slopes.filter(pl.col("effect").is_in(effects)).group_by("word").agg(pl.col("slope").mean())
                  .drop_nans().sort("slope", descending=True))
        words = ranked["word"].head(2).to_list()
        if words:
            sec.note(f"{chosen.capitalize()} are not in the store for {', '.join(effects)}; showing the two words "
                     f"with the largest mean slope instead: {', '.join(words)}.")
    if words:
        for m in sorted(points["model"].unique().to_list()):
            ctx.colours.setdefault(ctx.counterparts.of(m) or m, next_colour(ctx.colours))
        model_colours = {m: ctx.colours[ctx.counterparts.of(m) or m] for m in points["model"].unique().to_list()}
        sec.add(ctx.writer.figure(
            figures.trajectories(points, words, effects, model_colours), "exp2_trajectories",
            f"Mean Δ over sources vs effect strength ({', '.join(effects)}); the band spans the sources' minimum "
            "to maximum; strength 0 is the original (Δ = 0). The study's Figure 4 shows “haunting” and “deep” "
            "(reverb).",
        ))
    mean_slopes = slopes.group_by("model", "effect", "word").agg(pl.col("slope").mean())
    sec.add(ctx.writer.figure(
        figures.slope_heatmap(mean_slopes), "exp2_slope_heatmap",
        "Slope of Δ on strength per word and model, averaged over sources (red: similarity to the word rises "
        "with the effect; blue: falls).",
    ))
    return sec


def _published(ctx: ReportContext, sec: Section) -> Section:
    pub = ctx.published_frame("exp2")
    if not pub.is_empty():
        cols = [c for c in ("model", "effect", "n_trajectories", *_EXP2_METRICS) if c in pub.columns]
        sec.add(ctx.writer.table(pub.select(cols).sort("effect", "model"), "exp2_published",
                                 "Published Tables 1 (effect = all) and 2 (eq, reverb), from the study's release."))
    return sec


def _points(traj: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Per-strength Δ rows and per-trajectory slopes from ``run_exp2(detail=True)["trajectories"]``.

    Returns:
        (points: model, effect, source, word, strength, delta; slopes: model, effect, source, word, slope).
    """
    traj = traj.rename({"descriptor": "word"})
    points = traj.select(
        "model", "effect", "source", "word", pl.col("strengths").alias("strength"), pl.col("deltas").alias("delta")
    ).explode("strength", "delta")
    return points, traj.select("model", "effect", "source", "word", "slope")
