"""The report's Experiment 1 section: the study's Figures 2-3, heat maps, tables, published numbers."""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import numpy as np
import polars as pl

from timbredb import queries
from timbredb.analysis.exp1 import run_exp1
from timbredb.errors import TimbreDBError, first_line
from timbredb.report import figures
from timbredb.report.context import ReportContext, next_colour
from timbredb.report.html import Section
from timbredb.report.published import with_published


def section(ctx: ReportContext) -> Section:
    sec = Section("exp1", "Experiment 1 — instrument timbre ratings (CCMusic)")
    hint = "Run `timbredb ingest ccmusic` with a text-capable model, then `timbredb report` again."
    try:
        res = run_exp1(ctx.store, n_bootstrap=ctx.n_bootstrap, n_permutations=ctx.n_permutations, seed=ctx.seed)
    except (TimbreDBError, duckdb.Error) as exc:
        return _published(ctx, sec.failed(exc, hint))
    desc, splits, instruments = res["descriptors"], res["splits"], res["instruments"]
    sec.note(
        "S = cosine(audio embedding of instrument i, text embedding of descriptor d) with the bare word as prompt; "
        "R = mean human rating. Descriptor level: Pearson r of S[:, d] vs R[:, d] over instruments, with bootstrap "
        "95 % intervals over instruments and BH-corrected permutation q-values. Instrument level: r of S[i, :] vs "
        "R[i, :] over the descriptors, averaged per split with ± 1.96·SD/√n."
    )
    pub_desc = ctx.published_frame("exp1_descriptors")
    pub_splits = ctx.published_frame("exp1_splits")

    # Figure 2: descriptor-level bars, local with CIs, published hatched.
    local_all = desc.filter(pl.col("split") == "all")
    series = _series(local_all, pub_desc, ctx, ["descriptor", "pearson_r", "ci_low", "ci_high"])
    if not series.is_empty():
        sec.add(ctx.writer.figure(
            figures.descriptor_bars(series, ctx.colours), "exp1_descriptor_r",
            "Descriptor-level Pearson r per descriptor and model over all instruments (the study's Figure 2). "
            "Solid bars: this store, with bootstrap 95 % CIs; hatched bars: the published values.",
        ))

    # Figure 3: split means.
    fig3 = _series(splits, pub_splits, ctx, ["split", "mean_pearson_r", "ci95_half_width"])
    if not fig3.is_empty():
        sec.add(ctx.writer.figure(
            figures.split_means(fig3, ctx.colours), "exp1_split_means",
            "Instrument-level mean Pearson r ± 1.96·SEM per split and model (the study's Figure 3). "
            "Filled markers: this store; open markers: published.",
        ))

    _heatmaps(ctx, sec)

    table = local_all.select("model", "descriptor", "n", "pearson_r", "ci_low", "ci_high", "spearman_rho",
                             "p_value", "q_value")
    table = with_published(table, pub_desc, ctx.counterparts, ["descriptor"], "pearson_r")
    sec.add(ctx.writer.table(table.sort("model", "descriptor"), "exp1_descriptors_all",
                             "Descriptor level over all instruments; published r and difference (local − published) "
                             "where the study reported the same model."
                             + ctx.counterparts.policy_caption(table["model"].to_list())))
    if desc.filter(pl.col("split") != "all").height:
        sec.add(ctx.writer.table(
            desc.filter(pl.col("split") != "all").sort("model", "split", "descriptor"), "exp1_descriptors_splits",
            "Descriptor level within each split.", max_rows=120))
    split_tab = with_published(splits, pub_splits, ctx.counterparts, ["split"], "mean_pearson_r")
    sec.add(ctx.writer.table(split_tab.sort("model", "split"), "exp1_splits",
                             "Instrument level per split: mean r, 95 % half-width, instruments with r > 0, mean ρ; "
                             "published mean and difference."))
    sec.add(ctx.writer.table(instruments.sort("model", "split", "instrument"), "exp1_instruments",
                             "Instrument level: r and ρ over descriptors per instrument.", max_rows=80))
    return _published(ctx, sec)


def _imported(ctx: ReportContext, sec: Section) -> None:
    """Experiment 1 results imported with `timbredb import exp1`, beside the published numbers of the model
    each stands for (issue 11)."""
    try:
        imp = queries.run(ctx.store, "exp1_imported")
    except (TimbreDBError, duckdb.Error):
        return
    if imp.is_empty():
        return
    desc = imp.filter(pl.col("level") == "descriptor").select(
        "model", "model_id", pl.col("unit").alias("descriptor"), "pearson_r")
    pub = ctx.published_frame("exp1_descriptors")
    caption = "Imported descriptor-level Pearson r (`timbredb import exp1`), one column per imported model."
    if not pub.is_empty() and desc.height:
        joined = desc.join(pub.select(pl.col("model").alias("model_id"), "descriptor",
                                      pl.col("pearson_r").alias("published")), on=["model_id", "descriptor"], how="inner")
        if joined.height:
            worst = float((joined["pearson_r"] - joined["published"]).abs().max())  # type: ignore[arg-type]
            caption += (f" {joined.height} of its values have a published counterpart (the model each name stands "
                        f"for: {', '.join(sorted(set(joined['model'] + ' → ' + joined['model_id'])))}); "
                        f"largest |imported − published| = {worst:.3g}.")
    if desc.height:
        wide = desc.with_columns(pl.col("model") + " (imported)").pivot(
            on="model", index="descriptor", values="pearson_r").sort("descriptor")
        sec.add(ctx.writer.table(wide, "exp1_imported_descriptors", caption))
    inst = imp.filter(pl.col("level") == "instrument")
    if inst.height:
        means = inst.group_by("model", "split").agg(
            pl.len().alias("n"), pl.col("pearson_r").mean().alias("mean_pearson_r"),
            (pl.col("pearson_r") > 0).sum().alias("n_positive")).sort("model", "split")
        sec.add(ctx.writer.table(means.with_columns(pl.col("model") + " (imported)"), "exp1_imported_splits",
                                 "Imported instrument-level r, summarised per split."))


