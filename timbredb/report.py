"""`timbredb report`: the study's figures and tables, regenerated from the store.

``build_report`` writes ``report.html`` into a folder, with its figures beside it
(``figures/*.png``) and every table also as CSV (``tables/*.csv``), so the folder
is self-contained and can be zipped or printed. Each section is built from what
the store holds: an experiment without data says so instead of failing.

Where the published study (or the timbremetrics reference) reported a number for
the same model and condition, the local value is shown next to it with the
difference (local − published). The published numbers live in
``timbredb/data/published.json`` with their sources (URL, path, commit).
"""

from __future__ import annotations

import html
import json
import platform
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata, resources
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import polars as pl

from timbredb import __version__
from timbredb.analysis.exp1 import run_exp1
from timbredb.analysis.exp2 import run_exp2
from timbredb.analysis.exp3 import METRICS as _EXP3_METRICS
from timbredb.analysis.exp3 import run_exp3
from timbredb.errors import TimbreDBError, first_line
from timbredb.formatting import to_csv
from timbredb.store import SpaceRecord, Store

#: Figure 4 of the study: the reverb trajectories of "haunting" and "deep".
DEFAULT_WORDS: tuple[str, ...] = ("haunting", "deep")
DEFAULT_EFFECT = "reverb"

_REPORT_PACKAGES = ("duckdb", "polars", "numpy", "scipy", "matplotlib", "pedalboard")

# Column-name hints for formatting: rates are fractions shown as percentages.
_RATE_COLUMNS = {"pos_slope_rate", "pos_final_delta_rate", "all_source_consistency"}


# ================================================================ published numbers
def load_published() -> dict[str, Any]:
    """The published numbers shipped with the package (``timbredb/data/published.json``)."""
    text = resources.files("timbredb").joinpath("data").joinpath("published.json").read_text(encoding="utf-8")
    return json.loads(text)


def _published_frame(published: dict[str, Any], key: str) -> pl.DataFrame:
    rows = published.get(key, [])
    if not rows:
        return pl.DataFrame()
    cols = list(dict.fromkeys(k for r in rows for k in r))
    return pl.DataFrame([{c: r.get(c) for c in cols} for r in rows], infer_schema_length=None)


class Counterparts:
    """Decides which published model a local model label corresponds to.

    A local label matches published model ``p`` when its space's model id is ``p``
    and, if the published entry names the checkpoint the study used (MS-CLAP
    "2023", ...), the space has that checkpoint. Results without a stored space
    (imported exp2 results) match by name.
    """

    def __init__(self, spaces: Sequence[SpaceRecord], published: dict[str, Any]) -> None:
        self.by_label = {s.label: s for s in spaces}
        self.hints: dict[str, str | None] = {}
        for key in ("exp1_descriptors", "exp1_splits", "exp2", "exp3"):
            for r in published.get(key, []):
                self.hints.setdefault(r["model"], r.get("checkpoint"))

    def of(self, label: str) -> str | None:
        space = self.by_label.get(label)
        model_id, checkpoint = (space.model_id, space.checkpoint) if space else (label, None)
        if model_id not in self.hints:
            return None
        hint = self.hints[model_id]
        if hint is None or checkpoint is None or hint == checkpoint:
            return model_id
        return None

    def column(self, df: pl.DataFrame, model_col: str = "model") -> pl.DataFrame:
        """``df`` with a ``counterpart`` column (published model id or null)."""
        labels = df[model_col].unique().to_list()
        mapping = {lab: self.of(lab) for lab in labels}
        return df.with_columns(
            pl.col(model_col).replace_strict(mapping, default=None, return_dtype=pl.String).alias("counterpart")
        )


