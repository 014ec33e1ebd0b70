"""Locate the SQL files shipped with the package (migrations/ and queries/)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

_CHECKOUT = Path(__file__).resolve().parent.parent


def _sql_files(package: str, folder: str) -> dict[str, str]:
    """Map file name -> text for the *.sql files of an installed package folder.

    Falls back to the checkout's top-level folder when timbredb runs uninstalled.
    """
    try:
        root = resources.files(package)
        files = {p.name: p.read_text(encoding="utf-8") for p in root.iterdir() if p.name.endswith(".sql")}
        if files:
            return files
    except ModuleNotFoundError:
        pass
    local = _CHECKOUT / folder
    return {p.name: p.read_text(encoding="utf-8") for p in local.glob("*.sql")}


def migration_files() -> dict[str, str]:
    return _sql_files("timbredb._sql.migrations", "migrations")


def query_files() -> dict[str, str]:
    return _sql_files("timbredb._sql.queries", "queries")
