"""`query compare`: the paired sign-flip test against an explicit enumeration of all 2^n sign
patterns, Holm against a written-out step-down, the bootstrap against its definition, and the
command end to end on imported release results and on exp2/exp3 of a filled store."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from tests.ccmusic_fixture import make_instruments, synthetic_release, write_release
from tests.conftest import CLI
from timbredb.analysis import stats
from timbredb.analysis.compare import compare_series, run_compare
from timbredb.errors import AnalysisError
from timbredb.store import Store

KEYS = ["exp", "level", "split", "metric", "model_a", "model_b", "n", "mean_a", "mean_b", "diff", "ci_low", "ci_high",
        "p_value", "p_adjusted", "test"]


@pytest.fixture(scope="session")
def data_dir(synth_data_dir: Path) -> Path:
    return synth_data_dir


def enumerate_p(d: np.ndarray, one_sided: bool = False) -> float:
    """Every sign pattern written out with itertools: p = #{|mean(s d)| >= |mean(d)|} / 2^n."""
    obs = d.mean()
    hits = 0
    for signs in itertools.product((1.0, -1.0), repeat=d.size):
        m = float(np.dot(signs, d)) / d.size
        if one_sided:
            hits += m >= obs - 1e-12
        else:
            hits += abs(m) >= abs(obs) - 1e-12
    return hits / 2**d.size


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 11, 12])
def test_exact_sign_flip_p_equals_explicit_enumeration(n: int) -> None:
    rng = np.random.default_rng(n)
    for shift in (0.0, 0.4, -0.9):
        d = rng.normal(shift, 1.0, n)
        p, test = stats.sign_flip_p(d)
        assert test == "exact"
        assert p == pytest.approx(enumerate_p(d), abs=1e-15)


def test_sign_flip_p_is_two_sided_not_one_sided() -> None:
    d = np.array([-0.9, -0.5, -0.7, -0.2, 0.1, -0.4, -0.8, -0.3])
    p, _ = stats.sign_flip_p(d)
    two, one_upper = enumerate_p(d), enumerate_p(d, one_sided=True)
    one_lower = enumerate_p(-d, one_sided=True)
    assert p == pytest.approx(two)
    # a one-sided test in either direction gives another number: near 1, or half of the two-sided p
    assert abs(p - one_upper) > 0.5 and p == pytest.approx(2 * one_lower) and p != pytest.approx(one_lower)
    # symmetric: the sign of every difference flipped (B - A instead of A - B) gives the same p
    assert stats.sign_flip_p(-d)[0] == pytest.approx(p)


def test_sign_flip_ties_zeros_and_nan() -> None:
    assert stats.sign_flip_p(np.zeros(6))[0] == 1.0  # every pattern is as extreme as a zero mean
    assert stats.sign_flip_p(np.array([0.3, 0.3, 0.3]))[0] == pytest.approx(2 / 8)  # only +++ and ---
    p, test = stats.sign_flip_p(np.array([0.5, np.nan, -0.1, 0.2]))
    assert p == pytest.approx(enumerate_p(np.array([0.5, -0.1, 0.2])))
    assert math.isnan(stats.sign_flip_p(np.array([np.nan]))[0])


def test_monte_carlo_beyond_twenty_pairs_is_close_to_the_full_enumeration() -> None:
    rng = np.random.default_rng(7)
    d = rng.normal(0.25, 1.0, 21)
    # all 2^21 signed sums by doubling (the implementation counts with a meet-in-the-middle search instead)
    sums = np.zeros(1)
    for v in d:
        sums = np.concatenate([sums + v, sums - v])
    exact = float(np.mean(np.abs(sums) >= abs(d.sum()) - 1e-12))
    p, test = stats.sign_flip_p(d, stats.rng(0, 1), 10_000)
    assert test == "monte-carlo"
    assert abs(p - exact) < 0.02  # 4 standard errors of a 10,000-pattern estimate
    assert stats.sign_flip_p(d, stats.rng(0, 1), 10_000)[0] == p  # seeded


def _holm_reference(p: list[float]) -> list[float]:
    """Holm written out: walk the sorted p-values, multiply by the number left, keep the running max."""
    idx = [i for i, v in enumerate(p) if not math.isnan(v)]
    order = sorted(idx, key=lambda i: p[i])
    m = len(order)
    out = [math.nan] * len(p)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


