"""Where things live: the store file and the data directory."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_DB = "timbredb.duckdb"


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
        return Path(data_dir).expanduser()
    return default_data_dir()
