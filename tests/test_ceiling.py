"""`query ceiling`: split-half (Spearman-Brown) against an exhaustive enumeration of listener splits
with scipy, the SD method against its formula, both against a known simulated reliability, the
CCMusic listener files, NaN/constant cases, and bad input."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from tests.ccmusic_fixture import listener_ratings, make_instruments, write_listener_files
from tests.conftest import CLI, db_rows
from tests.rated_fixture import build
from timbredb.analysis import ceiling, stats
from timbredb.errors import AnalysisError
from timbredb.store import Store

KEYS = ["dataset", "descriptor", "method", "n_listeners", "n_stimuli", "reliability", "ceiling_r"]


@pytest.fixture(scope="session")
def data_dir(synth_data_dir: Path) -> Path:
    return synth_data_dir


def exhaustive_split_half(m: np.ndarray, corrected: bool = True) -> float:
    """The mean over every assignment of floor(L/2) listeners to the first half, with scipy's pearsonr.

    Each half's mean per stimulus over the listeners who rated it; stimuli lacking a rating in a
    half are left out of that split. A random split is uniform over these assignments, so the
    mean of many random splits converges to this value.
    """
    n_list = m.shape[1]
    values = []
    for first in itertools.combinations(range(n_list), n_list // 2):
        second = [j for j in range(n_list) if j not in first]
        with np.errstate(all="ignore"):
            a = np.nanmean(m[:, list(first)], axis=1)
            b = np.nanmean(m[:, second], axis=1)
        ok = np.isfinite(a) & np.isfinite(b)
        r = sps.pearsonr(a[ok], b[ok])[0]
        values.append(2 * r / (1 + r) if corrected else r)
    return float(np.mean(values))


def _panel(n_stim: int, n_list: int, true_sd: float, noise_sd: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    true = rng.normal(5, true_sd, n_stim)
    return true[:, None] + rng.normal(0, noise_sd, (n_stim, n_list))


def test_split_half_converges_to_the_exhaustive_spearman_brown_average() -> None:
    m = _panel(15, 6, 1.0, 1.5, 0)
    m[3, 2] = np.nan
    m[9, 5] = np.nan
    values = ceiling.split_half_values(m, 4000, stats.rng(0, 1))
    corrected, raw = exhaustive_split_half(m), exhaustive_split_half(m, corrected=False)
    se = float(np.std(values) / np.sqrt(values.size))
    assert abs(values.mean() - corrected) < 4 * se + 1e-12
    # dropping Spearman-Brown would land on the raw half-panel r, many standard errors away
    assert abs(corrected - raw) > 20 * se
    # each split's value is one of the exhaustive set's values
    exact = set()
    for first in itertools.combinations(range(6), 3):
        second = [j for j in range(6) if j not in first]
        a, b = np.nanmean(m[:, list(first)], axis=1), np.nanmean(m[:, second], axis=1)
        r = sps.pearsonr(a, b)[0]
        exact.add(round(2 * r / (1 + r), 9))
    assert {round(float(v), 9) for v in values} <= exact


def test_odd_panels_split_floor_half_and_spearman_brown_formula() -> None:
    np.testing.assert_allclose(ceiling.spearman_brown(np.array([0.0, 0.5, 0.8, -0.2])),
                               [0.0, 2 / 3, 1.6 / 1.8, -0.4 / 0.8])
    m = _panel(10, 5, 1.0, 1.0, 2)
    values = ceiling.split_half_values(m, 3000, stats.rng(1, 2))
    se = float(np.std(values) / np.sqrt(values.size))
    assert abs(values.mean() - exhaustive_split_half(m)) < 4 * se + 1e-12


def test_sd_method_equals_its_formula_and_both_recover_a_known_reliability() -> None:
    rng = np.random.default_rng(9)
    means, sds, n = rng.uniform(2, 8, 12), rng.uniform(0.5, 2, 12), rng.integers(10, 15, 12)
    expected = 1 - np.mean(sds**2 / n) / np.var(means, ddof=1)
    assert ceiling.sd_reliability(means, sds, n) == pytest.approx(expected)
    # a simulated panel: true spread 1, listener noise 2, 14 listeners -> reliability 1 / (1 + 4/14)
    m = _panel(400, 14, 1.0, 2.0, 4)
    truth = 1.0 / (1.0 + 4.0 / 14.0)
    split = ceiling.split_half_reliability(m, 300, stats.rng(0, 3))
    sd = ceiling.sd_reliability(m.mean(axis=1), m.std(axis=1, ddof=1), np.full(400, 14))
    assert split == pytest.approx(truth, abs=0.04) and sd == pytest.approx(truth, abs=0.04)


def test_nan_and_constant_cases() -> None:
    same = np.repeat(np.linspace(1, 9, 7)[:, None], 4, axis=1)  # every listener agrees: reliability 1
    assert ceiling.split_half_reliability(same, 50, stats.rng(0)) == pytest.approx(1.0)
    flat = np.full((6, 4), 5.0)  # no spread over stimuli: undefined
    assert math.isnan(ceiling.split_half_reliability(flat, 50, stats.rng(0)))
    assert math.isnan(ceiling.sd_reliability(np.full(5, 3.0), np.ones(5), np.full(5, 10)))
    assert math.isnan(ceiling.split_half_reliability(_panel(8, 1, 1, 1, 0), 10, stats.rng(0)))  # one listener
    assert math.isnan(ceiling.sd_reliability(np.array([1.0, 2.0]), np.ones(2), np.full(2, 5)))  # two stimuli
    noisy = ceiling.sd_reliability(np.array([5.0, 5.1, 4.9, 5.05]), np.full(4, 3.0), np.full(4, 4))
    assert noisy < 0 and math.isnan(ceiling.ceiling_r(noisy))  # noise beyond the spread: no ceiling


def test_query_ceiling_on_a_dataset_with_raw_listener_ratings(tmp_path: Path, data_dir: Path) -> None:
    db = tmp_path / "s.duckdb"
    fx = build(db, n_stimuli=12, n_listeners=6)
    cli = CLI(db, data_dir)
    rows = json.loads(cli("query", "ceiling", "--dataset", "toy", "--splits", "300", "--format", "json").stdout)
    assert rows and all(list(r) == KEYS for r in rows)
    got = {(r["descriptor"], r["method"]): r for r in rows}
    assert set(got) == {("soft", "split-half"), ("soft", "sd"), ("thin", "split-half"), ("thin", "sd")}
    for w in ("soft", "thin"):
        m = fx.listeners[w]
        sh = got[(w, "split-half")]
        assert (sh["n_listeners"], sh["n_stimuli"]) == (6, 12)
        values = ceiling.split_half_values(m, 300, stats.rng(0, stats.stable_key("\x1f".join(["toy", w, *fx.stimuli]))))
        assert sh["reliability"] == pytest.approx(values.mean())
        se = float(np.std(values) / np.sqrt(values.size))
        assert abs(sh["reliability"] - exhaustive_split_half(m)) < 4 * se + 1e-9
        assert sh["ceiling_r"] == pytest.approx(math.sqrt(sh["reliability"]))
        # sd method: SDs (ddof 1) and counts from the raw ratings, the stored means
        j = fx.descriptors.index(w)
        sds = [np.std(row[np.isfinite(row)], ddof=1) for row in m]
        ns = [np.isfinite(row).sum() for row in m]
        expected = 1 - np.mean(np.square(sds) / np.array(ns)) / np.var(fx.ratings[:, j], ddof=1)
        assert got[(w, "sd")]["reliability"] == pytest.approx(expected)
    # seeded; another seed gives other splits
    again = json.loads(cli("query", "ceiling", "--dataset", "toy", "--splits", "300", "--format", "json").stdout)
    assert again == rows
    other = json.loads(cli("query", "ceiling", "--dataset", "toy", "--splits", "300", "--seed", "5",
                           "--format", "json").stdout)
    assert other != rows
    # --model: that model's exp1 r over the same stimuli beside the ceiling
    with_model = json.loads(cli("query", "ceiling", "--dataset", "toy", "--model", "space-a", "--method", "split-half",
                                "--splits", "50", "--format", "json").stdout)
    assert all(r["model"] == "space-a" for r in with_model)
    from timbredb.analysis.exp1 import run_exp1

    with Store(db, read_only=True) as store:
        desc = run_exp1(store, model="space-a", dataset="toy", n_bootstrap=0, n_permutations=0)["descriptors"]
    for r in with_model:
        exp1_r = desc.filter((desc["split"] == "all") & (desc["descriptor"] == r["descriptor"]))["pearson_r"][0]
        assert r["pearson_r"] == pytest.approx(exp1_r)
        assert r["r_over_ceiling"] == pytest.approx(exp1_r / r["ceiling_r"])


def test_exp1_gains_ceiling_columns_only_with_listener_data(tmp_path: Path) -> None:
    from timbredb.analysis.exp1 import run_exp1

    db = tmp_path / "s.duckdb"
    build(db, n_stimuli=12, n_listeners=6)
    with Store(db, read_only=True) as store:
        res = run_exp1(store, dataset="toy", n_bootstrap=0, n_permutations=0)["descriptors"]
        data = ceiling.load(store, "toy")
    assert {"ceiling_r", "r_over_ceiling"} <= set(res.columns)
    for r in res.iter_rows(named=True):
        if r["descriptor"] in ("soft", "thin"):
            assert math.isfinite(r["ceiling_r"]) and r["r_over_ceiling"] == pytest.approx(r["pearson_r"] / r["ceiling_r"])
        else:
            assert math.isnan(r["ceiling_r"]) and math.isnan(r["r_over_ceiling"])
    # each split's ceiling is over exactly that split's stimuli
    east = sorted(f"s{i:02d}" for i in range(7))
    row = res.filter((res["split"] == "east") & (res["descriptor"] == "soft")).row(0, named=True)
    ref = ceiling.split_half_row(data, "toy", "soft", east, ceiling.DEFAULT_SPLITS, 0)
    assert ref is not None and row["ceiling_r"] == pytest.approx(ref["ceiling_r"])
    db2 = tmp_path / "plain.duckdb"
    build(db2, n_stimuli=12, listener_words=())
    with Store(db2, read_only=True) as store:
        plain = run_exp1(store, dataset="toy", n_bootstrap=0, n_permutations=0)["descriptors"]
    assert "ceiling_r" not in plain.columns


def test_ccmusic_listener_files_are_ingested_without_recordings(tmp_path: Path, monkeypatch) -> None:
    """The layout of ../shared/data/ccmusic: the listener files only; the hub is unreachable."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf"))
    chinese = [i for i in make_instruments(n_chinese=8, n_western=0, seconds=0.2) if i.split == "chinese"]
    raw = listener_ratings(chinese, n_listeners=7, noise=1.5)
    write_listener_files(tmp_path / "data" / "ccmusic", chinese, raw, missing=(("ch_02", "pure", 3),))
    cli = CLI(tmp_path / "s.duckdb", tmp_path / "data")
    out = json.loads(cli("ingest", "ccmusic", "--models", "mfcc", "--format", "json").stdout)
    summary = out["datasets"]["ccmusic"]
    assert summary["listener_ratings"] == 3 * 8 * 7 - 1 and summary["missing_listener_ratings"] == 1
    assert summary["sds"] == 16 * 8  # the term_consistency row is skipped
    assert len(out["errors"]) == 1 and "ratings.csv" in out["errors"][0]["error"]  # no means or recordings here
    rows = json.loads(cli("query", "ceiling", "--format", "json").stdout)
    got = {(r["descriptor"], r["method"]): r for r in rows}
    # split-half and sd for the three raw terms; the other 13 have SDs but no means: no row
    assert set(got) == {(t, m) for t in ("pure", "soft", "thin") for m in ("split-half", "sd")}
    pure = got[("pure", "sd")]
    m = np.array([raw[(i.name, "pure")] for i in chinese], dtype=float)
    m[2, 3] = np.nan
    sds = np.array([np.std(r[np.isfinite(r)], ddof=1) for r in m])
    ns = np.isfinite(m).sum(axis=1)
    means = np.nanmean(m, axis=1)
    assert pure["reliability"] == pytest.approx(1 - np.mean(sds**2 / ns) / np.var(means, ddof=1), rel=1e-5)
    assert pure["n_listeners"] == 7 and pure["n_stimuli"] == 8
    # a split-half ceiling is impossible on a dataset without raw ratings
    bad = cli("query", "ceiling", "--dataset", "nothing", ok=False)
    assert bad.exit_code == 1 and "no rated dataset 'nothing'" in bad.stderr
    # a bare `ingest` (the README's main job on ../shared/data): the unreachable recordings are a
    # skip with one warning, not an error, and the listener files are stored all the same
    bare_cli = CLI(tmp_path / "bare.duckdb", tmp_path / "data")
    bare = bare_cli("ingest", "--models", "mfcc", "--format", "json")
    out = json.loads(bare.stdout)
    assert out["errors"] == [] and "ccmusic" in out["skipped_datasets"]
    assert "listener files were stored" in out["skipped_datasets"]["ccmusic"]
    assert out["datasets"]["ccmusic"]["listener_ratings"] == 3 * 8 * 7 - 1
    warnings = [ln for ln in bare.stderr.splitlines() if ln.startswith("ccmusic")]
    assert len(warnings) == 1 and warnings[0].startswith("ccmusic: skipped:") and "error" not in bare.stderr.lower()
    assert db_rows(tmp_path / "bare.duckdb", "SELECT count(*) FROM listener_ratings") == [(3 * 8 * 7 - 1,)]


