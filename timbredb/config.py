"""Where things live: the store file and the data directory."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_DB = "timbredb.duckdb"
#: values of an environment flag that mean "yes" (huggingface_hub's own rule)
_TRUE = frozenset({"1", "on", "yes", "true"})
#: environment variables that keep timbredb off the network
OFFLINE_VARIABLES = ("TIMBREDB_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


def env_flag(name: str) -> bool:
    """Whether an environment flag is set to 1/on/yes/true (case-insensitive); anything else is off."""
    return os.environ.get(name, "").strip().lower() in _TRUE


def offline() -> bool:
    """The one rule for "offline", used by dataset downloads, the hub dataset and model fetches.

    Offline when TIMBREDB_OFFLINE, HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE is 1/on/yes/true,
    as huggingface_hub reads HF_HUB_OFFLINE: ``HF_HUB_OFFLINE=false`` or ``=0`` means online.
    """
    return any(env_flag(v) for v in OFFLINE_VARIABLES)


def resolve_db_path(db: str | os.PathLike[str] | None) -> Path:
    """The store path: the argument, else $TIMBREDB_DB, else ./timbredb.duckdb."""
    if db is None:
        db = os.environ.get("TIMBREDB_DB") or DEFAULT_DB
    return Path(db).expanduser()


def default_data_dir() -> Path:
    """Per-user cache directory that downloads fill when online."""
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("timbredb")) / "data"


def resolve_data_dir(data_dir: str | os.PathLike[str] | None) -> Path:
    """The data root holding ccmusic/, audealize/, timbremetrics/.

    The argument wins, then $TIMBREDB_DATA_DIR, then the per-user cache.
    """
    if data_dir is None:
        data_dir = os.environ.get("TIMBREDB_DATA_DIR")
    if data_dir:
        # absolute once, here: a relative data dir must not depend on where it is used from
        # (test fixtures link to it from temporary folders, downloads run elsewhere); abspath
        # also drops "..", so messages name the folder as a user reads it (symlinks are kept)
        return Path(os.path.abspath(Path(data_dir).expanduser()))
    return default_data_dir()