def _published(ctx: ReportContext, sec: Section) -> Section:
    """The published Experiment 1 numbers, as reference tables (also when the store has no data)."""
    _imported(ctx, sec)
    pub_desc = ctx.published_frame("exp1_descriptors")
    pub_splits = ctx.published_frame("exp1_splits")
    if not pub_desc.is_empty():
        wide = pub_desc.pivot(on="model", index="descriptor", values="pearson_r").sort("descriptor")
        sec.add(ctx.writer.table(wide, "exp1_published_descriptors",
                                 "Published descriptor-level Pearson r (study release, all 61 instruments)."))
    if not pub_splits.is_empty():
        sec.add(ctx.writer.table(
            pub_splits.drop([c for c in ("source",) if c in pub_splits.columns]), "exp1_published_splits",
            "Published instrument-level summaries per split (recomputed from the released per-instrument r; "
            "paper_value as printed in the paper)."))
    return sec


def _series(local: pl.DataFrame, published: pl.DataFrame, ctx: ReportContext, cols: Sequence[str]) -> pl.DataFrame:
    """Local rows, each followed by its published counterpart's rows, then unmatched published models."""
    parts: list[pl.DataFrame] = []
    used: set[str] = set()
    schema_cols = ["series", "colour_key", "published", *cols]
    local_models = list(dict.fromkeys(local["model"].to_list())) if not local.is_empty() else []
    pub_models = list(dict.fromkeys(published["model"].to_list())) if not published.is_empty() else []

    def take(df: pl.DataFrame, model: str, label: str, key: str, is_pub: bool) -> None:
        sub = df.filter(pl.col("model") == model)
        present = [c for c in cols if c in sub.columns]
        sub = sub.select(present).with_columns(
            [pl.lit(None, dtype=pl.Float64).alias(c) for c in cols if c not in present]
        ).select(cols)
        if sub.height:
            parts.append(sub.with_columns(pl.lit(label).alias("series"), pl.lit(key).alias("colour_key"),
                                          pl.lit(is_pub).alias("published")).select(schema_cols))

    for model in local_models:
        cp = ctx.counterparts.of(model)
        key = cp or model
        ctx.colours.setdefault(key, next_colour(ctx.colours))
        take(local, model, f"{model} (this store)", key, False)
        if cp and cp in pub_models and cp not in used:
            used.add(cp)
            take(published, cp, f"{cp} (published)", key, True)
    for model in pub_models:
        if model not in used:
            ctx.colours.setdefault(model, next_colour(ctx.colours))
            take(published, model, f"{model} (published)", model, True)
    if not parts:
        return pl.DataFrame()
    casted = [p.with_columns([pl.col(c).cast(pl.Float64) for c in cols if c not in ("descriptor", "split")])
              for p in parts]
    return pl.concat(casted, how="vertical_relaxed")


def _heatmaps(ctx: ReportContext, sec: Section) -> None:
    try:
        # The study prompts with the bare word ('{}'), as the figures above.
        pairs = queries.run(ctx.store, "exp1_pairs", template="{}")
    except (TimbreDBError, duckdb.Error) as exc:
        sec.note(f"The exp1_pairs query cannot run here ({first_line(exc)}); no heat maps.", "nodata")
        return
    try:
        ratings = queries.run(ctx.store, "exp1_ratings")
    except (TimbreDBError, duckdb.Error):
        ratings = pairs.group_by("instrument", "split", "descriptor").agg(pl.col("rating").first())
    if pairs.is_empty() and ratings.is_empty():
        return
    order = (
        pl.concat([ratings.select("instrument", "split"), pairs.select("instrument", "split")])
        .unique().sort("split", "instrument")
    )
    instruments = order["instrument"].to_list()
    labels = [f"{i} ({s[:1].upper()})" if s else i for i, s in order.iter_rows()]
    descriptors = sorted(set(ratings["descriptor"].to_list()) | set(pairs["descriptor"].to_list()))

    def matrix(df: pl.DataFrame, value: str) -> np.ndarray:
        m = np.full((len(instruments), len(descriptors)), np.nan)
        ii = {v: k for k, v in enumerate(instruments)}
        dd = {v: k for k, v in enumerate(descriptors)}
        for inst, desc, val in df.select("instrument", "descriptor", value).iter_rows():
            if val is not None:
                m[ii[inst], dd[desc]] = float(val)
        return m

    sec.add(ctx.writer.figure(
        figures.heatmaps([("R: mean human rating", matrix(ratings, "rating"))], labels, descriptors, "rating (1–10)"),
        "exp1_heatmap_R", "R: mean human rating per instrument (rows; C = Chinese, W = Western) and descriptor.",
    ))
    models = sorted(pairs["model"].unique().to_list())
    if not models:
        return
    panels = [(f"S: {m}", matrix(pairs.filter(pl.col("model") == m), "similarity")) for m in models]
    sec.add(ctx.writer.figure(
        figures.heatmaps(panels, labels, descriptors, "cosine similarity"), "exp1_heatmap_S",
        "S: cosine similarity between each instrument's audio embedding and each descriptor's text embedding, "
        "per model (colour scale per panel; grey: a descriptor the model has no text embedding for).",
    ))