def compare(
    local: pl.DataFrame,
    published: pl.DataFrame,
    keys: Sequence[str],
    metrics: Sequence[str],
    counterparts: Counterparts,
) -> pl.DataFrame:
    """Long table of local vs published values where the same model and condition exist.

    Args:
        local: local results with a ``model`` column, ``keys`` and ``metrics``.
        published: published rows with ``model``, ``keys`` and (some of) ``metrics``.
        keys: the condition columns (e.g. descriptor, split) besides the model.
        metrics: value columns compared.

    Returns:
        model, published_model, *keys, metric, local, published, difference (local − published).
    """
    out_cols = ["model", "published_model", *keys, "metric", "local", "published", "difference"]
    if local.is_empty() or published.is_empty():
        return pl.DataFrame(schema={c: pl.String if c not in ("local", "published", "difference") else pl.Float64
                                    for c in out_cols})
    loc = counterparts.column(local).filter(pl.col("counterpart").is_not_null())
    rows = []
    pub_index = {}
    for r in published.iter_rows(named=True):
        pub_index[(r["model"], *(str(r.get(k)) for k in keys))] = r
    for r in loc.iter_rows(named=True):
        p = pub_index.get((r["counterpart"], *(str(r.get(k)) for k in keys)))
        if p is None:
            continue
        for m in metrics:
            if m not in r or p.get(m) is None:
                continue
            lv = _float(r[m])
            pv = float(p[m])
            rows.append(
                {"model": r["model"], "published_model": r["counterpart"], **{k: str(r[k]) for k in keys},
                 "metric": m, "local": lv, "published": pv, "difference": lv - pv}
            )
    if not rows:
        return pl.DataFrame(schema={c: pl.String if c not in ("local", "published", "difference") else pl.Float64
                                    for c in out_cols})
    return pl.DataFrame(rows, schema={c: pl.String if c not in ("local", "published", "difference") else pl.Float64
                                      for c in out_cols})


def _float(value: Any) -> float:
    return float("nan") if value is None else float(value)


# ================================================================ HTML pieces
@dataclass
class Section:
    anchor: str
    title: str
    status: str = "ok"  # ok | no data
    parts: list[str] = field(default_factory=list)

    def add(self, fragment: str) -> None:
        self.parts.append(fragment)

    def note(self, text: str, kind: str = "note") -> None:
        self.parts.append(f'<p class="{kind}">{html.escape(text)}</p>')


