"""`timbredb export DIR`: the store's content as Parquet, one dataset per table.

The store is opened read-only. Everything is written into a hidden folder beside
DIR and renamed to DIR at the end, so a killed export leaves no half-written
DIR. Vector tables are streamed from DuckDB in record batches (never the whole
matrix in memory) and partitioned by space.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from timbredb import __version__
from timbredb.errors import InterchangeError
from timbredb.interchange.parquet import DatasetWriter
from timbredb.interchange.tables import BY_NAME, FORMAT, MANIFEST, PARTS, TABLES
from timbredb.progress import ProgressFactory, silent
from timbredb.store import Store

#: rows per Arrow batch read from DuckDB (a 512-d vector batch is 32 MB)
STREAM_ROWS = 16384


def parse_what(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """The parts of `--what` (comma-separated), checked; None = every part."""
    if value is None:
        return PARTS
    items = value.split(",") if isinstance(value, str) else list(value)
    parts = tuple(dict.fromkeys(p.strip() for p in items if p.strip()))
    unknown = [p for p in parts if p not in PARTS]
    if unknown or not parts:
        raise InterchangeError(f"--what: unknown part(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(PARTS)}")
    return parts


def export_store(
    db: Path,
    out_dir: Path,
    *,
    model: str | None = None,
    what: str | Sequence[str] | None = None,
    rows_per_file: int = 100_000,
    progress: ProgressFactory = silent,
) -> dict[str, Any]:
    """Write a store's content as a timbredb interchange folder.

    Args:
        db: the store (opened read-only).
        out_dir: the folder to create (it must not exist, or be empty).
        model: only the spaces this ``--model`` value names (vectors, spaces, their clips).
        what: parts to write: clips (clips and files), embeddings (audio vectors and the pair
            distances of pairwise spaces), text (prompts, vocabularies, text vectors), results (the
            experiments' tables); default all. Spaces are
            written with any vectors, and the clips that written rows refer to are always written.
        rows_per_file: rows per Parquet file.

    Returns:
        the manifest written to ``DIR/timbredb-export.json``: format, tables (rows and files), spaces.
    """
    parts = parse_what(what)
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise InterchangeError(f"{out_dir}: exists and is not an empty folder; export into a new folder")
    tmp = out_dir.with_name(f".{out_dir.name}.partial-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    with Store(db, read_only=True) as store:
        spaces = store.spaces(model)
        if model is not None and not spaces:
            raise InterchangeError(f"--model {model}: the store holds no such space")
        # a fine-tuned space travels with its base space (its record and its model refer to it)
        bases = {str(r["base_space_id"]) for r in store.finetunes() if r["space_id"] in {s.space_id for s in spaces}}
        spaces += [s for s in store.spaces() if s.space_id in bases and s not in spaces]
        space_ids = [s.space_id for s in spaces] if ({"embeddings", "text"} & set(parts)) else []
        tables: dict[str, dict[str, Any]] = {}

        def dump(name: str, dim: int | None = None, sub: str | None = None, **params: Any) -> int:
            spec = BY_NAME[name]
            folder = tmp / name / sub if sub else tmp / name
            writer = DatasetWriter(folder, spec, dim, rows_per_file)
            try:
                for batch in store.export_reader(name, STREAM_ROWS, **params):
                    if batch.num_rows:
                        writer.write(batch)
            finally:
                writer.close()
            entry = tables.setdefault(name, {"rows": 0, "files": []})
            entry["rows"] += writer.rows
            entry["files"] += [str(f.relative_to(tmp)) for f in writer.files]
            return writer.rows

        try:
            tmp.mkdir(parents=True)
            if space_ids:
                dump("spaces", space_ids=space_ids)
                dump("finetunes", space_ids=space_ids)  # what made the fine-tuned ones among them
            dump("clips", all_clips="clips" in parts, space_ids=space_ids if "embeddings" in parts else [],
                 results="results" in parts)
            if "clips" in parts:
                dump("clip_files")
            if "text" in parts:
                dump("prompts")
                dump("vocabularies")
            bar = progress("export vectors", sum(sum(store.space_vector_counts(s.space_id)) for s in spaces))
            try:
                for s in spaces:
                    n_audio, n_text, n_pairs = store.space_vector_counts(s.space_id)
                    sub = f"space_id={s.space_id}"
                    if "embeddings" in parts and n_audio:
                        written = dump("audio_embeddings", s.dim, sub, space_id=s.space_id)
                        if written != n_audio:
                            raise InterchangeError(
                                f"{db}: {n_audio - written} audio vector(s) of {s.label} have no batch record; "
                                "run `timbredb check`"
                            )
                        bar.update(n_audio)
                    if "embeddings" in parts and n_pairs:
                        written = dump("pair_distances", None, sub, space_id=s.space_id)
                        if written != n_pairs:
                            raise InterchangeError(
                                f"{db}: {n_pairs - written} pair distance(s) of {s.label} have no batch record; "
                                "run `timbredb check`"
                            )
                        bar.update(n_pairs)
                    if "text" in parts and n_text:
                        written = dump("text_embeddings", s.dim, sub, space_id=s.space_id)
                        if written != n_text:
                            raise InterchangeError(
                                f"{db}: {n_text - written} text vector(s) of {s.label} have no batch record; "
                                "run `timbredb check`"
                            )
                        bar.update(n_text)
            finally:
                bar.close()
            if "results" in parts:
                for spec in TABLES:
                    if spec.part == "results":
                        dump(spec.name)
            manifest = {
                "format": FORMAT,
                "timbredb_version": __version__,
                "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "store": str(Path(db).absolute()),
                "what": list(parts),
                "model": model,
                "spaces": [{"space_id": s.space_id, "label": s.label, "dim": s.dim, "comparison": s.comparison}
                           for s in spaces if s.space_id in space_ids],
                "tables": {k: v for k, v in tables.items() if v["rows"]},
            }
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
            if out_dir.exists():
                out_dir.rmdir()
            os.replace(tmp, out_dir)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return manifest
