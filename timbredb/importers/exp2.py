"""`timbredb import exp2`: per-condition exp2 similarities computed elsewhere.

Accepts the study's released per-model CSVs (effect_type, source_type,
descriptor, scale, orig_target_sim, manip_target_sim, delta_target_sim,
target_text) and timbredb's own export of the ``exp2_trajectories`` query (CSV
or JSON). Each problem is one line naming the file and the row; nothing of a
malformed file is written. The rows land in ``exp2_imported`` and take part in
``query exp2`` and the report like local ones.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import re
from pathlib import Path
from typing import Any

from timbredb.analysis.exp2 import DEFAULT_TEMPLATE, EFFECT_ORDER
from timbredb.effects import dataset_of, effects
from timbredb.errors import AnalysisError, DatasetError, VocabularyError
from timbredb.store import Store
from timbredb.vocabularies import BARE, render_prompt

# imported files: column -> meaning, for both accepted layouts
STUDY_COLUMNS = {
    "effect": "effect_type", "source": "source_type", "descriptor": "descriptor", "strength": "scale",
    "original_cosine": "orig_target_sim", "variant_cosine": "manip_target_sim", "delta": "delta_target_sim",
    "prompt": "target_text",
}
TIMBREDB_COLUMNS = {k: k for k in STUDY_COLUMNS}
# the study's effect names, then every timbredb effect label (timbredb's own export)
EFFECT_ALIASES = {"eq": "eq", "reverb": "reverb", "rvb": "reverb", **{e: e for e in effects()}}
# the study's tolerance for delta == manip - orig and a constant baseline (np.allclose)
DELTA_ATOL, DELTA_RTOL, BASELINE_ATOL = 1e-7, 1e-5, 1e-7


def _read_rows(path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]], str]:
    """(columns, [(line or record number, row)], unit) of a CSV or JSON file."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read ({exc})") from exc
    if path.suffix.lower() == ".json" or text.lstrip().startswith("["):
        try:
            records = json.loads(text)
        except ValueError as exc:
            raise DatasetError(f"{path}: not valid JSON ({exc})") from exc
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise DatasetError(f"{path}: a JSON import must be a list of objects (as `--format json` writes)")
        columns = list(dict.fromkeys(k for r in records for k in r))
        rows = [(i + 1, {k: "" if v is None else str(v) for k, v in r.items()}) for i, r in enumerate(records)]
        return columns, rows, "record"
    reader = csv.reader(text.splitlines())
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise DatasetError(f"{path}: empty file") from None
    rows = []
    for values in reader:
        if not any(v.strip() for v in values):
            continue
        if len(values) != len(header):
            raise DatasetError(
                f"{path}: line {reader.line_num}: {len(values)} values but the header has {len(header)} columns"
            )
        rows.append((reader.line_num, dict(zip(header, values))))
    return header, rows, "line"


def _template_for(prompt: str, word: str) -> str | None:
    """The template that renders ``word`` to ``prompt`` ("an echo sound" -> "a {} sound")."""
    for t in (DEFAULT_TEMPLATE, BARE):
        if render_prompt(t, word) == prompt:
            return t
    if word not in prompt:
        return None
    candidate = prompt.replace(word, "{}", 1)
    for t in (candidate, re.sub(r"(^|\s)([Aa])n \{\}", r"\1\2 {}", candidate)):
        try:
            if render_prompt(t, word) == prompt:
                return t
        except VocabularyError:  # the word itself held braces
            continue
    return candidate


def _number(path: Path, where: str, column: str, value: str) -> float:
    try:
        x = float(value)
    except ValueError:
        raise DatasetError(f"{path}: {where}: {column} {value!r} is not a number") from None
    if not math.isfinite(x):
        raise DatasetError(f"{path}: {where}: {column} is {value} (must be finite)")
    return x


