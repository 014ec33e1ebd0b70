"""`timbredb import exp1` / `timbredb export exp1`: Experiment 1 results in the study release's format.

The study's code release (lindseydeng/timbre-semantics-release,
``results/reference/experiment1/``) saves Experiment 1 as

* ``descriptors.csv``: ``model,descriptor,pearson,spearman``, the descriptor-level
  r over all instruments pooled (its fresh-run output has no ``model`` column);
* ``<model>_<split>.csv``: ``instrument,pearson,spearman``, the instrument-level r
  of one model on one split (the fresh-run output is one ``instruments.csv`` with
  ``instrument,split,pearson,spearman``).

Model names are taken as the release writes them, lower-cased with ``_`` turned
into ``-``: ``LAION_CLAP`` and ``laion-clap_chinese.csv`` are both ``laion-clap``,
``MSCLAP``/``msclap`` is ``msclap``, ``MuQ_MuLan`` is ``muq-mulan``, ``OpenFLAM``
is ``openflam``. Each imported name also records the registered timbredb model it
stands for (``msclap`` -> ``ms-clap``; the others are the same id), so the report
compares it with that model's published numbers. Every problem is one line naming
the file and the line; nothing of a malformed folder is written. Imported results
take part in ``query compare`` and the report beside local ones.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from timbredb.errors import AnalysisError, DatasetError
from timbredb.store import Store

#: release names that are not a registered timbredb id -> the id they stand for
ALIASES = {"msclap": "ms-clap"}
#: files of the fresh-run layout that carry no correlations
IGNORED = {"similarities.csv"}
_R_TOLERANCE = 1e-9
_NAME = re.compile(r"^[a-z0-9][a-z0-9@+.\-]*$")


def release_name(name: str) -> str:
    """The name an imported model is filed under: lower case, '_' -> '-'."""
    return name.strip().lower().replace("_", "-")


def model_id_for(name: str) -> str | None:
    """The registered timbredb model id an imported name stands for, or None."""
    from timbredb.models.registry import specs

    target = ALIASES.get(name, name)
    return target if target in specs() else None


@dataclass
class Parsed:
    """Rows per model name, each {"level", "split", "unit", "pearson_r", "spearman_rho", "file", "file_sha256", "line"}."""

    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    def add(self, model: str, row: dict[str, Any]) -> None:
        self.rows.setdefault(model, []).append(row)


def _table(path: Path) -> tuple[list[str], list[tuple[int, list[str]]], str]:
    try:
        data = path.read_bytes()
        text = data.decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read ({exc})") from exc
    reader = csv.reader(io.StringIO(text))
    header = [h.strip().lower() for h in next(reader, [])]
    if not header:
        raise DatasetError(f"{path}: empty file")
    rows = []
    for line, cells in enumerate(reader, start=2):
        if not any(c.strip() for c in cells):
            continue
        if len(cells) != len(header):
            raise DatasetError(f"{path}: line {line}: {len(cells)} values but the header has {len(header)} columns")
        rows.append((line, [c.strip() for c in cells]))
    if not rows:
        raise DatasetError(f"{path}: no data rows")
    return header, rows, hashlib.sha256(data).hexdigest()


def _r(path: Path, line: int, column: str, value: str, required: bool) -> float | None:
    if not value:
        if required:
            raise DatasetError(f"{path}: line {line}: empty {column}")
        return None
    try:
        x = float(value)
    except ValueError:
        raise DatasetError(f"{path}: line {line}: {column} {value!r} is not a number") from None
    if not math.isfinite(x):
        raise DatasetError(f"{path}: line {line}: {column} is {value} (must be finite)")
    if abs(x) > 1.0 + _R_TOLERANCE:
        raise DatasetError(f"{path}: line {line}: {column} {value} is not a correlation (outside [-1, 1])")
    return x


def _kind(path: Path, header: list[str]) -> str:
    cols = set(header)
    if {"descriptor", "pearson"} <= cols:
        return "descriptors"
    if {"instrument", "pearson"} <= cols:
        return "instruments"
    raise DatasetError(
        f"{path}: not an exp1 results file: header {', '.join(header)} (need model,descriptor,pearson,spearman "
        "or instrument,pearson,spearman)"
    )


def _check_name(path: Path, line: int | None, name: str) -> str:
    if not _NAME.match(name):
        where = f"line {line}: " if line else ""
        raise DatasetError(f"{path}: {where}model name {name!r} is not usable (letters, digits, '-', '.', '@', '+')")
    return name


def parse_descriptors(path: Path, model: str | None, out: Parsed) -> None:
    """A descriptors.csv into ``out`` (``model`` overrides / stands in for the model column)."""
    header, rows, sha = _table(path)
    if _kind(path, header) != "descriptors":
        raise DatasetError(f"{path}: expected descriptor-level results (model,descriptor,pearson,spearman)")
    col = {c: header.index(c) for c in header}
    if "model" not in col and model is None:
        raise DatasetError(f"{path}: no model column; give --model NAME (or a run.json naming the model)")
    names = {release_name(cells[col["model"]]) for _, cells in rows} if "model" in col else set()
    if model is not None and len(names) > 1:
        raise DatasetError(f"{path}: holds several models ({', '.join(sorted(names))}); import the folder without --model")
    seen: dict[tuple[str, str], int] = {}
    for line, cells in rows:
        name = model if model is not None else release_name(cells[col["model"]])
        if not name:
            raise DatasetError(f"{path}: line {line}: empty model")
        _check_name(path, line, name)
        d = cells[col["descriptor"]].lower()
        if not d:
            raise DatasetError(f"{path}: line {line}: empty descriptor")
        if (name, d) in seen:
            raise DatasetError(f"{path}: line {line}: duplicate ({name}, {d}), first on line {seen[(name, d)]}")
        seen[(name, d)] = line
        out.add(name, {
            "level": "descriptor", "split": "all", "unit": d,
            "pearson_r": _r(path, line, "pearson", cells[col["pearson"]], True),
            "spearman_rho": _r(path, line, "spearman", cells[col["spearman"]], False) if "spearman" in col else None,
            "file": str(path.resolve()), "file_sha256": sha, "line": line,
        })
    out.files.append(str(path.resolve()))


def parse_instruments(path: Path, model: str, split: str | None, out: Parsed) -> None:
    """A ``<model>_<split>.csv`` (``split`` from the name) or an ``instruments.csv`` with a split column."""
    header, rows, sha = _table(path)
    if _kind(path, header) != "instruments":
        raise DatasetError(f"{path}: expected instrument-level results (instrument,pearson,spearman)")
    col = {c: header.index(c) for c in header}
    if split is None and "split" not in col:
        raise DatasetError(f"{path}: no split: name the file <model>_<split>.csv or add a split column")
    _check_name(path, None, model)
    seen: dict[str, int] = {}
    for line, cells in rows:
        s = (cells[col["split"]] if "split" in col else split or "").strip().lower()
        if not s or s == "all" or "_" in s:
            raise DatasetError(f"{path}: line {line}: split {s!r} is not a group name (chinese, western, ...)")
        inst = cells[col["instrument"]]
        if not inst:
            raise DatasetError(f"{path}: line {line}: empty instrument")
        if inst in seen:
            raise DatasetError(f"{path}: line {line}: duplicate instrument {inst!r}, first on line {seen[inst]}")
        seen[inst] = line
        out.add(model, {
            "level": "instrument", "split": s, "unit": inst,
            "pearson_r": _r(path, line, "pearson", cells[col["pearson"]], True),
            "spearman_rho": _r(path, line, "spearman", cells[col["spearman"]], False) if "spearman" in col else None,
            "file": str(path.resolve()), "file_sha256": sha, "line": line,
        })
    out.files.append(str(path.resolve()))


def _run_json_model(folder: Path) -> str | None:
    path = folder / "run.json"
    if not path.is_file():
        return None
    try:
        value = json.loads(path.read_text(encoding="utf-8")).get("model")
    except (OSError, ValueError, AttributeError) as exc:
        raise DatasetError(f"{path}: cannot read the model name ({exc})") from exc
    return release_name(str(value)) if value else None


def parse_path(path: Path, model: str | None) -> Parsed:
    """Every exp1 result in a release folder, or one file filed under ``model``.

    Raises:
        DatasetError: a malformed file or folder (one line naming the file and the row).
    """
    out = Parsed()
    path = Path(path)
    if path.is_file():
        if model is None:
            raise DatasetError(f"{path}: importing one file needs --model NAME")
        header, _, _ = _table(path)
        if _kind(path, header) == "descriptors":
            parse_descriptors(path, model, out)
        else:
            stem = path.stem
            split = stem.rsplit("_", 1)[1] if "_" in stem and "split" not in header else None
            parse_instruments(path, model, split, out)
        return out
    if not path.is_dir():
        raise DatasetError(f"{path}: no such file or folder")
    fresh = (path / "instruments.csv").is_file()
    fresh_model = model or _run_json_model(path)
    if fresh and fresh_model is None:
        raise DatasetError(f"{path}: a fresh-run folder (instruments.csv) needs --model NAME or a run.json naming it")
    for f in sorted(path.glob("*.csv")):
        if f.name in IGNORED:
            out.ignored.append(f.name)
        elif f.name == "descriptors.csv":
            header, _, _ = _table(f)
            parse_descriptors(f, fresh_model if ("model" not in header or model) else None, out)
        elif f.name == "instruments.csv":
            assert fresh_model is not None
            parse_instruments(f, fresh_model, None, out)
        elif "_" in f.stem:
            name, split = f.stem.rsplit("_", 1)
            parse_instruments(f, model or release_name(name), split.lower(), out)
        else:
            out.ignored.append(f.name)
    if not out.rows:
        raise DatasetError(
            f"{path}: no exp1 results (expected descriptors.csv and/or <model>_<split>.csv files of the study release)"
        )
    if model is not None and len(out.rows) > 1:
        raise DatasetError(f"{path}: holds several models; import the folder without --model")
    return out


def import_results(
    store: Store, path: Path, model: str | None = None, dataset: str = "ccmusic", suffix: str = ""
) -> dict[str, Any]:
    """Load exp1 results computed elsewhere (`timbredb import exp1`).

    Args:
        path: a release folder (every model in it) or one file (then ``model`` is required).
        model: the name to file one model's results under (default: the release's name, normalised).
        dataset: the rated dataset the results are about.
        suffix: appended to every derived name (to keep them apart from local models of the same name).

    Returns:
        a summary: dataset, models (name -> {model_id, descriptors, instruments, splits, replaced}),
        files, ignored.

    Raises:
        DatasetError: a malformed file (nothing is written).
        AnalysisError: a name that is already a local model's label.
    """
    name = release_name(model) if model is not None else None
    if name is not None and not name:
        raise AnalysisError("--model: give a name to file the imported results under")
    parsed = parse_path(Path(path), name)
    if suffix:
        parsed.rows = {n + suffix: rows for n, rows in parsed.rows.items()}
    local = {s.label for s in store.spaces()}
    clash = sorted(n for n in parsed.rows if n in local)
    if clash:
        raise AnalysisError(
            f"{', '.join(repr(n) for n in clash)}: already a model computed in this store; file the import under "
            "another name (`--suffix -release`, or `--model NAME` for one file) so both can be compared"
        )
    ids = {n: model_id_for(n[: -len(suffix)] if suffix else n) for n in parsed.rows}
    rows = {n: [{**r, "model_id": ids[n]} for r in rs] for n, rs in parsed.rows.items()}
    replaced = store.replace_imported_exp1(dataset, rows)
    models = {}
    for n, rs in sorted(rows.items()):
        models[n] = {
            "model_id": ids[n],
            "descriptors": sum(1 for r in rs if r["level"] == "descriptor"),
            "instruments": sum(1 for r in rs if r["level"] == "instrument"),
            "splits": sorted({r["split"] for r in rs if r["level"] == "instrument"}),
            "replaced": replaced[n],
        }
    return {"dataset": dataset, "models": models, "files": parsed.files, "ignored": parsed.ignored}


# ---------------------------------------------------------------- export
def file_name(label: str) -> str:
    """A space label as the release's model name part of a file name ('/' is not allowed there)."""
    return label.replace("/", "+")


