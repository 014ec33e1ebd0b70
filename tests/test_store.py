"""Migrations: numbered, transactional, checksummed; listing pending writes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from tests.conftest import CLI
from timbredb import schema
from timbredb.errors import MigrationError, StoreError
from timbredb.store import Store


def test_fresh_store_applies_every_migration_with_checksums(tmp_path: Path) -> None:
    with Store(tmp_path / "a.duckdb") as store:
        rows = store.con.execute("SELECT version, name, sha256 FROM schema_migrations ORDER BY version").fetchall()
    files = schema.available_migrations()
    assert [(m.version, m.name, m.sha256) for m in files] == rows
    assert [m.version for m in files] == sorted({m.version for m in files})


def test_edited_applied_migration_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "a.duckdb"
    Store(path).close()
    con = duckdb.connect(str(path))
    con.execute("UPDATE schema_migrations SET sha256 = 'edited' WHERE version = 1")
    con.close()
    with pytest.raises(MigrationError, match="edited after it was applied") as err:
        Store(path)
    # the refused store is closed at once, even while its traceback lives on (DuckDB refuses a
    # read-only connection in this process while a writer is open)
    duckdb.connect(str(path), read_only=True).close()
    assert err.value is not None


def test_failed_migration_rolls_back_with_its_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    good = schema.available_migrations()
    bad = schema.Migration(9999, "9999_break_things", "CREATE TABLE half_done (x INTEGER); SELECT * FROM no_such_table;")
    monkeypatch.setattr(schema, "available_migrations", lambda: [*good, bad])
    con = duckdb.connect(str(tmp_path / "b.duckdb"))
    with pytest.raises(MigrationError, match="9999_break_things") as err:
        schema.migrate(con)
    assert "\n" not in str(err.value)  # DuckDB's multi-line message is cut to its first line
    assert con.execute("SELECT max(version) FROM schema_migrations").fetchall() == [(good[-1].version,)]
    assert not con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'half_done'").fetchall()[0][0]
    con.close()


def test_check_dry_run_lists_pending_and_writes_nothing(tmp_path: Path, data_dir: Path) -> None:
    db = tmp_path / "new.duckdb"
    out = json.loads(CLI(db, data_dir)("check", "--dry-run", "--format", "json").stdout)
    assert {m["status"] for m in out["migrations"]} == {"pending"}
    assert not db.exists()
    out = json.loads(CLI(db, data_dir)("check", "--format", "json").stdout)
    assert {m["status"] for m in out["migrations"]} == {"applied"}
    assert db.exists()


def test_read_only_store_refuses_missing_file(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no timbredb store"):
        Store(tmp_path / "missing.duckdb", read_only=True)


def test_not_a_duckdb_file_is_one_clear_error(tmp_path: Path, data_dir: Path) -> None:
    bogus = tmp_path / "bogus.duckdb"
    bogus.write_text("hello")
    with pytest.raises(StoreError, match="bogus.duckdb"):
        Store(bogus)
    for args in (["check", "--dry-run"], ["check"], ["sql", "SELECT 1"], ["query", "exp3"]):
        result = CLI(bogus, data_dir)(*args, ok=False)
        assert result.exit_code == 1, args
        assert result.stderr.startswith("timbredb: error:") and result.stderr.count("\n") == 1, (args, result.stderr)
        assert "bogus.duckdb" in result.stderr


def test_read_only_open_upgrades_a_store_from_an_older_timbredb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "old.duckdb"
    all_migrations = schema.available_migrations()
    monkeypatch.setattr(schema, "available_migrations", lambda: all_migrations[:1])
    Store(path).close()
    monkeypatch.setattr(schema, "available_migrations", lambda: all_migrations)
    with Store(path, read_only=True) as store:
        assert {s.status for s in schema.status(store.con)} == {"applied"}


def test_spaces_match_label_first_then_bare_model_id(tmp_path: Path) -> None:
    from timbredb.store import SpaceRecord

    def rec(space_id: str, label: str) -> SpaceRecord:
        return SpaceRecord(space_id, label, "ms-clap", "CLAP", label, None, {}, 1024, 44100, "cosine", ("audio", "text"))

    with Store(tmp_path / "s.duckdb") as store:
        store.ensure_space(rec("a1", "ms-clap@2022"))
        assert [s.label for s in store.spaces("ms-clap")] == ["ms-clap@2022"]  # only a non-default space
        store.ensure_space(rec("b2", "ms-clap"))
        assert [s.label for s in store.spaces("ms-clap")] == ["ms-clap"]  # the exact label wins
        assert [s.label for s in store.spaces("ms-clap@2022")] == ["ms-clap@2022"]
        assert [s.space_id for s in store.spaces("a1")] == ["a1"]
        assert store.spaces("nothing") == [] and len(store.spaces()) == 2
