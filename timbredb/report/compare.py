"""The report's section for `query compare`: is a model's lead larger than chance?"""

from __future__ import annotations

import duckdb
import numpy as np
import polars as pl
from matplotlib.figure import Figure

from timbredb.analysis.compare import run_compare
from timbredb.errors import TimbreDBError, first_line
from timbredb.report.context import ReportContext
from timbredb.report.figures import _figure, _styled, _zero_line
from timbredb.report.html import Section


def imported_names(ctx: ReportContext) -> set[str]:
    """Names of results computed elsewhere (exp1 and exp2 imports)."""
    return set(ctx.store.imported_exp1_models()) | set(ctx.store.imported_exp2_models())


def labelled(df: pl.DataFrame, names: set[str], columns: tuple[str, ...] = ("model_a", "model_b")) -> pl.DataFrame:
    """Model names of imported results get " (imported)"."""
    return df.with_columns([
        pl.when(pl.col(c).is_in(sorted(names))).then(pl.col(c) + " (imported)").otherwise(pl.col(c)).alias(c)
        for c in columns if c in df.columns
    ])


@_styled
def forest(rows: pl.DataFrame, title: str) -> Figure:
    """diff = mean_a - mean_b with its bootstrap 95% interval, one line per model pair and level."""
    labels = [f"{r['model_a']} − {r['model_b']} ({r['level']}, n={r['n']})" for r in rows.iter_rows(named=True)]
    fig = _figure((7.5, 0.32 * len(labels) + 1.4))
    ax = fig.subplots()
    y = np.arange(len(labels))[::-1]
    diff = rows["diff"].to_numpy()
    lo, hi = rows["ci_low"].to_numpy(), rows["ci_high"].to_numpy()
    sig = (rows["p_adjusted"].fill_null(1.0).fill_nan(1.0) < 0.05).to_numpy()
    ax.errorbar(diff, y, xerr=[diff - lo, hi - diff], fmt="none", ecolor="0.3", elinewidth=1, capsize=2)
    ax.scatter(diff[~sig], y[~sig], color="#0072B2", zorder=3, label="Holm-adjusted p ≥ 0.05")
    ax.scatter(diff[sig], y[sig], color="#D55E00", marker="D", zorder=3, label="Holm-adjusted p < 0.05")
    _zero_line(ax, horizontal=False)
    ax.set_yticks(y, labels)
    ax.set_xlabel("mean r of a − mean r of b (bootstrap 95 % interval)")
    ax.set_title(title)
    fig.legend(loc="outside lower center", ncols=2, frameon=False)
    return fig


def section(ctx: ReportContext) -> Section:
    sec = Section("compare", "Beyond the study — is a model's lead larger than chance? (paired comparison)")
    sec.note(
        "Per pair of models, over the units both have (exp1: descriptors and instruments; exp2: trajectories; "
        "exp3: anchors): diff = mean_a − mean_b, a percentile-bootstrap 95 % interval (units resampled in pairs), "
        "and a two-sided paired sign-flip permutation p-value, exact over all 2^n sign patterns for n ≤ 20, else "
        "10,000 seeded random patterns; p_adjusted: Holm over the pairs of one level, split and metric. Results "
        "computed elsewhere (`timbredb import exp1|exp2`) are marked (imported)."
    )
    names = imported_names(ctx)
    done = 0
    problems = []
    for exp in ("exp1", "exp2", "exp3"):
        try:
            df = run_compare(ctx.store, exp=exp, n_bootstrap=ctx.n_bootstrap, seed=ctx.seed)["comparisons"]
        except (TimbreDBError, duckdb.Error) as exc:
            problems.append(f"{exp}: {first_line(exc)}")
            continue
        done += 1
        df = labelled(df, names)
        if exp == "exp1":
            main = df.filter((pl.col("split") == "all") & (pl.col("metric") == "pearson_r"))
            if main.height:
                sec.add(ctx.writer.figure(
                    forest(main, "Experiment 1, paired differences of Pearson r"),
                    "compare_exp1_forest",
                    "Experiment 1, split all, Pearson r: the difference between two models' mean r over the "
                    "descriptors (descriptor level) or instruments (instrument level), with its bootstrap 95 % "
                    "interval; orange diamonds: Holm-adjusted p < 0.05.",
                ))
        sec.add(ctx.writer.table(df, f"compare_{exp}", f"{exp}: every model pair, level, split and metric."))
    if not done:
        sec.status = "no data"
        sec.note("No data: " + "; ".join(problems), "nodata")
        sec.note("A comparison needs two models with results: ingest with two models, or import results "
                 "(`timbredb import exp1 FOLDER`).")
    elif problems:
        sec.note("Not compared: " + "; ".join(problems))
    return sec