def test_holm_equals_the_step_down_written_out() -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        p = list(rng.uniform(0, 0.2, rng.integers(1, 9)))
        if len(p) > 2:
            p[1] = math.nan
        np.testing.assert_allclose(stats.holm(np.array(p)), _holm_reference(p), rtol=1e-15)
    # a dropped correction would leave the smallest p as it is
    adj = stats.holm(np.array([0.01, 0.04, 0.03]))
    assert adj[0] == pytest.approx(0.03) and adj[2] == pytest.approx(0.06) and adj[1] == pytest.approx(0.06)


def test_compare_series_statistics_from_their_definitions() -> None:
    rng = np.random.default_rng(11)
    units = [f"u{i}" for i in range(9)]
    a = {u: float(v) for u, v in zip(units, rng.normal(0.3, 0.2, 9))}
    b = {u: float(v) for u, v in zip(units, rng.normal(0.0, 0.2, 9))}
    c = {u: float(v) for u, v in zip(units[:7], rng.normal(0.1, 0.2, 7))}
    c["u0"] = math.nan  # left out of pairs with c
    key = ("descriptor", "all", "pearson_r")
    df = compare_series("exp1", {"A": {key: a}, "B": {key: b}, "C": {key: c}}, n_bootstrap=300, seed=4)
    assert df.columns == KEYS and df.height == 3
    for r in df.iter_rows(named=True):
        x, y = {"A": a, "B": b, "C": c}[r["model_a"]], {"A": a, "B": b, "C": c}[r["model_b"]]
        common = sorted(u for u in x if u in y and math.isfinite(x[u]) and math.isfinite(y[u]))
        va, vb = np.array([x[u] for u in common]), np.array([y[u] for u in common])
        assert r["n"] == len(common)
        assert r["mean_a"] == pytest.approx(va.mean()) and r["mean_b"] == pytest.approx(vb.mean())
        assert r["diff"] == pytest.approx(va.mean() - vb.mean())
        assert r["p_value"] == pytest.approx(enumerate_p(va - vb)) and r["test"] == "exact"
        # the percentile bootstrap of the paired differences, from its definition with the documented seeding
        tag = "\x1f".join(["exp1", *key, r["model_a"], r["model_b"]])
        g = np.random.default_rng([4, stats.stable_key(tag), 0])
        idx = g.integers(0, len(common), size=(300, len(common)))
        lo, hi = np.percentile((va - vb)[idx].mean(axis=1), [2.5, 97.5])
        assert (r["ci_low"], r["ci_high"]) == pytest.approx((lo, hi))
        assert r["ci_low"] <= r["diff"] <= r["ci_high"]
    np.testing.assert_allclose(df["p_adjusted"].to_numpy(), _holm_reference(df["p_value"].to_list()))
    assert (df["p_adjusted"] >= df["p_value"]).all()


# ---------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def release_store(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> tuple[Path, dict]:
    tmp = tmp_path_factory.mktemp("compare")
    instruments = make_instruments(n_chinese=14, n_western=10, seconds=0.2)
    models = synthetic_release(instruments, ("laion-clap", "msclap", "muq-mulan"))
    folder = write_release(tmp / "rel", models, {"laion-clap": "LAION_CLAP", "msclap": "MSCLAP", "muq-mulan": "MuQ_MuLan"})
    cli = CLI(tmp / "s.duckdb", data_dir)
    cli("import", "exp1", str(folder))
    return tmp / "s.duckdb", models


