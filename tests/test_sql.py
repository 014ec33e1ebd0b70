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
    ],
)
def test_writes_and_file_access_are_refused(filled: CLI, tmp_path: Path, statement: str) -> None:
    (tmp_path / "secret.csv").write_text("a,b\n1,2\n")
    result = filled("sql", statement.format(tmp=tmp_path), ok=False)
    assert result.exit_code == 1
    line = result.stderr.strip()
    assert line.startswith("timbredb: error:") and "\n" not in line
    assert any(w in line for w in ("refused", "exactly one statement"))
    assert not (tmp_path / "out.csv").exists() and not (tmp_path / "exported").exists() and not (tmp_path / "other.duckdb").exists()
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
