"""SocialFX compression (Zheng, Seetharaman & Pardo 2016): words for compressor settings (`timbredb ingest socialfx-comp`).

Layout under the data dir: ``socialfx/comp_contributions.csv`` (one
contribution per row, with a header). Columns used:

- ``rawwords``: what the contributor typed for the setting they heard,
  comma-separated. (``words`` is the same after an automatic spelling
  correction that is sometimes wrong, e.g. reverb -> revers, so ``rawwords`` is
  used; ``agreed``/``didnotagree`` are earlier contributors' words for the same
  preset that this contributor endorsed or not, not their own description.)
- ``param``: the compressor setting, five comma-separated numbers in the order
  threshold (dB), knee (dB), ratio, attack (s), release (s). SocialFX's code is
  not public: the order and units are inferred from the values' ranges, which
  are those of the Web Audio ``DynamicsCompressorNode`` the browser-based
  contributions most likely used (threshold -100..0 dB, knee 0..40 dB, ratio
  1..20, attack and release 0..1 s; the data fills -100..-25, 0..40, 1..20,
  0..0.05, 0..1), and from the contributors' browser user agents.
- ``effect`` must be ``compression``.

Not used (meanings not established): ``likert``, ``quiet``, ``effectTime``,
``cleanTime``, ``listen``, ``irb``, ``audioFile``, and ``compressors.csv``'s
``count``. How settings become variants: ``timbredb.datasets.effect_words``
and ``timbredb.dsp_plugins.SocialFXCompressor``.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from timbredb import dsp_plugins as fx
from timbredb.datasets.effect_words import Contributions, EffectPlan, Param, ingest_effects, parse_values, words_of
from timbredb.errors import DatasetError
from timbredb.ingest import IngestOptions, Ingestor

DATASET = "socialfx"
FILE = "comp_contributions.csv"
DEFAULT_MIN_CONTRIBUTIONS = 20
PARAMS: tuple[Param, ...] = (
    Param("threshold_db", -100, 0), Param("knee_db", 0, 40), Param("ratio", 1, 20),
    Param("attack_s", 0, 1), Param("release_s", 0, 1),
)
REQUIRED = ("rawwords", "param", "effect")


def read_contributions(path: Path) -> Contributions:
    """Every usable compression contribution, by word; bad rows are listed, not raised.

    Raises:
        DatasetError: the file is missing, unreadable, or lacks a required column.
    """
    if not path.is_file():
        raise DatasetError(f"{path}: not found (the SocialFX compression contributions; set --data-dir)")
    out = Contributions("socialfx-compression", path, PARAMS)
    try:
        with open(path, encoding="utf-8", errors="replace", newline="") as f:
            reader = csv.DictReader(f)
            missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
            if missing:
                raise DatasetError(f"{path}: no column {', '.join(missing)} (expected SocialFX's comp_contributions.csv)")
            for row in reader:
                line = reader.line_num
                n_header = len(reader.fieldnames or [])
                if None in row:
                    extra = row[None]
                    out.bad.append((line, f"{n_header + len(extra)} columns, expected {n_header}"))
                    continue
                if any(v is None for v in row.values()):
                    out.bad.append((line, f"fewer columns than the header's {n_header}"))
                    continue
                if row["effect"].strip() != "compression":
                    out.bad.append((line, f"effect {row['effect'].strip()!r}, expected 'compression'"))
                    continue
                try:
                    values = parse_values(row["param"].split(","), PARAMS)
                except ValueError as exc:
                    out.bad.append((line, f"param: {exc}"))
                    continue
                if not row["rawwords"].strip():
                    out.bad.append((line, "no words (rawwords is empty)"))
                    continue
                out.add(words_of(row["rawwords"]), values)
    except csv.Error as exc:
        raise DatasetError(f"{path}: not CSV ({exc})") from exc
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read ({exc.strerror})") from exc
    return out


def _setting(v: tuple[float, ...], s: float) -> dict[str, Any]:
    c = fx.SocialFXCompressor(*v).at(s)
    return {"threshold_db": round(c.threshold_db, 6), "knee_db": round(c.knee_db, 6), "ratio": round(c.ratio, 6),
            "attack_s": round(c.attack_s, 6), "release_s": round(c.release_s, 6), "makeup_db": round(c.makeup_db, 6)}


def _render(v: tuple[float, ...], pcm: NDArray[np.float32], sr: int, s: float) -> tuple[NDArray[np.float32], int]:
    return fx.render_socialfx_compressor(pcm, sr, fx.SocialFXCompressor(*v), s)


def ingest(ingestor: Ingestor, data_dir: Path, options: IngestOptions) -> dict[str, Any]:
    """Render the SocialFX compressor settings of the words on the exp2 sources.

    Options used: words, strengths, sources, length_s, prompts, min_contributions.
    """
    contributions = read_contributions(Path(data_dir) / DATASET / FILE)
    plan = EffectPlan("socialfx-compression", contributions, _render, _setting)
    n = DEFAULT_MIN_CONTRIBUTIONS if options.min_contributions is None else options.min_contributions
    return ingest_effects(ingestor, data_dir, options, DATASET, [plan], n)
