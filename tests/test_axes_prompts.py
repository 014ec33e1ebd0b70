"""`query axes` and `query prompts` (with the prompt ensemble and `--prompt-set default`), checked
against numpy/scipy/scikit-learn on chosen vectors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps
from sklearn.decomposition import PCA

from tests.conftest import CLI
from tests.rated_fixture import build
from timbredb.analysis.axes import DEFAULT_PAIRS
from timbredb.store import Store
from timbredb.vocabularies import BARE, PROMPT_SETS, render_prompt

AXES_KEYS = ["dataset", "model", "template", "x", "y", "n", "pearson_r", "spearman_rho", "r_x", "r_y", "text_cosine",
             "pc1_angle_deg"]
PROMPT_KEYS = ["exp", "model", "descriptor", "template", "metric", "value"]


@pytest.fixture(scope="session")
def data_dir(synth_data_dir: Path) -> Path:
    return synth_data_dir


@pytest.fixture(scope="module")
def store_fx(tmp_path_factory: pytest.TempPathFactory):
    db = tmp_path_factory.mktemp("axes") / "s.duckdb"
    fx = build(db, n_stimuli=13, dim=7)
    return db, fx


def _cos(a: np.ndarray, t: np.ndarray) -> np.ndarray:
    return a @ t / (np.linalg.norm(a, axis=1) * np.linalg.norm(t))


def test_axes_against_numpy_scipy_and_sklearn(store_fx, data_dir: Path) -> None:
    db, fx = store_fx
    rows = json.loads(CLI(db, data_dir)("query", "axes", "--dataset", "toy", "--pairs", "bright:dim,soft:thin",
                                        "--format", "json").stdout)
    assert rows and all(list(r) == AXES_KEYS for r in rows)
    assert {(r["model"], r["x"], r["y"]) for r in rows} == {
        (m, x, y) for m in ("space-a", "space-b") for x, y in (("bright", "dim"), ("soft", "thin"))}
    for r in rows:
        a = fx.audio[r["model"]].astype(np.float64)
        tx = fx.text[(r["model"], BARE)][r["x"]].astype(np.float64)
        ty = fx.text[(r["model"], BARE)][r["y"]].astype(np.float64)
        rx = fx.ratings[:, fx.descriptors.index(r["x"])]
        ry = fx.ratings[:, fx.descriptors.index(r["y"])]
        score = _cos(a, tx) - _cos(a, ty)
        assert r["n"] == 13
        assert r["pearson_r"] == pytest.approx(sps.pearsonr(score, rx - ry)[0], abs=1e-6)
        assert r["spearman_rho"] == pytest.approx(sps.spearmanr(score, rx - ry)[0], abs=1e-6)
        assert r["r_x"] == pytest.approx(sps.pearsonr(_cos(a, tx), rx)[0], abs=1e-6)
        assert r["r_y"] == pytest.approx(sps.pearsonr(_cos(a, ty), ry)[0], abs=1e-6)
        assert r["text_cosine"] == pytest.approx(tx @ ty / (np.linalg.norm(tx) * np.linalg.norm(ty)), abs=1e-6)
        pc1 = PCA(n_components=1, svd_solver="full").fit(a / np.linalg.norm(a, axis=1, keepdims=True)).components_[0]
        axis = tx / np.linalg.norm(tx) - ty / np.linalg.norm(ty)
        angle = math.degrees(math.acos(min(1.0, abs(axis @ pc1) / np.linalg.norm(axis))))
        assert r["pc1_angle_deg"] == pytest.approx(angle, abs=1e-4) and 0 <= r["pc1_angle_deg"] <= 90
    # the single-word r is exp1's descriptor-level r
    from timbredb.analysis.exp1 import run_exp1

    with Store(db, read_only=True) as store:
        desc = run_exp1(store, dataset="toy", model="space-a", n_bootstrap=0, n_permutations=0)["descriptors"]
    bright = desc.filter((desc["split"] == "all") & (desc["descriptor"] == "bright"))["pearson_r"][0]
    assert next(r for r in rows if r["model"] == "space-a" and r["x"] == "bright")["r_x"] == pytest.approx(bright)


def test_axes_defaults_constant_axis_and_bad_pairs(store_fx, data_dir: Path, tmp_path: Path) -> None:
    db, fx = store_fx
    cli = CLI(db, data_dir)
    rows = json.loads(cli("query", "axes", "--dataset", "toy", "--model", "space-a", "--format", "json").stdout)
    rated = set(fx.descriptors)
    assert [(r["x"], r["y"]) for r in rows] == [p for p in DEFAULT_PAIRS if set(p) <= rated]
    for args, needle in (
        (["--pairs", "bright:loud"], "'loud' (in 'bright:loud') is not a rated descriptor"),
        (["--pairs", "bright"], "not a pair of two different words"),
        (["--model", "nope"], "no model 'nope'"),
        (["--prompt", "an {} tone"], "no text embeddings of these words with template 'an {} tone'"),
    ):
        res = cli("query", "axes", "--dataset", "toy", *args, ok=False)
        assert res.exit_code == 1 and needle in res.stderr and res.stderr.strip().count("\n") == 0, res.stderr
    # the same vector for both words: the axis score is 0 everywhere, r undefined (NaN), angle NaN
    from timbredb.analysis.axes import axis_row

    a = np.random.default_rng(0).standard_normal((6, 4))
    t = np.ones(4)
    row = axis_row(a, t, t.copy(), np.arange(6.0), np.arange(6.0)[::-1].copy(), np.ones(4) / 2)
    assert math.isnan(row["pearson_r"]) and row["text_cosine"] == pytest.approx(1.0) and math.isnan(row["pc1_angle_deg"])
    # an audio-only model is refused by name
    db2 = tmp_path / "a.duckdb"
    build(db2, n_stimuli=5, dim=3, labels=(), audio_only=("mfcc-like",), listener_words=())
    res = CLI(db2, data_dir)("query", "axes", "--dataset", "toy", "--model", "mfcc-like", ok=False)
    assert res.exit_code == 1 and "embeds no text" in res.stderr


def test_ensemble_vector_is_the_mean_of_normalised_template_vectors(store_fx) -> None:
    db, fx = store_fx
    with Store(db, read_only=True) as store:
        ens = store.frame("SELECT model, descriptor, n_templates, embedding FROM ensemble_text_vectors "
                          "JOIN spaces USING (space_id) ORDER BY ALL".replace("model", "label AS model", 1))
    assert ens.height == 2 * len(fx.descriptors)
    for r in ens.iter_rows(named=True):
        vecs = [fx.text[(r["model"], t)][r["descriptor"]].astype(np.float64) for t in ("{}", "a {} sound", "the sound is {}")]
        expected = np.mean([v / np.linalg.norm(v) for v in vecs], axis=0)
        np.testing.assert_allclose(r["embedding"], expected, rtol=1e-6, atol=1e-7)
        assert r["n_templates"] == 3


def test_query_prompts_rows_summaries_and_ensemble(store_fx, data_dir: Path) -> None:
    db, fx = store_fx
    cli = CLI(db, data_dir)
    rows = json.loads(cli("query", "prompts", "--dataset", "toy", "--format", "json").stdout)
    assert rows and all(list(r) == PROMPT_KEYS for r in rows)
    templates = ("{}", "a {} sound", "the sound is {}")
    got = {(r["model"], r["descriptor"], r["template"], r["metric"]): r["value"] for r in rows}
    assert {t for (_, _, t, _) in got} == {*templates, "ensemble", "mean", "sd", "min", "max"}
    for label in ("space-a", "space-b"):
        a = fx.audio[label].astype(np.float64)
        for j, d in enumerate(fx.descriptors):
            values = []
            for t in templates:
                r = sps.pearsonr(_cos(a, fx.text[(label, t)][d].astype(np.float64)), fx.ratings[:, j])[0]
                assert got[(label, d, t, "pearson_r")] == pytest.approx(r, abs=1e-6)
                values.append(r)
            assert got[(label, d, "mean", "pearson_r")] == pytest.approx(np.mean(values), abs=1e-6)
            assert got[(label, d, "sd", "pearson_r")] == pytest.approx(np.std(values, ddof=1), abs=1e-6)
            assert got[(label, d, "min", "pearson_r")] == pytest.approx(min(values), abs=1e-6)
            assert got[(label, d, "max", "pearson_r")] == pytest.approx(max(values), abs=1e-6)
            vecs = [fx.text[(label, t)][d].astype(np.float64) for t in templates]
            ens = np.mean([v / np.linalg.norm(v) for v in vecs], axis=0)
            assert got[(label, d, "ensemble", "pearson_r")] == pytest.approx(
                sps.pearsonr(_cos(a, ens), fx.ratings[:, j])[0], abs=1e-6)
        per_template = [got[(label, "all", t, "mean_pearson_r")] for t in templates]
        assert per_template[0] == pytest.approx(np.mean([got[(label, d, "{}", "pearson_r")] for d in fx.descriptors]))
    # --prompt ensemble in exp1 gives the same r as the prompts table
    out = json.loads(cli("query", "exp1", "--dataset", "toy", "--prompt", "ensemble", "--model", "space-a",
                         "--bootstrap", "0", "--permutations", "0", "--format", "json").stdout)
    bright = next(r for r in out["descriptors"] if r["descriptor"] == "bright" and r["split"] == "all")
    assert bright["pearson_r"] == pytest.approx(got[("space-a", "bright", "ensemble", "pearson_r")])
    bad = cli("query", "prompts", "--exp", "exp3", ok=False)
    assert bad.exit_code == 1 and "--exp 'exp3'" in bad.stderr


def test_default_prompt_set_is_embedded_and_exp2_ensemble_works(filled_db: Path, synth_data_dir: Path,
                                                                 tmp_path: Path) -> None:
    from tests.conftest import copy_store
    from timbredb.ingest import Ingestor
    from timbredb.models import load

    default = PROMPT_SETS["default"]
    assert len(default) >= 6 and {"{}", "a {} sound"} <= set(default)
    db = copy_store(filled_db, tmp_path / "p.duckdb")
    with Store(db) as store:
        # the filled store's socialfx-eq is built from the synthesized eqpoints.json
        ing = Ingestor(store, [load("socialfx-eq", data_dir=synth_data_dir)])
        ing.add_descriptors(["bright", "warm"], list(default))
        ing.finish()
    with Store(db, read_only=True) as store:
        from timbredb.analysis.exp2 import run_exp2
        from timbredb.analysis.prompts import run_prompts

        res = run_prompts(store, exp="exp2", model="socialfx-eq")["prompts"]
        ens = run_exp2(store, model="socialfx-eq", template="ensemble", detail=True)["trajectories"]
        plain = run_exp2(store, model="socialfx-eq", template=BARE, detail=True)["trajectories"]
    ens = ens.filter(ens["descriptor"].is_in(["bright", "warm"]))
    templates = set(res["template"].to_list())
    # socialfx-eq maps every phrasing to its word's EQ curve: every template, and the ensemble, gives the same vector
    assert set(default) <= templates and "ensemble" in templates
    for word in ("bright", "warm"):  # the filled store embeds hall and church with 'a {} sound' only
        vals = res.filter((res["descriptor"] == word) & (res["metric"] == "mean_pearson_r") & ~res["template"].is_in(
            ["mean", "sd", "min", "max"]))["value"].to_numpy()
        assert vals.size == len(default) + 1
        np.testing.assert_allclose(vals, vals[0], atol=1e-6)
    # 'all' is over the words every template has (bright, warm; not hall/church of 'a {} sound' alone): equal too
    overall = res.filter((res["descriptor"] == "all") & ~res["template"].is_in(["mean", "sd", "min", "max"]))
    for metric in ("pos_slope_rate", "mean_pearson_r"):
        vals = overall.filter(overall["metric"] == metric)["value"].to_numpy()
        assert vals.size == len(default) + 1
        np.testing.assert_allclose(vals, vals[0], atol=1e-6)
    sd = res.filter((res["descriptor"] == "bright") & (res["template"] == "sd") & (res["metric"] == "pos_slope_rate"))
    assert sd["value"][0] == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(np.sort(ens["slope"].to_numpy()), np.sort(plain["slope"].to_numpy()), atol=1e-6)
    assert render_prompt("a recording of a {} musical instrument", "airy").startswith("a recording of an airy")


def test_ingest_prompt_set_option(tmp_path: Path, data_dir: Path) -> None:
    from tests.synth import harmonic_tone, write

    write(tmp_path / "a" / "t.wav", harmonic_tone(220, 0.3))
    cli = CLI(tmp_path / "s.duckdb", data_dir)
    cli("ingest", str(tmp_path / "a"), "--models", "socialfx-eq", "--prompt-set", "default")
    with Store(tmp_path / "s.duckdb", read_only=True) as store:
        templates = set(store.frame("SELECT DISTINCT template FROM prompts")["template"].to_list())
    assert templates == set(PROMPT_SETS["default"])
    res = cli("ingest", str(tmp_path / "a"), "--prompt-set", "nope", ok=False)
    assert res.exit_code == 1 and "unknown prompt set 'nope'" in res.stderr