class _Writer:
    """Saves figures and tables beside report.html and returns the HTML that shows them."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.fig_dir = out_dir / "figures"
        self.table_dir = out_dir / "tables"
        self.fig_dir.mkdir(parents=True, exist_ok=True)
        self.table_dir.mkdir(parents=True, exist_ok=True)
        self.figures: list[Path] = []
        self.tables: list[Path] = []
        self._n_fig = 0
        self._n_tab = 0

    def figure(self, fig: Any, name: str, caption: str) -> str:
        import matplotlib.pyplot as plt

        path = self.fig_dir / f"{name}.png"
        fig.savefig(path, dpi=150)
        plt.close(fig)
        self.figures.append(path)
        self._n_fig += 1
        rel = path.relative_to(self.out_dir).as_posix()
        return (
            f'<figure id="fig-{html.escape(name)}"><img src="{html.escape(rel)}" alt="{html.escape(caption)}">'
            f"<figcaption><b>Figure {self._n_fig}.</b> {html.escape(caption)}</figcaption></figure>"
        )

    def table(self, df: pl.DataFrame, name: str, caption: str, max_rows: int = 400) -> str:
        path = self.table_dir / f"{name}.csv"
        path.write_text(to_csv(df), encoding="utf-8")  # nested columns as JSON text
        self.tables.append(path)
        self._n_tab += 1
        rel = path.relative_to(self.out_dir).as_posix()
        head = f'<b>Table {self._n_tab}.</b> {html.escape(caption)} <a href="{html.escape(rel)}">CSV</a>'
        if df.height > max_rows:
            head += f" (first {max_rows} of {df.height} rows shown; the CSV has all)"
        body = _html_table(df.head(max_rows))
        return f'<div class="table" id="tab-{html.escape(name)}"><p class="caption">{head}</p>{body}</div>'


def _cell(value: Any, column: str) -> str:
    if value is None:
        return '<td class="na">–</td>'
    if isinstance(value, bool):
        return f"<td>{'yes' if value else 'no'}</td>"
    if isinstance(value, float):
        if not np.isfinite(value):
            return '<td class="na num">NaN</td>'
        if column in _RATE_COLUMNS or column.endswith("_rate") and abs(value) <= 1.0:
            return f'<td class="num">{100 * value:.1f}&#8239;%</td>'
        text = f"{value:.3g}" if (value != 0 and abs(value) < 1e-3) or abs(value) >= 1e4 else f"{value:.3f}"
        return f'<td class="num">{text}</td>'
    if isinstance(value, int):
        return f'<td class="num">{value}</td>'
    text = ", ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
    return f'<td class="long">{html.escape(text)}</td>' if len(text) > 40 else f"<td>{html.escape(text)}</td>"


def _html_table(df: pl.DataFrame) -> str:
    # <wbr> lets long snake_case headers wrap, so wide tables fit a page.
    head = "".join(f"<th>{html.escape(c).replace('_', '_<wbr>')}</th>" for c in df.columns)
    body = "".join(
        "<tr>" + "".join(_cell(v, c) for v, c in zip(row, df.columns)) + "</tr>" for row in df.iter_rows()
    )
    if not df.height:
        body = f'<tr><td colspan="{max(len(df.columns), 1)}" class="na">no rows</td></tr>'
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _kv_table(pairs: Iterable[tuple[str, str]]) -> str:
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in pairs)
    return f'<table class="kv"><tbody>{rows}</tbody></table>'


# ================================================================ report context
@dataclass
class _Ctx:
    store: Store
    writer: _Writer
    published: dict[str, Any]
    counterparts: Counterparts
    colours: dict[str, str]
    words: tuple[str, ...]
    effect: str | None
    n_bootstrap: int
    n_permutations: int
    seed: int


def _failed(section: Section, exc: BaseException, hint: str) -> Section:
    section.status = "no data"
    section.note(f"No data: {exc}", "nodata")
    section.note(hint)
    return section


# ================================================================ sections
def _provenance(ctx: _Ctx, data_dir: Path | None) -> Section:
    store = ctx.store
    sec = Section("provenance", "Provenance")
    now = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
    size = store.path.stat().st_size if store.path.exists() else 0
    general = [
        ("store", str(store.path.resolve())),
        ("store size", f"{size / 1e6:.1f} MB"),
        ("timbredb version", __version__),
        ("report written", now),
        ("data directory", str(Path(data_dir).resolve()) if data_dir else "(not given)"),
        ("python", f"{platform.python_version()} on {platform.platform()}"),
        ("report packages", ", ".join(f"{p} {_version(p)}" for p in _REPORT_PACKAGES)),
        ("published numbers", "timbredb/data/published.json (sources listed under “Published numbers”)"),
    ]
    sec.add(_kv_table(general))

    spaces = store.spaces()
    if not spaces:
        sec.note("The store holds no embedding space yet (run `timbredb ingest`).", "nodata")
    else:
        sec.add(ctx.writer.table(_spaces_frame(store, spaces), "provenance_models",
                                 "Embedding spaces: model, checkpoint, and the provenance recorded with each "
                                 "embedding batch."))
        policies = pl.DataFrame(
            [{"model": s.label, "space_id": s.space_id,
              "policy": json.dumps(s.policy, sort_keys=True, separators=(", ", ": "))} for s in spaces],
            schema={"model": pl.String, "space_id": pl.String, "policy": pl.String},
        )
        sec.add("<h3>Preprocessing policies</h3>")
        sec.add(ctx.writer.table(policies, "provenance_policies",
                                 "Preprocessing policy of each space (spaces.policy): sample rate, resampler, "
                                 "down-mix, windowing and pooling."))

    sec.add("<h3>Data sources</h3>")
    sec.add(ctx.writer.table(_runs_frame(store), "provenance_runs",
                             "Runs that wrote to the store (command, version, datasets ingested)."))
    sec.add(ctx.writer.table(_holdings_frame(store), "provenance_tables", "Rows per table in the store."))
    return sec


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _spaces_frame(store: Store, spaces: Sequence[SpaceRecord]) -> pl.DataFrame:
    counts = {
        (r[0], r[1]): r[2]
        for r in store.con.execute(
            "SELECT space_id, 'audio', count(*) FROM audio_embeddings GROUP BY ALL "
            "UNION ALL SELECT space_id, 'text', count(*) FROM text_embeddings GROUP BY ALL"
        ).fetchall()
    }
    batches = store.con.execute(
        "SELECT space_id, device, dtype, provenance FROM embedding_batches ORDER BY batch_id"
    ).fetchall()
    prov: dict[str, dict[str, set[str]]] = {}
    for space_id, device, dtype, text in batches:
        p = json.loads(text) if isinstance(text, str) else (text or {})
        agg = prov.setdefault(space_id, {"device": set(), "dtype": set(), "packages": set(), "sha": set(),
                                         "timbredb": set()})
        agg["device"].add(str(p.get("device", device)))
        agg["dtype"].add(str(p.get("dtype", dtype)))
        for name, ver in sorted((p.get("packages") or {}).items()):
            agg["packages"].add(f"{name} {ver}")
        if p.get("checkpoint_sha256"):
            agg["sha"].add(str(p["checkpoint_sha256"]))
        if p.get("timbredb"):
            agg["timbredb"].add(str(p["timbredb"]))
    rows = []
    for s in spaces:
        agg = prov.get(s.space_id, {})
        sha = sorted(agg.get("sha", set()) | ({s.checkpoint_sha256} if s.checkpoint_sha256 else set()))
        rows.append(
            {
                "model": s.label,
                "model_id": s.model_id,
                "checkpoint": s.checkpoint,
                "checkpoint_sha256": ", ".join(sha) if sha else None,
                "dim": s.dim,
                "sample_rate": s.sample_rate,
                "modalities": ", ".join(s.modalities),
                "n_audio": int(counts.get((s.space_id, "audio"), 0)),
                "n_text": int(counts.get((s.space_id, "text"), 0)),
                "device": ", ".join(sorted(agg.get("device", set()))) or None,
                "dtype": ", ".join(sorted(agg.get("dtype", set()))) or None,
                "packages": "; ".join(sorted(agg.get("packages", set()))) or None,
                "embedded_by": ", ".join(sorted(agg.get("timbredb", set()))) or None,
            }
        )
    return pl.DataFrame(rows, infer_schema_length=None)


def _runs_frame(store: Store) -> pl.DataFrame:
    rows = []
    for run_id, command, version, started, finished, summary in store.con.execute(
        "SELECT run_id, command, timbredb_version, started_at, finished_at, summary FROM runs ORDER BY run_id"
    ).fetchall():
        s = json.loads(summary) if isinstance(summary, str) else (summary or {})
        datasets = s.get("datasets") or {}
        rows.append(
            {
                "run_id": int(run_id),
                "command": command,
                "timbredb": version,
                "started": str(started)[:19],
                "finished": str(finished)[:19] if finished else "(unfinished)",
                "datasets": ", ".join(sorted(datasets)) or None,
                "clips_added": s.get("clips_added"),
                "errors": len(s.get("errors") or []) if s else None,
            }
        )
    schema = {"run_id": pl.Int64, "command": pl.String, "timbredb": pl.String, "started": pl.String,
              "finished": pl.String, "datasets": pl.String, "clips_added": pl.Int64, "errors": pl.Int64}
    return pl.DataFrame(rows, schema=schema)


def _holdings_frame(store: Store) -> pl.DataFrame:
    names = [
        r[0]
        for r in store.con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' "
            "AND table_type = 'BASE TABLE' ORDER BY table_name"
        ).fetchall()
    ]
    rows = []
    for name in names:
        # Identifiers come from the catalogue, not from the user; quoted anyway.
        quoted = '"' + name.replace('"', '""') + '"'
        rows.append({"table": name, "rows": int(store.scalar(f"SELECT count(*) FROM {quoted}"))})
    return pl.DataFrame(rows, schema={"table": pl.String, "rows": pl.Int64})


# ---------------------------------------------------------------- Experiment 1
def _exp1(ctx: _Ctx) -> Section:
    from timbredb import plots

    sec = Section("exp1", "Experiment 1 — instrument timbre ratings (CCMusic)")
    hint = "Run `timbredb ingest ccmusic` with a text-capable model, then `timbredb report` again."
    try:
        res = run_exp1(ctx.store, n_bootstrap=ctx.n_bootstrap, n_permutations=ctx.n_permutations, seed=ctx.seed)
    except (TimbreDBError, duckdb.Error) as exc:
        return _exp1_published(ctx, _failed(sec, exc, hint))
    desc, splits, instruments = res["descriptors"], res["splits"], res["instruments"]
    sec.note(
        "S = cosine(audio embedding of instrument i, text embedding of descriptor d) with the bare word as prompt; "
        "R = mean human rating. Descriptor level: Pearson r of S[:, d] vs R[:, d] over instruments, with bootstrap "
        "95 % intervals over instruments and BH-corrected permutation q-values. Instrument level: r of S[i, :] vs "
        "R[i, :] over the descriptors, averaged per split with ± 1.96·SD/√n."
    )
    pub_desc = _published_frame(ctx.published, "exp1_descriptors")
    pub_splits = _published_frame(ctx.published, "exp1_splits")

    # Figure 2: descriptor-level bars, local with CIs, published hatched.
    local_all = desc.filter(pl.col("split") == "all")
    series = _series(local_all, pub_desc, ctx, ["descriptor", "pearson_r", "ci_low", "ci_high"])
    if not series.is_empty():
        sec.add(ctx.writer.figure(
            plots.descriptor_bars(series, ctx.colours), "exp1_descriptor_r",
            "Descriptor-level Pearson r per descriptor and model over all instruments (the study's Figure 2). "
            "Solid bars: this store, with bootstrap 95 % CIs; hatched bars: the published values.",
        ))

    # Figure 3: split means.
    fig3 = _series(splits, pub_splits, ctx, ["split", "mean_pearson_r", "ci95_half_width"])
    if not fig3.is_empty():
        sec.add(ctx.writer.figure(
            plots.split_means(fig3, ctx.colours), "exp1_split_means",
            "Instrument-level mean Pearson r ± 1.96·SEM per split and model (the study's Figure 3). "
            "Filled markers: this store; open markers: published.",
        ))

    _exp1_heatmaps(ctx, sec)

    table = local_all.select("model", "descriptor", "n", "pearson_r", "ci_low", "ci_high", "spearman_rho",
                             "p_value", "q_value")
    table = _with_published(table, pub_desc, ctx, ["descriptor"], "pearson_r")
    sec.add(ctx.writer.table(table.sort("model", "descriptor"), "exp1_descriptors_all",
                             "Descriptor level over all instruments; published r and difference (local − published) "
                             "where the study reported the same model."))
    if desc.filter(pl.col("split") != "all").height:
        sec.add(ctx.writer.table(
            desc.filter(pl.col("split") != "all").sort("model", "split", "descriptor"), "exp1_descriptors_splits",
            "Descriptor level within each split.", max_rows=120))
    split_tab = _with_published(splits, pub_splits, ctx, ["split"], "mean_pearson_r")
    sec.add(ctx.writer.table(split_tab.sort("model", "split"), "exp1_splits",
                             "Instrument level per split: mean r, 95 % half-width, instruments with r > 0, mean ρ; "
                             "published mean and difference."))
    sec.add(ctx.writer.table(instruments.sort("model", "split", "instrument"), "exp1_instruments",
                             "Instrument level: r and ρ over descriptors per instrument.", max_rows=80))
    return _exp1_published(ctx, sec)


def _exp1_published(ctx: _Ctx, sec: Section) -> Section:
    """The published Experiment 1 numbers, as reference tables (also when the store has no data)."""
    pub_desc = _published_frame(ctx.published, "exp1_descriptors")
    pub_splits = _published_frame(ctx.published, "exp1_splits")
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


def _series(local: pl.DataFrame, published: pl.DataFrame, ctx: _Ctx, cols: Sequence[str]) -> pl.DataFrame:
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
        ctx.colours.setdefault(key, _next_colour(ctx.colours))
        take(local, model, f"{model} (this store)", key, False)
        if cp and cp in pub_models and cp not in used:
            used.add(cp)
            take(published, cp, f"{cp} (published)", key, True)
    for model in pub_models:
        if model not in used:
            ctx.colours.setdefault(model, _next_colour(ctx.colours))
            take(published, model, f"{model} (published)", model, True)
    if not parts:
        return pl.DataFrame()
    casted = [p.with_columns([pl.col(c).cast(pl.Float64) for c in cols if c not in ("descriptor", "split")])
              for p in parts]
    return pl.concat(casted, how="vertical_relaxed")


def _next_colour(colours: dict[str, str]) -> str:
    from timbredb.plots import OKABE_ITO

    return OKABE_ITO[len(colours) % len(OKABE_ITO)]


def _with_published(
    local: pl.DataFrame, published: pl.DataFrame, ctx: _Ctx, keys: Sequence[str], metric: str
) -> pl.DataFrame:
    """``local`` plus published_<metric> and difference columns (null where nothing was published)."""
    out = ctx.counterparts.column(local)
    pub_col = f"published_{metric}"
    if published.is_empty() or metric not in published.columns:
        return out.drop("counterpart").with_columns(
            pl.lit(None, dtype=pl.Float64).alias(pub_col), pl.lit(None, dtype=pl.Float64).alias("difference"))
    pub = published.select(
        pl.col("model").alias("counterpart"), *[pl.col(k).cast(pl.String) for k in keys],
        pl.col(metric).cast(pl.Float64).alias(pub_col),
    )
    out = out.with_columns([pl.col(k).cast(pl.String) for k in keys]).join(
        pub, on=["counterpart", *keys], how="left")
    return out.drop("counterpart").with_columns((pl.col(metric) - pl.col(pub_col)).alias("difference"))


def _exp1_heatmaps(ctx: _Ctx, sec: Section) -> None:
    from timbredb import plots, queries

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
        plots.heatmaps([("R: mean human rating", matrix(ratings, "rating"))], labels, descriptors, "rating (1–10)"),
        "exp1_heatmap_R", "R: mean human rating per instrument (rows; C = Chinese, W = Western) and descriptor.",
    ))
    models = sorted(pairs["model"].unique().to_list())
    if not models:
        return
    panels = [(f"S: {m}", matrix(pairs.filter(pl.col("model") == m), "similarity")) for m in models]
    sec.add(ctx.writer.figure(
        plots.heatmaps(panels, labels, descriptors, "cosine similarity"), "exp1_heatmap_S",
        "S: cosine similarity between each instrument's audio embedding and each descriptor's text embedding, "
        "per model (colour scale per panel; grey: a descriptor the model has no text embedding for).",
    ))


# ---------------------------------------------------------------- Experiment 2
_EXP2_METRICS = ("pos_slope_rate", "pos_final_delta_rate", "all_source_consistency", "mean_pearson_r",
                 "mean_spearman_rho", "mean_slope", "mean_final_delta")


def _exp2(ctx: _Ctx) -> Section:
    from timbredb import plots

    sec = Section("exp2", "Experiment 2 — descriptor effects (EQ and reverb)")
    hint = "Run `timbredb ingest audealize` with a text-capable model, then `timbredb report` again."
    try:
        # detail=True: the summary and the per-trajectory rows in one pass
        res = run_exp2(ctx.store, detail=True)
    except (TimbreDBError, duckdb.Error) as exc:
        return _exp2_published(ctx, _failed(sec, exc, hint))
    summary = res["summary"]
    sec.note(
        "Per trajectory (model × effect × source × word): Δ(s) = cos(variant at strength s, “a word sound”) − "
        "cos(original, same text); slope = least-squares slope of Δ on s; final Δ = Δ(1.0). Rates are shares of "
        "trajectories; all-source consistency is the share of (effect, word) pairs whose every source has a "
        "positive slope. The study used guitar, piano and a mixture (120 trajectories per model, 60 per effect); "
        "compare n_trajectories before reading differences."
    )
    pub = _published_frame(ctx.published, "exp2")
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
                "(rates as fractions)."))
        else:
            sec.note(_no_counterpart_text(summary, pub))
        _exp2_published(ctx, sec)

    points, slopes = _exp2_points(res["trajectories"])
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
            ctx.colours.setdefault(ctx.counterparts.of(m) or m, _next_colour(ctx.colours))
        model_colours = {m: ctx.colours[ctx.counterparts.of(m) or m] for m in points["model"].unique().to_list()}
        sec.add(ctx.writer.figure(
            plots.trajectories(points, words, effects, model_colours), "exp2_trajectories",
            f"Mean Δ over sources vs effect strength ({', '.join(effects)}); the band spans the sources' minimum "
            "to maximum; strength 0 is the original (Δ = 0). The study's Figure 4 shows “haunting” and “deep” "
            "(reverb).",
        ))
    mean_slopes = slopes.group_by("model", "effect", "word").agg(pl.col("slope").mean())
    sec.add(ctx.writer.figure(
        plots.slope_heatmap(mean_slopes), "exp2_slope_heatmap",
        "Slope of Δ on strength per word and model, averaged over sources (red: similarity to the word rises "
        "with the effect; blue: falls).",
    ))
    return sec


def _exp2_published(ctx: _Ctx, sec: Section) -> Section:
    pub = _published_frame(ctx.published, "exp2")
    if not pub.is_empty():
        cols = [c for c in ("model", "effect", "n_trajectories", *_EXP2_METRICS) if c in pub.columns]
        sec.add(ctx.writer.table(pub.select(cols).sort("effect", "model"), "exp2_published",
                                 "Published Tables 1 (effect = all) and 2 (eq, reverb), from the study's release."))
    return sec


def _exp2_points(traj: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Per-strength Δ rows and per-trajectory slopes from ``run_exp2(detail=True)["trajectories"]``.

    Returns:
        (points: model, effect, source, word, strength, delta; slopes: model, effect, source, word, slope).
    """
    traj = traj.rename({"descriptor": "word"})
    points = traj.select(
        "model", "effect", "source", "word", pl.col("strengths").alias("strength"), pl.col("deltas").alias("delta")
    ).explode("strength", "delta")
    return points, traj.select("model", "effect", "source", "word", "slope")