def test_malformed_listener_file_writes_nothing(tmp_path: Path) -> None:
    chinese = make_instruments(n_chinese=4, n_western=0, seconds=0.2)
    long_path, _ = write_listener_files(tmp_path / "data" / "ccmusic", chinese, listener_ratings(chinese))
    text = long_path.read_text(encoding="utf-8").splitlines()
    parts = text[5].split(",")
    parts[5] = "loud"
    text[5] = ",".join(parts)
    long_path.write_text("\n".join(text) + "\n", encoding="utf-8")
    res = CLI(tmp_path / "s.duckdb", tmp_path / "data")("ingest", "ccmusic", "--models", "mfcc", "--format", "json")
    errors = json.loads(res.stdout)["errors"]
    assert len(errors) == 1 and f"{long_path}: line 6: rating 'loud' is not a number" in errors[0]["error"]
    with Store(tmp_path / "s.duckdb", read_only=True) as store:
        assert store.listener_counts("ccmusic") == (0, 0)


@pytest.mark.parametrize(
    ("setup", "args", "needle"),
    [
        ("sd-only", ["--method", "split-half"], "has no raw listener ratings"),
        ("none", [], "neither raw listener ratings nor listener SDs"),
        ("tiny", [], "fewer than 3 stimuli"),
        ("sd-only", ["--method", "nope"], "--method 'nope'"),
    ],
)
def test_bad_ceiling_input_is_one_line_exit_1(tmp_path: Path, data_dir: Path, setup: str, args, needle: str) -> None:
    db = tmp_path / "s.duckdb"
    build(db, n_stimuli=6, listener_words=())
    with Store(db) as store:
        if setup == "sd-only":
            store.replace_listener_data("toy", None, [(f"s{i:02d}", "soft", 1.0, 10, "t") for i in range(6)])
        elif setup == "tiny":
            store.replace_listener_data("toy", [("s00", "soft", "a", 3.0, "t"), ("s01", "soft", "a", 4.0, "t"),
                                                ("s00", "soft", "b", 3.0, "t"), ("s01", "soft", "b", 5.0, "t")], None)
    res = CLI(db, data_dir)("query", "ceiling", "--dataset", "toy", *args, ok=False)
    assert res.exit_code == 1, res.stdout
    line = res.stderr.strip()
    assert needle in line and "\n" not in line


def test_run_ceiling_rejects_unknown_datasets(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    Store(db).close()
    with Store(db, read_only=True) as store, pytest.raises(AnalysisError, match="no rated dataset"):
        ceiling.run_ceiling(store, dataset="ccmusic")
