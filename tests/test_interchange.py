"""Parquet interchange: export -> import round trips bit for bit; imports are idempotent; bad files are refused one by one;
every table of the current schema is carried or excluded on purpose."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from tests.conftest import CLI, copy_store, db_rows
from tests.test_effect_datasets import write_safedb, write_socialfx
from timbredb.interchange.tables import BY_NAME, NOT_CARRIED, TABLES, TableSpec


@pytest.fixture(scope="session")
def data_dir(synth_data_dir: Path) -> Path:
    """Core tests run on synthesized data (no ../shared/data needed)."""
    return synth_data_dir


#: the tables an export writes (ingest_errors only travel in Ray batch folders)
EXPORTED = tuple(t for t in TABLES if t.name not in NOT_CARRIED)


@pytest.fixture(scope="module")
def rich_db(filled_db: Path, synth_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The filled store (pairwise mfcc-frames distances, CCMusic listener ratings and SDs, imported exp1 results)
    plus variants of the other effect datasets (SocialFX compression, SAFE-DB) and imported exp2 results of
    two datasets: a row in every table an export writes."""
    root = tmp_path_factory.mktemp("rich")
    data = root / "data"
    data.mkdir()
    (data / "audealize").symlink_to(synth_data_dir / "audealize", target_is_directory=True)
    write_safedb(data)
    write_socialfx(data)
    db = copy_store(filled_db, root / "rich.duckdb")
    cli = CLI(db, data)
    cli("ingest", "socialfx-comp", "safedb", "--models", "mfcc,socialfx-eq", "--strengths", "1.0", "--length-s", "1.0",
        "--min-contributions", "2")
    # the local trajectories of two datasets' effects, filed again as results computed elsewhere
    csv = root / "elsewhere.csv"
    cli("sql", "SELECT * FROM exp2_trajectories WHERE origin = 'local' AND effect IN ('eq', 'safe-eq') "
               "AND template = 'a {} sound'", "--format", "csv", "--output", str(csv))
    cli("import", "exp2", str(csv), "--model", "elsewhere")
    # a fine-tuned space (issue 15): its record and weights travel with it
    cli("finetune", "--model", "socialfx-eq", "--epochs", "2", "--device", "cpu")
    return db


