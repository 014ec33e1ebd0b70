"""Audealize / SocialFX descriptor data (Seetharaman & Pardo).

Layout under the data dir (see ../shared/data/README.md):
    audealize/eqpoints.json        word -> 40 EQ band values (+ agreement, num, x, y)
    audealize/reverbdescriptors.json   word -> raw reverb parameters [d, g, m, f, E, wetdry]
    audealize/audio/{guitar,piano,drums}.wav
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from timbredb.eq_bands import EQ_CENTRES_HZ
from timbredb.errors import DatasetError, DatasetUnavailable


def eqpoints_path(data_dir: Path) -> Path:
    return Path(data_dir) / "audealize" / "eqpoints.json"


def _read_word_records(path: Path, what: str, lang: str) -> list[tuple[int, str, NDArray[np.float64]]]:
    """(record index, word, settings) of one language from an Audealize descriptor file.

    Args:
        what: the file's role, named in the error when it is missing.

    Raises:
        DatasetError: the file is missing, not JSON, or a record is malformed.
    """
    if not path.is_file():
        kind = DatasetError if path.parent.is_dir() else DatasetUnavailable
        raise kind(f"{path}: not found (the Audealize {what} file; set --data-dir)")
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(records, list):
        raise DatasetError(f"{path}: expected a JSON list of word records, got {type(records).__name__}")
    out = []
    for i, rec in enumerate(records):
        try:
            if rec.get("lang", lang) != lang:
                continue
            settings = np.asarray(rec["settings"], dtype=np.float64)
            word = str(rec["word"]).strip().lower()
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DatasetError(f"{path}: record {i} is malformed ({exc})") from exc
        out.append((i, word, settings))
    return out


def load_eq_curves(data_dir: Path, lang: str = "English") -> dict[str, NDArray[np.float64]]:
    """Word -> its 40 raw EQ band values, for one language.

    Raises:
        DatasetError: the file is missing or malformed.
    """
    path = eqpoints_path(data_dir)
    curves: dict[str, NDArray[np.float64]] = {}
    for i, word, settings in _read_word_records(path, "EQ descriptor", lang):
        if settings.shape != (len(EQ_CENTRES_HZ),) or not np.isfinite(settings).all():
            raise DatasetError(f"{path}: record {i} ({word!r}) needs {len(EQ_CENTRES_HZ)} finite band values")
        curves.setdefault(word, settings)
    if not curves:
        raise DatasetError(f"{path}: no {lang} words")
    return curves


def normalise_curve(settings: NDArray[np.float64]) -> NDArray[np.float64]:
    """Audealize's min-max normalisation of a curve to [-1, 1] (flat curve -> zeros)."""
    lo, hi = float(settings.min()), float(settings.max())
    if hi == lo:
        return np.zeros_like(settings)
    return 2.0 * (settings - lo) / (hi - lo) - 1.0


#: Raw reverb parameter names, in reverbdescriptors.json order.
REVERB_PARAMS: tuple[str, ...] = ("d", "g", "m", "f", "E", "wetdry")


def reverbdescriptors_path(data_dir: Path) -> Path:
    return Path(data_dir) / "audealize" / "reverbdescriptors.json"


def load_reverb_settings(data_dir: Path, lang: str = "English") -> dict[str, NDArray[np.float64]]:
    """Word -> its raw reverberator settings [d, g, m, f, E, wetdry], for one language.

    ``reverbdescriptors.json`` holds the raw parameters (``reverbpoints.json`` the
    normalised ones used for the word map). The first record of a word wins.

    Raises:
        DatasetError: the file is missing or malformed.
    """
    path = reverbdescriptors_path(data_dir)
    settings: dict[str, NDArray[np.float64]] = {}
    for i, word, values in _read_word_records(path, "reverb descriptor", lang):
        if values.shape not in ((5,), (6,)) or not np.isfinite(values).all():
            raise DatasetError(f"{path}: record {i} ({word!r}) needs 5 or 6 finite settings [d, g, m, f, E, wetdry]")
        if values.shape == (5,):
            values = np.append(values, 1.0)
        settings.setdefault(word, values)
    if not settings:
        raise DatasetError(f"{path}: no {lang} words")
    return settings
