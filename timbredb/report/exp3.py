"""The report's Experiment 3 section: metric bars, the metric table with intervals, published numbers."""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import numpy as np
import polars as pl

from timbredb.analysis.exp3 import METRICS, run_exp3
from timbredb.errors import TimbreDBError
from timbredb.report import figures
from timbredb.report.context import ReportContext, next_colour
from timbredb.report.html import Section
from timbredb.report.published import compare, no_counterpart_text


def section(ctx: ReportContext) -> Section:
    sec = Section("exp3", "Experiment 3 — timbre dissimilarity (timbremetrics)")
    hint = "Run `timbredb ingest timbremetrics`, then `timbredb report` again."
    try:
        df = run_exp3(ctx.store, n_bootstrap=ctx.n_bootstrap, seed=ctx.seed)["metrics"]
    except (TimbreDBError, duckdb.Error) as exc:
        return _published(ctx, sec.failed(exc, hint))
    sec.note(
        "Model distance (1 − cosine, or L2) and human dissimilarity, each min–max normalised over the upper "
        "triangle; per anchor stimulus: Spearman ρ, Kendall τ-b, NDCG of retrieving similar items, triplet "
        "agreement; “all” pools the anchors of every dataset; MAE over the normalised pairs. The published "
        "weight-free rows of timbremetrics (time-averaged MFCC and multi-scale spectrogram, and their frame-level "
        "versions mfcc-frames and mss-frames, compared pair by pair after zero-padding the shorter clip) cover all "
        "21 timbremetrics datasets; a local “all” covers the datasets ingested here (n_stimuli and n_datasets say "
        "how many), so a difference is not a reproduction error unless both cover the same datasets."
    )
    pub = ctx.published_frame("exp3")
    pub = pub.filter(pl.col("note").is_null()) if "note" in pub.columns else pub
    for m in df["model"].unique().to_list():
        ctx.colours.setdefault(ctx.counterparts.of(m) or m, next_colour(ctx.colours))
    colours = {m: ctx.colours[ctx.counterparts.of(m) or m] for m in df["model"].unique().to_list()}
    cosine = df.filter(pl.col("distance") == "cosine")
    ref = None
    if not pub.is_empty():
        r = pub.filter((pl.col("distance") == "cosine") & (pl.col("dataset") == "all"))
        if r.height and any(ctx.counterparts.of(m) == r["model"][0] for m in cosine["model"].unique().to_list()):
            ref = float(r["spearman"][0])
    sec.add(ctx.writer.figure(
        figures.metric_bars(cosine, "spearman", colours, ref), "exp3_spearman",
        "Spearman ρ between model and human dissimilarity per dataset and model (cosine distance); “all” "
        "pools every anchor. Dotted line: the published time-averaged MFCC value over 21 datasets.",
    ))
    sort_cols = ["model", "distance", "dataset"]
    ci_cols = [c for c in df.columns if c.endswith(("_ci_low", "_ci_high"))]
    sec.add(ctx.writer.table(df.sort(sort_cols).drop(ci_cols), "exp3_metrics",
                             "Metrics per model, distance and dataset (“all” = every anchor of every dataset)."))
    sec.add(ctx.writer.table(_with_intervals(df.filter(pl.col("dataset") == "all").sort(sort_cols), METRICS),
                             "exp3_intervals", "The aggregate with bootstrap 95 % intervals over anchors: "
                             "value [low, high]."))
    if not pub.is_empty():
        cmp = compare(df, pub, ["dataset", "distance"], METRICS, ctx.counterparts)
        if cmp.height:
            sec.add(ctx.writer.table(cmp.sort("model", "distance", "metric"), "exp3_vs_published",
                                     "This store (“all” over the local datasets) vs the published timbremetrics "
                                     "rows (all 21 datasets): difference = local − published; n_datasets differs "
                                     "unless all 21 datasets are ingested."
                                     + ctx.counterparts.policy_caption(cmp["model"].to_list())))
        else:
            sec.note(no_counterpart_text(df, pub))
    return _published(ctx, sec)


def _published(ctx: ReportContext, sec: Section) -> Section:
    pub = ctx.published_frame("exp3")
    if not pub.is_empty():
        sec.add(ctx.writer.table(pub.drop([c for c in ("source",) if c in pub.columns]), "exp3_published",
                                 "Published timbremetrics weight-free rows (all 21 datasets; published_row = the "
                                 "results.yaml key). The jtfs rows need an unreleased kymatio and are not "
                                 "reproduced here."))
    return sec


def _with_intervals(df: pl.DataFrame, metrics: Sequence[str]) -> pl.DataFrame:
    """Each metric as the text "value [low, high]" (from <metric>_ci_low/_ci_high)."""
    keep = [c for c in df.columns if c not in metrics and not c.endswith(("_ci_low", "_ci_high"))]
    out = df.select(keep)
    for m in metrics:
        lo, hi = f"{m}_ci_low", f"{m}_ci_high"
        texts = []
        for r in df.iter_rows(named=True):
            v = r[m]
            text = "NaN" if v is None or not np.isfinite(v) else f"{v:.3f}"
            if r[lo] is not None and np.isfinite(r[lo]):
                text += f" [{r[lo]:.3f}, {r[hi]:.3f}]"
            texts.append(text)
        out = out.with_columns(pl.Series(m, texts, dtype=pl.String))
    return out
