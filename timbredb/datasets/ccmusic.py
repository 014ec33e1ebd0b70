"""CCMusic instrument timbre ratings (Experiment 1).

61 instruments (37 Chinese, 24 Western), one recording each, mean ratings of 14
listeners on 16 descriptors (scale 1-10); CC-BY-NC-ND-4.0. Read from, in order:

1. a local folder ``<data-dir>/ccmusic/`` with ``ratings.csv`` (columns
   ``instrument``, ``split`` in {chinese, western}, then one column per
   descriptor) and ``audio/<instrument>.<wav|flac|ogg|aiff>``;
2. a local copy of the hub repository in ``<data-dir>/ccmusic/`` (its
   ``README.md`` and ``default/<Split>/data-*.arrow`` files);
3. the Hugging Face dataset ``ccmusic-database/instrument_timbre`` through the
   ``datasets`` library (downloaded when online, else from its cache).

Descriptor columns may carry the historical names the study prompts with
(bright, clear, coarse, dim, dry, harmonious, hoarse, plump, pure, sharp, slim,
soft, thick, thin, turbid, vigorous) or the current hub names, which map to
them by position (dark->dim, silvery->clear, raspy->dry, full->plump,
consonant->harmonious, mellow->soft, muddy->turbid; the other nine are equal).
Ratings are stored under the historical names.

The hub dataset (splits ``Chinese`` and ``Western``) has the columns ``audio``
(44.1 kHz WAV), ``mel`` (an image, unused), ``instrument`` (a class label; older
revisions: ``instrument_name``, a string) and the 16 descriptor columns.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from timbredb.audio import Audio, decode, decode_bytes
from timbredb.config import offline
from timbredb.errors import AudioError, DatasetError, DatasetUnavailable, first_line
from timbredb.vocabularies import BARE, CCMUSIC

if TYPE_CHECKING:
    from timbredb.ingest import IngestOptions, Ingestor

DATASET = "ccmusic"
#: the hub dataset read when no local folder is present (a repo id or a local path)
HUB_DATASET = "ccmusic-database/instrument_timbre"
SPLITS = ("chinese", "western")
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".aiff", ".aif")
#: current hub column name -> historical descriptor name (data/README.md)
HUB_TO_HISTORICAL: dict[str, str] = {
    "slim": "slim", "bright": "bright", "dark": "dim", "sharp": "sharp", "thick": "thick", "thin": "thin",
    "vigorous": "vigorous", "silvery": "clear", "raspy": "dry", "full": "plump", "coarse": "coarse",
    "pure": "pure", "hoarse": "hoarse", "consonant": "harmonious", "mellow": "soft", "muddy": "turbid",
}
_INSTRUMENT_COLUMNS = ("instrument", "instrument_name")


@dataclass(frozen=True)
class RatedInstrument:
    """One instrument: its split and its mean rating per historical descriptor."""

    instrument: str
    split: str
    ratings: dict[str, float]


@dataclass
class RatingTable:
    """Ratings as read from one source, validated.

    Attributes:
        source: the file or hub dataset they came from (for messages and the store).
        columns: historical descriptor -> the column it was read from.
        rows: one per instrument.
    """

    source: str
    columns: dict[str, str]
    rows: list[RatedInstrument] = field(default_factory=list)


# ---------------------------------------------------------------- parsing and checks
def descriptor_columns(columns: Sequence[str], where: str) -> dict[str, str]:
    """Map the 16 historical descriptors to the columns that hold them.

    Args:
        columns: column names as found (compared stripped and lower-cased).
        where: the file or dataset named in errors.

    Raises:
        DatasetError: a descriptor has no column, or two columns name the same descriptor.
    """
    found: dict[str, list[str]] = {}
    for col in columns:
        key = col.strip().lower()
        # a historical name first: 'soft' is historical, while the hub calls it 'mellow'
        name = key if key in CCMUSIC else HUB_TO_HISTORICAL.get(key)
        if name is not None:
            found.setdefault(name, []).append(col)
    clashes = [f"{d} ({' and '.join(cols)})" for d, cols in found.items() if len(cols) > 1]
    if clashes:
        raise DatasetError(f"{where}: several columns give the same descriptor: {'; '.join(clashes)}")
    missing = [d for d in CCMUSIC if d not in found]
    if missing:
        raise DatasetError(
            f"{where}: missing descriptor column(s) {', '.join(missing)} "
            "(need the 16 CCMusic descriptors under their historical or current hub names)"
        )
    return {d: found[d][0] for d in CCMUSIC}


def parse_rating(value: Any, where: str, instrument: str, column: str) -> float:
    """A finite number, or DatasetError naming where it is."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise DatasetError(f"{where}: instrument {instrument!r} has no rating in column {column!r}")
    try:
        x = float(value.strip()) if isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        raise DatasetError(
            f"{where}: instrument {instrument!r}, column {column!r}: rating {value!r} is not a number"
        ) from None
    if not math.isfinite(x):
        raise DatasetError(f"{where}: instrument {instrument!r}, column {column!r}: rating {value!r} is not finite")
    return x


