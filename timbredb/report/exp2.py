"""The report's Experiment 2 section: the study's Tables 1-2, Figure 4 trajectories, slope heat map."""

from __future__ import annotations

import duckdb
import polars as pl

from timbredb.analysis.exp2 import run_exp2
from timbredb.effects import DEFAULT
from timbredb.errors import TimbreDBError
from timbredb.report import figures
from timbredb.report.context import ReportContext, next_colour
from timbredb.report.html import Section
from timbredb.report.published import compare, no_counterpart_text

_EXP2_METRICS = ("pos_slope_rate", "pos_final_delta_rate", "all_source_consistency", "mean_pearson_r",
                 "mean_spearman_rho", "mean_slope", "mean_final_delta")


def section(ctx: ReportContext) -> Section:
    sec = Section("exp2", "Experiment 2 — descriptor effects (EQ and reverb; compression and distortion)")
    hint = "Run `timbredb ingest audealize` with a text-capable model, then `timbredb report` again."
    try:
        # detail=True: the summary and the per-trajectory rows in one pass
        res = run_exp2(ctx.store, detail=True)
    except (TimbreDBError, duckdb.Error) as exc:
        sec = _published(ctx, sec.failed(exc, hint))
        return _other_datasets(ctx, sec)
    _study(ctx, sec, res)
    return _other_datasets(ctx, sec)


def _study(ctx: ReportContext, sec: Section, res: dict[str, pl.DataFrame]) -> Section:
    """The study's part: Audealize EQ and reverb, Tables 1-2 beside the published ones, Figure 4, heat map."""
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
    effects = [ctx.effect] if ctx.effect in DEFAULT else sorted(points["effect"].unique().to_list())
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


def _other_datasets(ctx: ReportContext, sec: Section) -> Section:
    """Effects of the other descriptor datasets (SocialFX compression, SAFE-DB), and the two crowds' EQ."""
    every = {e for _, e, _ in ctx.store.exp2_effects()}
    stored = every - set(DEFAULT)
    if not stored:
        sec.note("No effects of other descriptor datasets are stored: `timbredb ingest socialfx-comp safedb` renders "
                 "SocialFX's compressor and SAFE-DB's equaliser, compressor and distortion settings on the same "
                 "sources (docs/exp2.md).")
        return sec
    try:
        res = run_exp2(ctx.store, detail=True, effect="socialfx,safedb")
    except (TimbreDBError, duckdb.Error) as exc:
        sec.note(f"Other descriptor datasets: {exc}")
        return sec
    sec.note(
        "Other descriptor datasets, the same analysis: SocialFX contributors' compressor settings "
        "(socialfx-compression) and SAFE-DB plug-in settings (safe-eq, safe-compression, safe-distortion), each "
        "word's median setting rendered at the same strengths (0 = the plug-in's neutral setting) on the same "
        "sources. “all” aggregates these effects only. No published numbers exist for them."
    )
    summary = res["summary"]
    sec.add(ctx.writer.table(summary.sort("model"), "exp2_other_effects",
                             "Per model and effect of the SocialFX and SAFE-DB datasets."))
    _, slopes = _points(res["trajectories"])
    mean_slopes = slopes.group_by("model", "effect", "word").agg(pl.col("slope").mean())
    if mean_slopes.height:
        sec.add(ctx.writer.figure(
            figures.slope_heatmap(mean_slopes), "exp2_other_slope_heatmap",
            "Slope of Δ on strength per word and model for the SocialFX and SAFE-DB effects, averaged over sources.",
        ))
    if ctx.effect and ctx.effect not in DEFAULT:
        points, _ = _points(res["trajectories"])
        words = [w for w in ctx.words if points.filter(pl.col("word") == w, pl.col("effect") == ctx.effect).height]
        if words:
            colours = ctx.model_colours(sorted(points["model"].unique().to_list()))
            sec.add(ctx.writer.figure(
                figures.trajectories(points, words, [ctx.effect], colours), "exp2_other_trajectories",
                f"Mean Δ over sources vs strength ({ctx.effect}); the band spans the sources.",
            ))
    if {"eq", "safe-eq"} <= every:
        _crowds(ctx, sec)
    return sec


def _crowds(ctx: ReportContext, sec: Section) -> None:
    """Audealize vs SAFE-DB EQ for the words both crowds describe."""
    try:
        res = run_exp2(ctx.store, compare_eq=True)
    except (TimbreDBError, duckdb.Error) as exc:
        sec.note(f"Audealize vs SAFE-DB EQ: {exc}")
        return
    words = res["eq_words"]
    if words.is_empty():
        sec.note("No word has both Audealize and SAFE-DB EQ variants in the store (e.g. `timbredb ingest audealize "
                 "safedb` renders warm, bright, clear and tinny with both).")
        return
    sec.add(ctx.writer.table(
        words, "exp2_eq_crowds_words",
        "Two crowds, one word: the full-strength magnitude responses of Audealize's EQ curve and of SAFE-DB's median "
        "EQ setting for the same word, measured at Audealize's 40 band centres (dB); response_r = their Pearson r.",
    ))
    if res["eq_agreement_summary"].height:
        sec.add(ctx.writer.table(
            res["eq_agreement_summary"], "exp2_eq_crowds_models",
            "Do the two crowds' EQs move a model the same way? Over (word, source) pairs: share whose trajectory "
            "slopes have the same sign, and Pearson/Spearman correlation of the two slopes.",
        ))
        sec.add(ctx.writer.table(res["eq_agreement"], "exp2_eq_crowds_slopes",
                                 "Slope of Δ on strength per model, word and source, for each crowd's EQ."))


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
