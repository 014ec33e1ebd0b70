"""The report's section for `query axes`: antonym axes against single words."""

from __future__ import annotations

import duckdb
import numpy as np
import polars as pl
from matplotlib.figure import Figure

from timbredb.analysis import rated
from timbredb.analysis.axes import run_axes
from timbredb.errors import TimbreDBError, first_line
from timbredb.report.context import ReportContext
from timbredb.report.figures import OKABE_ITO, _figure, _styled, _zero_line
from timbredb.report.html import Section


@_styled
def axis_bars(rows: pl.DataFrame, title: str) -> Figure:
    """Per model (panel) and pair: the axis r beside the single-word r of x and of y."""
    models = list(dict.fromkeys(rows["model"].to_list()))
    fig = _figure((7.5, 2.4 * len(models) + 0.8))
    axes = np.atleast_1d(fig.subplots(len(models), 1, squeeze=False)[:, 0])
    for ax, model in zip(axes, models):
        sub = rows.filter(pl.col("model") == model)
        labels = [f"{x}–{y}" for x, y in sub.select("x", "y").iter_rows()]
        pos = np.arange(len(labels))
        for k, (col, name) in enumerate((("pearson_r", "axis x−y"), ("r_x", "word x"), ("r_y", "word y"))):
            vals = sub[col].fill_null(np.nan).to_numpy()
            ax.bar(pos - 0.3 + 0.2 * (k + 0.5), vals, 0.2, color=OKABE_ITO[k], label=name)
        _zero_line(ax)
        ax.set_xticks(pos, labels)
        ax.set_ylabel("Pearson r")
        ax.set_title(model)
    fig.suptitle(title)
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncols=3, frameon=False)
    return fig


def section(ctx: ReportContext) -> Section:
    sec = Section("axes", "Beyond the study — antonym axes (bright–dim, thick–thin, …)")
    sec.note(
        "Axis score of a stimulus: cos(audio, text x) − cos(audio, text y), correlated with the rating difference "
        "R[x] − R[y]; beside it the single-word r of x and of y over the same stimuli, the cosine between the two "
        "words' text vectors, and the angle between the axis and the first principal component of the stimuli's "
        "audio embeddings (0° = along the direction of largest variance)."
    )
    found = 0
    problems = []
    for dataset in rated.known_datasets(ctx.store):
        try:
            df = run_axes(ctx.store, dataset=dataset)["axes"]
        except (TimbreDBError, duckdb.Error) as exc:
            problems.append(f"{dataset}: {first_line(exc)}")
            continue
        found += 1
        shown = df.filter(pl.col("n") > 0)
        if shown.height:
            sec.add(ctx.writer.figure(axis_bars(shown, f"Antonym axes vs single words ({dataset})"),
                                      f"axes_{dataset}", f"Axis r and single-word r per pair and model, {dataset} "
                                      "(pairs a model cannot embed are left out)."))
        sec.add(ctx.writer.table(df, f"axes_{dataset}", f"Antonym axes of {dataset}, bare-word prompts."))
    if not found:
        sec.status = "no data"
        sec.note("No data: " + ("; ".join(problems) or "no rated dataset in the store"), "nodata")
        sec.note("Run `timbredb ingest ccmusic` (or `ingest ratings`) with a text-capable model.")
    return sec
