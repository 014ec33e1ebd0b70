"""Every named query file parses, documents itself, and runs on a fixture store."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.synth import harmonic_tone, write
from timbredb import queries
from timbredb.ingest import Ingestor
from timbredb.models import load
from timbredb.store import Store


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    root = tmp_path_factory.mktemp("q")
    data_dir = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
    s = Store(root / "q.duckdb")
    models = [load("mfcc")]
    if (data_dir / "audealize" / "eqpoints.json").is_file():
        models.append(load("socialfx-eq", data_dir=data_dir))
    ing = Ingestor(s, models)
    ing.add_files([write(root / f"t{i}.wav", harmonic_tone(150 * (i + 1), 0.3)) for i in range(3)])
    ing.add_descriptors(["bright", "warm"])
    ing.finish()
    yield s
    s.close()


def test_there_are_query_files() -> None:
    assert queries.all_queries(), "queries/ holds no .sql files"


@pytest.mark.parametrize("name", sorted(queries.all_queries()))
def test_query_runs_and_is_documented(name: str, store: Store) -> None:
    q = queries.get(name)
    assert len(q.doc) > 20, f"queries/{name}.sql needs a doc comment saying what it returns"
    df = queries.run(store, name)
    assert df.width > 0
