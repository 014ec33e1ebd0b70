"""Parquet interchange: export -> import round trips bit for bit; imports are idempotent; bad files are refused one by one."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import CLI, copy_store, db_rows


@pytest.fixture(scope="session")
def data_dir(synth_data_dir: Path) -> Path:
    """Core tests run on synthesized data (no ../shared/data needed)."""
    return synth_data_dir


@pytest.fixture(scope="module")
def exported(filled_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The filled store exported once (every part); tests copy it before changing files."""
    out = tmp_path_factory.mktemp("export") / "dump"
    CLI(filled_db, None)("export", str(out), "--rows-per-file", "7")
    return out


def _copy_dir(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest)
    return dest


def _query(db: Path, exp: str) -> object:
    return json.loads(CLI(db, None)("query", exp, "--format", "json").stdout)


def _vectors(db: Path, table: str = "audio_embeddings") -> dict[tuple[str, str], bytes]:
    key = "clip_sha256" if table == "audio_embeddings" else "prompt"
    rows = db_rows(db, f"SELECT space_id, {key}, embedding FROM {table}")
    return {(s, k): np.asarray(e, dtype=np.float32).tobytes() for s, k, e in rows}


def test_export_then_import_into_an_empty_store_gives_the_same_results_bit_for_bit(
    filled_db: Path, exported: Path, tmp_path: Path
) -> None:
    before = filled_db.read_bytes()
    target = tmp_path / "copy.duckdb"
    out = json.loads(CLI(target, None)("import", "embeddings", str(exported), "--format", "json").stdout)
    assert out["errors"] == [] and out["files"] == out["files_merged"] > 10
    # every vector came over with the same bytes, and nothing else was invented
    for table in ("audio_embeddings", "text_embeddings"):
        assert _vectors(target, table) == _vectors(filled_db, table)
    for table, cols in {
        "clips": "clip_sha256, source_path, duration_s, channels, sample_rate, n_frames, added_at",
        "spaces": "space_id, label, model_id, checkpoint, checkpoint_sha256, policy, dim, modalities",
        "prompts": "descriptor, template, prompt",
        "vocabularies": "vocabulary, descriptor, position",
        "instruments": "dataset, instrument, split, clip_sha256",
        "ratings": "dataset, instrument, descriptor, column_name, rating",
        "dissimilarity_stimuli": "dataset, stimulus_index, file, clip_sha256",
        "dissimilarity_ratings": "dataset, i, j, dissimilarity",
        "variants": "source_sha256, effect, descriptor, strength, renderer_version, clip_sha256, params, created_at, seen_at",
        "exp2_sources": "source_sha256, label, kind, sample_rate, channels, duration_s",
        "clip_files": "path, clip_sha256, size_bytes, mtime_ns",
    }.items():
        sql = f"SELECT {cols} FROM {table} ORDER BY ALL"
        assert db_rows(target, sql) == db_rows(filled_db, sql), table
    # provenance: one imported batch per source batch, same device/dtype/provenance/time, folder recorded
    prov = "SELECT space_id, modality, n_items, device, dtype, provenance, created_at FROM embedding_batches ORDER BY ALL"
    assert db_rows(target, prov) == db_rows(filled_db, prov)
    assert db_rows(target, "SELECT DISTINCT imported_from FROM embedding_batches") == [(str(exported.absolute()),)]
    for exp in ("exp1", "exp2", "exp3"):
        assert _query(target, exp) == _query(filled_db, exp), exp
    assert filled_db.read_bytes() == before  # export reads the store read-only
    CLI(target, None)("check")


