"""`timbredb import exp1` and `timbredb export exp1`: the study release's two layouts (synthesized),
name normalisation, one-line errors naming file and row with nothing written, local-name clashes,
and an export -> import round trip equal to the local results."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from tests.ccmusic_fixture import make_instruments, synthetic_release, write_local, write_release
from tests.conftest import CLI, db_rows

RELEASE_NAMES = {"laion-clap": "LAION_CLAP", "msclap": "MSCLAP", "muq-mulan": "MuQ_MuLan", "openflam": "OpenFLAM"}


@pytest.fixture(scope="session")
def data_dir(synth_data_dir: Path) -> Path:
    return synth_data_dir


@pytest.fixture
def release(tmp_path: Path) -> tuple[Path, dict]:
    instruments = make_instruments(n_chinese=5, n_western=4, seconds=0.2)
    models = synthetic_release(instruments, tuple(RELEASE_NAMES))
    return write_release(tmp_path / "experiment1", models, RELEASE_NAMES), models


def test_release_folder_imports_every_model_under_normalised_names(release, tmp_path: Path, data_dir: Path) -> None:
    folder, models = release
    cli = CLI(tmp_path / "s.duckdb", data_dir)
    out = json.loads(cli("import", "exp1", str(folder), "--format", "json").stdout)
    assert set(out["models"]) == {"laion-clap", "msclap", "muq-mulan", "openflam"}
    assert out["models"]["msclap"]["model_id"] == "ms-clap"  # the registered model it stands for
    assert out["models"]["laion-clap"]["model_id"] == "laion-clap"
    assert out["models"]["muq-mulan"] == {"model_id": "muq-mulan", "descriptors": 16, "instruments": 9,
                                          "splits": ["chinese", "western"], "replaced": 0}
    stored = {(m, lvl, s, u): (r, rho) for m, lvl, s, u, r, rho in
              db_rows(cli.db, "SELECT model, level, split, unit, pearson_r, spearman_rho FROM exp1_imported")}
    for m, (desc, splits) in models.items():
        for d, v in desc.items():
            assert stored[(m, "descriptor", "all", d)] == v  # values exactly as written
        for split, rows in splits.items():
            for inst, v in rows.items():
                assert stored[(m, "instrument", split, inst)] == v
    again = json.loads(cli("import", "exp1", str(folder), "--format", "json").stdout)
    assert again["models"]["openflam"]["replaced"] == 25
    assert db_rows(cli.db, "SELECT count(*) FROM exp1_imported")[0][0] == 4 * 25


def test_one_file_and_the_fresh_run_layout(release, tmp_path: Path, data_dir: Path) -> None:
    folder, models = release
    cli = CLI(tmp_path / "s.duckdb", data_dir)
    cli("import", "exp1", str(folder / "openflam_western.csv"), "--model", "flam-copy")
    rows = db_rows(cli.db, "SELECT level, split, count(*) FROM exp1_imported WHERE model = 'flam-copy' GROUP BY ALL")
    assert rows == [("instrument", "western", 4)]
    res = cli("import", "exp1", str(folder / "descriptors.csv"), "--model", "x", ok=False)
    assert res.exit_code == 1 and "holds several models" in res.stderr
    # the fresh-run layout: descriptors.csv without a model column, instruments.csv with a split column, run.json
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    desc, splits = models["laion-clap"]
    with (fresh / "descriptors.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["descriptor", "pearson", "spearman"])
        w.writerows([[d, r, rho] for d, (r, rho) in desc.items()])
    with (fresh / "instruments.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["instrument", "split", "pearson", "spearman"])
        w.writerows([[i, s.capitalize(), r, rho] for s, rows in splits.items() for i, (r, rho) in rows.items()])
    (fresh / "similarities.csv").write_text("instrument,bright\nx,0.1\n")
    (fresh / "run.json").write_text(json.dumps({"model": "laion-clap", "package_versions": {}}))
    out = json.loads(cli("import", "exp1", str(fresh), "--suffix", "-fresh", "--format", "json").stdout)
    assert out["models"]["laion-clap-fresh"]["splits"] == ["chinese", "western"]
    assert out["models"]["laion-clap-fresh"]["model_id"] == "laion-clap" and out["ignored"] == ["similarities.csv"]


def _rewrite(path: Path, edit) -> None:
    rows = list(csv.reader(path.open(encoding="utf-8")))
    edit(rows)
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)


@pytest.mark.parametrize(
    ("file", "edit", "needle"),
    [
        ("descriptors.csv", lambda r: r[3].__setitem__(2, "high"), "descriptors.csv: line 4: pearson 'high' is not a number"),
        ("descriptors.csv", lambda r: r[5].__setitem__(2, "1.5"), "descriptors.csv: line 6: pearson 1.5 is not a correlation"),
        ("descriptors.csv", lambda r: r.append(list(r[1])), "duplicate (laion-clap, bright), first on line 2"),
        ("descriptors.csv", lambda r: r[2].__setitem__(3, "nan"), "line 3: spearman is nan (must be finite)"),
        ("msclap_chinese.csv", lambda r: r.append(list(r[2])), "msclap_chinese.csv: line 7: duplicate instrument"),
        ("msclap_chinese.csv", lambda r: r[0].__setitem__(0, "name"), "msclap_chinese.csv: not an exp1 results file"),
        ("openflam_western.csv", lambda r: r[2].append("x"), "openflam_western.csv: line 3: 4 values but the header has 3"),
    ],
)
def test_a_bad_row_is_one_line_naming_file_and_row_and_nothing_is_written(release, tmp_path: Path, data_dir: Path,
                                                                          file: str, edit, needle: str) -> None:
    folder, _ = release
    _rewrite(folder / file, edit)
    cli = CLI(tmp_path / "s.duckdb", data_dir)
    res = cli("import", "exp1", str(folder), ok=False)
    assert res.exit_code == 1
    line = res.stderr.strip()
    assert needle in line and "\n" not in line, line
    assert db_rows(cli.db, "SELECT count(*) FROM exp1_imported")[0][0] == 0


def test_local_names_clash_and_export_round_trip(tmp_path: Path, data_dir: Path) -> None:
    write_local(tmp_path / "data", make_instruments(n_chinese=4, n_western=3, seconds=0.3))
    (tmp_path / "data" / "audealize").symlink_to(data_dir / "audealize", target_is_directory=True)
    cli = CLI(tmp_path / "s.duckdb", tmp_path / "data")
    cli("ingest", "ccmusic", "--models", "mfcc,socialfx-eq")
    out = tmp_path / "export"
    cli("export", "exp1", str(out))
    assert sorted(p.name for p in out.iterdir()) == ["descriptors.csv", "socialfx-eq_chinese.csv",
                                                      "socialfx-eq_western.csv"]
    clash = cli("import", "exp1", str(out), ok=False)
    assert clash.exit_code == 1 and "'socialfx-eq': already a model computed in this store" in clash.stderr
    cli("import", "exp1", str(out), "--suffix", "-copy")
    local = json.loads(cli("query", "exp1", "--model", "socialfx-eq", "--bootstrap", "0", "--permutations", "0",
                           "--format", "json").stdout)
    imported = {(lvl, s, u): r for lvl, s, u, r in
                db_rows(cli.db, "SELECT level, split, unit, pearson_r FROM exp1_imported WHERE model = 'socialfx-eq-copy'")}
    finite = [r for r in local["descriptors"] if r["split"] == "all" and r["pearson_r"] is not None]
    assert finite and all(imported[("descriptor", "all", r["descriptor"])] == r["pearson_r"] for r in finite)
    assert all(imported[("instrument", r["split"], r["instrument"])] == r["pearson_r"]
               for r in local["instruments"] if r["pearson_r"] is not None)
    # the local model and its imported copy compare as equal: diff 0 everywhere
    rows = json.loads(cli("query", "compare", "--models", "socialfx-eq,socialfx-eq-copy", "--format", "json").stdout)
    assert rows and all(math.isclose(r["diff"], 0.0, abs_tol=1e-12) and r["p_value"] == 1.0 for r in rows)
