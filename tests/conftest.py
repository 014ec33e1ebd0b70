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
def real_data_dir() -> Path:
    """The real data (../shared/data, or $TIMBREDB_DATA_DIR), absolute; tests that need it skip without it."""
    path = Path(os.environ.get("TIMBREDB_DATA_DIR", REPO.parent / "shared" / "data")).absolute()
    if not (path / "audealize").is_dir():
        pytest.skip(f"real data not found at {path}")
    return path


@pytest.fixture(scope="session")
def synth_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir synthesized from physics (tests/synthetic_data.py): core tests need nothing on disk."""
    from tests.synthetic_data import write_data_dir

    return write_data_dir(tmp_path_factory.mktemp("synth-data"))


@pytest.fixture(scope="session")
def data_dir(real_data_dir: Path) -> Path:
    """The data dir a test module runs against: the real data here; core modules override it with
    ``synth_data_dir`` so they run on a machine without ../shared/data."""
    return real_data_dir


@pytest.fixture(scope="session")
def filled_db(tmp_path_factory: pytest.TempPathFactory, synth_data_dir: Path) -> Path:
    """A store holding every dataset (synthesized CCMusic, Audealize, timbremetrics) embedded by both
    baselines, with the pairwise mfcc-frames space over the timbremetrics studies. Session-wide and shared:
    open it read-only, or copy it (``copy_store``) to change it."""
    from tests.ccmusic_fixture import (
        listener_ratings,
        make_instruments,
        synthetic_release,
        write_listener_files,
        write_local,
        write_release,
    )
    from timbredb.ingest import IngestOptions, run_ingest

    root = tmp_path_factory.mktemp("filled")
    data = root / "data"
    data.mkdir()
    for name in ("audealize", "timbremetrics"):
        (data / name).symlink_to(synth_data_dir / name, target_is_directory=True)
    instruments = make_instruments(n_chinese=4, n_western=3, seconds=0.5)
    folder = write_local(data, instruments)
    chinese = [i for i in instruments if i.split == "chinese"]
    write_listener_files(folder, chinese, listener_ratings(chinese))  # issue 11: noise ceilings
    db = root / "filled.duckdb"
    options = IngestOptions(models=["mfcc", "socialfx-eq", "mfcc-frames"], words="bright,warm,hall,church", strengths="0.5,1.0",
                            length_s=1.0)
    summary = run_ingest(db, data, [], options)
    assert not summary.errors, summary.errors
    # issue 11: exp1 results computed elsewhere, in the study release's layout
    from timbredb.importers.exp1 import import_results
    from timbredb.store import Store

    release = write_release(root / "release", synthetic_release(instruments, ("laion-clap", "msclap")))
    with Store(db) as store:
        import_results(store, release)
    return db


def copy_store(src: Path, dest: Path) -> Path:
    """A private copy of a store file (its FAISS folder is not copied: indexes rebuild)."""
    import shutil

    shutil.copyfile(src, dest)
    return dest


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
