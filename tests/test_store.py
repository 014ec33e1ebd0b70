"""Migrations: numbered, transactional, checksummed; listing pending writes nothing."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import duckdb
import pytest

from tests.conftest import CLI
from timbredb import schema
from timbredb.errors import MigrationError, StoreError
from timbredb.store import Store


@pytest.fixture(scope="session")
def data_dir(synth_data_dir: Path) -> Path:
    """Core tests run on synthesized data (no ../shared/data needed)."""
    return synth_data_dir


def test_fresh_store_applies_every_migration_with_checksums(tmp_path: Path) -> None:
    with Store(tmp_path / "a.duckdb") as store:
        rows = [tuple(r) for r in store.frame("SELECT version, name, sha256 FROM schema_migrations ORDER BY version").rows()]
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


def test_an_older_store_is_upgraded_by_check_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "old.duckdb"
    all_migrations = schema.available_migrations()
    monkeypatch.setattr(schema, "available_migrations", lambda: all_migrations[:1])
    Store(path).close()
    monkeypatch.setattr(schema, "available_migrations", lambda: all_migrations)
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    total = len(all_migrations)
    for mode in ({"read_only": True}, {}):
        with pytest.raises(StoreError, match=f"at migration 1 of {total}.*timbredb --db .* check"):
            Store(path, **mode)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before  # read paths and writers wrote nothing
    with Store(path, upgrade=True) as store:
        assert {s.status for s in store.migration_status()} == {"applied"}
    with Store(path, read_only=True) as store:
        assert {s.status for s in store.migration_status()} == {"applied"}


def test_an_older_store_tells_every_read_command_to_run_check(tmp_path: Path, data_dir: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "old.duckdb"
    all_migrations = schema.available_migrations()
    monkeypatch.setattr(schema, "available_migrations", lambda: all_migrations[:2])
    Store(path).close()
    monkeypatch.setattr(schema, "available_migrations", lambda: all_migrations)
    for args in (["sql", "SELECT 1"], ["query", "exp3"], ["report", "--out", str(tmp_path / "r")]):
        result = CLI(path, data_dir)(*args, ok=False)
        assert result.exit_code == 1, args
        assert result.stderr.count("\n") == 1 and "check` to upgrade" in result.stderr, (args, result.stderr)
    result = CLI(path, data_dir)("check", "--format", "json")
    assert {m["status"] for m in json.loads(result.stdout)["migrations"]} == {"applied"}
    CLI(path, data_dir)("sql", "SELECT 1")


def test_a_new_store_is_created_whole_or_not_at_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    good = schema.available_migrations()
    bad = schema.Migration(9999, "9999_break_things", "CREATE TABLE half_done (x INTEGER); SELECT * FROM no_such_table;")
    monkeypatch.setattr(schema, "available_migrations", lambda: [*good, bad])
    path = tmp_path / "new.duckdb"
    with pytest.raises(MigrationError, match="creating the store failed"):
        Store(path)
    con = duckdb.connect(str(path), read_only=True)
    assert con.execute("SELECT count(*) FROM information_schema.tables").fetchall() == [(0,)]
    con.close()
    monkeypatch.setattr(schema, "available_migrations", lambda: good)
    with Store(path) as store:  # an empty DuckDB file is a new store
        assert {s.status for s in store.migration_status()} == {"applied"}


def test_a_foreign_duckdb_file_is_not_a_timbredb_store_and_stays_untouched(tmp_path: Path, data_dir: Path) -> None:
    path = tmp_path / "shop.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE customers (id INTEGER, name VARCHAR); INSERT INTO customers VALUES (1, 'ada')")
    con.close()
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    for args in (["sql", "SELECT 1"], ["query", "exp3"], ["report", "--out", str(tmp_path / "r")], ["check"],
                 ["check", "--dry-run"], ["ingest", str(tmp_path / "none.wav"), "--models", "mfcc"],
                 ["describe", str(tmp_path / "none.wav"), "--model", "socialfx-eq"]):
        result = CLI(path, data_dir)(*args, ok=False)
        assert result.exit_code == 1, args
        assert "not a timbredb store" in result.stderr and result.stderr.count("\n") == 1, (args, result.stderr)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shop.duckdb"]


def test_spaces_match_label_first_then_bare_model_id(tmp_path: Path) -> None:
    from timbredb.spaces import SpaceRecord

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


#: integrity check statement -> SQL that breaks exactly what it checks, on the filled store
CORRUPTIONS = {
    "check_audio_dim": "UPDATE audio_embeddings SET embedding = list_slice(embedding, 1, 3) "
                       "WHERE clip_sha256 = (SELECT min(clip_sha256) FROM audio_embeddings)",
    "check_text_dim": "UPDATE text_embeddings SET embedding = list_slice(embedding, 1, 3) "
                      "WHERE prompt = (SELECT min(prompt) FROM text_embeddings)",
    "check_non_finite": "UPDATE audio_embeddings SET embedding = list_transform(embedding, lambda x: CAST('nan' AS FLOAT)) "
                        "WHERE clip_sha256 = (SELECT min(clip_sha256) FROM audio_embeddings)",
    "check_audio_orphans": "DELETE FROM clips WHERE clip_sha256 = (SELECT min(clip_sha256) FROM audio_embeddings)",
    "check_space_orphans": "DELETE FROM spaces WHERE label = 'mfcc'",
    "check_batch_orphans": "DELETE FROM embedding_batches WHERE batch_id = (SELECT min(batch_id) FROM audio_embeddings)",
    "check_prompt_orphans": "DELETE FROM prompts WHERE prompt = (SELECT min(prompt) FROM text_embeddings)",
    "check_file_orphans": "UPDATE clip_files SET clip_sha256 = 'gone' WHERE path = (SELECT min(path) FROM clip_files)",
    "check_rated_orphans": "UPDATE instruments SET clip_sha256 = 'gone' "
                           "WHERE instrument = (SELECT min(instrument) FROM instruments)",
    "check_dissim_orphans": "UPDATE dissimilarity_stimuli SET clip_sha256 = 'gone' WHERE stimulus_index = 0",
    "check_variant_orphans": "UPDATE variants SET clip_sha256 = 'gone' WHERE effect = 'eq' AND strength = 1.0",
    "check_pair_orphans": "UPDATE spaces SET comparison = 'vector' WHERE label = 'mfcc-frames'",
    "check_pair_non_finite": "UPDATE pair_distances SET l2_distance = CAST('nan' AS DOUBLE) "
                             "WHERE clip_sha256_a = (SELECT min(clip_sha256_a) FROM pair_distances)",
    # issue 15: a fine-tuning record whose tuned space is not stored
    "check_finetune_orphans": "INSERT INTO finetunes (space_id, label, base_space_id, base_label, method, seed, config, "
                              "split, train_data_sha256, weights, weights_sha256, history, seconds) SELECT 'gone', "
                              "'mfcc+ft-gone', space_id, label, 'adapter', 0, '{}', '{}', '', 'x'::BLOB, sha256('x'::BLOB), "
                              "'[]', 0 FROM spaces WHERE label = 'mfcc'",
}


def test_every_integrity_check_has_a_corruption_test() -> None:
    from timbredb.check import integrity_checks

    assert {stmt for _, stmt in integrity_checks()} == set(CORRUPTIONS)


def test_a_clean_store_passes_check(filled_db: Path, tmp_path: Path, data_dir: Path) -> None:
    from tests.conftest import copy_store

    db = copy_store(filled_db, tmp_path / "clean.duckdb")
    out = json.loads(CLI(db, data_dir)("check", "--format", "json").stdout)
    assert all(r["offending_rows"] == 0 for r in out["integrity"])


@pytest.mark.parametrize("statement", sorted(CORRUPTIONS))
def test_a_corrupted_store_makes_check_exit_3(statement: str, filled_db: Path, tmp_path: Path, data_dir: Path) -> None:
    from tests.conftest import copy_store
    from timbredb.check import integrity_checks

    db = copy_store(filled_db, tmp_path / "broken.duckdb")
    con = duckdb.connect(str(db))
    con.execute(CORRUPTIONS[statement])
    con.close()
    result = CLI(db, data_dir)("check", "--format", "json", ok=False)
    assert result.exit_code == 3, result.stderr
    rows = {r["check"]: r["offending_rows"] for r in json.loads(result.stdout)["integrity"]}
    name = next(n for n, s in integrity_checks() if s == statement)
    assert rows[name] > 0, rows
    assert "integrity problems" in result.stderr and result.stderr.count("\n") == 1


def test_one_resolver_for_python_and_sql_when_a_default_and_another_checkpoint_are_stored(
    filled_db: Path, tmp_path: Path
) -> None:
    """`ms-clap` names the default space only, even with `ms-clap@2022` stored, in every analysis."""
    from tests.conftest import copy_store
    from timbredb import queries
    from timbredb.analysis.exp3 import run_exp3
    from timbredb.spaces import SpaceRecord

    db = copy_store(filled_db, tmp_path / "two.duckdb")
    with Store(db) as store:
        (mfcc,) = store.spaces("mfcc")
        hashes, vectors = store.audio_matrix(mfcc.space_id)
        for space_id, label, checkpoint in (("aaaa", "ms-clap", "2023"), ("bbbb", "ms-clap@2022", "2022")):
            store.ensure_space(SpaceRecord(space_id, label, "ms-clap", "CLAP", checkpoint, None, {}, mfcc.dim,
                                           44100, "cosine", ("audio", "text")))
            batch = store.add_batch(space_id, "audio", len(hashes), "cpu", "float32", {}, None)
            store.insert_audio_embeddings(space_id, hashes, vectors, batch)
    with Store(db, read_only=True) as store:
        assert [s.label for s in store.spaces("ms-clap")] == ["ms-clap"]
        assert [s.label for s in store.spaces("ms-clap@2022")] == ["ms-clap@2022"]
        for model, expected in (("ms-clap", {"ms-clap"}), ("ms-clap@2022", {"ms-clap@2022"}), ("bbbb", {"ms-clap@2022"})):
            rows = run_exp3(store, model=model, n_bootstrap=0)["metrics"]
            assert set(rows["model"].to_list()) == expected, model
            ids = [s.space_id for s in store.spaces(model)]
            pairs = queries.run(store, "exp3_pairs", space_ids=ids)
            assert set(pairs["model"].to_list()) == expected, model
        # with no --model every space takes part
        assert {"mfcc", "ms-clap", "ms-clap@2022"} <= set(run_exp3(store, n_bootstrap=0)["metrics"]["model"].to_list())
