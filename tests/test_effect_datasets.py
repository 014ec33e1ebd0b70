"""SocialFX compression and SAFE-DB as exp2 datasets: reading, bad rows, medians, storage, query exp2 --effect."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import duckdb
import numpy as np
import pytest

from tests.conftest import CLI, copy_store, db_rows
from timbredb.datasets.effect_words import words_of

# ---------------------------------------------------------------- synthetic files in the datasets' layouts
META = ["", "", "", "", "", ""]  # genre, instrument, location, experience, age, language


def _safe_row(i: int, words: str, params: list[float]) -> list[str]:
    return [str(i), words, "10.0.0.1", "2", "2", *[f"{v:.6g}" for v in params], *META, f"{i:032x}"]


EQ_WARM = [[6, 200, 3, 300, 1.0, -2, 1000, 1.0, -4, 3300, 1.0, -6, 8000],
           [4, 150, 1, 250, 0.7, -1, 900, 2.0, -6, 3000, 0.5, -8, 9000],
           [5, 180, 2, 400, 0.9, 0, 1100, 1.5, -5, 3500, 1.2, -7, 7000]]
EQ_BRIGHT = [[-4, 150, -2, 500, 1.0, 2, 1500, 1.0, 5, 4000, 1.0, 8, 6000],
             [-6, 100, -1, 600, 1.0, 3, 2000, 1.0, 6, 5000, 2.0, 10, 5000],
             [-5, 120, 0, 560, 0.8, 1, 1800, 0.9, 4, 4500, 1.0, 9, 7000]]
COMP_PUNCHY = [[-20, 4, 6, 5, 100, 3], [-25, 6, 3, 10, 200, 5], [-18, 3, 0, 2, 50, 2]]
DIST_CRUNCH = [[20, 0.3, 0.1, 0.8, -6], [25, 0.5, 0.0, 0.7, -9], [15, 0.2, 0.3, 0.9, -3]]


def write_safedb(root: Path) -> dict[str, int]:
    """SAFE-DB CSVs: good rows for warm/bright (EQ), loud (compressor), harsh (distortion), and bad rows.

    Returns the number of bad rows per file.
    """
    folder = root / "safedb"
    folder.mkdir(parents=True)
    eq = [_safe_row(i + 1, "Warm", p) for i, p in enumerate(EQ_WARM)]
    eq += [_safe_row(4 + i, "bright, airy" if i == 0 else "Bright", p) for i, p in enumerate(EQ_BRIGHT)]
    eq += [_safe_row(7, "test", EQ_WARM[0])]  # a placeholder word: not a bad row, just no word
    eq.append(_safe_row(8, "warm", EQ_WARM[0])[:-3])  # too few columns
    bad_gain = _safe_row(9, "warm", EQ_WARM[0])
    bad_gain[5] = "loud"  # not a number
    eq.append(bad_gain)
    out_of_range = _safe_row(10, "warm", EQ_WARM[0])
    out_of_range[6] = "5000"  # band 1 frequency above the plug-in's 1000 Hz
    eq.append(out_of_range)
    # (words of the synthetic socialfx-eq vocabulary, so that the text baseline has trajectories)
    comp = [_safe_row(i + 1, "loud", p) for i, p in enumerate(COMP_PUNCHY)]
    comp.append(_safe_row(4, "", COMP_PUNCHY[0]))  # no descriptor
    dist = [_safe_row(i + 1, "harsh", p) for i, p in enumerate(DIST_CRUNCH)]
    dist.append(_safe_row(4, "harsh", [20, 1.5, 0.1, 0.8, -6]))  # knee above 1
    for name, rows in (("SAFEEqualiserUserData.csv", eq), ("SAFECompressorUserData.csv", comp),
                       ("SAFEDistortionUserData.csv", dist)):
        with open(folder / name, "w", newline="") as f:
            csv.writer(f).writerows(rows)
    return {"SAFEEqualiserUserData.csv": 3, "SAFECompressorUserData.csv": 1, "SAFEDistortionUserData.csv": 1}


SFX_WARM = [[-40, 20, 4, 0.01, 0.2], [-50, 10, 8, 0.02, 0.4], [-30, 30, 2, 0.03, 0.1], [-60, 5, 10, 0.001, 0.9]]
SFX_HEADER = ["likert", "effectTime", "didnotagree", "rawwords", "agreed", "when", "userid", "effect", "param",
              "quiet", "surveyID", "sessionid", "key", "useragent", "ind", "cleanTime", "irb", "words", "audioFile",
              "listen"]


def write_socialfx(root: Path) -> int:
    folder = root / "socialfx"
    folder.mkdir(parents=True)

    def row(words: str, param: str, effect: str = "compression") -> list[str]:
        return ["1", "1.0", "", words, "", "2016-04-08", "u", effect, param, "yes", "s", "x", "k", "Chrome", "3",
                "1.0", "true", words, "/static/audio/drums4.wav", "headphones"]

    rows = [row("warm,loud" if i == 0 else "warm", ",".join(map(str, p))) for i, p in enumerate(SFX_WARM)]
    rows.append(row("the,drums,got,a,lot,more,warm,and,loud", "-40,20,4,0.01,0.2"))  # a sentence: no words
    rows.append(row("warm", "-40,20,4,0.01"))  # four values
    rows.append(row("warm", "-40,20,40,0.01,0.2"))  # ratio 40
    rows.append(row("warm", "-40,20,4,0.01,0.2", effect="eq"))
    with open(folder / "comp_contributions.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(SFX_HEADER)
        w.writerows(rows)
    return 3


@pytest.fixture(scope="module")
def fx_data(tmp_path_factory: pytest.TempPathFactory, synth_data_dir: Path) -> tuple[Path, dict[str, int], int]:
    root = tmp_path_factory.mktemp("fx-data")
    (root / "audealize").symlink_to(synth_data_dir / "audealize", target_is_directory=True)
    return root, write_safedb(root), write_socialfx(root)


@pytest.fixture(scope="module")
def fx_store(tmp_path_factory: pytest.TempPathFactory, filled_db: Path, fx_data) -> tuple[Path, Path, dict]:
    """A copy of the filled store before and after ingesting socialfx-comp and safedb, with the outputs."""
    data, _, _ = fx_data
    root = tmp_path_factory.mktemp("fx-store")
    db = copy_store(filled_db, root / "fx.duckdb")
    cli = CLI(db, data)
    before = {args: cli("query", "exp2", *args).stdout for args in QUERIES}
    out = cli("ingest", "socialfx-comp", "safedb", "--models", "mfcc,socialfx-eq", "--strengths", "0.5,1.0",
              "--length-s", "1.0", "--min-contributions", "2", "--format", "json")
    return db, data, {"before": before, "summary": json.loads(out.stdout), "stderr": out.stderr}


QUERIES = ((), ("--detail", "--format", "json"), ("--study-tables",), ("--format", "csv"))


# ---------------------------------------------------------------- words and rows
@pytest.mark.parametrize("text,words", [
    ("Warm", ["warm"]), ("Toppy, Thick", ["toppy", "thick"]), ("bright and airy", ["bright", "airy"]),
    ("warm/fat; round", ["warm", "fat", "round"]), ("very warm", []), ("test", []), ("re27", []),
    ("no-change", ["no-change"]), ("warm, warm", ["warm"]), ("", []),
    ("the,drumming,become,a,bit,louder,and,the,sound", []),  # a sentence typed into the box
])
def test_words_of_a_description(text: str, words: list[str]) -> None:
    assert words_of(text) == words


def test_bad_rows_are_one_line_each_and_the_rest_is_read(fx_data) -> None:
    from timbredb.datasets import safedb, socialfx

    data, bad, n_bad_sfx = fx_data
    plans = {p.label: p for p in safedb.plans(data)}
    eq = plans["safe-eq"].contributions
    assert len(eq.bad) == bad["SAFEEqualiserUserData.csv"]
    problems = dict(eq.bad)
    assert problems[8].startswith("22 columns, expected 25")
    assert problems[9] == "band1_gain_db 'loud' is not a number"
    assert problems[10] == "band1_freq_hz 5000 is outside the plug-in's range [22, 1000]"
    assert sorted(eq.by_word) == ["airy", "bright", "warm"] and eq.rows == 7
    assert plans["safe-compression"].contributions.bad == [(4, "no descriptor")]
    assert plans["safe-distortion"].contributions.bad == [(4, "knee 1.5 is outside the plug-in's range [0, 1]")]
    sfx = socialfx.read_contributions(data / "socialfx" / "comp_contributions.csv")
    assert [p for _, p in sfx.bad] == [
        "param: 4 parameter values, expected 5", "param: ratio 40 is outside the plug-in's range [1, 20]",
        "effect 'eq', expected 'compression'",
    ]
    assert len(sfx.bad) == n_bad_sfx and [line for line, _ in sfx.bad] == [7, 8, 9]  # header is line 1
    assert sfx.counts() == {"warm": 4, "loud": 1}


def test_a_word_setting_is_the_median_of_each_parameter(fx_data) -> None:
    from timbredb.datasets import safedb, socialfx

    data, _, _ = fx_data
    plans = {p.label: p for p in safedb.plans(data)}
    assert plans["safe-eq"].contributions.median("warm") == tuple(np.median(np.array(EQ_WARM), axis=0))
    assert plans["safe-eq"].contributions.median("bright") == tuple(np.median(np.array(EQ_BRIGHT), axis=0))
    assert plans["safe-compression"].contributions.median("loud") == tuple(np.median(np.array(COMP_PUNCHY), axis=0))
    sfx = socialfx.read_contributions(data / "socialfx" / "comp_contributions.csv")
    assert sfx.median("warm") == tuple(np.median(np.array(SFX_WARM), axis=0))  # an even count: mean of the middle two


# ---------------------------------------------------------------- ingest, storage, analysis
def test_ingest_reports_bad_rows_and_stores_variants_by_dataset_and_effect(fx_store, fx_data) -> None:
    db, data, res = fx_store
    _, bad, n_bad_sfx = fx_data
    summary = res["summary"]
    lines = [e["error"] for e in summary["errors"]]
    assert len(lines) == sum(bad.values()) + n_bad_sfx
    assert any(line == f"{data / 'safedb' / 'SAFEEqualiserUserData.csv'}: line 9: band1_gain_db 'loud' is not a number"
               for line in lines)
    assert all(": line " in line for line in lines)
    # one stderr line per bad row
    assert sum(1 for line in res["stderr"].splitlines() if ": line " in line) == len(lines)
    safe = summary["datasets"]["safedb"]
    assert safe["words"] == {"safe-eq": ["bright", "warm"], "safe-compression": ["loud"], "safe-distortion": ["harsh"]}
    assert safe["renderer_version"] == "timbredb-fx/1/1s" and safe["bad_rows"] == 5
    assert summary["datasets"]["socialfx-comp"]["words"] == {"socialfx-compression": ["warm"]}
    rows = db_rows(db, "SELECT dataset, effect, count(*) FROM variants GROUP BY ALL ORDER BY ALL")
    n_sources = 4
    assert rows == [
        ("audealize", "eq", 2 * 2 * n_sources), ("audealize", "original", n_sources), ("audealize", "reverb", 3 * 2 * n_sources),
        ("safedb", "original", n_sources), ("safedb", "safe-compression", 2 * n_sources),
        ("safedb", "safe-distortion", 2 * n_sources), ("safedb", "safe-eq", 4 * n_sources),
        ("socialfx", "original", n_sources), ("socialfx", "socialfx-compression", 2 * n_sources),
    ]
    (params,) = db_rows(db, "SELECT params FROM variants WHERE effect = 'safe-compression' AND strength = 0.5 LIMIT 1")[0]
    p = json.loads(params)
    assert p["contributions"] == 3 and p["word"]["ratio"] == 4.0 and p["setting"]["ratio"] == 2.5
    assert p["setting"]["makeup_db"] == 1.5 and p["setting"]["threshold_db"] == -20.0
    # the originals of each dataset are the same clip as Audealize's (same source, same trim)
    originals = db_rows(db, "SELECT count(DISTINCT clip_sha256), count(*) FROM variants WHERE effect = 'original'")
    assert originals == [(n_sources, 3 * n_sources)]


def test_a_rerun_renders_nothing(fx_store) -> None:
    db, data, _ = fx_store
    out = CLI(db, data)("ingest", "safedb", "--models", "mfcc,socialfx-eq", "--strengths", "0.5,1.0", "--length-s",
                        "1.0", "--min-contributions", "2", "--format", "json")
    s = json.loads(out.stdout)["datasets"]["safedb"]
    assert s["rendered"] == 0 and s["reused"] == s["variants"]


def test_query_exp2_is_unchanged_by_other_datasets_and_takes_effect(fx_store) -> None:
    db, data, res = fx_store
    cli = CLI(db, data)
    for args in QUERIES:
        assert cli("query", "exp2", *args).stdout == res["before"][args], args
    out = json.loads(cli("query", "exp2", "--effect", "every", "--format", "json").stdout)
    effects = [r["effect"] for r in out if r["model"] == "socialfx-eq"]
    assert effects == ["eq", "reverb", "socialfx-compression", "safe-eq", "safe-compression", "safe-distortion", "all"]
    only = json.loads(cli("query", "exp2", "--effect", "safedb", "--model", "socialfx-eq", "--format", "json").stdout)
    assert [r["effect"] for r in only] == ["safe-eq", "safe-compression", "safe-distortion", "all"]
    comp = json.loads(cli("query", "exp2", "--effect", "compression", "--format", "json").stdout)
    assert {r["effect"] for r in comp} == {"socialfx-compression", "safe-compression", "all"}
    # 'all' aggregates exactly the selected effects
    every = {r["effect"]: r for r in out if r["model"] == "socialfx-eq"}
    assert every["all"]["n_trajectories"] == sum(r["n_trajectories"] for e, r in every.items() if e != "all")
    t = json.loads(cli("query", "exp2", "--effect", "safe-eq", "--study-tables", "--format", "json").stdout)
    assert [r["effect_type"] for r in t["table2"]] == ["safe-eq"]
    bad = cli("query", "exp2", "--effect", "reverbs", ok=False)
    assert bad.exit_code == 1 and "--effect: 'reverbs'" in bad.stderr and bad.stderr.count("\n") == 1


def test_exp2_views_show_the_dataset(fx_store) -> None:
    db, data, _ = fx_store
    rows = db_rows(db, "SELECT DISTINCT dataset, effect FROM exp2_trajectories ORDER BY ALL")
    assert ("safedb", "safe-eq") in rows and ("audealize", "eq") in rows and ("socialfx", "socialfx-compression") in rows


def test_every_dataset_means_the_default_ones(tmp_path: Path) -> None:
    from timbredb.datasets.registry import datasets, default_datasets

    assert default_datasets() == ["ccmusic", "audealize", "timbremetrics"]
    assert {"socialfx-comp", "safedb"} <= set(datasets())


def test_a_missing_dataset_folder_is_one_error(tmp_path: Path, synth_data_dir: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "audealize").symlink_to(synth_data_dir / "audealize", target_is_directory=True)
    out = CLI(tmp_path / "s.duckdb", data)("ingest", "safedb", "--models", "mfcc", "--format", "json")
    errors = json.loads(out.stdout)["errors"]
    assert len(errors) == 1 and errors[0]["path"] == "safedb" and "SAFEEqualiserUserData.csv: not found" in errors[0]["error"]


# ---------------------------------------------------------------- the migration keeps old stores' rows
def test_migration_0007_keeps_every_variant_and_import_of_an_older_store(tmp_path: Path) -> None:
    from timbredb import schema
    from timbredb.store import Store

    db = tmp_path / "old.duckdb"
    con = duckdb.connect(str(db))
    con.execute(schema._LEDGER)
    for mig in schema.available_migrations():
        if mig.version <= 4:
            con.execute(mig.sql)
            con.execute("INSERT INTO schema_migrations (version, name, sha256) VALUES (?, ?, ?)",
                        [mig.version, mig.name, mig.sha256])
    con.execute("INSERT INTO variants (source_sha256, effect, descriptor, strength, renderer_version, clip_sha256, "
                "params, duration_s, tail_s) VALUES ('s', 'original', '', 0, 'timbredb-dsp/1/full', 'c0', '{}', 1, 0), "
                "('s', 'eq', 'warm', 0.5, 'timbredb-dsp/1/full', 'c1', '{}', 1, 0.1)")
    con.execute("INSERT INTO exp2_imported (model, effect, source, descriptor, template, prompt, strength, "
                "original_cosine, variant_cosine, delta, file, file_sha256, line) VALUES "
                "('m', 'reverb', 'guitar', 'hall', 'a {} sound', 'a hall sound', 1.0, 0.1, 0.3, 0.2, 'f', 'h', 2)")
    con.execute("INSERT INTO spaces (space_id, label, model_id, family, checkpoint, policy, dim, sample_rate, "
                "similarity, modalities) VALUES ('x', 'mfcc', 'mfcc', 'baseline', 'c', '{}', 40, 44100, 'cosine', ['audio'])")
    before = con.execute("SELECT * FROM exp2_trajectories ORDER BY ALL").fetchall()
    con.close()
    with pytest.raises(Exception, match="migration 4 of"):
        Store(db)
    with Store(db, upgrade=True) as store:
        assert [s.comparison for s in store.spaces()] == ["vector"]
    rows = db_rows(db, "SELECT dataset, effect, descriptor, clip_sha256 FROM variants ORDER BY effect")
    assert rows == [("audealize", "eq", "warm", "c1"), ("audealize", "original", "", "c0")]
    after = db_rows(db, "SELECT * EXCLUDE (dataset) FROM exp2_trajectories ORDER BY ALL")
    assert after == before and db_rows(db, "SELECT dataset FROM exp2_imported") == [("audealize",)]
    con = duckdb.connect(str(db))
    with pytest.raises(duckdb.ConstraintException):
        con.execute("INSERT INTO variants (source_sha256, dataset, effect, descriptor, strength, renderer_version, "
                    "clip_sha256, params, duration_s, tail_s) VALUES ('s', 'nowhere', 'eq', 'w', 1, 'r', 'c', '{}', 1, 0)")
    con.close()


# ---------------------------------------------------------------- the two crowds' EQ, and the report
def test_eq_crowds_compares_responses_and_slopes_of_shared_words(fx_store) -> None:
    from scipy import stats

    from timbredb.analysis.exp2 import eq_response_db, run_exp2
    from timbredb.datasets.safedb import EQ_PARAMS
    from timbredb.store import Store

    db, _, _ = fx_store
    with Store(db, read_only=True) as store:
        res = run_exp2(store, compare_eq=True, detail=True, effect="eq,safe-eq")
    words = res["eq_words"]
    assert words["word"].to_list() == ["bright", "warm"]  # the words both crowds' EQ variants describe
    # the SAFE response is measured from the rendered chain: a single peak measures its gain at its centre
    setting = dict(zip([p.name for p in EQ_PARAMS], [0.0, 150, 0, 560, 1, 6.0, 971, 2.0, 0, 3300, 1, 0, 8200]))
    response = eq_response_db("safe-eq", setting)
    from timbredb.dsp import EQ_CENTRES_HZ

    assert response[list(EQ_CENTRES_HZ).index(971)] == pytest.approx(6.0, abs=0.05)
    assert abs(response[0]) < 0.1 and abs(response[-1]) < 0.1
    # Audealize's: 5 dB x the normalised curve, at its own centres (neighbouring bands overlap a little)
    curve = np.zeros(40)
    curve[20] = 1.0
    assert eq_response_db("eq", list(curve))[20] == pytest.approx(5.0, abs=0.3)
    traj = res["trajectories"]
    pairs = res["eq_agreement"]
    for r in pairs.iter_rows(named=True):
        a = traj.filter((traj["effect"] == "eq") & (traj["descriptor"] == r["word"]) & (traj["source"] == r["source"])
                        & (traj["model"] == r["model"]))["slope"][0]
        assert r["slope_audealize"] == a and r["same_sign"] == ((a > 0) == (r["slope_safe"] > 0))
    summary = res["eq_agreement_summary"].row(0, named=True)
    x, y = pairs["slope_audealize"].to_numpy(), pairs["slope_safe"].to_numpy()
    assert summary["n_pairs"] == 8 and summary["sign_agreement"] == pytest.approx(float(np.mean(np.sign(x) == np.sign(y))))
    assert summary["slope_r"] == pytest.approx(stats.pearsonr(x, y).statistic)
    assert summary["slope_rho"] == pytest.approx(stats.spearmanr(x, y).statistic)


def test_the_report_shows_the_other_datasets_and_the_two_crowds(fx_store, tmp_path: Path) -> None:
    db, data, _ = fx_store
    out = tmp_path / "rep"
    CLI(db, data)("report", "--out", out, "--effect", "safe-eq", "--words", "bright,warm")
    html = (out / "report.html").read_text()
    for name in ("exp2_table1", "exp2_other_effects", "exp2_eq_crowds_words", "exp2_eq_crowds_models"):
        assert (out / "tables" / f"{name}.csv").is_file(), name
    assert (out / "figures" / "exp2_other_trajectories.png").is_file()
    assert "Two crowds, one word" in html and "safe-distortion" in html
    # the study's part is unchanged: its tables hold eq and reverb only
    table2 = (out / "tables" / "exp2_table2.csv").read_text()
    assert "safe-eq" not in table2 and ",eq," in table2
