"""The report's section for `query prompts`: how much the numbers move with the prompt template."""

from __future__ import annotations

from typing import Any

import duckdb
import numpy as np
import polars as pl
from matplotlib.figure import Figure

from timbredb.analysis import rated
from timbredb.analysis.prompts import SUMMARIES, run_prompts
from timbredb.errors import TimbreDBError, first_line
from timbredb.report.context import ReportContext
from timbredb.report.figures import OKABE_ITO, _figure, _styled, _zero_line
from timbredb.report.html import Section
from timbredb.vocabularies import ENSEMBLE


@_styled
def template_dots(rows: pl.DataFrame, metric: str, title: str) -> Figure:
    """Per model (panel): the metric per descriptor (x) for every template (dots), the ensemble as a cross."""
    models = list(dict.fromkeys(rows["model"].to_list()))
    fig = _figure((9.0, 2.4 * len(models) + 1.0))
    axes = np.atleast_1d(fig.subplots(len(models), 1, squeeze=False)[:, 0])
    for ax, model in zip(axes, models):
        sub = rows.filter((pl.col("model") == model) & (pl.col("metric") == metric))
        descriptors = sorted(set(sub["descriptor"].to_list()))
        pos = {d: i for i, d in enumerate(descriptors)}
        templates = [t for t in dict.fromkeys(sub["template"].to_list()) if t != ENSEMBLE]
        # templates side by side within a descriptor's slot, so equal values stay visible
        step = 0.6 / max(len(templates), 1)
        for k, t in enumerate(templates):
            part = sub.filter(pl.col("template") == t)
            offset = -0.3 + step * (k + 0.5)
            ax.scatter([pos[d] + offset for d in part["descriptor"].to_list()], part["value"].to_list(), s=14,
                       color=OKABE_ITO[k % len(OKABE_ITO)], label=repr(t), alpha=0.85, zorder=3)
        ens = sub.filter(pl.col("template") == ENSEMBLE)
        if ens.height:
            ax.scatter([pos[d] for d in ens["descriptor"].to_list()], ens["value"].to_list(), s=60, marker="_",
                       linewidths=2, color="black", label="ensemble", zorder=4)
        _zero_line(ax)
        ax.set_xlim(-0.6, len(descriptors) - 0.4)
        ax.set_xticks(range(len(descriptors)), descriptors, rotation=45, ha="right")
        ax.set_ylabel(metric.replace("_", " "))
        ax.set_title(model)
    fig.suptitle(title)
    legend: dict[str, Any] = {}
    for ax in axes:  # models may have different templates: one legend entry per template of any panel
        for handle, name in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(name, handle)
    fig.legend(list(legend.values()), list(legend), loc="outside lower center", ncols=4, frameon=False)
    return fig


def section(ctx: ReportContext) -> Section:
    sec = Section("prompts", "Beyond the study — prompt sensitivity and the prompt ensemble")
    sec.note(
        "Every template stored for a model (`timbredb ingest --prompt-set default` embeds eight), and the ensemble "
        "(the mean of a word's L2-normalised template vectors, the CLIP recipe): Experiment 1's descriptor-level r "
        "and Experiment 2's positive-slope rate and mean r per template, with their mean, SD, min and max across "
        "the stored templates; 'all' is over the descriptors every template has."
    )
    found = 0
    problems = []
    runs = [("exp1", d) for d in rated.known_datasets(ctx.store)] + [("exp2", "")]
    for exp, dataset in runs:
        try:
            df = run_prompts(ctx.store, exp=exp, dataset=dataset or "ccmusic")["prompts"]
        except (TimbreDBError, duckdb.Error) as exc:
            problems.append(f"{exp}{' ' + dataset if dataset else ''}: {first_line(exc)}")
            continue
        found += 1
        tag = f"{exp}_{dataset}" if dataset else exp
        per_template = df.filter(~pl.col("template").is_in(list(SUMMARIES)))
        metric = "pearson_r" if exp == "exp1" else "pos_slope_rate"
        shown = per_template.filter(pl.col("descriptor") != "all")
        if shown.filter(pl.col("metric") == metric).height:
            sec.add(ctx.writer.figure(
                template_dots(shown, metric, f"{exp} per template{' (' + dataset + ')' if dataset else ''}"),
                f"prompts_{tag}", f"{exp}: {metric.replace('_', ' ')} per descriptor for every stored template "
                "(dots, side by side) and the ensemble (black bars)."))
        overall = per_template.filter(pl.col("descriptor") == "all").pivot(on="metric", index=["model", "template"],
                                                                           values="value")
        sec.add(ctx.writer.table(overall, f"prompts_{tag}_overall",
                                 f"{exp}: the overall number per model and template (descriptor 'all')."))
        summary = df.filter(pl.col("template").is_in(list(SUMMARIES))).pivot(
            on="template", index=["model", "descriptor", "metric"], values="value")
        sec.add(ctx.writer.table(summary, f"prompts_{tag}_spread",
                                 f"{exp}: mean, SD, min and max across the stored templates; 'all' is over the "
                                 "descriptors every template has.", max_rows=200))
    if not found:
        sec.status = "no data"
        sec.note("No data: " + "; ".join(problems), "nodata")
        sec.note("Ingest with several templates: `timbredb ingest ccmusic --prompt-set default`.")
    return sec
