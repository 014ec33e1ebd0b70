"""Fetch public datasets into the data directory when they are missing.

Only used when a dataset folder is absent (or lacks part of a complete copy) and the machine may go online
(``timbredb.config.offline()`` is false). Each source (``DatasetSpec.download`` in the dataset registry) is a GitHub
archive of the project that publishes the data; the files timbredb reads are
extracted into ``DATA_DIR/<dataset>/`` through a temporary folder that is
renamed into place, so an interrupted download leaves nothing half-written.
CCMusic comes from the Hugging Face hub through the `datasets` library instead
(see timbredb.datasets.ccmusic).
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

from timbredb.config import offline
from timbredb.errors import DatasetError

if TYPE_CHECKING:
    from timbredb.datasets.registry import DownloadSource


#: written into a dataset folder that was completed from an archive (so it is not fetched again)
COMPLETED = ".timbredb-download.json"


def ensure_dataset(name: str, data_dir: Path, url: str | None = None, timeout_s: float = 30.0) -> bool:
    """Download a missing dataset into data_dir, or the missing part of an incomplete one. Returns True if
    it added files.

    A folder that exists is completed when the source lists what a complete copy holds
    (``DownloadSource.complete``, e.g. timbremetrics' 21 matrices) and some of it is missing: the
    archive is fetched once and only what is absent is added (nothing present is overwritten; a
    record in ``.timbredb-download.json`` keeps the same archive from being fetched again). Does
    nothing when no source is known, or offline.

    Raises:
        DatasetError: the download or the archive failed (one line, with the URL).
    """
    from timbredb.datasets.registry import datasets

    target = Path(data_dir) / name
    spec = datasets().get(name)
    source = spec.download if spec is not None else None
    if source is None or offline():
        return False
    url = url or source.url
    if target.exists():
        return _complete(name, target, source, url, timeout_s)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{name}-") as tmp:
        staging = _fetch(name, data_dir, source, url, timeout_s, Path(tmp))
        if not (staging / source.marker).exists():
            raise DatasetError(f"{name}: the archive from {url} has no {source.marker}")
        staging.rename(target)
    return True


def _fetch(name: str, data_dir: Path, source: DownloadSource, url: str, timeout_s: float, tmp: Path) -> Path:
    """Download the archive into ``tmp`` and extract the dataset's members; returns the staging folder."""
    archive = tmp / "archive.zip"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp, open(archive, "wb") as out:
            shutil.copyfileobj(resp, out)
    except (urllib.error.URLError, http.client.HTTPException, OSError, TimeoutError) as exc:
        raise DatasetError(f"{name}: not (all) in {data_dir} and the download from {url} failed ({exc}); "
                           "pass --data-dir") from exc
    staging = tmp / name
    try:
        _extract(archive, source, staging)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DatasetError(f"{name}: the archive from {url} is unusable ({exc})") from exc
    return staging


def _complete(name: str, target: Path, source: DownloadSource, url: str, timeout_s: float) -> bool:
    missing = [p for p in source.complete if not (target / p).exists()]
    record = target / COMPLETED
    if not missing:
        return False
    try:
        if json.loads(record.read_text()).get("url") == url:
            return False  # this archive was merged before; it lacks the rest
    except (OSError, ValueError, AttributeError):
        pass
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{name}-") as tmp:
        staging = _fetch(name, target.parent, source, url, timeout_s, Path(tmp))
        added = _merge_absent(staging, target)
    still = [p for p in source.complete if not (target / p).exists()]
    record.write_text(json.dumps({"url": url, "added": added, "still_missing": still}, indent=1) + "\n")
    return bool(added)


def _merge_absent(src: Path, dest: Path) -> list[str]:
    """Move every entry of ``src`` whose counterpart in ``dest`` is absent (whole folders at once)."""
    added = []
    for child in sorted(src.iterdir()):
        there = dest / child.name
        if not there.exists():
            dest.mkdir(parents=True, exist_ok=True)
            os.replace(child, there)  # one rename: a study's folder appears whole or not at all
            added.append(child.name)
        elif child.is_dir() and there.is_dir():
            added += [f"{child.name}/{a}" for a in _merge_absent(child, there)]
    return added


def _extract(archive: Path, source: DownloadSource, staging: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            if info.is_dir():
                continue
            # GitHub archives put everything under one top folder (<repo>-<ref>/)
            inner = info.filename.split("/", 1)[1] if "/" in info.filename else info.filename
            for prefix, dest in source.members.items():
                if inner.startswith(prefix):
                    rel = dest + inner[len(prefix) :]
                    path = (staging / rel).resolve()
                    if staging.resolve() not in path.parents:
                        raise OSError(f"unsafe path in archive: {info.filename}")
                    path.parent.mkdir(parents=True, exist_ok=True)
                    with zf.open(info) as src, open(path, "wb") as dst:
                        shutil.copyfileobj(src, dst)
