"""The report's section for `query ceiling`: how high could any model go?"""

from __future__ import annotations

import duckdb
import numpy as np
import polars as pl
from matplotlib.figure import Figure

from timbredb.analysis import rated
from timbredb.analysis.ceiling import run_ceiling
from timbredb.analysis.exp1 import run_exp1
from timbredb.errors import TimbreDBError, first_line
from timbredb.report.context import ReportContext
from timbredb.report.figures import OKABE_ITO, _figure, _styled
from timbredb.report.html import Section


@_styled
def ceiling_bars(rows: pl.DataFrame, title: str) -> Figure:
    """ceiling_r per descriptor, one bar per method."""
    descriptors = sorted(set(rows["descriptor"].to_list()))
    methods = sorted(set(rows["method"].to_list()))
    fig = _figure((max(4.5, 0.5 * len(descriptors) + 2.0), 3.4))
    ax = fig.subplots()
    x = np.arange(len(descriptors))
    width = 0.8 / len(methods)
    for k, method in enumerate(methods):
        lookup = {r["descriptor"]: r["ceiling_r"] for r in rows.filter(pl.col("method") == method).iter_rows(named=True)}
        vals = np.array([np.nan if lookup.get(d) is None else float(lookup[d]) for d in descriptors])
        ax.bar(x - 0.4 + width * (k + 0.5), vals, width, color=OKABE_ITO[k], label=method)
    ax.set_xticks(x, descriptors, rotation=45, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("ceiling r = √reliability")
    ax.set_title(title)
    fig.legend(loc="outside lower center", ncols=len(methods), frameon=False)
    return fig


def section(ctx: ReportContext) -> Section:
    sec = Section("ceiling", "Beyond the study — the noise ceiling of the ratings")
    sec.note(
        "Reliability of the mean rating per descriptor: split-half (listeners split at random into halves, Pearson r "
        "of the halves' means over stimuli, Spearman–Brown corrected 2r/(1+r), averaged over 1,000 seeded splits) "
        "or from the listeners' SDs (1 − mean(SD²/n) / var(means)); ceiling r = √reliability is the most any "
        "predictor can agree with the mean ratings."
    )
    found = 0
    problems = []
    for dataset in rated.known_datasets(ctx.store):
        try:
            df = run_ceiling(ctx.store, dataset=dataset, seed=ctx.seed)["ceilings"]
        except (TimbreDBError, duckdb.Error) as exc:
            problems.append(f"{dataset}: {first_line(exc)}")
            continue
        found += 1
        sec.add(ctx.writer.figure(ceiling_bars(df, f"Noise ceiling per descriptor ({dataset})"),
                                  f"ceiling_{dataset}", f"Noise ceiling r per descriptor and method, {dataset}."))
        sec.add(ctx.writer.table(df, f"ceiling_{dataset}", f"Noise ceilings of {dataset}: reliability of the mean "
                                 "rating and ceiling r, per descriptor and method."))
        try:
            desc = run_exp1(ctx.store, n_bootstrap=0, n_permutations=0, dataset=dataset)["descriptors"]
        except (TimbreDBError, duckdb.Error):
            continue
        if "ceiling_r" in desc.columns:
            near = desc.filter(pl.col("ceiling_r").is_finite() & pl.col("pearson_r").is_finite()).select(
                "model", "split", "descriptor", "n", "pearson_r", "ceiling_r", "r_over_ceiling")
            if near.height:
                sec.add(ctx.writer.table(near.sort("model", "split", "descriptor"), f"ceiling_vs_exp1_{dataset}",
                                         "Experiment 1 r beside the ceiling over the same stimuli (the split's): "
                                         "r / ceiling is the share of the reachable agreement a model attains."))
    if not found:
        sec.status = "no data"
        sec.note("No data: " + ("; ".join(problems) or "no rated dataset in the store"), "nodata")
        sec.note("A ceiling needs raw listener ratings or listener SDs: `timbredb ingest ccmusic` with CCMusic's "
                 "listener files in the ccmusic folder, or `timbredb ingest ratings` with a listener table.")
    return sec
