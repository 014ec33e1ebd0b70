"""Fetch public datasets into the data directory when they are missing.

Only used when a dataset folder is absent and the machine may go online
(``timbredb.config.offline()`` is false). Each source (``DatasetSpec.download`` in the dataset registry) is a GitHub
archive of the project that publishes the data; the files timbredb reads are
extracted into ``DATA_DIR/<dataset>/`` through a temporary folder that is
renamed into place, so an interrupted download leaves nothing half-written.
CCMusic comes from the Hugging Face hub through the `datasets` library instead
(see timbredb.datasets.ccmusic).
"""

from __future__ import annotations

import http.client
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


def ensure_dataset(name: str, data_dir: Path, url: str | None = None, timeout_s: float = 30.0) -> bool:
    """Download a missing dataset into data_dir. Returns True if it downloaded.

    Does nothing when the folder exists, when no source is known, or offline.

    Raises:
        DatasetError: the download or the archive failed (one line, with the URL).
    """
    from timbredb.datasets.registry import datasets

    target = Path(data_dir) / name
    spec = datasets().get(name)
    source = spec.download if spec is not None else None
    if source is None or target.exists() or offline():
        return False
    url = url or source.url
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{name}-") as tmp:
        archive = Path(tmp) / "archive.zip"
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as resp, open(archive, "wb") as out:
                shutil.copyfileobj(resp, out)
        except (urllib.error.URLError, http.client.HTTPException, OSError, TimeoutError) as exc:
            raise DatasetError(f"{name}: not in {data_dir} and the download from {url} failed ({exc}); pass --data-dir") from exc
        staging = Path(tmp) / name
        try:
            _extract(archive, source, staging)
        except (zipfile.BadZipFile, OSError) as exc:
            raise DatasetError(f"{name}: the archive from {url} is unusable ({exc})") from exc
        if not (staging / source.marker).exists():
            raise DatasetError(f"{name}: the archive from {url} has no {source.marker}")
        staging.rename(target)
    return True


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
