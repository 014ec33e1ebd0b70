"""The report's figures, one function per figure.

Every function takes polars frames and returns a ``matplotlib.figure.Figure``
built without pyplot (no global figure manager, no backend switch) and inside
``matplotlib.rc_context(STYLE)``, so importing this module changes no global
rcParams; saving is the caller's business (``save`` applies the same style).
Colours come from the Okabe–Ito palette (distinguishable with the common
colour-vision deficiencies); diverging maps are ColorBrewer's RdBu,
sequential ones viridis. Sizes are in inches and fit an A4/Letter page
at 100 % (at most 7.5 in wide, or 10 in for the wide bar charts, landscape).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ParamSpec

import matplotlib
import numpy as np
import polars as pl
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

#: Okabe & Ito (2008), ordered so the first colours contrast best on white.
OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")

FONT_SIZE = 9

#: the report's matplotlib style, applied per figure (never to the global rcParams)
STYLE: dict[Any, Any] = {
    "font.size": FONT_SIZE,
    "axes.titlesize": FONT_SIZE + 1,
    "axes.labelsize": FONT_SIZE,
    "legend.fontsize": FONT_SIZE - 1,
    "xtick.labelsize": FONT_SIZE - 1,
    "ytick.labelsize": FONT_SIZE - 1,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "svg.fonttype": "none",
}

P = ParamSpec("P")


def _styled(fn: Callable[P, Figure]) -> Callable[P, Figure]:
    """Build the figure inside the report style (artists read rcParams when they are made)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> Figure:
        with matplotlib.rc_context(STYLE):
            return fn(*args, **kwargs)

    return wrapper


def save(fig: Figure, path: Path, dpi: int = 150) -> None:
    """Write a figure as PNG, in the report style."""
    with matplotlib.rc_context(STYLE):
        fig.savefig(path, dpi=dpi)


def _figure(figsize: tuple[float, float]) -> Figure:
    return Figure(figsize=figsize, layout="constrained")


def colour_map(names: Sequence[str]) -> dict[str, str]:
    """A stable colour per name (model id), in order of first appearance."""
    out: dict[str, str] = {}
    for name in names:
        if name not in out:
            out[name] = OKABE_ITO[len(out) % len(OKABE_ITO)]
    return out


def _zero_line(ax: Axes, horizontal: bool = True) -> None:
    if horizontal:
        ax.axhline(0, color="0.4", linewidth=0.8, linestyle="--", zorder=0)
    else:
        ax.axvline(0, color="0.4", linewidth=0.8, linestyle="--", zorder=0)


# ---------------------------------------------------------------- Experiment 1
@_styled
def descriptor_bars(series: pl.DataFrame, colours: dict[str, str]) -> Figure:
    """Grouped bars of descriptor-level Pearson r (the study's Figure 2).

    Args:
        series: one row per (series, descriptor) with columns ``series`` (legend
            label), ``colour_key`` (key into ``colours``), ``published`` (bool),
            ``descriptor``, ``pearson_r``, ``ci_low``, ``ci_high`` (null when
            there is no interval, as for published values).
        colours: colour per ``colour_key``.
    """
    descriptors = sorted(series["descriptor"].unique().to_list())
    names = list(dict.fromkeys(series["series"].to_list()))
    n = len(names)
    width = 0.84 / max(n, 1)
    fig = _figure((10, 4.2))
    ax = fig.subplots()
    x = np.arange(len(descriptors))
    for k, name in enumerate(names):
        sub = series.filter(pl.col("series") == name)
        lookup = {r["descriptor"]: r for r in sub.iter_rows(named=True)}
        vals = np.array([_num(lookup.get(d, {}).get("pearson_r")) for d in descriptors])
        lo = np.array([_num(lookup.get(d, {}).get("ci_low")) for d in descriptors])
        hi = np.array([_num(lookup.get(d, {}).get("ci_high")) for d in descriptors])
        first = sub.row(0, named=True)
        colour = colours[first["colour_key"]]
        pos = x - 0.42 + width * (k + 0.5)
        if first["published"]:
            ax.bar(pos, vals, width, facecolor="white", edgecolor=colour, hatch="////", linewidth=0.8, label=name)
        else:
            ax.bar(pos, vals, width, color=colour, label=name)
            ok = np.isfinite(lo) & np.isfinite(hi) & np.isfinite(vals)
            if ok.any():
                ax.errorbar(
                    pos[ok], vals[ok], yerr=[vals[ok] - lo[ok], hi[ok] - vals[ok]],
                    fmt="none", ecolor="0.15", elinewidth=0.8, capsize=1.5,
                )
    _zero_line(ax)
    ax.set_xticks(x, descriptors, rotation=45, ha="right")
    ax.set_xlim(-0.6, len(descriptors) - 0.4)
    ax.set_ylabel("Pearson r (similarity vs mean rating)")
    ax.set_title("Descriptor level: correlation over instruments, per descriptor and model")
    fig.legend(ncols=min(n, 4), loc="outside lower center", frameon=False)
    return fig


