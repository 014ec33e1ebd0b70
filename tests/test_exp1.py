"""Experiment 1 (CCMusic ratings): ingest from both layouts, errors, statistics, CLI.

No CCMusic data is on test machines: tests/ccmusic_fixture.py synthesizes rated
instruments whose ratings follow their measured spectra. Statistics are
checked against scipy computed independently over the exp1_pairs view.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy import stats as sps

from tests.ccmusic_fixture import (
    data_root,
    make_instruments,
    read_csv_rows,
    write_csv_rows,
    write_hub_snapshot,
    write_local,
)
from tests.conftest import CLI
from timbredb import queries
from timbredb.analysis.exp1 import analyse_pairs, run_exp1
from timbredb.datasets import ccmusic
from timbredb.errors import AnalysisError, DatasetError
from timbredb.ingest import IngestOptions, Ingestor
from timbredb.spaces import SpaceRecord
from timbredb.store import Store
from timbredb.vocabularies import CCMUSIC

DESCRIPTOR_KEYS = ["model", "descriptor", "split", "n", "pearson_r", "spearman_rho", "ci_low", "ci_high", "p_value", "q_value"]
INSTRUMENT_KEYS = ["model", "instrument", "split", "pearson_r", "spearman_rho"]
SPLIT_KEYS = ["model", "split", "n", "mean_pearson_r", "ci95_half_width", "n_positive", "mean_spearman_rho"]
#: the words of the study's 16 that socialfx-eq has EQ curves for
SOCIALFX_WORDS = {"bright", "clear", "dry", "harmonious", "pure", "sharp", "soft"}


@pytest.fixture(scope="module")
def instruments():
    return make_instruments()


@pytest.fixture
def hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keep `datasets`' arrow cache inside the test's tmp folder."""
    import datasets

    cache = tmp_path / "hf-datasets-cache"
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(cache))
    return cache


def _ingest(db: Path, root: Path, options: IngestOptions | None = None) -> dict:
    """ccmusic ingest without models (ratings and clips only): fast."""
    with Store(db) as store:
        ing = Ingestor(store, [])
        result = ccmusic.ingest(ing, root, options or IngestOptions())
        ing.finish()
    return result


def _frame(db: Path, sql: str) -> pl.DataFrame:
    with Store(db, read_only=True) as store:
        return store.frame(sql)


# ---------------------------------------------------------------- independent reference
def _corr(x: np.ndarray, y: np.ndarray) -> tuple[int, float, float]:
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if len(x) < 2 or len(set(x.tolist())) == 1 or len(set(y.tolist())) == 1:
        return len(x), math.nan, math.nan
    return len(x), float(sps.pearsonr(x, y)[0]), float(sps.spearmanr(x, y)[0])


def _bh(p: list[float]) -> list[float]:
    """Benjamini-Hochberg written out: q_(i) = min_{j >= i} p_(j) m / j, NaN p left out."""
    idx = [i for i, v in enumerate(p) if not math.isnan(v)]
    m = len(idx)
    order = sorted(idx, key=lambda i: p[i])
    q = [math.nan] * len(p)
    running = 1.0
    for rank in range(m, 0, -1):
        i = order[rank - 1]
        running = min(running, p[i] * m / rank)
        q[i] = running
    return q


