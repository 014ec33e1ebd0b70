"""`timbredb sql`: read-only exploration, refusing writes and file access."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from tests.conftest import CLI
from tests.synth import harmonic_tone, write


@pytest.fixture
def filled(cli: CLI, tmp_path: Path) -> CLI:
    for i in range(3):
        write(tmp_path / "in" / f"t{i}.wav", harmonic_tone(200 + 100 * i, 0.3))
    cli("ingest", str(tmp_path / "in"), "--models", "mfcc,socialfx-eq")
    return cli


@pytest.fixture(scope="session")
def data_dir(synth_data_dir: Path) -> Path:
    """Core tests run on synthesized data (no ../shared/data needed)."""
    return synth_data_dir


def test_select_in_every_format(filled: CLI, tmp_path: Path) -> None:
    q = "SELECT model, count(*) AS n FROM audio_vectors GROUP BY model ORDER BY model"
    table = filled("sql", q).stdout
    assert "mfcc" in table and "socialfx-eq" in table
    assert json.loads(filled("sql", q, "--format", "json").stdout) == [{"model": "mfcc", "n": 3}, {"model": "socialfx-eq", "n": 3}]
    assert filled("sql", q, "--format", "csv").stdout.splitlines() == ["model,n", "mfcc,3", "socialfx-eq,3"]
    out = tmp_path / "r.parquet"
    filled("sql", q, "--format", "parquet", "--output", str(out))
    assert pl.read_parquet(out).to_dicts() == [{"model": "mfcc", "n": 3}, {"model": "socialfx-eq", "n": 3}]


def test_embeddings_and_views_are_queryable(filled: CLI) -> None:
    rows = json.loads(filled("sql", "SELECT model, descriptor, cosine FROM similarities WHERE descriptor = 'bright'", "--format", "json").stdout)
    assert len(rows) == 3 and all(-1 <= r["cosine"] <= 1 for r in rows)
    vec = json.loads(filled("sql", "SELECT embedding FROM audio_vectors WHERE model = 'mfcc' LIMIT 1", "--format", "json").stdout)
    assert len(vec[0]["embedding"]) == 40


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO runs (command, timbredb_version) VALUES ('x', 'y')",
        "DELETE FROM clips",
        "UPDATE clips SET duration_s = 0",
        "DROP TABLE clips",
        "CREATE TABLE t AS SELECT 1",
        "COPY clips TO '{tmp}/out.csv'",
        "EXPORT DATABASE '{tmp}/exported'",
        "ATTACH '{tmp}/other.duckdb' AS other",
        "INSTALL httpfs",
        "SET threads = 1",
        "SELECT * FROM read_csv('{tmp}/secret.csv')",
        "SELECT * FROM read_text('/etc/hostname')",
        "SELECT * FROM '{tmp}/secret.csv'",
        "SELECT 1; DELETE FROM clips",
        # a wider campaign: every way out that DuckDB offers, each refused, the store unchanged
        "INSERT OR REPLACE INTO clips SELECT * FROM clips",
        "TRUNCATE clips",
        "ALTER TABLE clips ADD COLUMN x INTEGER",
        "ALTER TABLE clips RENAME TO c2",
        "DROP VIEW similarities",
        "CREATE VIEW v AS SELECT 1",
        "CREATE TEMP TABLE t AS SELECT 1",
        "CREATE SEQUENCE s",
        "CREATE MACRO m(x) AS x + 1",
        "CREATE TYPE mood AS ENUM ('a', 'b')",
        "CREATE SCHEMA s2",
        "CREATE INDEX i ON clips (duration_s)",
        "CREATE SECRET s (TYPE s3, KEY_ID 'k', SECRET 's')",
        "COMMENT ON TABLE clips IS 'x'",
        "COPY clips FROM '{tmp}/secret.csv'",
        "COPY (SELECT 1) TO '{tmp}/out.csv'",
        "COPY FROM DATABASE memory TO memory",
        "IMPORT DATABASE '{tmp}/exported'",
        "ATTACH ':memory:' AS m",
        "DETACH memory",
        "USE memory",
        "LOAD httpfs",
        "FORCE INSTALL httpfs",
        "UPDATE EXTENSIONS",
        "INSTALL spatial FROM core_nightly",
        "SET enable_external_access = true",
        "RESET enable_external_access",
        "SET GLOBAL threads = 2",
        "PRAGMA enable_profiling",
        "PRAGMA threads = 2",
        "CALL pragma_version()",
        "CHECKPOINT",
        "FORCE CHECKPOINT",
        "VACUUM",
        "ANALYZE",
        "BEGIN TRANSACTION",
        "COMMIT",
        "ROLLBACK",
        "PREPARE p AS DELETE FROM clips",
        "EXECUTE p",
        "DEALLOCATE p",
        "SELECT * FROM read_parquet('{tmp}/x.parquet')",
        "SELECT * FROM read_json_auto('{tmp}/x.json')",
        "SELECT * FROM read_blob('/etc/hostname')",
        "SELECT * FROM glob('/etc/*')",
        "SELECT * FROM sniff_csv('{tmp}/secret.csv')",
        "SELECT * FROM parquet_metadata('{tmp}/x.parquet')",
        "SELECT * FROM read_csv_auto('https://example.com/x.csv')",
        "SELECT * FROM 'https://example.com/x.parquet'",
        "SELECT * FROM duckdb_secrets()",
        "FROM read_text('/etc/hostname')",
        "WITH x AS (SELECT 1) DELETE FROM clips",
        "EXPLAIN ANALYZE DELETE FROM clips",
        "SUMMARIZE SELECT * FROM read_csv('{tmp}/secret.csv')",
        "DESCRIBE SELECT * FROM read_csv('{tmp}/secret.csv')",
        "PIVOT (SELECT * FROM read_csv('{tmp}/secret.csv')) ON a USING sum(b)",
        "SELECT 1;;DROP TABLE clips",
        "/* c */ DELETE FROM clips",
        "select * from clips; -- ok\ndelete from clips",
    ],
)
def test_writes_and_file_access_are_refused(filled: CLI, tmp_path: Path, statement: str) -> None:
    (tmp_path / "secret.csv").write_text("a,b\n1,2\n")
    before = {p: p.stat().st_mtime_ns for p in filled.db.parent.glob(filled.db.name + "*")}
    result = filled("sql", statement.format(tmp=tmp_path), ok=False)
    assert result.exit_code == 1
    line = result.stderr.strip()
    assert line.startswith("timbredb: error:") and "\n" not in line
    assert any(w in line for w in ("refused", "exactly one statement"))
    assert not (tmp_path / "out.csv").exists() and not (tmp_path / "exported").exists() and not (tmp_path / "other.duckdb").exists()
    assert {p: p.stat().st_mtime_ns for p in filled.db.parent.glob(filled.db.name + "*")} == before  # store untouched
    assert json.loads(filled("sql", "SELECT count(*) AS n FROM clips", "--format", "json").stdout) == [{"n": 3}]


def test_sql_on_a_missing_store_is_one_line(tmp_path: Path, data_dir: Path) -> None:
    result = CLI(tmp_path / "none.duckdb", data_dir)("sql", "SELECT 1", ok=False)
    assert result.exit_code == 1 and "no timbredb store here" in result.stderr
    assert not (tmp_path / "none.duckdb").exists()


def test_invalid_sql_is_one_line(filled: CLI) -> None:
    result = filled("sql", "SELEC nonsense", ok=False)
    assert result.exit_code == 1 and result.stderr.startswith("timbredb: error: SQL error")


def test_database_errors_after_open_are_one_line(filled: CLI, monkeypatch: pytest.MonkeyPatch) -> None:
    import duckdb

    import timbredb.sql

    def broken(*a: object, **k: object) -> None:
        raise duckdb.IOException("IO Error: could not write: disk full\nmore detail")

    monkeypatch.setattr(timbredb.sql, "run_readonly", broken)
    result = filled("sql", "SELECT 1", ok=False)
    assert result.exit_code == 1
    assert result.stderr.strip() == "timbredb: error: database error: IO Error: could not write: disk full"


#: one expression per DuckDB type family (nested ones too)
TYPED = {
    "interval": "INTERVAL 3 DAY", "hugeint": "170141183460469231731687303715884105727::HUGEINT",
    "uhugeint": "1::UHUGEINT", "uuid": "'7d31f1e0-6b7e-4e3c-9a6e-2f8c1d5a9b01'::UUID",
    "decimal": "3.14::DECIMAL(10,2)", "decimal38": "1::DECIMAL(38,10)", "blob": "'\\xAA'::BLOB",
    "bit": "'0101'::BIT", "date": "DATE '2020-01-01'", "time": "TIME '12:00:00'", "timetz": "TIMETZ '12:00:00+02'",
    "timestamp": "TIMESTAMP '2020-01-01 00:00:00'", "timestamptz": "TIMESTAMPTZ '2020-01-01 00:00:00+00'",
    "timestamp_ns": "TIMESTAMP_NS '2020-01-01 00:00:00'", "list": "[1.5, 2.0]", "struct": "{'a': 1, 'b': [1, 2]}",
    "map": "MAP {'a': 1}", "union": "union_value(n := 1)::UNION(n INT, s VARCHAR)", "array": "[1, 2]::INT[2]",
    "json": "'{\"a\": 1}'::JSON", "varint": "12345678901234567890123456789::VARINT", "ubigint": "18446744073709551615::UBIGINT",
    "float": "1.5::FLOAT", "bool": "true", "null": "NULL", "nested_interval": "[INTERVAL 1 DAY]",
    "struct_uuid": "{'u': '7d31f1e0-6b7e-4e3c-9a6e-2f8c1d5a9b01'::UUID}", "nan": "'nan'::DOUBLE", "enumish": "'x'",
}


@pytest.mark.parametrize("fmt", ["table", "csv", "json", "parquet"])
def test_every_duckdb_type_formats_in_every_output_format(filled: CLI, tmp_path: Path, fmt: str) -> None:
    import pyarrow.parquet as pq

    select = "SELECT " + ", ".join(f"{expr} AS {name}" for name, expr in TYPED.items())
    if fmt == "parquet":
        out = tmp_path / "t.parquet"
        filled("sql", select, "--format", "parquet", "--output", str(out))
        table = pq.read_table(out)
        assert table.num_rows == 1 and table.column_names == list(TYPED)
        return
    result = filled("sql", select, "--format", fmt)
    assert result.exit_code == 0 and "Traceback" not in result.output
    if fmt == "json":
        row = json.loads(result.stdout)[0]
        assert list(row) == list(TYPED)
        assert row["decimal"] == 3.14 and row["list"] == [1.5, 2.0] and row["bool"] is True and row["nan"] is None
        assert row["interval"] == "3 days" and row["uuid"] == "7d31f1e0-6b7e-4e3c-9a6e-2f8c1d5a9b01"
        assert row["hugeint"] == "170141183460469231731687303715884105727"  # exact, as text
    # the store's own INTERVAL column (the report's unhappy case)
    filled("sql", "SELECT finished_at - started_at AS took FROM runs", "--format", fmt)


def test_a_runaway_statement_stops_at_the_time_limit(filled: CLI) -> None:
    import time

    t0 = time.monotonic()
    result = filled("sql", "SELECT count(*) FROM range(1000000) a, range(1000000) b", "--timeout", "2", ok=False)
    assert time.monotonic() - t0 < 10
    assert result.exit_code == 1 and result.stderr.count("\n") == 1 and "time limit of 2 s" in result.stderr


def test_ctrl_c_stops_a_statement_with_exit_130(filled: CLI) -> None:
    import signal
    import subprocess
    import sys
    import time

    proc = subprocess.Popen(
        [sys.executable, "-m", "timbredb", "--db", str(filled.db), "sql", "--timeout", "0",
         "SELECT count(*) FROM range(1000000) a, range(1000000) b"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    time.sleep(3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and err.count("\n") == 1, err


@pytest.mark.parametrize("statement", [
    "PIVOT (SELECT model, descriptor, cosine FROM similarities) ON descriptor USING avg(cosine)",
    "UNPIVOT (SELECT 1 AS a, 2 AS b) ON a, b INTO NAME k VALUE v",
    "SUMMARIZE clips", "DESCRIBE clips", "SHOW TABLES", "FROM clips LIMIT 1", "VALUES (1, 2)",
    "EXPLAIN SELECT * FROM clips", "WITH x AS (SELECT 1 AS a) SELECT * FROM x",
])
def test_read_statements_of_every_form_run(filled: CLI, statement: str) -> None:
    assert filled("sql", statement).exit_code == 0