def parse_split(value: Any, where: str, instrument: str) -> str:
    split = str(value).strip().lower() if value is not None else ""
    if split not in SPLITS:
        raise DatasetError(
            f"{where}: instrument {instrument!r} has split {value!r}; expected one of {', '.join(SPLITS)}"
        )
    return split


def check_unique(rows: Sequence[RatedInstrument], where: str) -> None:
    """Raises DatasetError if an instrument appears twice."""
    seen: set[str] = set()
    dupes: list[str] = []
    for r in rows:
        if r.instrument in seen and r.instrument not in dupes:
            dupes.append(r.instrument)
        seen.add(r.instrument)
    if dupes:
        raise DatasetError(f"{where}: duplicate instrument(s) {', '.join(dupes)}")


def read_ratings_csv(path: Path) -> RatingTable:
    """Read and validate ``ratings.csv`` (UTF-8, a header row, one row per instrument).

    Raises:
        DatasetError: unreadable file, missing columns, bad values, duplicates.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read ({exc})") from exc
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if not header:
        raise DatasetError(f"{path}: empty file (need a header: instrument, split, then the 16 descriptors)")
    keys = [h.strip().lower() for h in header]
    for required in ("instrument", "split"):
        if required not in keys:
            raise DatasetError(f"{path}: no {required!r} column (header: {', '.join(header)})")
    columns = descriptor_columns(header, str(path))
    index = {h: i for i, h in enumerate(header)}
    i_inst, i_split = keys.index("instrument"), keys.index("split")
    table = RatingTable(source=str(path), columns=columns)
    for line_no, row in enumerate(reader, start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise DatasetError(f"{path}: line {line_no} has {len(row)} fields, the header has {len(header)}")
        where = f"{path}: line {line_no}"
        name = row[i_inst].strip()
        if not name:
            raise DatasetError(f"{where}: empty instrument name")
        split = parse_split(row[i_split], where, name)
        ratings = {d: parse_rating(row[index[c]], where, name, c) for d, c in columns.items()}
        table.rows.append(RatedInstrument(name, split, ratings))
    if not table.rows:
        raise DatasetError(f"{path}: no instrument rows")
    check_unique(table.rows, str(path))
    return table


def find_audio(audio_dir: Path, instruments: Sequence[str]) -> dict[str, Path]:
    """``audio/<instrument>.<ext>`` for every instrument.

    Raises:
        DatasetError: an instrument has no audio file, or more than one.
    """
    if not audio_dir.is_dir():
        raise DatasetError(f"{audio_dir}: no audio folder (expected audio/<instrument>.wav|flac|ogg|aiff)")
    by_stem: dict[str, list[Path]] = {}
    for f in sorted(audio_dir.iterdir()):
        if f.is_file() and f.suffix.lower() in AUDIO_SUFFIXES:
            by_stem.setdefault(f.stem, []).append(f)
    missing = [name for name in instruments if name not in by_stem]
    if missing:
        shown = ", ".join(missing[:8]) + (", ..." if len(missing) > 8 else "")
        raise DatasetError(f"{audio_dir}: no audio file for {len(missing)} instrument(s): {shown}")
    several = [f"{name} ({', '.join(p.name for p in by_stem[name])})" for name in instruments if len(by_stem[name]) > 1]
    if several:
        raise DatasetError(f"{audio_dir}: several audio files for one instrument: {'; '.join(several)}")
    return {name: by_stem[name][0] for name in instruments}


# ---------------------------------------------------------------- the hub dataset
@dataclass(frozen=True)
class HubAudio:
    """A recording as the hub dataset holds it: WAV bytes and/or a file path."""

    data: bytes | None
    path: str | None
    source: str

    def decode(self, keep_channels: bool = False) -> Audio:
        """Decode to an Audio clip (the same PCM hash as the file would give).

        Args:
            keep_channels: keep the source channels too (``Audio.channel_samples``).
        """
        if self.data is None:
            if not self.path:
                raise AudioError(self.source, "the hub row holds no audio")
            return decode(self.path, keep_channels=keep_channels)
        return decode_bytes(self.data, self.source, keep_channels=keep_channels)


def _shortest_float32(value: Any) -> Any:
    if isinstance(value, float):
        import numpy as np

        return str(np.float32(value))
    return value


def load_hub(source: str) -> tuple[RatingTable, dict[str, HubAudio]]:
    """Read ratings and recordings through ``datasets.load_dataset(source)``.

    Args:
        source: a hub repo id (``ccmusic-database/instrument_timbre``) or a local
            folder laid out as that repository.

    Raises:
        DatasetError: `datasets` missing, dataset unreachable, or not in the expected shape.
    """
    try:
        import datasets
    except ImportError as exc:
        raise DatasetError(
            f"{source}: reading CCMusic from the hub needs the 'datasets' package: pip install 'timbredb[hub]'"
        ) from exc
    local = Path(source).is_dir()
    reachable = local or _hub_reachable()
    try:
        if reachable:
            loaded = datasets.load_dataset(source)
        else:
            # offline or unreachable: the datasets cache only, with no request (and no retry loop)
            with _datasets_offline(datasets):
                loaded = datasets.load_dataset(source)
    except (OSError, ValueError, datasets.exceptions.DatasetsError) as exc:
        if not reachable:
            raise DatasetUnavailable(
                f"{source}: not in the Hugging Face datasets cache, and the hub is "
                f"{'off limits (offline)' if offline() else 'not reachable from here'}"
            ) from exc
        raise DatasetError(f"{source}: cannot load the hub dataset ({first_line(exc)})") from exc
    if not isinstance(loaded, Mapping):
        raise DatasetError(f"{source}: expected the splits Chinese and Western, got one unnamed split")
    names = {str(k).lower(): k for k in loaded}
    unknown = sorted(set(names) - set(SPLITS))
    if unknown or not names:
        raise DatasetError(
            f"{source}: unexpected split(s) {', '.join(map(repr, unknown)) or 'none'}; expected Chinese and Western"
        )
    table: RatingTable | None = None
    audio: dict[str, HubAudio] = {}
    for split in SPLITS:
        if split not in names:
            continue
        ds = loaded[names[split]]
        where = f"{source} [{names[split]}]"
        inst_col = next((c for c in _INSTRUMENT_COLUMNS if c in ds.column_names), None)
        if inst_col is None:
            raise DatasetError(f"{where}: no instrument column (expected 'instrument' or 'instrument_name')")
        if "audio" not in ds.column_names:
            raise DatasetError(f"{where}: no 'audio' column")
        columns = descriptor_columns(ds.column_names, where)
        if table is None:
            table = RatingTable(source=source, columns=columns)
        ds = ds.select_columns(["audio", inst_col, *columns.values()])
        # raw bytes: decoding through `datasets` would need torchcodec; soundfile reads WAV
        if isinstance(ds.features["audio"], datasets.Audio):
            ds = ds.cast_column("audio", datasets.Audio(decode=False))
        label = ds.features[inst_col]
        # float32 columns: read each value as its shortest decimal (4.782, not 4.78199958...),
        # the number the dataset states, so a CSV export of it gives the same ratings
        single = {c for c in columns.values() if getattr(ds.features[c], "dtype", None) == "float32"}
        for i, row in enumerate(ds):
            raw = row[inst_col]
            name = label.int2str(raw) if isinstance(label, datasets.ClassLabel) else str(raw or "").strip()
            if not name:
                raise DatasetError(f"{where}: row {i} has no instrument name")
            row_where = f"{where} row {i}"
            ratings = {
                d: parse_rating(_shortest_float32(row[c]) if c in single else row[c], row_where, name, c)
                for d, c in columns.items()
            }
            table.rows.append(RatedInstrument(name, split, ratings))
            cell = row["audio"] or {}
            data, path = (cell.get("bytes"), cell.get("path")) if isinstance(cell, Mapping) else (None, None)
            if data is None and not path:
                raise DatasetError(f"{row_where}: instrument {name!r} has no audio")
            audio.setdefault(name, HubAudio(data, path, f"hf://{source}/{names[split]}/{name}"))
    if table is None or not table.rows:
        raise DatasetError(f"{source}: no instrument rows")
    check_unique(table.rows, source)
    return table, audio


def _hub_reachable(timeout_s: float = 5.0) -> bool:
    """One request to the hub, no retries (the datasets library retries an unreachable hub for
    tens of seconds with a traceback-sized message per attempt)."""
    if offline():
        return False
    import urllib.error
    import urllib.request

    from huggingface_hub import constants

    try:
        urllib.request.urlopen(urllib.request.Request(constants.ENDPOINT, method="HEAD"), timeout=timeout_s).close()
    except urllib.error.HTTPError:
        return True  # it answered
    except (urllib.error.URLError, OSError, TimeoutError):
        return False
    return True


@contextmanager
def _datasets_offline(datasets: Any) -> Iterator[None]:
    """Make the datasets library read only its cache (it and huggingface_hub read HF_HUB_OFFLINE once)."""
    from huggingface_hub import constants

    saved = datasets.config.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE
    datasets.config.HF_HUB_OFFLINE = constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE = saved


def _is_hub_snapshot(folder: Path) -> bool:
    """A local copy of the hub repository: README.md plus arrow/parquet data files."""
    if not (folder / "README.md").is_file():
        return False
    return any(folder.rglob("*.arrow")) or any(folder.rglob("*.parquet"))


# ---------------------------------------------------------------- ingest
def _store_table(ingestor: Ingestor, table: RatingTable, clips: dict[str, str]) -> None:
    """Replace the stored CCMusic instruments and ratings by these (one transaction)."""
    rows = [r for r in table.rows if r.instrument in clips]
    ingestor.store.replace_rated_dataset(
        DATASET,
        [(r.instrument, r.split, clips[r.instrument], table.source) for r in rows],
        [(r.instrument, d, table.columns[d], v) for r in rows for d, v in r.ratings.items()],
        ingestor.run_id,
    )


def _column_naming(columns: dict[str, str]) -> str:
    names = {c.strip().lower() for c in columns.values()}
    if names <= set(CCMUSIC):
        return "historical"
    if names <= set(HUB_TO_HISTORICAL):
        return "hub"
    return "mixed"


def ingest(ingestor: Ingestor, data_dir: Path, options: IngestOptions) -> dict[str, Any]:
    """Store the CCMusic recordings as clips, their ratings, and the 16 descriptor prompts.

    Args:
        ingestor: embeds every stored clip and prompt with its models.
        data_dir: the root holding ``ccmusic/``.
        options: `timbredb ingest` options; ``prompts`` are the templates (default the bare word).

    Returns:
        a summary: source, instruments per split, column naming, templates.

    Per-listener files in the folder (``timbredb.datasets.ccmusic_listeners``) are stored
    too, also when the folder holds no recordings and means and the hub is unreachable
    (that is then this run's error, and the listener data is stored anyway: noise ceilings
    need no audio).

    Raises:
        DatasetError: no usable source, or malformed ratings (nothing is written then).
    """
    from timbredb.datasets import ccmusic_listeners

    folder = Path(data_dir) / "ccmusic"
    ratings_csv = folder / "ratings.csv"
    # per-listener files (raw ratings, SDs) are validated before anything is written
    listeners = ccmusic_listeners.read_folder(folder)
    local = ratings_csv.is_file() or (folder.is_dir() and _is_hub_snapshot(folder))
    try:
        summary = _ingest_means(ingestor, folder, options)
    except DatasetError as exc:
        # a malformed local source writes nothing; an unreachable hub still lets the listener
        # files be stored (they need no recordings: noise ceilings)
        if local or not listeners:
            raise
        partial = _store_listeners(ingestor, listeners, {"source": None, "kind": "listeners only", "instruments": 0})
        message = f"{exc}; its listener files were stored (noise ceilings need no recordings)"
        if isinstance(exc, DatasetUnavailable):
            # the caller decides: skipped with one warning in a bare `ingest`, an error when named
            raise DatasetUnavailable(message, partial=partial) from exc
        ingestor.error(DATASET, message, "dataset")
        return partial
    return _store_listeners(ingestor, listeners, summary) if listeners else summary


def _store_listeners(ingestor: Ingestor, listeners: Any, summary: dict[str, Any]) -> dict[str, Any]:
    """Store the per-listener files' rows; ``summary`` gains their counts."""
    ingestor.store.replace_listener_data(DATASET, listeners.listeners, listeners.sds)
    summary["listener_files"] = listeners.files
    summary["listener_ratings"] = len(listeners.listeners)
    summary["missing_listener_ratings"] = listeners.missing
    summary["sds"] = len(listeners.sds)
    return summary