def parse_import(path: Path) -> tuple[str, list[dict[str, Any]]]:
    """Read and validate an exp2 results file; returns (layout, rows).

    Raises:
        DatasetError: one line naming the file and the offending line/record.
    """
    columns, raw, unit = _read_rows(path)
    present = set(columns)
    layouts = {"study": STUDY_COLUMNS, "timbredb": TIMBREDB_COLUMNS}
    layout = next((name for name, cols in layouts.items() if set(cols.values()) <= present), None)
    if layout is None:
        best = min(layouts, key=lambda n: len(set(layouts[n].values()) - present))
        missing = sorted(set(layouts[best].values()) - present)
        raise DatasetError(
            f"{path}: not an exp2 results file: missing column(s) {', '.join(missing)} "
            f"(the study's per-model CSV needs {', '.join(STUDY_COLUMNS.values())}; timbredb's export "
            f"needs {', '.join(TIMBREDB_COLUMNS.values())})"
        )
    if not raw:
        raise DatasetError(f"{path}: no data rows")
    cols = layouts[layout]
    if layout == "timbredb" and "model" in present:
        names = sorted({r.get("model", "") for _, r in raw})
        if len(names) > 1:
            raise DatasetError(f"{path}: holds several models ({', '.join(names)}); import one model per file")
    rows: list[dict[str, Any]] = []
    seen: dict[tuple[Any, ...], int] = {}
    baseline: dict[tuple[Any, ...], tuple[float, int]] = {}
    for n, r in raw:
        where = f"{unit} {n}"
        effect_raw = r[cols["effect"]].strip()
        effect = EFFECT_ALIASES.get(effect_raw.lower())
        if effect is None:
            known = ", ".join(dict.fromkeys([*EFFECT_ALIASES, *effects()]))
            raise DatasetError(f"{path}: {where}: unknown effect {effect_raw!r} (known: {known})")
        dataset = dataset_of(effect)
        source, word, prompt = r[cols["source"]].strip(), r[cols["descriptor"]].strip(), r[cols["prompt"]].strip()
        for name, value in (("source", source), ("descriptor", word), ("prompt", prompt)):
            if not value:
                raise DatasetError(f"{path}: {where}: empty {cols[name]}")
        strength = _number(path, where, cols["strength"], r[cols["strength"]])
        if not 0.0 < strength <= 1.0:
            raise DatasetError(f"{path}: {where}: {cols['strength']} {strength:g} is outside (0, 1]")
        orig = _number(path, where, cols["original_cosine"], r[cols["original_cosine"]])
        var = _number(path, where, cols["variant_cosine"], r[cols["variant_cosine"]])
        delta = _number(path, where, cols["delta"], r[cols["delta"]])
        if abs(delta - (var - orig)) > DELTA_ATOL + DELTA_RTOL * abs(var - orig):
            raise DatasetError(
                f"{path}: {where}: inconsistent delta: {cols['delta']} {delta:.9g} != "
                f"{cols['variant_cosine']} - {cols['original_cosine']} = {var - orig:.9g}"
            )
        given = "" if layout == "study" else r.get("template", "").strip()
        template = given or _template_for(prompt, word)
        if template is None:
            raise DatasetError(f"{path}: {where}: {cols['prompt']} {prompt!r} does not contain the descriptor {word!r}")
        key = (effect, source, word, prompt, round(strength, 9))
        if key in seen:
            raise DatasetError(
                f"{path}: {where}: duplicate condition ({effect}, {source}, {word}, {strength:g}), "
                f"first seen on {unit} {seen[key]}"
            )
        seen[key] = n
        bkey = key[:4]
        if bkey in baseline and abs(baseline[bkey][0] - orig) > BASELINE_ATOL:
            first, at = baseline[bkey]
            raise DatasetError(
                f"{path}: {where}: baseline changes with strength: {cols['original_cosine']} {orig:.9g} != "
                f"{first:.9g} on {unit} {at} for ({effect}, {source}, {word})"
            )
        baseline.setdefault(bkey, (orig, n))
        rows.append({
            "dataset": dataset, "effect": effect, "source": source, "descriptor": word, "template": template, "prompt": prompt,
            "strength": strength, "original_cosine": orig, "variant_cosine": var, "delta": delta, "line": n,
        })
    return layout, rows


def import_results(store: Store, file: Path, model_name: str) -> dict[str, Any]:
    """Load per-condition exp2 similarities computed elsewhere, filed under ``model_name``.

    Accepts the study's released per-model CSV (effect_type, source_type, descriptor,
    scale, orig_target_sim, manip_target_sim, delta_target_sim, target_text) and
    timbredb's own export of the ``exp2_trajectories`` query (CSV or JSON). Re-importing
    under the same name replaces that model's rows.

    Returns:
        a summary: model, file, layout, rows, trajectories, effects, sources,
        descriptors, replaced (rows of an earlier import under this name).

    Raises:
        DatasetError: the file is malformed (one line naming file and row).
        AnalysisError: the name is already a local model's label.
    """
    path = Path(file)
    name = model_name.strip()
    if not name:
        raise AnalysisError("--model: give a name to file the imported results under")
    if any(s.label == name for s in store.spaces()):
        raise AnalysisError(
            f"--model {name!r} is a model computed in this store; file the import under another name "
            f"(e.g. {name + '-imported'!r}) so both can be compared"
        )
    layout, rows = parse_import(path)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    resolved = str(path.resolve())
    replaced = store.replace_imported_exp2(name, [{**r, "file": resolved, "file_sha256": sha} for r in rows])
    return {
        "model": name,
        "file": resolved,
        "layout": layout,
        "rows": len(rows),
        "trajectories": len({(r["effect"], r["source"], r["descriptor"], r["template"]) for r in rows}),
        "effects": sorted({r["effect"] for r in rows}, key=lambda e: EFFECT_ORDER[e]),
        "sources": sorted({r["source"] for r in rows}),
        "descriptors": len({r["descriptor"] for r in rows}),
        "replaced": int(replaced),
    }