def test_files_are_self_describing_partitioned_by_space_and_readable_by_duckdb(filled_db: Path, exported: Path) -> None:
    manifest = json.loads((exported / "timbredb-export.json").read_text())
    assert manifest["format"] == "timbredb-parquet/1"
    spaces = {s["space_id"]: s["dim"] for s in manifest["spaces"]}
    assert len(spaces) == 2
    for space_id, dim in spaces.items():
        files = sorted((exported / "audio_embeddings" / f"space_id={space_id}").glob("*.parquet"))
        assert len(files) > 1  # --rows-per-file 7 split them
        f = pq.ParquetFile(files[0])
        assert f.schema_arrow.field("embedding").type == pa.list_(pa.float32(), dim)
        assert f.schema_arrow.metadata[b"timbredb.table"] == b"audio_embeddings"
    con = duckdb.connect()
    got = con.execute(
        f"SELECT space_id, count(*) FROM read_parquet('{exported}/audio_embeddings/*/*.parquet', hive_partitioning = true) "
        "GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    assert got == db_rows(filled_db, "SELECT space_id, count(*) FROM audio_embeddings GROUP BY ALL ORDER BY ALL")
    assert manifest["tables"]["audio_embeddings"]["rows"] == sum(n for _, n in got)


def test_importing_twice_adds_nothing_and_keeps_the_store_clean(exported: Path, tmp_path: Path) -> None:
    target = tmp_path / "t.duckdb"
    cli = CLI(target, None)
    first = json.loads(cli("import", "embeddings", str(exported), "--format", "json").stdout)
    counts = db_rows(target, "SELECT (SELECT count(*) FROM audio_embeddings), (SELECT count(*) FROM embedding_batches), "
                             "(SELECT count(*) FROM clips), (SELECT count(*) FROM variants)")
    second = json.loads(cli("import", "embeddings", str(exported), "--format", "json").stdout)
    assert sum(second["rows_added"].values()) == 0
    assert sum(second["rows_skipped"].values()) == sum(first["rows_added"].values())
    assert db_rows(target, "SELECT (SELECT count(*) FROM audio_embeddings), (SELECT count(*) FROM embedding_batches), "
                           "(SELECT count(*) FROM clips), (SELECT count(*) FROM variants)") == counts
    # a store exported again names its batches as they came: a third store gets the same batches once
    again = tmp_path / "again"
    cli("export", str(again))
    third = tmp_path / "third.duckdb"
    CLI(third, None)("import", "embeddings", str(exported))
    CLI(third, None)("import", "embeddings", str(again))
    assert db_rows(third, "SELECT count(*) FROM embedding_batches") == db_rows(target, "SELECT count(*) FROM embedding_batches")
    cli("check")


def _first_vector_file(folder: Path) -> Path:
    return sorted((folder / "audio_embeddings").rglob("*.parquet"))[0]


def test_a_conflicting_vector_is_one_line_naming_file_and_key_and_nothing_of_that_file_is_merged(
    filled_db: Path, exported: Path, tmp_path: Path
) -> None:
    dump = _copy_dir(exported, tmp_path / "dump")
    victim = _first_vector_file(dump)
    tbl = pq.read_table(victim)
    m = np.asarray(tbl.column("embedding").combine_chunks().flatten()).reshape(tbl.num_rows, -1).copy()
    m[0, 0] = np.nextafter(m[0, 0], np.float32(2))  # one ulp: other bytes, the same key
    dim = m.shape[1]
    changed = tbl.set_column(tbl.schema.get_field_index("embedding"), tbl.schema.field("embedding"),
                             pa.FixedSizeListArray.from_arrays(pa.array(m.reshape(-1)), dim))
    pq.write_table(changed, victim)
    key = tbl.column("clip_sha256")[0].as_py()
    # into a store holding the original: the changed file is refused, every other file merges (all skipped)
    store = copy_store(filled_db, tmp_path / "s.duckdb")
    before = _vectors(store)
    result = CLI(store, None)("import", "embeddings", str(dump), ok=False)
    assert result.exit_code == 1
    lines = [line for line in result.stderr.splitlines() if str(victim) in line]
    assert len(lines) == 1 and key in lines[0] and "conflicting row" in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert _vectors(store) == before
    # into an empty store the same file merges; then the original conflicts with it, naming the key
    fresh = tmp_path / "fresh.duckdb"
    CLI(fresh, None)("import", "embeddings", str(dump))
    again = CLI(fresh, None)("import", "embeddings", str(exported), ok=False)
    assert again.exit_code == 1 and key in again.stderr and str(_first_vector_file(exported)) in again.stderr


def test_a_vector_repeated_with_other_bytes_inside_one_file_is_a_conflict(exported: Path, tmp_path: Path) -> None:
    dump = _copy_dir(exported, tmp_path / "dump")
    victim = _first_vector_file(dump)
    tbl = pq.read_table(victim)
    twin = tbl.slice(0, 1)
    m = np.asarray(twin.column("embedding").combine_chunks().flatten()).copy()
    m[1] += np.float32(1e-3)
    twin = twin.set_column(twin.schema.get_field_index("embedding"), twin.schema.field("embedding"),
                           pa.FixedSizeListArray.from_arrays(pa.array(m), m.shape[0]))
    pq.write_table(pa.concat_tables([tbl, twin]), victim)
    target = tmp_path / "t.duckdb"
    result = CLI(target, None)("import", "embeddings", str(dump), ok=False)
    assert result.exit_code == 1 and "repeated with other bytes" in result.stderr
    n_file = tbl.num_rows
    total = sum(pq.read_metadata(f).num_rows for f in (dump / "audio_embeddings").rglob("*.parquet"))
    assert db_rows(target, "SELECT count(*) FROM audio_embeddings") == [(total - n_file - 1,)]


def test_corrupt_and_wrong_schema_files_are_refused_one_line_each(exported: Path, tmp_path: Path) -> None:
    dump = _copy_dir(exported, tmp_path / "dump")
    corrupt = _first_vector_file(dump)
    data = corrupt.read_bytes()
    corrupt.write_bytes(data[: len(data) // 2])  # truncated: no footer
    wrong = dump / "clips" / "part-99999.parquet"
    pq.write_table(pa.table({"clip_sha256": ["x"], "length": [3]}), wrong)
    stray = dump / "notes" / "part-0.parquet"
    stray.parent.mkdir()
    pq.write_table(pa.table({"a": [1]}), stray)
    target = tmp_path / "t.duckdb"
    result = CLI(target, None)("import", "embeddings", str(dump), "--format", "json", ok=False)
    assert result.exit_code == 1
    errors = {e["file"]: e["error"] for e in json.loads(result.stdout)["errors"]}
    assert set(errors) == {str(corrupt), str(wrong), str(stray)}
    assert "not a readable Parquet file" in errors[str(corrupt)]
    assert "wrong schema" in errors[str(wrong)] and "source_path" in errors[str(wrong)]
    assert "not a timbredb interchange file" in errors[str(stray)]
    for line in result.stderr.splitlines():
        assert line.startswith(("error: ", "timbredb: error: ")), line
    assert db_rows(target, "SELECT count(*) FROM clips WHERE clip_sha256 = 'x'") == [(0,)]
    # everything else merged: only the truncated file's vectors are missing
    lost = pq.read_metadata(_first_vector_file(exported)).num_rows
    total = sum(pq.read_metadata(f).num_rows for f in (exported / "audio_embeddings").rglob("*.parquet"))
    assert db_rows(target, "SELECT count(*) FROM audio_embeddings") == [(total - lost,)]


def test_vectors_of_unknown_clips_or_spaces_are_refused(exported: Path, tmp_path: Path) -> None:
    dump = _copy_dir(exported, tmp_path / "dump")
    shutil.rmtree(dump / "clips")
    target = tmp_path / "t.duckdb"
    result = CLI(target, None)("import", "embeddings", str(dump), "--format", "json", ok=False)
    errors = json.loads(result.stdout)["errors"]
    assert errors and all("which is not stored (nor in the import)" in e["error"] for e in errors)
    assert db_rows(target, "SELECT count(*) FROM audio_embeddings") == [(0,)]
    dump2 = _copy_dir(exported, tmp_path / "dump2")
    shutil.rmtree(dump2 / "spaces")
    result = CLI(tmp_path / "u.duckdb", None)("import", "embeddings", str(dump2), ok=False)
    assert "neither stored nor in the import" in result.stderr


def test_model_and_what_select_what_is_written(filled_db: Path, tmp_path: Path) -> None:
    cli = CLI(filled_db, None)
    out = tmp_path / "mfcc"
    manifest = json.loads(cli("export", str(out), "--model", "mfcc", "--what", "embeddings", "--format", "json").stdout)
    assert [s["label"] for s in manifest["spaces"]] == ["mfcc"]
    assert set(manifest["tables"]) == {"spaces", "clips", "audio_embeddings"}
    # the clips exported are exactly those the vectors refer to
    n = db_rows(filled_db, "SELECT count(DISTINCT clip_sha256) FROM audio_vectors WHERE model = 'mfcc'")[0][0]
    assert manifest["tables"]["clips"]["rows"] == n
    target = tmp_path / "t.duckdb"
    CLI(target, None)("import", "embeddings", str(out))
    CLI(target, None)("check")
    assert db_rows(target, "SELECT DISTINCT model FROM audio_vectors") == [("mfcc",)]
    # a folder that exists and holds files is never written into; an unknown part is a usage error
    refused = cli("export", str(out), ok=False)
    assert refused.exit_code == 1 and "not an empty folder" in refused.stderr
    bad = cli("export", str(tmp_path / "x"), "--what", "clips,vectors", ok=False)
    assert bad.exit_code == 1 and "vectors" in bad.stderr and not (tmp_path / "x").exists()