def reference_exp1(pairs: pl.DataFrame, descriptors: list[str]) -> dict[str, dict]:
    """Descriptor, instrument and split statistics from exp1_pairs rows with scipy."""
    rows = pairs.to_dicts()
    desc: dict[tuple, tuple] = {}
    inst: dict[tuple, tuple] = {}
    split_stats: dict[tuple, tuple] = {}
    for model in {r["model"] for r in rows}:
        mrows = [r for r in rows if r["model"] == model]
        for split in ("all", "chinese", "western"):
            for d in descriptors:
                sel = [r for r in mrows if r["descriptor"] == d and split in ("all", r["split"])]
                x = np.array([np.nan if r["similarity"] is None else r["similarity"] for r in sel], dtype=float)
                y = np.array([r["rating"] for r in sel], dtype=float)
                desc[(model, d, split)] = _corr(x, y)
        names = sorted({(r["split"], r["instrument"]) for r in mrows})
        per_inst = {}
        for split, name in names:
            sel = [r for r in mrows if r["instrument"] == name]
            x = np.array([np.nan if r["similarity"] is None else r["similarity"] for r in sel], dtype=float)
            y = np.array([r["rating"] for r in sel], dtype=float)
            _, r_, rho = _corr(x, y)
            inst[(model, name)] = (split, r_, rho)
            per_inst[name] = (split, r_, rho)
        for split in ("all", "chinese", "western"):
            rs = [v[1] for v in per_inst.values() if split in ("all", v[0]) and not math.isnan(v[1])]
            rhos = [v[2] for v in per_inst.values() if split in ("all", v[0]) and not math.isnan(v[2])]
            n = len(rs)
            sd = statistics.stdev(rs) if n >= 2 else math.nan
            split_stats[(model, split)] = (
                n,
                statistics.fmean(rs) if rs else math.nan,
                1.96 * sd / math.sqrt(n) if n >= 2 else math.nan,
                sum(1 for r in rs if r > 0),
                statistics.fmean(rhos) if rhos else math.nan,
            )
    return {"descriptors": desc, "instruments": inst, "splits": split_stats}


def _nan(v: object) -> float:
    return math.nan if v is None else float(v)  # type: ignore[arg-type]


def assert_matches_reference(result: dict[str, pl.DataFrame], pairs: pl.DataFrame, descriptors: list[str]) -> None:
    ref = reference_exp1(pairs, descriptors)
    d = result["descriptors"]
    assert d.height == len(ref["descriptors"])
    for row in d.to_dicts():
        n, r, rho = ref["descriptors"][(row["model"], row["descriptor"], row["split"])]
        assert row["n"] == n, row
        np.testing.assert_allclose([_nan(row["pearson_r"]), _nan(row["spearman_rho"])], [r, rho], rtol=1e-9, atol=1e-12)
        if math.isnan(r):
            assert all(math.isnan(_nan(row[k])) for k in ("ci_low", "ci_high", "p_value", "q_value")), row
    # BH q-values: one family per model and split
    for (model, split), grp in d.group_by(["model", "split"]):
        p = [_nan(v) for v in grp["p_value"].to_list()]
        np.testing.assert_allclose([_nan(v) for v in grp["q_value"].to_list()], _bh(p), rtol=1e-12)
    inst = result["instruments"]
    assert inst.height == len(ref["instruments"])
    for row in inst.to_dicts():
        split, r, rho = ref["instruments"][(row["model"], row["instrument"])]
        assert row["split"] == split
        np.testing.assert_allclose([_nan(row["pearson_r"]), _nan(row["spearman_rho"])], [r, rho], rtol=1e-9, atol=1e-12)
    for row in result["splits"].to_dicts():
        n, mean_r, half, n_pos, mean_rho = ref["splits"][(row["model"], row["split"])]
        assert (row["n"], row["n_positive"]) == (n, n_pos)
        np.testing.assert_allclose(
            [_nan(row["mean_pearson_r"]), _nan(row["ci95_half_width"]), _nan(row["mean_spearman_rho"])],
            [mean_r, half, mean_rho], rtol=1e-9, atol=1e-12,
        )


# ---------------------------------------------------------------- a store with fixed matrices
FIXED_INSTRUMENTS = [(f"c{i}", "chinese") for i in range(7)] + [(f"w{i}", "western") for i in range(5)]


