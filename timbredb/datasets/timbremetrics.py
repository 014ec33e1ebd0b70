"""The timbremetrics collection of human timbre-dissimilarity studies (Tian et al. 2025).

Layout under the data dir (see ../shared/data/README.md and
github.com/tiianhk/timbremetrics):

    timbremetrics/sounds/<dataset>/*.aiff
    timbremetrics/true_dissim/<dataset>_dissimilarity_matrix.txt

Each matrix is N x N, whitespace-separated; row and column i belong to the i-th
audio file of the dataset's folder in sorted file-name order. timbremetrics uses
only the strict upper triangle (it zeroes the diagonal and lower triangle), and
so does timbredb. Every folder under ``sounds/`` and every matrix file is a
dataset; there is no fixed list, so the full 21-study download and a subset
both work.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from timbredb.audio import AUDIO_EXTENSIONS
from timbredb.errors import DatasetError, DatasetUnavailable
from timbredb.ingest import IngestOptions, Ingestor
from timbredb.ingest.ingestor import FileClip

COLLECTION = "timbremetrics"
MATRIX_SUFFIX = "_dissimilarity_matrix.txt"


@dataclass(frozen=True)
class DissimilarityDataset:
    """One study as found on disk.

    Attributes:
        name: the dataset name (folder under sounds/).
        files: its audio files in sorted file-name order (= matrix order).
        matrix: the N x N human matrix as read from the file.
        matrix_path: where the matrix was read from.
    """

    name: str
    files: list[Path]
    matrix: NDArray[np.float64]
    matrix_path: Path


def stimulus_files(folder: Path) -> list[Path]:
    """Audio files directly inside ``folder``, sorted by file name (Python string order).

    Hidden files (such as macOS '._x.aiff' resource forks) are not stimuli.
    """
    found = (p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    return sorted((p for p in found if p.suffix.lower() in AUDIO_EXTENSIONS), key=lambda p: p.name)


def read_matrix(path: Path) -> NDArray[np.float64]:
    """Parse a dissimilarity matrix file: N lines of N numbers (whitespace- or comma-separated).

    Raises:
        DatasetError: unreadable, empty, non-numeric, ragged, non-square, non-finite,
            fewer than 2 stimuli, or an upper triangle whose values are all equal.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read the dissimilarity matrix ({exc})") from exc
    rows: list[list[float]] = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        tokens = line.replace(",", " ").split()
        if not tokens:
            continue
        row = []
        for col, tok in enumerate(tokens, start=1):
            try:
                value = float(tok)
            except ValueError:
                raise DatasetError(f"{path}: line {line_no}, column {col}: {tok!r} is not a number") from None
            if not math.isfinite(value):
                raise DatasetError(f"{path}: line {line_no}, column {col}: {tok!r} is not a finite number")
            row.append(value)
        if rows and len(row) != len(rows[0]):
            raise DatasetError(
                f"{path}: line {line_no} has {len(row)} values but the first row has {len(rows[0])}; "
                "the matrix must be N x N"
            )
        rows.append(row)
    if not rows:
        raise DatasetError(f"{path}: the dissimilarity matrix is empty")
    n_rows, n_cols = len(rows), len(rows[0])
    if n_rows != n_cols:
        raise DatasetError(f"{path}: the matrix has {n_rows} rows and {n_cols} columns; it must be square (N x N)")
    if n_rows < 2:
        raise DatasetError(f"{path}: a 1 x 1 matrix has no pairs; a study needs at least 2 stimuli")
    matrix = np.asarray(rows, dtype=np.float64)
    upper = matrix[np.triu_indices(n_rows, k=1)]
    if np.ptp(upper) == 0:
        hint = " (it looks lower-triangular; row i, column j > i must hold the pair's rating)" if np.any(
            matrix[np.tril_indices(n_rows, k=-1)] != 0
        ) else ""
        raise DatasetError(
            f"{path}: every upper-triangle value is {upper[0]:g}, so the matrix cannot be normalised{hint}"
        )
    return matrix


def collection_root(data_dir: Path, folder: Path | None = None) -> Path:
    """The folder holding sounds/ and true_dissim/: ``folder`` (or its ``timbremetrics/``
    subfolder, as in a clone of github.com/tiianhk/timbremetrics) when given, else DATA_DIR/timbremetrics."""
    if folder is None:
        return Path(data_dir) / COLLECTION
    folder = Path(folder)
    if not (folder / "true_dissim").is_dir() and (folder / COLLECTION / "true_dissim").is_dir():
        return folder / COLLECTION
    return folder


def find_datasets(data_dir: Path, folder: Path | None = None) -> tuple[list[str], Path, Path]:
    """Dataset names (folders under sounds/ and matrix files, sorted), and the two folders.

    Args:
        folder: read the collection from here instead of DATA_DIR/timbremetrics (see ``collection_root``).

    Raises:
        DatasetError: the collection or one of its two folders is missing.
    """
    root = collection_root(data_dir, folder)
    sounds, matrices = root / "sounds", root / "true_dissim"
    layout = "timbremetrics/sounds/<dataset>/*.aiff and timbremetrics/true_dissim/<dataset>" + MATRIX_SUFFIX
    if not root.is_dir():
        raise DatasetUnavailable(f"{root}: not found (expected {layout}; set --data-dir)")
    for folder in (sounds, matrices):
        if not folder.is_dir():
            raise DatasetError(f"{folder}: not found (expected {layout}; set --data-dir)")
    names = {p.name for p in sounds.iterdir() if p.is_dir() and not p.name.startswith(".")}
    names |= {p.name[: -len(MATRIX_SUFFIX)] for p in matrices.glob("*" + MATRIX_SUFFIX) if not p.name.startswith(".")}
    if not names:
        raise DatasetError(f"{root}: no datasets (expected {layout})")
    return sorted(names), sounds, matrices


