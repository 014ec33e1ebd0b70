"""Model weights in the standard Hugging Face cache: lookup, download, checksums.

timbredb keeps every real model's files in the cache that huggingface_hub and
transformers use (``$HF_HUB_CACHE``, default ``~/.cache/huggingface/hub``), so
one download serves timbredb and the model packages alike. Looking a file up
imports huggingface_hub but never torch, so ``timbredb models list`` stays cheap.

Loading never downloads: ``require`` fails with the exact fix when a file is
missing, and only ``timbredb models fetch`` (``download``) touches the network.

Checkpoint sha256 values are cached in ``<timbredb cache>/sha256.json`` keyed
on (real path, size, mtime), so a re-run does not re-hash gigabytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from timbredb.config import offline
from timbredb.errors import ModelUnavailableError, first_line


@dataclass(frozen=True)
class HubFile:
    """One file a model needs, in a hub repository.

    Attributes:
        repo_id: e.g. "lukewys/laion_clap" or "roberta-base" (as the package names it).
        filenames: alternatives in order of preference (e.g. safetensors, then .bin);
            any one of them cached satisfies the need.
        purpose: what it is, for messages ("checkpoint", "tokenizer", ...).
        revision: the pinned hub commit: `models fetch` downloads it, lookups try its
            snapshot before the one ``refs/main`` names (None: main only).
    """

    repo_id: str
    filenames: tuple[str, ...]
    purpose: str = ""
    revision: str | None = None

    @property
    def label(self) -> str:
        return f"{self.repo_id}/{' or '.join(self.filenames)}"


def cache_dir() -> Path:
    """The hub cache the model packages read (huggingface_hub's HF_HUB_CACHE)."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def is_offline() -> bool:
    """True when timbredb's offline rule (``timbredb.config.offline``) or huggingface_hub forbids the network."""
    from huggingface_hub import constants

    return offline() or bool(constants.HF_HUB_OFFLINE)


def locate(f: HubFile) -> Path | None:
    """The cached path of the first available alternative, or None.

    A file fetched at a pinned commit sits in that commit's snapshot, which no ref
    names; one fetched earlier sits under ``refs/main``. The pinned snapshot is
    looked at first, then main.
    """
    from huggingface_hub import try_to_load_from_cache

    root = cache_dir()
    revisions: tuple[str | None, ...] = (f.revision, None) if f.revision else (None,)
    for name in f.filenames:
        for revision in revisions:
            hit = try_to_load_from_cache(f.repo_id, name, cache_dir=root, revision=revision)
            if isinstance(hit, str) and os.path.isfile(hit):
                return Path(hit)
    return None


def missing(files: Sequence[HubFile]) -> list[HubFile]:
    return [f for f in files if locate(f) is None]


def fix_for(model_name: str, absent: Sequence[HubFile], weights_option: bool = True) -> str:
    """The one-line explanation and fix for files missing from the cache."""
    by_repo: dict[str, list[str]] = {}
    for f in sorted(absent, key=lambda f: f.purpose != "checkpoint"):
        by_repo.setdefault(f.repo_id, []).append(" or ".join(f.filenames))
    shown = "; ".join(f"{repo}/{', '.join(names)}" for repo, names in by_repo.items())
    fetch = f"`timbredb models fetch {model_name}`"
    if is_offline():
        how = (
            f"HF_HUB_OFFLINE is set here, so run {fetch} on a machine that can reach huggingface.co "
            f"and copy its cache into {cache_dir()}"
        )
    else:
        how = f"run {fetch}"
    tail = ", or pass --weights PATH for a local checkpoint" if weights_option else ""
    return f"not in the Hugging Face cache ({cache_dir()}): {shown}; {how}{tail}"


def require(model_name: str, files: Sequence[HubFile], weights_option: bool = True) -> dict[HubFile, Path]:
    """Paths of all files, or ModelUnavailableError naming what is missing and how to get it."""
    found = {f: locate(f) for f in files}
    absent = [f for f, p in found.items() if p is None]
    if absent:
        raise ModelUnavailableError(f"{model_name}: {fix_for(model_name, absent, weights_option)}")
    return {f: p for f, p in found.items() if p is not None}


def snapshot_revision(path: Path) -> str | None:
    """The commit hash of the snapshot a cached file belongs to."""
    parts = path.parts
    if "snapshots" in parts:
        i = parts.index("snapshots")
        if i + 1 < len(parts):
            return parts[i + 1]
    return None


def _probe(model_name: str, timeout_s: float = 10.0) -> None:
    """One request, no retries: huggingface_hub retries an unreachable hub with backoff
    for tens of seconds per file, so fail here first with the fix."""
    import requests
    from huggingface_hub import constants
    from huggingface_hub.utils import get_session

    try:
        get_session().head(constants.ENDPOINT, timeout=timeout_s, allow_redirects=False)
    except requests.RequestException as exc:
        raise ModelUnavailableError(
            f"{model_name}: {constants.ENDPOINT} is not reachable from here ({first_line(exc)}); "
            f"run `timbredb models fetch {model_name}` where it is and copy {cache_dir()}, or pass --weights PATH"
        ) from exc


def download(model_name: str, files: Sequence[HubFile]) -> list[Path]:
    """Download files into the hub cache (skipping cached ones).

    Raises:
        ModelUnavailableError: offline, unreachable hub, or a file that does not exist;
            one line with the fix, never a retry loop.
    """
    todo = missing(files)
    if todo and is_offline():
        raise ModelUnavailableError(
            f"{model_name}: cannot download while HF_HUB_OFFLINE is set; on a machine that can reach "
            f"huggingface.co run `HF_HUB_OFFLINE=0 timbredb models fetch {model_name}` and copy its cache "
            f"into {cache_dir()}, or pass --weights PATH"
        )
    from huggingface_hub import hf_hub_download
    from huggingface_hub.utils import (
        EntryNotFoundError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
    )

    if todo:
        _probe(model_name)
    for f in todo:
        for k, name in enumerate(f.filenames):
            try:
                hf_hub_download(f.repo_id, name, cache_dir=cache_dir(), etag_timeout=10, revision=f.revision)
                break
            except LocalEntryNotFoundError as exc:
                raise ModelUnavailableError(
                    f"{model_name}: huggingface.co is not reachable from here ({first_line(exc)}); "
                    f"run `timbredb models fetch {model_name}` where it is and copy {cache_dir()}, "
                    "or pass --weights PATH"
                ) from exc
            except EntryNotFoundError as exc:
                if k + 1 < len(f.filenames):
                    continue  # try the next alternative (e.g. model.safetensors after pytorch_model.bin)
                at = f" at the pinned revision {f.revision}" if f.revision else ""
                raise ModelUnavailableError(f"{model_name}: {f.label} does not exist on the hub{at}") from exc
            except (HfHubHTTPError, OSError, ValueError) as exc:
                raise ModelUnavailableError(f"{model_name}: download of {f.label} failed: {first_line(exc)}") from exc
    return [p for p in (locate(f) for f in files) if p is not None]


# ---------------------------------------------------------------- checksums
_LOCK = threading.Lock()
_MEMO: dict[tuple[str, int, int], str] = {}


def _hash_cache_file() -> Path:
    root = os.environ.get("TIMBREDB_CACHE_DIR")
    if not root:
        from platformdirs import user_cache_dir

        root = user_cache_dir("timbredb")
    return Path(root) / "sha256.json"


def _read_hash_cache(path: Path) -> dict[str, dict[str, object]]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def sha256(path: str | os.PathLike[str]) -> str:
    """sha256 of a file, remembered per (real path, size, mtime) across runs."""
    real = os.path.realpath(path)
    st = os.stat(real)
    key = (real, st.st_size, st.st_mtime_ns)
    with _LOCK:
        if key in _MEMO:
            return _MEMO[key]
        cache_file = _hash_cache_file()
        entries = _read_hash_cache(cache_file)
        entry = entries.get(real)
        if isinstance(entry, dict) and entry.get("size") == st.st_size and entry.get("mtime_ns") == st.st_mtime_ns:
            digest = str(entry["sha256"])
        else:
            h = hashlib.sha256()
            with open(real, "rb") as fh:
                while block := fh.read(1 << 22):
                    h.update(block)
            digest = h.hexdigest()
            entries[real] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digest}
            _write_hash_cache(cache_file, entries)
        _MEMO[key] = digest
        return digest


def _write_hash_cache(path: Path, entries: dict[str, dict[str, object]]) -> None:
    # a read-only cache directory only costs a re-hash next time
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(entries, indent=0, sort_keys=True))
        os.replace(tmp, path)
    except OSError:
        pass