def _fixed_store(db: Path, seed: int = 1) -> None:
    """Two spaces with chosen embeddings and ratings that produce every NaN case.

    fixed-a: instrument c6's audio vector is zero (NaN similarities: its row has
    no finite pair, every descriptor loses one instrument); the text vector of
    'dim' is zero (no finite pair for 'dim').
    fixed-b: no text vector for 'thick' (no rows, n = 0); every western
    instrument has the same audio vector (constant similarity within western).
    Ratings: 'dry' is 5 everywhere (constant); 'pure' is constant within western;
    instrument c5 gives every descriptor 5 (constant profile).
    """
    rng = np.random.default_rng(seed)
    dim = 6
    with Store(db) as store:
        batch = {}
        for sid, label in (("spacea", "fixed-a"), ("spaceb", "fixed-b")):
            store.ensure_space(SpaceRecord(sid, label, label, "test", "none", None, {}, dim, 44100, "cosine", ("audio", "text")))
            batch[sid] = store.add_batch(sid, "audio", 0, "cpu", "float32", {}, None)
        hashes = [f"{i:064x}" for i in range(len(FIXED_INSTRUMENTS))]
        for h, (name, _) in zip(hashes, FIXED_INSTRUMENTS):
            store.con.execute(
                "INSERT INTO clips (clip_sha256, source_path, duration_s, channels, sample_rate, n_frames) VALUES (?, ?, 1, 1, 44100, 44100)",
                [h, f"test://{name}"],
            )
        audio_a = rng.standard_normal((len(hashes), dim)).astype(np.float32)
        audio_a[6] = 0.0
        audio_b = rng.standard_normal((len(hashes), dim)).astype(np.float32)
        audio_b[7:] = audio_b[7]
        store.insert_audio_embeddings("spacea", hashes, audio_a, batch["spacea"])
        store.insert_audio_embeddings("spaceb", hashes, audio_b, batch["spaceb"])
        store.add_prompts([(d, "{}", d) for d in CCMUSIC])
        text_a = rng.standard_normal((len(CCMUSIC), dim)).astype(np.float32)
        text_a[CCMUSIC.index("dim")] = 0.0
        store.insert_text_embeddings("spacea", list(CCMUSIC), text_a, batch["spacea"])
        words_b = [d for d in CCMUSIC if d != "thick"]
        store.insert_text_embeddings("spaceb", words_b, rng.standard_normal((len(words_b), dim)).astype(np.float32), batch["spaceb"])
        ratings = np.round(rng.uniform(1, 10, (len(hashes), len(CCMUSIC))), 2)
        ratings[:, CCMUSIC.index("dry")] = 5.0
        ratings[7:, CCMUSIC.index("pure")] = 3.0
        ratings[5, :] = 5.0  # the same as dry, so c5 stays constant
        store.con.executemany(
            "INSERT INTO instruments (dataset, instrument, split, clip_sha256, source) VALUES ('ccmusic', ?, ?, ?, 'test')",
            [(name, split, h) for (name, split), h in zip(FIXED_INSTRUMENTS, hashes)],
        )
        store.con.executemany(
            "INSERT INTO ratings (dataset, instrument, descriptor, column_name, rating) VALUES ('ccmusic', ?, ?, ?, ?)",
            [(name, d, d, float(ratings[i, j])) for i, (name, _) in enumerate(FIXED_INSTRUMENTS) for j, d in enumerate(CCMUSIC)],
        )


def test_statistics_equal_scipy_over_the_view_with_nan_and_constant_cases(db: Path) -> None:
    _fixed_store(db)
    with Store(db, read_only=True) as store:
        result = run_exp1(store, n_bootstrap=200, n_permutations=200, seed=3)
        pairs = store.frame("SELECT * FROM exp1_pairs WHERE template = '{}'")
    assert_matches_reference(result, pairs, list(CCMUSIC))
    d = result["descriptors"]

    def row(model: str, desc: str, split: str) -> dict:
        return d.filter((pl.col("model") == model) & (pl.col("descriptor") == desc) & (pl.col("split") == split)).row(0, named=True)

    # each NaN case is reported, with the number of finite pairs behind it
    assert row("fixed-a", "bright", "all")["n"] == 11  # c6 has a zero audio vector
    assert row("fixed-a", "dim", "all")["n"] == 0 and math.isnan(row("fixed-a", "dim", "all")["pearson_r"])
    assert row("fixed-a", "dry", "all")["n"] == 11 and math.isnan(row("fixed-a", "dry", "all")["pearson_r"])
    assert math.isnan(row("fixed-a", "pure", "western")["pearson_r"]) and math.isfinite(row("fixed-a", "pure", "chinese")["pearson_r"])
    thick = row("fixed-b", "thick", "all")
    assert thick["n"] == 0 and math.isnan(thick["p_value"]) and math.isnan(thick["ci_low"])
    assert all(math.isnan(r) for r in d.filter((pl.col("model") == "fixed-b") & (pl.col("split") == "western"))["pearson_r"].to_list())
    inst = result["instruments"]
    nan_inst = set(inst.filter(pl.col("pearson_r").is_nan())["instrument"].to_list())
    assert {"c5"} <= nan_inst and inst.filter((pl.col("model") == "fixed-a") & (pl.col("instrument") == "c6"))["pearson_r"].is_nan().all()
    # NaN instruments are left out of n and the means
    splits = result["splits"].filter((pl.col("model") == "fixed-a") & (pl.col("split") == "chinese")).row(0, named=True)
    assert splits["n"] == 5