def test_compare_on_imported_release_results(release_store: tuple[Path, dict], data_dir: Path) -> None:
    db, models = release_store
    cli = CLI(db, data_dir)
    out = json.loads(cli("query", "compare", "--exp", "exp1", "--models", "laion-clap,msclap,muq-mulan",
                         "--format", "json").stdout)
    assert out and all(list(r) == KEYS for r in out)
    got = {(r["level"], r["split"], r["metric"], r["model_a"], r["model_b"]): r for r in out}
    # descriptor level: 16 descriptors, exact over 2^16 patterns
    r = got[("descriptor", "all", "pearson_r", "laion-clap", "msclap")]
    d = np.array([models["laion-clap"][0][k][0] - models["msclap"][0][k][0] for k in sorted(models["msclap"][0])])
    assert r["n"] == 16 and r["test"] == "exact"
    assert r["diff"] == pytest.approx(d.mean())
    p_ref = float(np.mean(np.abs((1 - 2 * ((np.arange(2**16)[:, None] >> np.arange(16)) & 1)) @ d) >= abs(d.sum()) - 1e-12))
    assert r["p_value"] == pytest.approx(p_ref)
    family = [got[("descriptor", "all", "pearson_r", a, b)]
              for a, b in (("laion-clap", "msclap"), ("laion-clap", "muq-mulan"), ("msclap", "muq-mulan"))]
    np.testing.assert_allclose([f["p_adjusted"] for f in family], _holm_reference([f["p_value"] for f in family]))
    # instrument level: 24 instruments pooled -> Monte Carlo; per split 14 and 10 -> exact
    assert got[("instrument", "all", "pearson_r", "laion-clap", "msclap")]["test"] == "monte-carlo"
    assert got[("instrument", "all", "pearson_r", "laion-clap", "msclap")]["n"] == 24
    assert got[("instrument", "chinese", "spearman_rho", "msclap", "muq-mulan")]["n"] == 14
    assert got[("instrument", "western", "pearson_r", "laion-clap", "muq-mulan")]["test"] == "exact"
    # csv and table work too, and two models give p_adjusted = p_value
    two = json.loads(cli("query", "compare", "--models", "laion-clap,msclap", "--format", "json").stdout)
    assert all(r["p_adjusted"] == r["p_value"] for r in two)
    assert cli("query", "compare", "--format", "csv").stdout.startswith("exp,level,split,metric")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--models", "laion-clap,nope"], "no model 'nope'"),
        (["--models", "laion-clap"], "at least two models"),
        (["--exp", "exp9"], "--exp 'exp9'"),
    ],
)
def test_bad_compare_input_is_one_line_and_exit_1(release_store: tuple[Path, dict], data_dir: Path, args, needle) -> None:
    res = CLI(release_store[0], data_dir)("query", "compare", *args, ok=False)
    assert res.exit_code == 1
    line = res.stderr.strip()
    assert needle in line and "\n" not in line and line.startswith("timbredb: error:")


def test_compare_exp2_and_exp3_on_a_filled_store(filled_db: Path, tmp_path: Path) -> None:
    from tests.conftest import copy_store
    from tests.test_report import _study_csv

    db = copy_store(filled_db, tmp_path / "c.duckdb")
    with Store(db) as store:
        from timbredb.importers.exp2 import import_results

        import_results(store, _study_csv(tmp_path / "study.csv"), "study-model")
    with Store(db, read_only=True) as store:
        e3 = run_compare(store, exp="exp3", models="mfcc,socialfx-eq", n_bootstrap=50)["comparisons"]
        e2 = run_compare(store, exp="exp2", n_bootstrap=50)["comparisons"]
        from timbredb.analysis.exp3 import load_studies, study_scores

        studies = load_studies(store)
        ref = {}
        for label in ("mfcc", "socialfx-eq"):
            sid = store.spaces(label)[0].space_id
            for name, s in studies.items():
                _, x = store.audio_matrix(sid, s.clip_sha256)
                ref[(label, name)] = study_scores(x, s.human, "cosine").spearman
    assert set(e3["level"].to_list()) == {"anchor"}
    for name in studies:
        row = e3.filter((pl.col("split") == name) & (pl.col("metric") == "spearman_cosine")).row(0, named=True)
        d = ref[("mfcc", name)] - ref[("socialfx-eq", name)]
        d = d[np.isfinite(d)]
        assert row["n"] == d.size and row["diff"] == pytest.approx(d.mean())
        assert row["p_value"] == pytest.approx(enumerate_p(d))
    assert set(e2["model_a"].to_list()) | set(e2["model_b"].to_list()) == {"socialfx-eq", "study-model"}
    assert {"slope", "final_delta", "pearson_r"} <= set(e2["metric"].to_list())


def test_a_name_both_local_and_imported_is_refused(tmp_path: Path, data_dir: Path) -> None:
    from tests.rated_fixture import build

    db = tmp_path / "s.duckdb"
    build(db, dataset="ccmusic", labels=("space-a", "space-b"))
    with Store(db) as store:
        store.replace_imported_exp1("ccmusic", {"space-a": [{
            "model_id": None, "level": "descriptor", "split": "all", "unit": "bright", "pearson_r": 0.1,
            "spearman_rho": 0.1, "file": "x", "file_sha256": "0", "line": 2}]})
    with Store(db, read_only=True) as store, pytest.raises(AnalysisError, match="both a model computed"):
        run_compare(store, models="space-a,space-b")
