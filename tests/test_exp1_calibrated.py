"""`query exp1 --calibrated` (beyond the study): describe's calibrated score in place of the cosine.

Checked against an explicit numpy/scipy computation from the raw tables: the reference is the
space's stored clips (first 4096 in hash order), each descriptor's cosines standardised by their
mean and population SD over it.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest
from scipy import stats as sps

from tests.conftest import CLI
from timbredb.analysis import exp1
from timbredb.errors import AnalysisError
from timbredb.store import Store

MODEL = "socialfx-eq"


@pytest.fixture(scope="module")
def results(filled_db: Path) -> tuple[dict[str, pl.DataFrame], dict[str, pl.DataFrame]]:
    with Store(filled_db, read_only=True) as store:
        plain = exp1.run_exp1(store, model=MODEL, n_bootstrap=0, n_permutations=0)
        calibrated = exp1.run_exp1(store, model=MODEL, n_bootstrap=0, n_permutations=0, calibrated=True)
    return plain, calibrated


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _expected_instrument_r(db: Path) -> dict[str, float]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        (space_id,) = con.execute("SELECT space_id FROM spaces WHERE label = ?", [MODEL]).fetchone()
        ref = con.execute("SELECT embedding FROM audio_embeddings WHERE space_id = ? ORDER BY clip_sha256 LIMIT 4096",
                          [space_id]).fetchall()
        texts = con.execute(
            "SELECT p.descriptor, t.embedding FROM text_embeddings t JOIN prompts p USING (prompt) "
            "WHERE t.space_id = ? AND p.template = '{}' ORDER BY p.descriptor", [space_id]).fetchall()
        inst = con.execute(
            "SELECT i.instrument, a.embedding FROM instruments i JOIN audio_embeddings a USING (clip_sha256) "
            "WHERE i.dataset = 'ccmusic' AND a.space_id = ?", [space_id]).fetchall()
        ratings = con.execute("SELECT instrument, descriptor, rating FROM ratings WHERE dataset = 'ccmusic'").fetchall()
    finally:
        con.close()
    words = [d for d, _ in texts]
    t = _unit(np.array([e for _, e in texts], dtype=np.float64))
    cos_ref = _unit(np.array([e for (e,) in ref], dtype=np.float64)) @ t.T
    mean, sd = cos_ref.mean(axis=0), cos_ref.std(axis=0)
    assert len(ref) >= 32 and np.all(sd > 0)
    rating = {(i, d): r for i, d, r in ratings}
    out = {}
    for name, emb in inst:
        z = (_unit(np.array([emb], dtype=np.float64)) @ t.T)[0]
        z = (z - mean) / sd
        y = np.array([rating.get((name, w), np.nan) for w in words])
        keep = np.isfinite(y)
        out[name] = float(sps.pearsonr(z[keep], y[keep])[0])
    return out


def test_instrument_level_uses_the_calibrated_score(filled_db: Path, results) -> None:
    plain, calibrated = results
    expected = _expected_instrument_r(filled_db)
    got = dict(calibrated["instruments"].select("instrument", "pearson_r").iter_rows())
    assert set(got) == set(expected)
    for name, r in expected.items():
        assert got[name] == pytest.approx(r, abs=1e-6), name
    # it does something: the cosine's instrument-level r differ
    before = dict(plain["instruments"].select("instrument", "pearson_r").iter_rows())
    assert max(abs(before[n] - got[n]) for n in got) > 1e-3


def test_descriptor_level_r_is_invariant_to_the_calibration(results) -> None:
    """An affine map per descriptor leaves r over instruments unchanged (a check of the per-descriptor join)."""
    plain, calibrated = results
    key = ["model", "descriptor", "split"]
    a = plain["descriptors"].select(*key, "pearson_r", "spearman_rho", "n")
    b = calibrated["descriptors"].select(*key, "pearson_r", "spearman_rho", "n")
    joined = a.join(b, on=key, suffix="_cal")
    assert joined.height == a.height > 0
    assert joined["n"].to_list() == joined["n_cal"].to_list()
    for col in ("pearson_r", "spearman_rho"):
        x, y = joined[col].to_numpy(), joined[f"{col}_cal"].to_numpy()
        assert np.array_equal(np.isnan(x), np.isnan(y))
        assert np.allclose(x[~np.isnan(x)], y[~np.isnan(y)], atol=1e-9)


def test_a_descriptor_without_spread_gets_no_score(monkeypatch: pytest.MonkeyPatch) -> None:
    pairs = pl.DataFrame({"model": ["m"] * 3, "space_id": ["s"] * 3, "instrument": ["a", "b", "c"],
                          "split": [""] * 3, "descriptor": ["bright", "dark", "warm"],
                          "similarity": [0.5, 0.2, float("nan")], "rating": [1.0, 2.0, 3.0]})
    ref = pl.DataFrame({"space_id": ["s"] * 3, "descriptor": ["bright", "dark", "warm"], "n_clips": [40, 40, 40],
                        "mean_cosine": [0.1, 0.2, 0.3], "sd_cosine": [0.2, 0.0, 0.1]})
    monkeypatch.setattr(exp1.queries, "run", lambda *a, **k: ref)
    out = exp1.calibrate(None, pairs, "{}")  # type: ignore[arg-type]
    sim = out["similarity"].to_list()
    assert sim[0] == pytest.approx((0.5 - 0.1) / 0.2)
    assert sim[1] is None and sim[2] is None  # SD 0, and a NaN cosine: no score


def test_too_few_reference_clips_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    pairs = pl.DataFrame({"model": ["m"], "space_id": ["s"], "instrument": ["a"], "split": [""],
                          "descriptor": ["bright"], "similarity": [0.5], "rating": [1.0]})
    ref = pl.DataFrame({"space_id": ["s"], "descriptor": ["bright"], "n_clips": [31], "mean_cosine": [0.1],
                        "sd_cosine": [0.2]})
    monkeypatch.setattr(exp1.queries, "run", lambda *a, **k: ref)
    with pytest.raises(AnalysisError, match="has 31 stored clips.*at least 32"):
        exp1.calibrate(None, pairs, "{}")  # type: ignore[arg-type]


def test_cli_flag(filled_db: Path, synth_data_dir: Path) -> None:
    cli = CLI(filled_db, synth_data_dir)
    out = json.loads(cli("query", "exp1", "--model", MODEL, "--calibrated", "--bootstrap", "0", "--permutations", "0",
                         "--format", "json").stdout)
    plain = json.loads(cli("query", "exp1", "--model", MODEL, "--bootstrap", "0", "--permutations", "0",
                           "--format", "json").stdout)
    assert [r["instrument"] for r in out["instruments"]] == [r["instrument"] for r in plain["instruments"]]
    assert out["instruments"] != plain["instruments"]