def test_bootstrap_and_permutations_are_seeded_and_agree_with_scipy(db: Path) -> None:
    _fixed_store(db)
    with Store(db, read_only=True) as store:
        a = run_exp1(store, n_bootstrap=2000, n_permutations=2000, seed=7)
        b = run_exp1(store, n_bootstrap=2000, n_permutations=2000, seed=7)
        c = run_exp1(store, n_bootstrap=2000, n_permutations=2000, seed=8)
        only_a = run_exp1(store, model="fixed-a", n_bootstrap=2000, n_permutations=2000, seed=7)
        pairs = store.frame("SELECT * FROM exp1_pairs WHERE model = 'fixed-a' AND template = '{}'")
    for key in a:
        assert a[key].equals(b[key])
    assert not a["descriptors"]["ci_low"].equals(c["descriptors"]["ci_low"])
    # a model's numbers do not depend on the other models in the store
    assert only_a["descriptors"].equals(a["descriptors"].filter(pl.col("model") == "fixed-a"))
    # Monte Carlo agreement with scipy's own bootstrap and permutation test
    rng = np.random.default_rng(0)
    for desc in ("bright", "sharp", "soft"):
        sel = pairs.filter((pl.col("descriptor") == desc) & pl.col("similarity").is_not_nan())
        x, y = sel["similarity"].to_numpy().astype(float), sel["rating"].to_numpy()
        row = a["descriptors"].filter((pl.col("model") == "fixed-a") & (pl.col("descriptor") == desc) & (pl.col("split") == "all")).row(0, named=True)
        perm = sps.permutation_test(
            (x, y), lambda u, v, axis: np.abs(sps.pearsonr(u, v, axis=axis)[0]), permutation_type="pairings",
            alternative="greater", n_resamples=4000, vectorized=True, random_state=rng,
        )
        assert abs(row["p_value"] - perm.pvalue) < 0.06, (desc, row["p_value"], perm.pvalue)
        boot = sps.bootstrap(
            (x, y), lambda u, v, axis: sps.pearsonr(u, v, axis=axis)[0], paired=True, vectorized=True,
            method="percentile", n_resamples=4000, random_state=rng,
        )
        assert abs(row["ci_low"] - boot.confidence_interval.low) < 0.08, desc
        assert abs(row["ci_high"] - boot.confidence_interval.high) < 0.08, desc
        assert row["ci_low"] <= row["pearson_r"] <= row["ci_high"]


def test_permutation_p_and_interval_on_a_perfect_relation() -> None:
    n = 12
    x = np.linspace(0.0, 1.0, n)
    pairs = pl.DataFrame({
        "model": ["m"] * n, "instrument": [f"i{k:02d}" for k in range(n)], "split": ["chinese"] * 6 + ["western"] * 6,
        "descriptor": ["bright"] * n, "similarity": x, "rating": 1.0 + 9.0 * x,
    })
    out = analyse_pairs(pairs, ["bright", "dim"], n_bootstrap=300, n_permutations=499, seed=0)
    row = out["descriptors"].filter(pl.col("split") == "all").row(0, named=True)
    assert row["pearson_r"] == pytest.approx(1.0)
    assert row["p_value"] == pytest.approx(1 / 500)  # no permutation reaches |r| = 1
    assert row["ci_low"] == pytest.approx(1.0) and row["ci_high"] == pytest.approx(1.0)
    # a rated descriptor without pairs is reported with n = 0
    dim = out["descriptors"].filter((pl.col("descriptor") == "dim") & (pl.col("split") == "all")).row(0, named=True)
    assert dim["n"] == 0 and math.isnan(dim["pearson_r"]) and math.isnan(dim["q_value"])
    none = analyse_pairs(pairs, ["bright"], n_bootstrap=0, n_permutations=0)
    assert none["descriptors"]["p_value"].is_nan().all() and none["descriptors"]["ci_low"].is_nan().all()


