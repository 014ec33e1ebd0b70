"""The report's section for `query probe`: ridge and PCA probes of the audio embeddings."""

from __future__ import annotations

import duckdb
import numpy as np
import polars as pl
from matplotlib.figure import Figure

from timbredb.analysis import rated
from timbredb.analysis.probe import DEFAULT_PERMUTATIONS, run_probe
from timbredb.errors import TimbreDBError, first_line
from timbredb.report.context import ReportContext
from timbredb.report.figures import OKABE_ITO, _figure, _styled, _zero_line
from timbredb.report.html import Section


@_styled
def probe_bars(rows: pl.DataFrame, title: str) -> Figure:
    """Per model (panel): the ridge probe's out-of-fold r beside the zero-shot r, per descriptor."""
    models = list(dict.fromkeys(rows["model"].to_list()))
    fig = _figure((9.0, 2.3 * len(models) + 0.9))
    axes = np.atleast_1d(fig.subplots(len(models), 1, squeeze=False)[:, 0])
    for ax, model in zip(axes, models):
        sub = rows.filter(pl.col("model") == model).sort("descriptor")
        pos = np.arange(sub.height)
        for k, (col, name) in enumerate((("pearson_r", "ridge probe (nested LOO)"), ("zero_shot_r", "zero-shot cosine"))):
            ax.bar(pos - 0.2 + 0.4 * k, sub[col].fill_null(np.nan).to_numpy(), 0.4, color=OKABE_ITO[k], label=name)
        _zero_line(ax)
        ax.set_xticks(pos, sub["descriptor"].to_list(), rotation=45, ha="right")
        ax.set_ylabel("Pearson r")
        ax.set_title(model)
    fig.suptitle(title)
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncols=2, frameon=False)
    return fig


def section(ctx: ReportContext) -> Section:
    sec = Section("probe", "Beyond the study — linear probes of the audio embeddings")
    perms = min(ctx.n_permutations, DEFAULT_PERMUTATIONS)
    sec.note(
        "Ridge: per descriptor, ridge regression from the L2-normalised audio embedding to the ratings, evaluated by "
        "outer leave-one-stimulus-out with alpha chosen inside each fold by efficient leave-one-out over 10^k, "
        f"k = −3 … 3 (RidgeCV semantics); one-sided permutation p over {perms} shuffles of the ratings (the whole "
        "nested procedure each). PCA: the top principal components of the audio embeddings and the correlation of "
        "each component's scores with each descriptor's ratings."
    )
    found = 0
    problems = []
    for dataset in rated.known_datasets(ctx.store):
        try:
            ridge = run_probe(ctx.store, dataset=dataset, n_permutations=perms, seed=ctx.seed)["probe"]
            pca = run_probe(ctx.store, dataset=dataset, method="pca")["probe"]
        except (TimbreDBError, duckdb.Error) as exc:
            problems.append(f"{dataset}: {first_line(exc)}")
            continue
        found += 1
        sec.add(ctx.writer.figure(probe_bars(ridge, f"Ridge probe vs zero-shot ({dataset})"), f"probe_{dataset}",
                                  f"Out-of-fold r of the ridge probe and the zero-shot cosine r, {dataset}."))
        sec.add(ctx.writer.table(ridge, f"probe_ridge_{dataset}", f"Ridge probes of {dataset} (nested LOO)."))
        wide = pca.pivot(on="descriptor", index=["model", "component", "explained_variance_ratio"], values="pearson_r")
        sec.add(ctx.writer.table(wide, f"probe_pca_{dataset}", f"Top principal components of {dataset}'s audio "
                                 "embeddings: explained variance ratio and r of the component scores with each "
                                 "descriptor's ratings."))
    if not found:
        sec.status = "no data"
        sec.note("No data: " + ("; ".join(problems) or "no rated dataset in the store"), "nodata")
        sec.note("Run `timbredb ingest ccmusic` (or `ingest ratings`) with any model.")
    return sec