@pytest.fixture(scope="module")
def exported(rich_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The rich store exported once (every part); tests copy it before changing files."""
    out = tmp_path_factory.mktemp("export") / "dump"
    CLI(rich_db, None)("export", str(out), "--rows-per-file", "7")
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


def _carried_rows(db: Path, spec: TableSpec) -> list[tuple]:
    """A table's rows as the interchange carries them: its carried columns, batch provenance beside batched rows."""
    cols = ", ".join(f"t.{c}" for c in spec.store_columns)
    if spec.batched:
        # each row with the provenance of its own batch (the batch_id itself is the store's)
        sql = (f"SELECT {cols}, b.modality, b.n_items, b.device, b.dtype, b.provenance::VARCHAR, b.created_at "
               f"FROM {spec.name} t JOIN embedding_batches b USING (batch_id)")
    else:
        sql = f"SELECT {cols} FROM {spec.name} t"
    return db_rows(db, sql + " ORDER BY ALL")


# ---------------------------------------------------------------- the schema: nothing left behind silently
def _fresh_store(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    from timbredb.store import Store

    path = tmp_path / "fresh.duckdb"
    with Store(path):
        pass  # every migration applied
    return duckdb.connect(str(path), read_only=True)


def _plain(t: pa.DataType) -> pa.DataType:
    """A type with list element names dropped (DuckDB names them 'l', Arrow 'item')."""
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return pa.list_(_plain(t.value_type))
    return t


def test_every_table_of_a_fresh_store_is_carried_or_excluded_on_purpose(tmp_path: Path) -> None:
    con = _fresh_store(tmp_path)
    base = {r[0] for r in con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE'").fetchall()}
    carried = {t.name for t in TABLES}
    # a new table (a migration's) must be carried by interchange.tables.TABLES or named in NOT_CARRIED
    assert base - carried - set(NOT_CARRIED) == set(), "tables neither carried by the interchange nor excluded"
    # and nothing is carried or excluded that the schema no longer has
    assert (carried | set(NOT_CARRIED)) - base == set()
    assert all(reason for reason in NOT_CARRIED.values())
    # every part an export writes has at least one table
    assert {t.part for t in EXPORTED} >= {"clips", "embeddings", "text", "results"}


@pytest.mark.parametrize("name", [t.name for t in TABLES])
def test_a_carried_table_has_the_columns_types_and_key_of_the_store(tmp_path: Path, name: str) -> None:
    spec = BY_NAME[name]
    con = _fresh_store(tmp_path)
    store = con.sql(f"SELECT * FROM {name} LIMIT 0").to_arrow_table().schema
    keys = con.execute("SELECT constraint_column_names FROM duckdb_constraints() "
                       "WHERE table_name = ? AND constraint_type = 'PRIMARY KEY'", [name]).fetchall()
    # every store column is carried or named in not_carried, and every carried column exists in the store
    assert set(store.names) - set(spec.not_carried) == set(spec.store_columns), name
    assert set(spec.not_carried) <= set(store.names)
    for column in spec.store_columns:
        got, want = _plain(store.field(column).type), _plain(spec.schema.field(column).type)
        # JSON columns come out of DuckDB as text, as the interchange carries them
        assert got == want, f"{name}.{column}: the store has {got}, the interchange carries {want}"
    # the content key is the store's primary key (a migration that changes the key changes what a conflict is)
    assert [set(k[0]) for k in keys] == ([set(spec.key)] if spec.key else []), name
    assert set(spec.compared) | set(spec.key) <= set(spec.store_columns)
    assert {c for c, _ in spec.defaults} <= set(spec.store_columns) - set(spec.optional)
    # per-space tables are partitioned by space; spaces and finetunes hold one row per space
    assert spec.partitioned == ("space_id" in spec.key and name not in ("spaces", "finetunes"))


# ---------------------------------------------------------------- round trip
def test_export_then_import_into_an_empty_store_gives_the_same_results_bit_for_bit(
    rich_db: Path, exported: Path, tmp_path: Path
) -> None:
    before = rich_db.read_bytes()
    target = tmp_path / "copy.duckdb"
    out = json.loads(CLI(target, None)("import", "embeddings", str(exported), "--format", "json").stdout)
    assert out["errors"] == [] and out["files"] == out["files_merged"] > 10
    # every vector came over with the same bytes, and nothing else was invented
    for table in ("audio_embeddings", "text_embeddings"):
        assert _vectors(target, table) == _vectors(rich_db, table)
    # every table an export writes: the fixture has rows in each, and they all come over, row for row
    for spec in EXPORTED:
        rows = _carried_rows(rich_db, spec)
        assert rows, f"the fixture store has no {spec.name} rows: the round trip would not test them"
        assert _carried_rows(target, spec) == rows, spec.name
        assert out["rows_added"][spec.name] == len(rows), spec.name
    assert {d for (d,) in db_rows(target, "SELECT DISTINCT dataset FROM variants")} == {"audealize", "socialfx", "safedb"}
    assert {d for (d,) in db_rows(target, "SELECT DISTINCT dataset FROM exp2_imported")} == {"audealize", "safedb"}
    assert db_rows(target, "SELECT label FROM spaces WHERE comparison = 'pairwise' AND dim = 0") == [("mfcc-frames",)]
    # provenance: one imported batch per source batch, same device/dtype/provenance/time, folder recorded
    prov = "SELECT space_id, modality, n_items, device, dtype, provenance, created_at FROM embedding_batches ORDER BY ALL"
    assert db_rows(target, prov) == db_rows(rich_db, prov)
    assert db_rows(target, "SELECT DISTINCT imported_from FROM embedding_batches") == [(str(exported.absolute()),)]
    for exp in ("exp1", "exp2", "exp3", "ceiling"):
        assert _query(target, exp) == _query(rich_db, exp), exp
    assert rich_db.read_bytes() == before  # export reads the store read-only
    CLI(target, None)("check")


def test_importing_an_export_into_the_store_it_came_from_adds_nothing(rich_db: Path, exported: Path, tmp_path: Path) -> None:
    store = copy_store(rich_db, tmp_path / "s.duckdb")
    batches = db_rows(store, "SELECT count(*) FROM embedding_batches")
    out = json.loads(CLI(store, None)("import", "embeddings", str(exported), "--format", "json").stdout)
    assert out["errors"] == [] and sum(out["rows_added"].values()) == 0
    assert set(out["rows_skipped"]) == {t.name for t in EXPORTED}
    # batches computed here are named by derived keys in the export: none is recorded a second time
    assert db_rows(store, "SELECT count(*) FROM embedding_batches") == batches


def test_files_are_self_describing_partitioned_by_space_and_readable_by_duckdb(rich_db: Path, exported: Path) -> None:
    manifest = json.loads((exported / "timbredb-export.json").read_text())
    assert manifest["format"] == "timbredb-parquet/1"
    spaces = {s["space_id"]: (s["dim"], s["comparison"]) for s in manifest["spaces"]}
    assert spaces == {sid: (dim, comparison) for sid, dim, comparison in
                      db_rows(rich_db, "SELECT space_id, dim, comparison FROM spaces")}
    vector_spaces = {sid: dim for sid, (dim, comparison) in spaces.items() if comparison == "vector"}
    assert len(vector_spaces) == 3  # mfcc, socialfx-eq and socialfx-eq's fine-tuned space
    for space_id, dim in vector_spaces.items():
        files = sorted((exported / "audio_embeddings" / f"space_id={space_id}").glob("*.parquet"))
        assert len(files) > 1  # --rows-per-file 7 split them
        f = pq.ParquetFile(files[0])
        assert f.schema_arrow.field("embedding").type == pa.list_(pa.float32(), dim)
        assert f.schema_arrow.metadata[b"timbredb.table"] == b"audio_embeddings"
    # a pairwise space has no vectors: its pair distances, partitioned the same way, with their batch
    (pairwise,) = [sid for sid, (_, comparison) in spaces.items() if comparison == "pairwise"]
    assert not (exported / "audio_embeddings" / f"space_id={pairwise}").exists()
    pair_files = sorted((exported / "pair_distances").rglob("*.parquet"))
    assert pair_files and {f.parent.name for f in pair_files} == {f"space_id={pairwise}"}
    assert pq.ParquetFile(pair_files[0]).schema_arrow.metadata[b"timbredb.table"] == b"pair_distances"
    con = duckdb.connect()
    for table in ("audio_embeddings", "pair_distances"):
        got = con.execute(
            f"SELECT space_id, count(*) FROM read_parquet('{exported}/{table}/*/*.parquet', hive_partitioning = true) "
            "GROUP BY ALL ORDER BY ALL"
        ).fetchall()
        assert got == db_rows(rich_db, f"SELECT space_id, count(*) FROM {table} GROUP BY ALL ORDER BY ALL")
        assert manifest["tables"][table]["rows"] == sum(n for _, n in got)
    assert con.execute(f"SELECT count(*) FROM read_parquet('{exported}/pair_distances/*/*.parquet') "
                       "WHERE batch_key IS NULL OR provenance IS NULL").fetchall() == [(0,)]


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
    rich_db: Path, exported: Path, tmp_path: Path
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
    store = copy_store(rich_db, tmp_path / "s.duckdb")
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
    refused = {Path(e["file"]).relative_to(dump).parts[0] for e in errors}
    assert {"audio_embeddings", "pair_distances", "instruments", "dissimilarity_stimuli", "variants"} <= refused
    assert db_rows(target, "SELECT count(*) FROM audio_embeddings") == [(0,)]
    assert db_rows(target, "SELECT count(*) FROM pair_distances") == [(0,)]
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


def test_model_selects_a_pairwise_space_with_its_pairs_and_their_clips(rich_db: Path, tmp_path: Path) -> None:
    out = tmp_path / "frames"
    manifest = json.loads(CLI(rich_db, None)("export", str(out), "--model", "mfcc-frames", "--what", "embeddings",
                                             "--format", "json").stdout)
    assert [(s["label"], s["dim"], s["comparison"]) for s in manifest["spaces"]] == [("mfcc-frames", 0, "pairwise")]
    assert set(manifest["tables"]) == {"spaces", "clips", "pair_distances"}
    n = db_rows(rich_db, "SELECT count(*) FROM (SELECT clip_sha256_a FROM pair_distances "
                         "UNION SELECT clip_sha256_b FROM pair_distances)")[0][0]
    assert manifest["tables"]["clips"]["rows"] == n
    target = tmp_path / "t.duckdb"
    CLI(target, None)("import", "embeddings", str(out))
    CLI(target, None)("check")
    assert _carried_rows(target, BY_NAME["pair_distances"]) == _carried_rows(rich_db, BY_NAME["pair_distances"])


def _rewrite(folder: Path, table: str, edit) -> None:  # type: ignore[no-untyped-def]
    """Rewrite every file of a table in place with ``edit(table) -> table`` (dropping files left empty)."""
    for f in sorted((folder / table).rglob("*.parquet")):
        tbl = edit(pq.read_table(f))
        if tbl.num_rows:
            pq.write_table(tbl, f)
        else:
            f.unlink()


def test_files_written_before_migration_0007_import_as_the_migration_filed_their_rows(
    rich_db: Path, exported: Path, tmp_path: Path
) -> None:
    """Exports of a timbredb whose spaces had no comparison and whose variants no dataset still import."""
    dump = _copy_dir(exported, tmp_path / "dump")
    _rewrite(dump, "spaces", lambda t: t.drop_columns(["comparison"]))
    for table in ("variants", "exp2_imported"):
        _rewrite(dump, table, lambda t: t.filter(pc.equal(t.column("dataset"), "audealize")).drop_columns(["dataset"]))
    target = tmp_path / "t.duckdb"
    out = json.loads(CLI(target, None)("import", "embeddings", str(dump), "--format", "json").stdout)
    assert out["errors"] == []
    # dim 0 is a pairwise space, the others compare vectors; the effects were Audealize's
    assert _carried_rows(target, BY_NAME["spaces"]) == _carried_rows(rich_db, BY_NAME["spaces"])
    for table in ("variants", "exp2_imported"):
        cols = ", ".join(BY_NAME[table].store_columns)
        sql = f"SELECT {cols} FROM {table} WHERE dataset = 'audealize' ORDER BY ALL"
        assert db_rows(target, sql) == db_rows(rich_db, sql) != []
        assert db_rows(target, f"SELECT DISTINCT dataset FROM {table}") == [("audealize",)]
    CLI(target, None)("check")


def _ulp(x: float) -> float:
    return float(np.nextafter(x, np.inf))


# (table, column, new value of the first row's column): each is a conflict with the stored row
CONFLICTS = [
    ("pair_distances", "cosine_distance", _ulp),
    ("listener_ratings", "rating", lambda v: v + 1),
    ("rating_sds", "n_listeners", lambda v: v + 1),
    ("exp1_imported", "pearson_r", _ulp),
    ("exp2_imported", "delta", _ulp),
    ("variants", "params", lambda v: v.replace("}", ', "extra": 1}', 1)),
    ("spaces", "comparison", lambda v: "vector" if v == "pairwise" else "pairwise"),
]


@pytest.mark.parametrize(("table", "column", "change"), CONFLICTS, ids=[f"{t}.{c}" for t, c, _ in CONFLICTS])
def test_a_row_of_the_new_tables_stored_with_other_values_is_a_conflict_naming_its_key(
    rich_db: Path, exported: Path, tmp_path: Path, table: str, column: str, change
) -> None:  # type: ignore[no-untyped-def]
    spec = BY_NAME[table]
    src = sorted((exported / table).rglob("*.parquet"))[-1]
    tbl = pq.read_table(src)
    if table == "variants":  # a variant of another dataset than Audealize's
        tbl = tbl.filter(pc.not_equal(tbl.column("dataset"), "audealize"))
    row = tbl.slice(0, 1).to_pylist()[0]
    row[column] = change(row[column])
    dest = tmp_path / "dump" / src.relative_to(exported)
    dest.parent.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist([row], schema=tbl.schema), dest)
    store = copy_store(rich_db, tmp_path / "s.duckdb")
    before = _carried_rows(store, spec)
    result = CLI(store, None)("import", "embeddings", str(tmp_path / "dump"), ok=False)
    assert result.exit_code == 1
    (line,) = [x for x in result.stderr.splitlines() if str(dest) in x]
    key = " / ".join(str(row[k]) for k in spec.key)
    assert f"conflicting row: {table} {key} is stored with other {column}" in line, line
    assert _carried_rows(store, spec) == before


def _pair_edit(kind: str, rich_db: Path):  # type: ignore[no-untyped-def]
    """An edit of the first pair row that makes it unstorable, and the problem it must be refused with."""
    vector_space = db_rows(rich_db, "SELECT space_id FROM spaces WHERE comparison = 'vector' ORDER BY 1")[0][0]

    def edit(row: dict) -> dict:  # type: ignore[type-arg]
        if kind == "order":
            row["clip_sha256_a"], row["clip_sha256_b"] = row["clip_sha256_b"], row["clip_sha256_a"]
        elif kind == "nan":  # a clip paired with itself: a key not stored, so the value is what is checked
            row["clip_sha256_b"] = row["clip_sha256_a"]
            row["l2_distance"] = float("nan")
        elif kind == "space":
            row["space_id"] = vector_space
        elif kind == "clip":
            row["clip_sha256_b"] = "f" * 64
        return row

    needle = {"order": "is not in order", "nan": "NaN, infinite or negative",
              "space": f"space {vector_space}, which is not a pairwise space",
              "clip": f"clip {'f' * 64}, which is not stored (nor in the import)"}[kind]
    return edit, needle


@pytest.mark.parametrize("kind", ["order", "nan", "space", "clip"])
def test_a_pair_distance_that_cannot_be_stored_is_refused_with_its_file(
    rich_db: Path, exported: Path, tmp_path: Path, kind: str
) -> None:
    edit, needle = _pair_edit(kind, rich_db)
    src = sorted((exported / "pair_distances").rglob("*.parquet"))[0]
    tbl = pq.read_table(src)
    rows = tbl.to_pylist()
    rows[0] = edit(rows[0])
    dest = tmp_path / "dump" / "pair_distances" / "part-00000.parquet"  # the space from the column, not the path
    dest.parent.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=tbl.schema), dest)
    store = copy_store(rich_db, tmp_path / "s.duckdb")
    before = _carried_rows(store, BY_NAME["pair_distances"])
    result = CLI(store, None)("import", "embeddings", str(tmp_path / "dump"), ok=False)
    assert result.exit_code == 1
    (line,) = [x for x in result.stderr.splitlines() if str(dest) in x]
    assert needle in line and "nothing from this file was merged" in line, line
    assert _carried_rows(store, BY_NAME["pair_distances"]) == before


def test_a_row_the_schema_refuses_names_the_constraint_not_an_aborted_transaction(
    exported: Path, tmp_path: Path
) -> None:
    dump = _copy_dir(exported, tmp_path / "dump")
    victim = sorted((dump / "variants").glob("*.parquet"))[0]
    tbl = pq.read_table(victim)
    effects = tbl.column("effect").to_pylist()
    i = next(k for k, e in enumerate(effects) if e != "original")
    effects[i] = "chorus"  # not an effect of the schema's CHECK list
    pq.write_table(tbl.set_column(tbl.schema.get_field_index("effect"), "effect", pa.array(effects, pa.string())), victim)
    result = CLI(tmp_path / "t.duckdb", None)("import", "embeddings", str(dump), ok=False)
    (line,) = [x for x in result.stderr.splitlines() if str(victim) in x]
    assert "cannot be merged" in line and "Constraint" in line and "aborted" not in line, line
    assert "aborted" not in result.stderr