def _no_counterpart_text(local: pl.DataFrame, published: pl.DataFrame) -> str:
    pub_models = ", ".join(sorted(published["model"].unique().to_list()))
    local_models = ", ".join(sorted(local["model"].unique().to_list()))
    return (f"No model here has a published counterpart (here: {local_models}; published: {pub_models}); "
            "the published values are listed for reference.")


# ---------------------------------------------------------------- Experiment 3
def _exp3(ctx: _Ctx) -> Section:
    from timbredb import plots

    sec = Section("exp3", "Experiment 3 — timbre dissimilarity (timbremetrics)")
    hint = "Run `timbredb ingest timbremetrics`, then `timbredb report` again."
    try:
        df = run_exp3(ctx.store, n_bootstrap=ctx.n_bootstrap, seed=ctx.seed)
    except (TimbreDBError, duckdb.Error) as exc:
        return _exp3_published(ctx, _failed(sec, exc, hint))
    sec.note(
        "Model distance (1 − cosine, or L2) and human dissimilarity, each min–max normalised over the upper "
        "triangle; per anchor stimulus: Spearman ρ, Kendall τ-b, NDCG of retrieving similar items, triplet "
        "agreement; “all” pools the anchors of every dataset; MAE over the normalised pairs. The published "
        "time-averaged MFCC reference covers all 21 timbremetrics datasets; a local “all” covers the datasets "
        "ingested here (n_stimuli says how many stimuli)."
    )
    pub = _published_frame(ctx.published, "exp3")
    for m in df["model"].unique().to_list():
        ctx.colours.setdefault(ctx.counterparts.of(m) or m, _next_colour(ctx.colours))
    colours = {m: ctx.colours[ctx.counterparts.of(m) or m] for m in df["model"].unique().to_list()}
    cosine = df.filter(pl.col("distance") == "cosine")
    ref = None
    if not pub.is_empty():
        r = pub.filter((pl.col("distance") == "cosine") & (pl.col("dataset") == "all"))
        if r.height and any(ctx.counterparts.of(m) == r["model"][0] for m in cosine["model"].unique().to_list()):
            ref = float(r["spearman"][0])
    sec.add(ctx.writer.figure(
        plots.metric_bars(cosine, "spearman", colours, ref), "exp3_spearman",
        "Spearman ρ between model and human dissimilarity per dataset and model (cosine distance); “all” "
        "pools every anchor. Dotted line: the published time-averaged MFCC value over 21 datasets.",
    ))
    sort_cols = ["model", "distance", "dataset"]
    ci_cols = [c for c in df.columns if c.endswith(("_ci_low", "_ci_high"))]
    sec.add(ctx.writer.table(df.sort(sort_cols).drop(ci_cols), "exp3_metrics",
                             "Metrics per model, distance and dataset (“all” = every anchor of every dataset)."))
    sec.add(ctx.writer.table(_with_intervals(df.filter(pl.col("dataset") == "all").sort(sort_cols), _EXP3_METRICS),
                             "exp3_intervals", "The aggregate with bootstrap 95 % intervals over anchors: "
                             "value [low, high]."))
    if not pub.is_empty():
        cmp = compare(df, pub, ["dataset", "distance"], _EXP3_METRICS, ctx.counterparts)
        if cmp.height:
            sec.add(ctx.writer.table(cmp.sort("model", "distance", "metric"), "exp3_vs_published",
                                     "This store (“all” over the local datasets) vs the published time-averaged "
                                     "MFCC reference (all 21 datasets): difference = local − published."))
        else:
            sec.note(_no_counterpart_text(df, pub))
    return _exp3_published(ctx, sec)