# ---------------------------------------------------------------- the synthetic set end to end
def test_socialfx_recovers_the_physics_and_cli_json_shape(tmp_path: Path, data_dir: Path, instruments) -> None:
    root = data_root(tmp_path / "data", data_dir)
    write_local(root, instruments)
    cli = CLI(tmp_path / "store.duckdb", root)
    summary = json.loads(cli("ingest", "ccmusic", "--models", "socialfx-eq,mfcc", "--format", "json").stdout)
    assert summary["errors"] == []
    info = summary["datasets"]["ccmusic"]
    assert info["instruments"] == 16 and info["splits"] == {"chinese": 9, "western": 7}
    assert info["descriptor_columns"] == "historical" and info["kind"] == "local"
    skipped = {p["prompt"] for p in summary["skipped_prompts"] if p["model"] == "socialfx-eq"}
    assert skipped == set(CCMUSIC) - SOCIALFX_WORDS

    out = json.loads(cli("query", "exp1", "--format", "json", "--bootstrap", "500", "--permutations", "500").stdout)
    assert list(out) == ["descriptors", "instruments", "splits"]
    assert all(list(r) == DESCRIPTOR_KEYS for r in out["descriptors"])
    assert all(list(r) == INSTRUMENT_KEYS for r in out["instruments"])
    assert all(list(r) == SPLIT_KEYS for r in out["splits"])
    # mfcc has no text side: it is not part of exp1
    assert {r["model"] for r in out["descriptors"]} == {"socialfx-eq"}
    assert len(out["descriptors"]) == 16 * 3 and len(out["instruments"]) == 16
    assert [r["split"] for r in out["splits"]] == ["all", "chinese", "western"]
    by = {(r["descriptor"], r["split"]): r for r in out["descriptors"]}
    for word in set(CCMUSIC) - SOCIALFX_WORDS:  # words it cannot embed: n = 0, no statistics
        assert by[(word, "all")]["n"] == 0 and by[(word, "all")]["pearson_r"] is None
    # bright rises with the spectral centroid, and so does the EQ curve people draw for it
    for split in ("all", "chinese", "western"):
        assert by[("bright", split)]["pearson_r"] > 0.4
    assert by[("bright", "all")]["q_value"] < 0.05
    # the other embeddable words tied to the centroid whose curves tilt the same way
    # (pure is rated darker-is-purer, and its curve boosts lows and cuts highs)
    for word in ("clear", "sharp", "pure"):
        assert by[(word, "all")]["pearson_r"] > 0.4, word

    # the same numbers from scipy over the documented view
    with Store(cli.db, read_only=True) as store:
        pairs = store.frame("SELECT * FROM exp1_pairs WHERE template = '{}'")
    assert pairs.height == 16 * len(SOCIALFX_WORDS)
    result = {k: pl.DataFrame(v, schema=schema, orient="row", strict=False) for (k, v), schema in zip(out.items(), (
        {k: (pl.Int64 if k == "n" else pl.String if k in ("model", "descriptor", "split") else pl.Float64) for k in DESCRIPTOR_KEYS},
        {k: (pl.String if k in ("model", "instrument", "split") else pl.Float64) for k in INSTRUMENT_KEYS},
        {k: (pl.Int64 if k in ("n", "n_positive") else pl.String if k in ("model", "split") else pl.Float64) for k in SPLIT_KEYS},
    ))}
    result = {k: v.with_columns(pl.col(pl.Float64).fill_null(math.nan)) for k, v in result.items()}
    assert_matches_reference(result, pairs, list(CCMUSIC))

    # table and csv render too; a model without text embeddings is a clear error
    assert "bright" in cli("query", "exp1", "--bootstrap", "0", "--permutations", "0").stdout
    assert cli("query", "exp1", "--format", "csv", "--bootstrap", "0", "--permutations", "0").stdout.startswith("# descriptors")
    bad = cli("query", "exp1", "--model", "mfcc", ok=False)
    assert bad.exit_code == 1 and "text-capable" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1

    # a re-run computes nothing; a prompt template is a separate set of text embeddings
    again = json.loads(cli("ingest", "ccmusic", "--models", "socialfx-eq,mfcc", "--format", "json").stdout)
    assert again["clips_added"] == again["embeddings_added"] == again["text_embeddings_added"] == 0
    cli("ingest", "ccmusic", "--models", "socialfx-eq", "--prompt", "a {} sound", "--format", "json")
    templ = json.loads(cli("query", "exp1", "--prompt", "a {} sound", "--format", "json", "--bootstrap", "0", "--permutations", "0").stdout)
    # socialfx-eq embeds the word inside the template, so its numbers are unchanged
    r_t = {(r["descriptor"], r["split"]): r["pearson_r"] for r in templ["descriptors"]}
    assert r_t[("bright", "all")] == pytest.approx(by[("bright", "all")]["pearson_r"])
    missing = cli("query", "exp1", "--prompt", "the {} one", ok=False)
    assert missing.exit_code == 1 and "a {} sound" in missing.stderr