@_styled
def split_means(rows: pl.DataFrame, colours: dict[str, str]) -> Figure:
    """Instrument-level mean Pearson r ± 1.96·SEM per split and model (the study's Figure 3).

    Args:
        rows: columns ``series`` (x tick label), ``colour_key``, ``published`` (bool),
            ``split``, ``mean_pearson_r``, ``ci95_half_width``.
    """
    names = list(dict.fromkeys(rows["series"].to_list()))
    splits = [s for s in ("chinese", "western", "all") if s in set(rows["split"].to_list())]
    markers = {"chinese": "o", "western": "s", "all": "^"}
    fig = _figure((max(5.0, 1.0 + 0.9 * len(names)), 3.6))
    ax = fig.subplots()
    offsets = np.linspace(-0.18, 0.18, len(splits)) if len(splits) > 1 else np.zeros(1)
    for k, name in enumerate(names):
        sub = rows.filter(pl.col("series") == name)
        for off, split in zip(offsets, splits):
            r = sub.filter(pl.col("split") == split)
            if r.height == 0:
                continue
            row = r.row(0, named=True)
            colour = colours[row["colour_key"]]
            ax.errorbar(
                k + off, _num(row["mean_pearson_r"]), yerr=_num(row["ci95_half_width"]),
                fmt=markers[split], color=colour, markersize=6, capsize=3,
                markerfacecolor="white" if row["published"] else colour,
            )
    _zero_line(ax)
    ax.set_xticks(range(len(names)), names, rotation=20, ha="right")
    ax.set_xlim(-0.6, len(names) - 0.4)
    ax.set_ylabel("mean instrument-level Pearson r")
    ax.set_title("Instrument level: mean r ± 1.96·SEM per split")
    handles = [
        Line2D([], [], marker=markers[s], color="0.3", linestyle="", label=s.title()) for s in splits
    ]
    handles.append(
        Line2D([], [], marker="o", color="0.3", markerfacecolor="white", linestyle="", label="published")
    )
    ax.legend(handles=handles, frameon=False, loc="best")
    return fig