def export_results(result: dict[str, pl.DataFrame], out_dir: Path) -> dict[str, Any]:
    """Write exp1 results (``run_exp1``'s frames) in the study release's reference layout.

    ``descriptors.csv`` (model,descriptor,pearson,spearman; split "all") and
    ``<model>_<group>.csv`` (instrument,pearson,spearman) per model and group. Rows
    with an undefined r (a descriptor a model cannot embed) are left out, as the
    release has none. Returns a summary: folder, files.

    Raises:
        AnalysisError: a group name with '_' (the release splits file names at the last '_').
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files: list[str] = []
    desc = result["descriptors"].filter((pl.col("split") == "all") & pl.col("pearson_r").is_finite())
    path = out / "descriptors.csv"
    _write(path, ["model", "descriptor", "pearson", "spearman"],
           [[file_name(r["model"]), r["descriptor"], _num(r["pearson_r"]), _num(r["spearman_rho"])]
            for r in desc.sort("descriptor", "model").iter_rows(named=True)])
    files.append(path.name)
    inst = result["instruments"].filter(pl.col("pearson_r").is_finite())
    for (model, split), g in inst.group_by(["model", "split"], maintain_order=True):
        if not split:
            continue
        if "_" in str(split):
            raise AnalysisError(f"group {split!r} holds '_': the release format cannot name its file")
        path = out / f"{file_name(str(model))}_{split}.csv"
        _write(path, ["instrument", "pearson", "spearman"],
               [[r["instrument"], _num(r["pearson_r"]), _num(r["spearman_rho"])] for r in g.iter_rows(named=True)])
        files.append(path.name)
    return {"folder": str(out.resolve()), "files": sorted(files)}


def _num(value: Any) -> str:
    return "" if value is None or not math.isfinite(float(value)) else repr(float(value))


def _write(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)
    tmp.replace(path)
