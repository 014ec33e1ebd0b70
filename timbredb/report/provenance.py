"""The report's provenance section: the store, the versions, every space's checkpoint and batches, the runs."""

from __future__ import annotations

import json
import platform
from collections.abc import Sequence
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import polars as pl

from timbredb import __version__
from timbredb.report.context import ReportContext
from timbredb.report.html import Section, kv_table
from timbredb.spaces import SpaceRecord
from timbredb.store import Store

_REPORT_PACKAGES = ("duckdb", "polars", "numpy", "scipy", "matplotlib", "pedalboard")


def section(ctx: ReportContext) -> Section:
    store = ctx.store
    sec = Section("provenance", "Provenance")
    now = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
    size = store.path.stat().st_size if store.path.exists() else 0
    general = [
        ("store", str(store.path.resolve())),
        ("store size", f"{size / 1e6:.1f} MB"),
        ("timbredb version", __version__),
        ("report written", now),
        ("data directory", str(Path(ctx.data_dir).resolve()) if ctx.data_dir else "(not given)"),
        ("python", f"{platform.python_version()} on {platform.platform()}"),
        ("report packages", ", ".join(f"{p} {_version(p)}" for p in _REPORT_PACKAGES)),
        ("published numbers", "timbredb/data/published.json (sources listed under “Published numbers”)"),
    ]
    sec.add(kv_table(general))

    spaces = store.spaces()
    if not spaces:
        sec.note("The store holds no embedding space yet (run `timbredb ingest`).", "nodata")
    else:
        sec.add(ctx.writer.table(spaces_frame(store, spaces), "provenance_models",
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
    sec.add(ctx.writer.table(runs_frame(store), "provenance_runs",
                             "Runs that wrote to the store (command, version, datasets ingested)."))
    sec.add(ctx.writer.table(holdings_frame(store), "provenance_tables", "Rows per table in the store."))
    return sec


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def spaces_frame(store: Store, spaces: Sequence[SpaceRecord]) -> pl.DataFrame:
    """One row per space: checkpoint, hashes, vector counts, devices, dtypes and packages of its batches."""
    counts = store.vector_counts()
    prov: dict[str, dict[str, set[str]]] = {}
    for space_id, device, dtype, text in store.batch_provenance():
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
                # a pairwise space has no vectors: its stored pair distances instead
                "comparison": s.comparison,
                "n_pairs": store.count_pairs(s.space_id) if s.pairwise else None,
                "device": ", ".join(sorted(agg.get("device", set()))) or None,
                "dtype": ", ".join(sorted(agg.get("dtype", set()))) or None,
                "packages": "; ".join(sorted(agg.get("packages", set()))) or None,
                "embedded_by": ", ".join(sorted(agg.get("timbredb", set()))) or None,
            }
        )
    return pl.DataFrame(rows, infer_schema_length=None)


def runs_frame(store: Store) -> pl.DataFrame:
    rows = []
    for run_id, command, version, started, finished, summary in store.runs():
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


def holdings_frame(store: Store) -> pl.DataFrame:
    rows = [{"table": name, "rows": n} for name, n in store.table_counts().items()]
    return pl.DataFrame(rows, schema={"table": pl.String, "rows": pl.Int64})