def load_dataset(name: str, sounds: Path, matrices: Path) -> DissimilarityDataset:
    """Read and check one study's files (no audio is decoded here).

    Raises:
        DatasetError: a missing folder, matrix or audio, a malformed matrix, or a
            matrix whose size differs from the number of audio files.
    """
    folder, matrix_path = sounds / name, matrices / (name + MATRIX_SUFFIX)
    if not matrix_path.is_file():
        raise DatasetError(f"{COLLECTION}/{name}: has sounds but no matrix ({matrix_path} not found)")
    if not folder.is_dir():
        raise DatasetError(f"{COLLECTION}/{name}: has a matrix but no sounds ({folder} not found)")
    files = stimulus_files(folder)
    if not files:
        raise DatasetError(f"{COLLECTION}/{name}: no audio files in {folder}")
    matrix = read_matrix(matrix_path)
    if matrix.shape[0] != len(files):
        raise DatasetError(
            f"{COLLECTION}/{name}: the matrix is {matrix.shape[0]} x {matrix.shape[0]} but {folder} holds "
            f"{len(files)} audio files (row i must be the i-th file in sorted file-name order)"
        )
    return DissimilarityDataset(name, files, matrix, matrix_path)


def _store_dataset(ingestor: Ingestor, ds: DissimilarityDataset, hashes: list[str]) -> None:
    """Replace the study's rows (dataset, stimuli, ratings) in one transaction."""
    n = len(ds.files)
    iu, ju = np.triu_indices(n, k=1)
    ingestor.store.replace_dissimilarity_study(
        ds.name,
        COLLECTION,
        str(ds.matrix_path.resolve()),
        hashlib.sha256(ds.matrix_path.read_bytes()).hexdigest(),
        [(f.name, h) for f, h in zip(ds.files, hashes)],
        [(int(i), int(j), float(ds.matrix[i, j])) for i, j in zip(iu, ju)],
        ingestor.run_id,
    )


def _ingest_one(ingestor: Ingestor, name: str, sounds: Path, matrices: Path) -> int:
    ds = load_dataset(name, sounds, matrices)
    lower = ds.matrix[np.tril_indices(len(ds.files), k=-1)]
    if np.any(lower != 0) and not np.allclose(ds.matrix, ds.matrix.T):
        ingestor.warn(
            f"{COLLECTION}/{name}: the lower triangle differs from the upper one; "
            "only the upper triangle is used (as timbremetrics does)"
        )
    stored = ingestor.add_files(ds.files, desc=f"{COLLECTION}/{name}")
    by_path = {fc.path: fc.clip_sha256 for fc in stored}
    hashes = [by_path.get(f.resolve()) for f in ds.files]
    failed = [f.name for f, h in zip(ds.files, hashes) if h is None]
    if failed:
        shown = ", ".join(failed[:5]) + (", ..." if len(failed) > 5 else "")
        raise DatasetError(
            f"{COLLECTION}/{name}: {len(failed)} of {len(ds.files)} stimuli could not be stored ({shown}); "
            "the study is left out"
        )
    _store_dataset(ingestor, ds, [h for h in hashes if h is not None])
    # pairwise spaces (mfcc-frames, mss-frames) compare the study's stimuli pair by pair
    ingestor.add_pair_distances(
        [FileClip(f.resolve(), h) for f, h in zip(ds.files, hashes) if h is not None], desc=f"{COLLECTION}/{name}"
    )
    return len(ds.files)


def ingest(ingestor: Ingestor, data_dir: Path, options: IngestOptions) -> dict[str, Any]:
    """Store every study found under ``data_dir/timbremetrics`` and embed its stimuli.

    A problem with one study (missing matrix or sounds, malformed matrix, size
    mismatch, undecodable audio) is recorded as an ingest error and the other
    studies go on.

    Args:
        ingestor: the run's Ingestor (its models embed the stimuli).
        data_dir: the root holding timbremetrics/.
        options: the `timbredb ingest` options (``timbremetrics_dir``: read the collection
            from that folder instead of DATA_DIR/timbremetrics).

    Returns:
        {"datasets": names stored, "stimuli": their stimulus count, "failed": names left out,
        "folder": where the collection was read}.

    Raises:
        DatasetError: the collection itself (or sounds/ or true_dissim/) is missing or empty.
    """
    names, sounds, matrices = find_datasets(data_dir, options.timbremetrics_dir)
    done: list[str] = []
    failed: list[str] = []
    n_stimuli = 0
    for name in names:
        try:
            n_stimuli += _ingest_one(ingestor, name, sounds, matrices)
        except DatasetError as exc:
            ingestor.error(f"{COLLECTION}/{name}", str(exc), "dataset")
            failed.append(name)
            continue
        done.append(name)
    return {"datasets": done, "stimuli": n_stimuli, "failed": failed, "folder": str(sounds.parent.resolve())}
