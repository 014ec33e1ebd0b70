"""Shared fixtures: a temporary store, the data dir, and a CLI runner."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner, Result

os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real data (../shared/data, or $TIMBREDB_DATA_DIR)."""
    path = Path(os.environ.get("TIMBREDB_DATA_DIR", REPO.parent / "shared" / "data"))
    if not (path / "audealize").is_dir():
        pytest.skip(f"real data not found at {path}")
    return path


def db_rows(db: Path, sql: str) -> list[tuple]:
    """Rows of a query on a store, through a separate read-only connection."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "store.duckdb"


class CLI:
    """Runs the real click app against a given store and data dir."""

    def __init__(self, db: Path, data_dir: Path | None) -> None:
        self.db = db
        self.data_dir = data_dir

    def __call__(self, *args: str, ok: bool = True) -> Result:
        base = ["--db", str(self.db)]
        if self.data_dir is not None:
            base += ["--data-dir", str(self.data_dir)]
        from timbredb.cli import cli

        result = CliRunner().invoke(cli, base + [str(a) for a in args], catch_exceptions=False)
        if ok and result.exit_code != 0:
            raise AssertionError(
                f"timbredb {' '.join(args)} exited {result.exit_code}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
            )
        return result


@pytest.fixture
def cli(db: Path, data_dir: Path) -> CLI:
    return CLI(db, data_dir)
