"""CCMusic's per-listener data: raw ratings and per-stimulus listener SDs (noise ceilings).

CCMusic publishes, besides the means, the listeners' standard deviations for
the 16 terms on the 37 Chinese instruments, and the raw ratings of its 14
listeners for three terms (soft, thin, pure). ``timbredb ingest ccmusic``
stores them when ``<data-dir>/ccmusic/`` holds them as:

* ``ccmusic_<group>_ratings_<terms>_long.csv``: one row per listener, instrument
  and term: ``term_zh, term_hf, term_hist, listener, instrument_id, rating,
  raw_if_invalid``. An empty ``rating`` is a missing or invalid response
  (``raw_if_invalid`` keeps what was written, e.g. ``1&7``): it is left out.
* ``ccmusic_<group>_sd_by_term.csv``: one row per term (``term_zh, term_hf,
  term_hist``), one column per instrument (the SD, ddof = 1, of that
  instrument's ratings on the term), then ``mean_sd, sd_of_sd``; a summary row
  without a term (``term_consistency``) is skipped.

Terms are read by their historical name (``term_hist``), else mapped from the
hub name (``term_hf``). An SD is over the listeners who rated: the count in the
raw ratings where they exist, else CCMusic's 14. The files need no recordings:
noise ceilings are a property of the ratings alone.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path

from timbredb.datasets.ccmusic import HUB_TO_HISTORICAL
from timbredb.errors import DatasetError
from timbredb.vocabularies import CCMUSIC

#: listeners per instrument in CCMusic's evaluation
N_LISTENERS = 14
LONG_GLOB = "ccmusic_*_ratings_*_long.csv"
SD_GLOB = "ccmusic_*_sd_by_term.csv"
_SD_SUMMARY_COLUMNS = {"mean_sd", "sd_of_sd"}
_TERM_COLUMNS = ("term_zh", "term_hf", "term_hist")


@dataclass
class ListenerData:
    """What the per-listener files hold.

    Attributes:
        listeners: (instrument, descriptor, listener, rating, source) rows.
        sds: (instrument, descriptor, sd, n_listeners, source) rows.
        missing: responses left out (empty rating).
        files: the files read.
    """

    listeners: list[tuple[str, str, str, float, str]] = field(default_factory=list)
    sds: list[tuple[str, str, float, int, str]] = field(default_factory=list)
    missing: int = 0
    files: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.files)


def _rows(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read ({exc})") from exc
    reader = csv.reader(io.StringIO(text))
    header = [h.strip().lower() for h in next(reader, [])]
    rows = []
    for line, cells in enumerate(reader, start=2):
        if not any(c.strip() for c in cells):
            continue
        if len(cells) != len(header):
            raise DatasetError(f"{path}: line {line} has {len(cells)} fields, the header has {len(header)}")
        rows.append((line, [c.strip() for c in cells]))
    return header, rows


def _term(path: Path, line: int, hist: str, hub: str) -> str | None:
    name = hist.lower() or HUB_TO_HISTORICAL.get(hub.lower(), "")
    if not name:
        return None
    if name not in CCMUSIC:
        raise DatasetError(f"{path}: line {line}: term {name!r} is not one of the 16 CCMusic descriptors")
    return name


def _number(path: Path, line: int, what: str, value: str) -> float:
    try:
        x = float(value)
    except ValueError:
        raise DatasetError(f"{path}: line {line}: {what} {value!r} is not a number") from None
    if not math.isfinite(x):
        raise DatasetError(f"{path}: line {line}: {what} {value!r} is not finite")
    return x


def read_long(path: Path, out: ListenerData) -> None:
    """Raw ratings (``*_ratings_*_long.csv``) into ``out``."""
    header, rows = _rows(path)
    need = ("listener", "instrument_id", "rating")
    missing = [c for c in need if c not in header]
    if missing or not ({"term_hist", "term_hf"} & set(header)):
        raise DatasetError(f"{path}: not a CCMusic listener file (needs term_hist or term_hf, {', '.join(need)})")
    col = {c: header.index(c) for c in header}
    seen: dict[tuple[str, str, str], int] = {}
    for line, cells in rows:
        term = _term(path, line, cells[col["term_hist"]] if "term_hist" in col else "",
                     cells[col["term_hf"]] if "term_hf" in col else "")
        if term is None:
            raise DatasetError(f"{path}: line {line}: no term")
        inst, listener = cells[col["instrument_id"]], cells[col["listener"]]
        if not inst or not listener:
            raise DatasetError(f"{path}: line {line}: empty instrument_id or listener")
        key = (inst, term, listener)
        if key in seen:
            raise DatasetError(f"{path}: line {line}: listener {listener} rates ({inst}, {term}) twice "
                               f"(first on line {seen[key]})")
        seen[key] = line
        if not cells[col["rating"]]:
            out.missing += 1
            continue
        out.listeners.append((inst, term, listener, _number(path, line, "rating", cells[col["rating"]]), str(path)))
    out.files.append(str(path))


def read_sd(path: Path, out: ListenerData) -> None:
    """Per-instrument SDs (``*_sd_by_term.csv``) into ``out`` (n_listeners filled in by ``read_folder``)."""
    header, rows = _rows(path)
    if not ({"term_hist", "term_hf"} & set(header)):
        raise DatasetError(f"{path}: not a CCMusic SD file (needs a term_hist or term_hf column)")
    col = {c: header.index(c) for c in header}
    instruments = [h for h in header if h not in _TERM_COLUMNS and h not in _SD_SUMMARY_COLUMNS]
    if not instruments:
        raise DatasetError(f"{path}: no instrument columns")
    seen: set[str] = set()
    for line, cells in rows:
        term = _term(path, line, cells[col["term_hist"]] if "term_hist" in col else "",
                     cells[col["term_hf"]] if "term_hf" in col else "")
        if term is None:  # the term_consistency summary row
            continue
        if term in seen:
            raise DatasetError(f"{path}: line {line}: term {term!r} appears twice")
        seen.add(term)
        for inst in instruments:
            value = cells[col[inst]]
            if not value:
                raise DatasetError(f"{path}: line {line}: no SD for instrument {inst!r}")
            sd = _number(path, line, f"SD of {inst}", value)
            if sd < 0:
                raise DatasetError(f"{path}: line {line}: SD of {inst} is negative ({value})")
            out.sds.append((inst, term, sd, 0, str(path)))
    out.files.append(str(path))


def read_folder(folder: Path) -> ListenerData:
    """Every per-listener file in a CCMusic folder (empty ListenerData when there are none).

    Raises:
        DatasetError: a malformed file (nothing of it is used then).
    """
    out = ListenerData()
    if not folder.is_dir():
        return out
    for path in sorted(folder.glob(LONG_GLOB)):
        read_long(path, out)
    for path in sorted(folder.glob(SD_GLOB)):
        read_sd(path, out)
    counts: dict[tuple[str, str], int] = {}
    for inst, term, *_ in out.listeners:
        counts[(inst, term)] = counts.get((inst, term), 0) + 1
    out.sds = [(i, t, sd, counts.get((i, t), N_LISTENERS), src) for i, t, sd, _, src in out.sds]
    return out