# ---------------------------------------------------------------- layouts and the hub
def test_hub_column_names_and_formats_equal_historical(tmp_path: Path, instruments) -> None:
    hist = write_local(tmp_path / "a", instruments)
    hub = write_local(tmp_path / "b", instruments, names="hub", audio_ext="flac")
    ra = _ingest(tmp_path / "a.duckdb", tmp_path / "a")
    rb = _ingest(tmp_path / "b.duckdb", tmp_path / "b")
    assert (ra["descriptor_columns"], rb["descriptor_columns"]) == ("historical", "hub")
    # (libsndfile rounds float to 16 bit differently for FLAC, so the clips differ by 1 LSB)
    sql = "SELECT instrument, split, descriptor, rating FROM ratings JOIN instruments USING (dataset, instrument) ORDER BY ALL"
    a, b = _frame(tmp_path / "a.duckdb", sql), _frame(tmp_path / "b.duckdb", sql)
    assert a.equals(b)
    assert _frame(tmp_path / "b.duckdb", "SELECT count(DISTINCT source_path) AS n FROM clips WHERE source_path LIKE '%.flac'")["n"][0] == 16
    assert a.height == 16 * 16 and set(a["descriptor"].unique().to_list()) == set(CCMUSIC)
    mellow = _frame(tmp_path / "b.duckdb", "SELECT DISTINCT column_name FROM ratings WHERE descriptor = 'soft'")
    assert mellow["column_name"].to_list() == ["mellow"]
    assert hist.exists() and hub.exists()


def test_hub_snapshot_loads_like_the_local_folder(tmp_path: Path, instruments, hf_cache: Path, monkeypatch) -> None:
    write_local(tmp_path / "local", instruments, names="hub")
    _ingest(tmp_path / "local.duckdb", tmp_path / "local")
    expected = _frame(tmp_path / "local.duckdb", "SELECT instrument, split, descriptor, column_name, rating, clip_sha256 FROM ratings JOIN instruments USING (dataset, instrument) ORDER BY ALL")

    # 1. a copy of the hub repository in <data-dir>/ccmusic
    snap = write_hub_snapshot(tmp_path / "snap" / "ccmusic", instruments)
    got = _ingest(tmp_path / "snap.duckdb", tmp_path / "snap")
    assert got["kind"] == "hub" and got["source"] == str(snap) and got["splits"] == {"chinese": 9, "western": 7}
    actual = _frame(tmp_path / "snap.duckdb", "SELECT instrument, split, descriptor, column_name, rating, clip_sha256 FROM ratings JOIN instruments USING (dataset, instrument) ORDER BY ALL")
    assert actual.equals(expected)

    # 2. no ccmusic folder: the hub dataset itself (here pointed at the same snapshot, offline)
    monkeypatch.setattr(ccmusic, "HUB_DATASET", str(snap))
    (tmp_path / "empty").mkdir()
    got = _ingest(tmp_path / "hub.duckdb", tmp_path / "empty")
    assert got["kind"] == "hub" and got["instruments"] == 16
    assert _frame(tmp_path / "hub.duckdb", "SELECT instrument, split, descriptor, column_name, rating, clip_sha256 FROM ratings JOIN instruments USING (dataset, instrument) ORDER BY ALL").equals(expected)
    assert any(hf_cache.iterdir())  # `datasets` wrote its cache where the test put it