def _exp3_published(ctx: _Ctx, sec: Section) -> Section:
    pub = _published_frame(ctx.published, "exp3")
    if not pub.is_empty():
        sec.add(ctx.writer.table(pub.drop([c for c in ("source",) if c in pub.columns]), "exp3_published",
                                 "Published timbremetrics reference (time-averaged MFCC, all 21 datasets)."))
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


# ---------------------------------------------------------------- published sources
def _sources(ctx: _Ctx) -> Section:
    sec = Section("published", "Published numbers and their sources")
    about = ctx.published.get("about", "")
    if about:
        sec.note(about)
    rows = [
        {"source": key, "what": s.get("what"), "url": s.get("url"), "path": s.get("path"), "commit": s.get("commit")}
        for key, s in ctx.published.get("sources", {}).items()
    ]
    sec.add(ctx.writer.table(pl.DataFrame(rows, infer_schema_length=None), "published_sources",
                             "Where each published number comes from."))
    return sec


# ================================================================ page
_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0 auto;max-width:1100px;padding:1.5em;
color:#1a1a1a;line-height:1.45}
h1{margin-bottom:.2em}h2{border-bottom:2px solid #0072B2;padding-bottom:.2em;margin-top:2em}
nav ul{columns:2;list-style:none;padding-left:0}nav li{margin:.15em 0}
.status{font-size:.8em;padding:.1em .5em;border-radius:.6em;margin-left:.5em;vertical-align:middle}
.status.ok{background:#d8eefa;color:#004b75}.status.nodata{background:#eee;color:#555}
p.nodata{background:#f4f4f4;border-left:4px solid #999;padding:.5em .8em}
p.note{color:#333}
figure{margin:1.2em 0;text-align:center}figure img{max-width:100%;height:auto;border:1px solid #ddd}
figcaption{font-size:.9em;text-align:left;margin-top:.3em}
div.table{overflow-x:auto;margin:1em 0}p.caption{font-size:.9em;margin:.2em 0}
table{border-collapse:collapse;font-size:.82em}th,td{border:1px solid #ccc;padding:.2em .45em}
tbody td:first-child{white-space:nowrap}td.long{overflow-wrap:anywhere;min-width:14em;font-size:.92em}
thead th{background:#f0f4f8;position:sticky;top:0}td.num{text-align:right;font-variant-numeric:tabular-nums}
td.na{color:#999;text-align:center}table.kv th{text-align:left;background:#f7f7f7}
pre{background:#f7f7f7;padding:.6em;overflow-x:auto;font-size:.8em}
@media print{body{max-width:none;padding:0}h2{page-break-before:always}figure,div.table{page-break-inside:avoid}
thead th{position:static}}
"""


def _page(sections: Sequence[Section], title: str) -> str:
    nav = "".join(
        f'<li><a href="#{s.anchor}">{html.escape(s.title)}</a>'
        f'<span class="status {s.status.replace(" ", "")}">{html.escape(s.status)}</span></li>'
        for s in sections
    )
    body = "".join(
        f'<section id="{s.anchor}" data-status="{html.escape(s.status)}"><h2>{html.escape(s.title)}'
        f'<span class="status {s.status.replace(" ", "")}">{html.escape(s.status)}</span></h2>'
        f'{"".join(s.parts)}</section>'
        for s in sections
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>"
        "<p>Deng, Pardo &amp; Pappas, “Do Joint Language-Audio Embeddings Encode Perceptual Timbre Semantics?” "
        "(arXiv 2510.14249), regenerated from a timbredb store, with the published numbers beside the local ones.</p>"
        f"<nav><ul>{nav}</ul></nav>{body}</body></html>"
    )


# ================================================================ entry point
def build_report(
    store: Store,
    out_dir: str | Path,
    data_dir: Path | None = None,
    *,
    words: Sequence[str] = DEFAULT_WORDS,
    effect: str | None = DEFAULT_EFFECT,
    n_bootstrap: int = 1000,
    n_permutations: int = 1000,
    seed: int = 0,
    published: dict[str, Any] | None = None,
) -> Path:
    """Write report.html (plus figures/ and tables/) for whatever the store holds.

    Args:
        store: an open store (read-only is enough).
        out_dir: folder to write into (created; files of an earlier report are replaced).
        data_dir: the data directory, named in the provenance header.
        words: Experiment 2 words whose trajectories are plotted (Figure 4).
        effect: the effect of those trajectories ("reverb", "eq"), or None for every effect.
        n_bootstrap, n_permutations, seed: passed to the analyses (CIs and p-values).
        published: the published numbers (default: the shipped ``published.json``).

    Returns:
        The path of report.html.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for sub in ("figures", "tables"):
        for old in (out / sub).glob("*") if (out / sub).is_dir() else []:
            if old.is_file() and old.suffix in (".png", ".csv"):
                old.unlink()
    pub = published if published is not None else load_published()
    spaces = store.spaces()
    from timbredb.plots import colour_map

    ctx = _Ctx(
        store=store,
        writer=_Writer(out),
        published=pub,
        counterparts=Counterparts(spaces, pub),
        # Published models first so a model keeps its colour whether or not it is in the store.
        colours=colour_map([r["model"] for k in ("exp1_descriptors", "exp2") for r in pub.get(k, [])]),
        words=tuple(words),
        effect=effect,
        n_bootstrap=n_bootstrap,
        n_permutations=n_permutations,
        seed=seed,
    )
    builders: list[Callable[[], Section]] = [
        lambda: _provenance(ctx, data_dir),
        lambda: _exp1(ctx),
        lambda: _exp2(ctx),
        lambda: _exp3(ctx),
        lambda: _sources(ctx),
    ]
    sections = [b() for b in builders]
    path = out / "report.html"
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(_page(sections, "timbredb report"), encoding="utf-8")
    tmp.replace(path)
    return path
