"""Rated datasets a user brings: `timbredb ingest ratings FILE.csv --audio DIR --name NAME`.

A rated dataset is a set of stimuli (one recording each, optionally in groups)
with mean ratings on descriptors, and optionally the per-listener ratings the
means come from. CCMusic is one such dataset (``timbredb.datasets.ccmusic``);
Experiment 1 and the analyses beyond the study run on any of them
(``--dataset NAME``). Accepted tables (UTF-8 CSV with a header; names compared
stripped and lower-cased; ``instrument`` may stand for ``stimulus`` and
``split`` for ``group``):

* **wide** means: ``stimulus``, optional ``group``, then one column per descriptor;
* **long** means: ``stimulus, descriptor, rating`` (optional ``group``; optional
  ``sd`` and ``n_listeners``: the listeners' SD of that stimulus and descriptor);
* **listener** ratings: ``stimulus, descriptor, listener, rating`` (optional
  ``group``); the means are computed (the mean over the listeners who rated)
  and stored beside them. An empty rating is a missing response (counted, not
  an error).

PATH is such a file (then ``--audio DIR``, default ``<file's folder>/audio``) or
a folder holding ``ratings.csv`` (any layout), optionally
``listener_ratings.csv`` (listener layout, kept beside the means of
``ratings.csv``) and ``audio/<stimulus>.<wav|flac|ogg|aiff>``. Everything is
read and validated before anything is written: a malformed file is one
DatasetError naming the file, the line and the problem, and nothing of the
dataset is stored.
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from timbredb.datasets.ccmusic import AUDIO_SUFFIXES, find_audio
from timbredb.errors import DatasetError
from timbredb.vocabularies import BARE, BUILTIN

if TYPE_CHECKING:
    from timbredb.ingest import IngestOptions, Ingestor

#: a rated dataset needs this many stimuli for any correlation over stimuli to mean something
MIN_STIMULI = 3
#: the column name recorded for means computed from listener ratings
LISTENER_MEAN = "mean of listener ratings"
#: names `--name` may not take: the non-rated datasets, the keyword itself, and built-in vocabularies
RESERVED = {"audealize", "timbremetrics", "ratings", *BUILTIN} - {"ccmusic"}
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_ALIASES = {"instrument": "stimulus", "split": "group"}


@dataclass
class RatedData:
    """A rated dataset as read from its files, validated.

    Attributes:
        name: the dataset name it is stored under.
        source: the means file (stored with each stimulus).
        layout: "wide", "long" or "listeners" (of the means file).
        groups: stimulus -> group ('' when the file has no groups), in file order.
        means: (stimulus, descriptor) -> (mean rating, the column it came from).
        listeners: (stimulus, descriptor, listener, rating, source file) rows.
        sds: (stimulus, descriptor, sd, n_listeners, source file) rows.
        missing: empty listener ratings (missing responses) left out.
    """

    name: str
    source: str
    layout: str
    groups: dict[str, str] = field(default_factory=dict)
    means: dict[tuple[str, str], tuple[float, str]] = field(default_factory=dict)
    listeners: list[tuple[str, str, str, float, str]] = field(default_factory=list)
    sds: list[tuple[str, str, float, int, str]] = field(default_factory=list)
    missing: int = 0

    @property
    def descriptors(self) -> list[str]:
        return sorted({d for _, d in self.means})


@dataclass(frozen=True)
class _Table:
    path: Path
    header: list[str]                 # normalised names
    rows: list[tuple[int, list[str]]]  # (line number, cells)

    def col(self, name: str) -> int | None:
        return self.header.index(name) if name in self.header else None


def check_name(name: str) -> str:
    """A dataset name: lower case letters, digits, '_', '.', '-', and not a reserved name."""
    name = name.strip()
    if not _NAME.match(name):
        raise DatasetError(
            f"--name {name!r}: a rated dataset name is 1-64 characters of a-z, 0-9, '_', '.', '-' "
            "(starting with a letter or digit)"
        )
    if name in RESERVED:
        raise DatasetError(f"--name {name!r} is reserved (a dataset or vocabulary of timbredb); choose another name")
    return name


def _read_table(path: Path) -> _Table:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read ({exc})") from exc
    reader = csv.reader(io.StringIO(text))
    raw_header = next(reader, None)
    if not raw_header or not any(h.strip() for h in raw_header):
        raise DatasetError(f"{path}: empty file (need a header row)")
    header = [_ALIASES.get(h.strip().lower(), h.strip().lower()) for h in raw_header]
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise DatasetError(f"{path}: column(s) {', '.join(map(repr, dupes))} appear twice in the header")
    if "stimulus" not in header:
        raise DatasetError(f"{path}: no 'stimulus' (or 'instrument') column (header: {', '.join(raw_header)})")
    rows = []
    for line, cells in enumerate(reader, start=2):
        if not any(c.strip() for c in cells):
            continue
        if len(cells) != len(header):
            raise DatasetError(f"{path}: line {line} has {len(cells)} fields, the header has {len(header)}")
        rows.append((line, [c.strip() for c in cells]))
    if not rows:
        raise DatasetError(f"{path}: no data rows")
    return _Table(path, header, rows)


def _number(t: _Table, line: int, column: str, value: str) -> float:
    try:
        x = float(value)
    except ValueError:
        raise DatasetError(f"{t.path}: line {line}: {column} {value!r} is not a number") from None
    if not math.isfinite(x):
        raise DatasetError(f"{t.path}: line {line}: {column} {value!r} is not finite")
    return x


def _descriptor(t: _Table, line: int, value: str) -> str:
    d = value.strip().lower()
    if not d:
        raise DatasetError(f"{t.path}: line {line}: empty descriptor")
    if "{" in d or "}" in d:
        raise DatasetError(f"{t.path}: line {line}: descriptor {value!r} holds a brace (it is put into prompt templates)")
    return d


def _group(t: _Table, line: int, stimulus: str, value: str, groups: dict[str, str]) -> None:
    g = value.strip().lower()
    if g == "all":
        raise DatasetError(f"{t.path}: line {line}: group 'all' is reserved (it names every stimulus pooled)")
    if stimulus in groups and groups[stimulus] != g:
        raise DatasetError(
            f"{t.path}: line {line}: stimulus {stimulus!r} is in group {g!r} here but {groups[stimulus]!r} before"
        )
    groups.setdefault(stimulus, g)


def _stimulus(t: _Table, line: int, cells: list[str]) -> str:
    name = cells[t.header.index("stimulus")]
    if not name:
        raise DatasetError(f"{t.path}: line {line}: empty stimulus name")
    return name


def _layout(t: _Table) -> str:
    if "listener" in t.header:
        missing = [c for c in ("descriptor", "rating") if c not in t.header]
        if missing:
            raise DatasetError(f"{t.path}: a listener table needs the column(s) {', '.join(missing)}")
        return "listeners"
    if "descriptor" in t.header or "rating" in t.header:
        missing = [c for c in ("descriptor", "rating") if c not in t.header]
        if missing:
            raise DatasetError(f"{t.path}: a long table needs the column(s) {', '.join(missing)}")
        return "long"
    return "wide"


def _read_wide(t: _Table, data: RatedData) -> None:
    names = [h for h in t.header if h not in ("stimulus", "group")]
    if not names:
        raise DatasetError(f"{t.path}: no descriptor columns (wide layout: stimulus, optional group, descriptors)")
    for h in names:
        _descriptor(t, 1, h)
    g = t.col("group")
    for line, cells in t.rows:
        stim = _stimulus(t, line, cells)
        if stim in data.groups:
            raise DatasetError(f"{t.path}: line {line}: duplicate stimulus {stim!r}")
        _group(t, line, stim, cells[g] if g is not None else "", data.groups)
        for h in names:
            value = cells[t.header.index(h)]
            if not value:
                raise DatasetError(f"{t.path}: line {line}: stimulus {stim!r} has no rating in column {h!r}")
            data.means[(stim, h)] = (_number(t, line, h, value), h)


def _read_long(t: _Table, data: RatedData) -> None:
    g, i_sd, i_n = t.col("group"), t.col("sd"), t.col("n_listeners")
    if (i_sd is None) != (i_n is None):
        raise DatasetError(f"{t.path}: give both 'sd' and 'n_listeners' columns, or neither")
    seen: dict[tuple[str, str], int] = {}
    for line, cells in t.rows:
        stim = _stimulus(t, line, cells)
        d = _descriptor(t, line, cells[t.header.index("descriptor")])
        if (stim, d) in seen:
            raise DatasetError(f"{t.path}: line {line}: duplicate ({stim}, {d}), first on line {seen[(stim, d)]}")
        seen[(stim, d)] = line
        _group(t, line, stim, cells[g] if g is not None else "", data.groups)
        value = cells[t.header.index("rating")]
        if not value:
            raise DatasetError(f"{t.path}: line {line}: stimulus {stim!r} has no rating for {d!r}")
        data.means[(stim, d)] = (_number(t, line, "rating", value), "rating")
        if i_sd is not None and i_n is not None and (cells[i_sd] or cells[i_n]):
            sd = _number(t, line, "sd", cells[i_sd])
            n = _number(t, line, "n_listeners", cells[i_n])
            if sd < 0 or n < 2 or n != int(n):
                raise DatasetError(f"{t.path}: line {line}: need sd >= 0 and a whole n_listeners >= 2 (got {sd:g}, {n:g})")
            data.sds.append((stim, d, sd, int(n), str(t.path)))


def _read_listeners(t: _Table, data: RatedData, groups: dict[str, str]) -> None:
    g = t.col("group")
    seen: dict[tuple[str, str, str], int] = {}
    for line, cells in t.rows:
        stim = _stimulus(t, line, cells)
        d = _descriptor(t, line, cells[t.header.index("descriptor")])
        listener = cells[t.header.index("listener")]
        if not listener:
            raise DatasetError(f"{t.path}: line {line}: empty listener")
        key = (stim, d, listener)
        if key in seen:
            raise DatasetError(f"{t.path}: line {line}: listener {listener!r} rates ({stim}, {d}) twice "
                               f"(first on line {seen[key]})")
        seen[key] = line
        if g is not None or stim not in groups:
            _group(t, line, stim, cells[g] if g is not None else "", groups)
        value = cells[t.header.index("rating")]
        if not value:
            data.missing += 1
            continue
        data.listeners.append((stim, d, listener, _number(t, line, "rating", value), str(t.path)))


def _means_from_listeners(data: RatedData) -> None:
    sums: dict[tuple[str, str], list[float]] = {}
    for stim, d, _, v, _ in data.listeners:
        sums.setdefault((stim, d), []).append(v)
    data.means = {k: (sum(v) / len(v), LISTENER_MEAN) for k, v in sums.items()}


def read_rated(path: Path, name: str | None = None) -> RatedData:
    """Read and validate a rated dataset from a file or folder (see the module doc).

    Args:
        path: a ratings file, or a folder with ``ratings.csv`` (and optionally ``listener_ratings.csv``).
        name: the dataset name (default: the folder's name, or the file's stem).

    Raises:
        DatasetError: one line naming the file, the line and the problem.
    """
    path = Path(path)
    if path.is_dir():
        means_file = path / "ratings.csv"
        if not means_file.is_file():
            raise DatasetError(f"{path}: no ratings.csv (a rated-dataset folder holds ratings.csv and audio/)")
        extra = path / "listener_ratings.csv"
        listener_file: Path | None = extra if extra.is_file() else None
        default_name = path.resolve().name
    elif path.is_file():
        means_file, listener_file, default_name = path, None, path.stem
    else:
        raise DatasetError(f"{path}: no such file or folder")
    dataset = check_name(name if name is not None else default_name.lower())
    t = _read_table(means_file)
    layout = _layout(t)
    data = RatedData(name=dataset, source=str(means_file.resolve()), layout=layout)
    if layout == "wide":
        _read_wide(t, data)
    elif layout == "long":
        _read_long(t, data)
    else:
        _read_listeners(t, data, data.groups)
        _means_from_listeners(data)
    if listener_file is not None:
        lt = _read_table(listener_file)
        if _layout(lt) != "listeners":
            raise DatasetError(f"{listener_file}: not a listener table (needs stimulus, descriptor, listener, rating)")
        if layout == "listeners":
            raise DatasetError(f"{listener_file}: {means_file.name} already holds listener ratings; give one of the two")
        groups = dict(data.groups)
        _read_listeners(lt, data, groups)
        unknown = sorted({(s, d) for s, d, *_ in data.listeners} - set(data.means))
        if unknown:
            s, d = unknown[0]
            raise DatasetError(
                f"{listener_file}: {len(unknown)} (stimulus, descriptor) pair(s) have no mean in {means_file.name}, "
                f"e.g. ({s}, {d})"
            )
    if len(data.groups) < MIN_STIMULI:
        raise DatasetError(
            f"{means_file}: {len(data.groups)} stimulus/stimuli; a rated dataset needs at least {MIN_STIMULI}"
        )
    return data


def audio_files(data: RatedData, path: Path, audio: Path | None) -> dict[str, Path]:
    """``<audio dir>/<stimulus>.<ext>`` for every stimulus (DatasetError if one is missing or doubled)."""
    path = Path(path)
    if audio is None:
        audio = (path if path.is_dir() else path.parent) / "audio"
        if not audio.is_dir():
            raise DatasetError(f"{path}: no audio folder at {audio}; pass --audio DIR (files named <stimulus>.wav)")
    return find_audio(Path(audio), list(data.groups))


def prepare(path: Path, audio: Path | None, name: str | None) -> tuple[RatedData, dict[str, Path]]:
    """Everything `ingest ratings` needs, read and validated before the store is opened."""
    data = read_rated(path, name)
    return data, audio_files(data, path, audio)


def ingest(
    ingestor: Ingestor, data: RatedData, files: dict[str, Path], options: IngestOptions
) -> dict[str, Any]:
    """Store a validated rated dataset: its recordings as clips, means, listener ratings, SDs, prompts.

    Re-ingesting a name replaces everything stored under it. A recording that cannot be
    decoded is a per-file error; that stimulus is left out (listed under ``skipped_stimuli``).

    Returns:
        a summary: dataset, source, layout, stimuli, groups, descriptors, listener_ratings,
        missing_listener_ratings, sds, skipped_stimuli, templates, prompts.
    """
    names = list(data.groups)
    extra_dir = next(iter(files.values())).parent
    extra = sorted(
        f.name for f in extra_dir.iterdir()
        if f.is_file() and f.suffix.lower() in AUDIO_SUFFIXES and f.stem not in files
    )
    if extra:
        ingestor.warn(f"{extra_dir}: {len(extra)} audio file(s) without ratings ignored ({', '.join(extra[:5])})")
    stored = ingestor.add_files([files[n] for n in names], desc=data.name)
    by_path = {fc.path: fc.clip_sha256 for fc in stored}
    clips = {n: by_path[files[n].resolve()] for n in names if files[n].resolve() in by_path}
    kept = [n for n in names if n in clips]
    ingestor.store.replace_rated_with_listeners(
        data.name,
        [(n, data.groups[n], clips[n], data.source) for n in kept],
        [(s, d, col, v) for (s, d), (v, col) in sorted(data.means.items()) if s in clips],
        data.listeners,
        data.sds,
        ingestor.run_id,
    )
    templates = list(options.prompts) or [BARE]
    prompts = ingestor.add_descriptors(data.descriptors, templates, vocabulary=data.name)
    groups = sorted({g for g in data.groups.values() if g})
    return {
        "dataset": data.name,
        "source": data.source,
        "layout": data.layout,
        "stimuli": len(kept),
        "groups": {g: sum(1 for n in kept if data.groups[n] == g) for g in groups},
        "descriptors": len(data.descriptors),
        "listener_ratings": len(data.listeners),
        "missing_listener_ratings": data.missing,
        "sds": len(data.sds),
        "skipped_stimuli": [n for n in names if n not in clips],
        "templates": templates,
        "prompts": len(prompts),
    }