def _ingest_means(ingestor: Ingestor, folder: Path, options: IngestOptions) -> dict[str, Any]:
    """The recordings and mean ratings, from the local folder or the hub (see ``ingest``)."""
    ratings_csv = folder / "ratings.csv"
    if ratings_csv.is_file():
        table = read_ratings_csv(ratings_csv)
        files = find_audio(folder / "audio", [r.instrument for r in table.rows])
        extra = sorted(
            f.name for f in (folder / "audio").iterdir()
            if f.is_file() and f.suffix.lower() in AUDIO_SUFFIXES and f.stem not in files
        )
        if extra:
            ingestor.warn(
                f"{folder / 'audio'}: {len(extra)} audio file(s) without a ratings row ignored ({', '.join(extra[:5])})"
            )
        stored = ingestor.add_files([files[r.instrument] for r in table.rows], desc="ccmusic")
        by_path = {fc.path: fc.clip_sha256 for fc in stored}
        clips = {name: by_path[p.resolve()] for name, p in files.items() if p.resolve() in by_path}
        kind = "local"
    else:
        source = str(folder) if folder.is_dir() and _is_hub_snapshot(folder) else HUB_DATASET
        try:
            table, audio = load_hub(source)
        except DatasetUnavailable as exc:
            raise DatasetUnavailable(f"no {ratings_csv} (local layout: ratings.csv + audio/), and {exc}") from exc
        except DatasetError as exc:
            if source == HUB_DATASET:
                raise DatasetError(
                    f"no {ratings_csv} (local layout: ratings.csv + audio/), and {exc}"
                ) from exc
            raise
        clips = {}
        names = [r.instrument for r in table.rows]
        # decode a batch at a time: the whole set as float32 would hold ~200 MB
        for start in range(0, len(names), ingestor.batch_size):
            decoded: list[tuple[str, Audio]] = []
            for name in names[start : start + ingestor.batch_size]:
                try:
                    decoded.append((name, audio[name].decode(keep_channels=ingestor.keep_channels)))
                except AudioError as exc:
                    ingestor.error(audio[name].source, str(exc), "decode")
            hashes = ingestor.add_audio([a for _, a in decoded])
            clips.update({name: h for (name, _), h in zip(decoded, hashes)})
        kind = "hub"
    _store_table(ingestor, table, clips)
    templates = list(options.prompts) or [BARE]
    prompts = ingestor.add_descriptors(list(CCMUSIC), templates, vocabulary="ccmusic")
    splits = {s: sum(1 for r in table.rows if r.split == s and r.instrument in clips) for s in SPLITS}
    return {
        "source": table.source,
        "kind": kind,
        "instruments": sum(splits.values()),
        "splits": splits,
        "skipped_instruments": [r.instrument for r in table.rows if r.instrument not in clips],
        "descriptor_columns": _column_naming(table.columns),
        "templates": templates,
        "prompts": len(prompts),
    }
