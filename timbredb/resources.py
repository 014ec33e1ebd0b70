"""Locate the SQL files shipped with the package.

``migrations/`` and ``queries/`` live at the top of a checkout and ship inside
the wheel as ``timbredb/_sql/migrations`` and ``timbredb/_sql/queries``; the
store's own statements live in ``timbredb/statements/``. Running from a
checkout, the checkout's folders win, so a second work tree never reads another
tree's SQL through an editable install's path mapping.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
_CHECKOUT = _PACKAGE.parent


def _read(folder: Path) -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(folder.glob("*.sql"))}


def _sql_files(package: str, folder: str) -> dict[str, str]:
    """Map file name -> text for the *.sql files of a checkout folder or an installed package folder."""
    local = _CHECKOUT / folder
    if (_CHECKOUT / "pyproject.toml").is_file() and local.is_dir():
        return _read(local)
    try:
        root = resources.files(package)
        return {p.name: p.read_text(encoding="utf-8") for p in root.iterdir() if p.name.endswith(".sql")}
    except ModuleNotFoundError:
        return _read(local)


def migration_files() -> dict[str, str]:
    return _sql_files("timbredb._sql.migrations", "migrations")


def query_files() -> dict[str, str]:
    return _sql_files("timbredb._sql.queries", "queries")


def statement_files() -> dict[str, str]:
    return _read(_PACKAGE / "statements")