@_styled
def heatmaps(
    panels: Sequence[tuple[str, np.ndarray]],
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    colourbar_label: str,
    cmap: str = "viridis",
) -> Figure:
    """One heat map per panel (rows x columns), each with its own colour scale."""
    n = len(panels)
    # room for every column label (rotated, ~0.17 in each) and for the row labels and colour bar,
    # so neither the descriptor names nor the instrument names overlap at 61 x 16
    panel_w = max(2.6, 0.17 * len(col_labels) + 1.4)
    ncols = max(1, min(n, int(10.0 // panel_w)))
    nrows = int(np.ceil(n / ncols))
    row_h = 0.15 if len(row_labels) > 30 else 0.18
    height = max(3.0, row_h * len(row_labels) + 1.8)
    fig = _figure((panel_w * ncols + 1.2, height * nrows))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax, (title, matrix) in zip(axes.flat, panels):
        finite = matrix[np.isfinite(matrix)]
        vmin, vmax = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        ax.set_facecolor("#d9d9d9")  # missing cells (NaN) show as grey
        im = ax.imshow(matrix, aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
        ax.set_title(title)
        ax.set_xticks(range(len(col_labels)), col_labels, rotation=90, fontsize=FONT_SIZE - 2)
        ax.set_yticks(range(len(row_labels)), row_labels if ax in axes[:, 0] else [""] * len(row_labels),
                      fontsize=max(4, FONT_SIZE - 3) if len(row_labels) > 30 else FONT_SIZE - 1)
        fig.colorbar(im, ax=ax, label=colourbar_label, shrink=0.8)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    return fig


# ---------------------------------------------------------------- Experiment 2
@_styled
def trajectories(
    points: pl.DataFrame, words: Sequence[str], effects: Sequence[str], colours: dict[str, str]
) -> Figure:
    """Mean Δ over sources vs strength, one panel per (effect, word), one line per model (Figure 4).

    Args:
        points: columns model, effect, source, word, strength, delta; Δ = 0 at the
            original is drawn at strength 0.
    """
    panels = [(e, w) for e in effects for w in words
              if points.filter((pl.col("effect") == e) & (pl.col("word") == w)).height]
    ncols = min(len(panels), 2)
    nrows = int(np.ceil(len(panels) / ncols))
    fig = _figure((7.5 if ncols > 1 else 4.5, 3.0 * nrows))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax, (effect, word) in zip(axes.flat, panels):
        sub = points.filter((pl.col("effect") == effect) & (pl.col("word") == word))
        for model in sorted(sub["model"].unique().to_list()):
            m = (
                sub.filter(pl.col("model") == model)
                .group_by("strength")
                .agg(pl.col("delta").mean().alias("mean"), pl.col("delta").min().alias("lo"),
                     pl.col("delta").max().alias("hi"), pl.col("source").n_unique().alias("n"))
                .sort("strength")
            )
            s = np.concatenate([[0.0], m["strength"].to_numpy()])
            mean = np.concatenate([[0.0], m["mean"].to_numpy()])
            lo = np.concatenate([[0.0], m["lo"].to_numpy()])
            hi = np.concatenate([[0.0], m["hi"].to_numpy()])
            colour = colours.get(model, "0.3")
            ax.plot(s, mean, marker="o", markersize=4, color=colour, label=f"{model} (n={int(m['n'].to_numpy().max())})")
            ax.fill_between(s, lo, hi, color=colour, alpha=0.15, linewidth=0)
        _zero_line(ax)
        ax.set_title(f"“{word}” ({effect})")
        ax.set_xlabel("effect strength")
        ax.set_ylabel("mean Δ cosine to “a … sound”")
        ax.legend(frameon=False)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    return fig


@_styled
def slope_heatmap(slopes: pl.DataFrame) -> Figure:
    """Mean slope over sources per word (rows) and model (columns), one panel per effect.

    Args:
        slopes: columns model, effect, word, slope (already averaged over sources).
    """
    effects = sorted(slopes["effect"].unique().to_list())
    models = sorted(slopes["model"].unique().to_list())
    per_effect = {e: sorted(slopes.filter(pl.col("effect") == e)["word"].unique().to_list()) for e in effects}
    tallest = max(len(w) for w in per_effect.values())
    fig = _figure((min(7.5, 1.2 + (0.55 * len(models) + 1.6) * len(effects)), max(3.2, 0.22 * tallest + 1.8)))
    axes = fig.subplots(1, len(effects), squeeze=False)
    finite = slopes["slope"].drop_nans().drop_nulls().to_numpy()
    limit = float(np.abs(finite).max()) if finite.size else 1.0
    limit = limit or 1.0
    im = None
    for ax, effect in zip(axes.flat, effects):
        words = per_effect[effect]
        matrix = np.full((len(words), len(models)), np.nan)
        for r in slopes.filter(pl.col("effect") == effect).iter_rows(named=True):
            matrix[words.index(r["word"]), models.index(r["model"])] = _num(r["slope"])
        im = ax.imshow(matrix, aspect="auto", cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest")
        ax.set_xticks(range(len(models)), models, rotation=30, ha="right")
        ax.set_yticks(range(len(words)), words)
        ax.set_ylim(tallest - 0.5, -0.5)  # the same row height in every panel
        ax.spines["left"].set_visible(False)
        ax.spines["bottom"].set_visible(False)
        ax.set_title(effect)
        for i in range(len(words)):
            for j in range(len(models)):
                if np.isfinite(matrix[i, j]) and len(models) * len(words) <= 200:
                    ax.text(j, i, f"{matrix[i, j]:.3f}", ha="center", va="center", fontsize=FONT_SIZE - 3,
                            color="white" if abs(matrix[i, j]) > 0.6 * limit else "black")
    if im is not None:
        fig.colorbar(im, ax=axes.ravel().tolist(), label="slope of Δ on strength", shrink=0.8)
    return fig


# ---------------------------------------------------------------- Experiment 3
@_styled
def metric_bars(rows: pl.DataFrame, metric: str, colours: dict[str, str], reference: float | None) -> Figure:
    """A metric per dataset (x) and model (bars), the aggregate "all" last.

    Args:
        rows: columns model, dataset, and ``metric``.
        reference: a published value for the aggregate, drawn as a dashed line.
    """
    datasets = sorted(d for d in rows["dataset"].unique().to_list() if d != "all")
    if "all" in set(rows["dataset"].to_list()):
        datasets.append("all")
    models = list(dict.fromkeys(rows["model"].to_list()))
    width = 0.84 / max(len(models), 1)
    fig = _figure((max(5.0, 0.7 * len(datasets) + 2.0), 3.6))
    ax = fig.subplots()
    x = np.arange(len(datasets))
    for k, model in enumerate(models):
        lookup = {r["dataset"]: _num(r[metric]) for r in rows.filter(pl.col("model") == model).iter_rows(named=True)}
        ax.bar(x - 0.42 + width * (k + 0.5), [lookup.get(d, np.nan) for d in datasets], width,
               color=colours.get(model, "0.3"), label=model)
    handles: list[object] = [Patch(color=colours.get(m, "0.3"), label=m) for m in models]
    if reference is not None:
        handles.append(ax.axhline(reference, color="0.2", linestyle=":", linewidth=1.2,
                                  label=f"published time-avg MFCC (21 datasets): {reference:.3f}"))
    _zero_line(ax)
    ax.set_xticks(x, datasets, rotation=35, ha="right")
    ax.set_ylabel(metric.replace("_", " "))
    ax.set_title(f"{metric.replace('_', ' ').capitalize()} per dataset (cosine distance)")
    fig.legend(handles=handles, frameon=False, loc="outside lower center", ncols=min(len(handles), 3))
    return fig


def _num(value: object) -> float:
    """A float for plotting: None/missing -> NaN."""
    if value is None:
        return float("nan")
    return float(value)  # type: ignore[arg-type]