def test_hub_unreachable_offline_is_one_clear_error(tmp_path: Path, hf_cache: Path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (tmp_path / "data" / "ccmusic").mkdir(parents=True)  # present, but neither layout (like ../shared/data)
    with pytest.raises(DatasetError) as err:
        _ingest(tmp_path / "s.duckdb", tmp_path / "data")
    msg = str(err.value)
    assert "ratings.csv" in msg and "ccmusic-database/instrument_timbre" in msg and "\n" not in msg


# ---------------------------------------------------------------- malformed local folders
def _edit(rows: list[list[str]], case: str) -> list[list[str]]:
    header = rows[0]
    if case == "missing column":
        drop = header.index("hoarse")
        return [r[:drop] + r[drop + 1 :] for r in rows]
    if case == "non-numeric":
        rows[3][header.index("bright")] = "very"
    elif case == "empty rating":
        rows[2][header.index("pure")] = ""
    elif case == "duplicate":
        rows.append(list(rows[1]))
    elif case == "bad split":
        rows[4][1] = "eastern"
    elif case == "two names":
        header.append("mellow")
        for r in rows[1:]:
            r.append("5")
    return rows


@pytest.mark.parametrize(
    ("case", "needle"),
    [
        ("missing column", "missing descriptor column(s) hoarse"),
        ("non-numeric", "rating 'very' is not a number"),
        ("empty rating", "has no rating in column 'pure'"),
        ("duplicate", "duplicate instrument(s) ch_00"),
        ("bad split", "has split 'eastern'"),
        ("two names", "soft (soft and mellow)"),
        ("no audio", "no audio file for 1 instrument(s): we_15"),
    ],
)
def test_malformed_folder_is_a_dataset_error_and_writes_nothing(tmp_path: Path, instruments, case: str, needle: str) -> None:
    folder = write_local(tmp_path, instruments)
    if case == "no audio":
        (folder / "audio" / "we_15.wav").unlink()
        where = "audio"
    else:
        write_csv_rows(folder / "ratings.csv", _edit(read_csv_rows(folder / "ratings.csv"), case))
        where = "ratings.csv"
    with pytest.raises(DatasetError) as err:
        _ingest(tmp_path / "s.duckdb", tmp_path)
    msg = str(err.value)
    assert needle in msg and str(folder / where) in msg and "\n" not in msg
    assert _frame(tmp_path / "s.duckdb", "SELECT count(*) AS n FROM instruments")["n"][0] == 0
    assert _frame(tmp_path / "s.duckdb", "SELECT count(*) AS n FROM clips")["n"][0] == 0


def test_dataset_error_is_recorded_and_the_run_goes_on(tmp_path: Path, instruments) -> None:
    folder = write_local(tmp_path / "data", instruments)
    (folder / "audio" / "ch_03.wav").unlink()
    cli = CLI(tmp_path / "s.duckdb", tmp_path / "data")
    res = cli("ingest", "ccmusic", "--models", "mfcc", "--format", "json")
    errors = json.loads(res.stdout)["errors"]
    assert len(errors) == 1 and errors[0]["path"] == "ccmusic" and "ch_03" in errors[0]["error"]
    assert cli("ingest", "ccmusic", "--models", "mfcc", "--strict", ok=False).exit_code == 4
    stored = _frame(cli.db, "SELECT stage, error FROM ingest_errors")
    assert stored["stage"].to_list() == ["dataset", "dataset"]


def test_undecodable_recording_is_left_out_and_reported(tmp_path: Path, instruments) -> None:
    folder = write_local(tmp_path, instruments)
    (folder / "audio" / "ch_01.wav").write_bytes(b"not audio at all")
    with Store(tmp_path / "s.duckdb") as store:
        ing = Ingestor(store, [])
        result = ccmusic.ingest(ing, tmp_path, IngestOptions())
        assert result["instruments"] == 15 and result["skipped_instruments"] == ["ch_01"]
        assert len(ing.summary.errors) == 1 and "ch_01.wav" in ing.summary.errors[0]["path"]
        assert "ch_01" not in store.frame("SELECT instrument FROM instruments")["instrument"].to_list()


def test_empty_store_queries_run_and_exp1_explains(db: Path) -> None:
    with Store(db) as store:
        for name in ("exp1_pairs", "exp1_coverage", "exp1_ratings"):
            assert queries.run(store, name).is_empty()
        with pytest.raises(AnalysisError, match="ingest ccmusic"):
            run_exp1(store)
