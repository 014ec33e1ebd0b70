"""`query probe`: the nested leave-one-out ridge against scikit-learn's RidgeCV refitted in every
outer fold (alpha chosen without the held-out stimulus), the permutation p against the same
procedure on the documented permutations, transfer between groups, PCA against scikit-learn."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps
from sklearn.decomposition import PCA
from sklearn.linear_model import RidgeCV

from tests.conftest import CLI
from tests.rated_fixture import build
from timbredb.analysis import probe, stats
from timbredb.store import Store

RIDGE_KEYS = ["dataset", "model", "method", "descriptor", "n", "alpha_median", "pearson_r", "r2", "p_value", "zero_shot_r"]
PCA_KEYS = ["dataset", "model", "method", "component", "explained_variance_ratio", "descriptor", "pearson_r"]


@pytest.fixture(scope="session")
def data_dir(synth_data_dir: Path) -> Path:
    return synth_data_dir


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def sklearn_nested(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Outer LOO; in each fold RidgeCV (efficient LOO over the alphas) on the other stimuli only."""
    pred, alphas = np.empty(y.size), np.empty(y.size)
    for i in range(y.size):
        keep = np.arange(y.size) != i
        m = RidgeCV(alphas=probe.ALPHAS, fit_intercept=True).fit(x[keep], y[keep])
        pred[i] = m.predict(x[i : i + 1])[0]
        alphas[i] = m.alpha_
    return pred, alphas


def sklearn_leaky(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The leak a nested procedure must avoid: alpha chosen once on every stimulus, held-out ones included."""
    from sklearn.linear_model import Ridge

    alpha = RidgeCV(alphas=probe.ALPHAS, fit_intercept=True).fit(x, y).alpha_
    pred = np.empty(y.size)
    for i in range(y.size):
        keep = np.arange(y.size) != i
        pred[i] = Ridge(alpha=alpha).fit(x[keep], y[keep]).predict(x[i : i + 1])[0]
    return pred


def test_alpha_grid_is_the_issue_grid() -> None:
    np.testing.assert_allclose(probe.ALPHAS, [10.0**k for k in np.arange(-3, 3.01, 0.5)])
    assert probe.ALPHAS.size == 13


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nested_loo_equals_ridgecv_refitted_per_fold_and_not_the_leaky_one(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, p = 16, 24
    x = _unit(rng.standard_normal((n, p)))
    y = x @ rng.standard_normal(p) * 3 + rng.normal(0, 1.0, n)
    ours, alphas = probe.nested_loo(x, y[:, None])
    ref, ref_alphas = sklearn_nested(x, y)
    np.testing.assert_allclose(alphas[:, 0], ref_alphas)
    np.testing.assert_allclose(ours[:, 0], ref, rtol=1e-7, atol=1e-9)
    # the efficient LOO errors equal explicit refits without each training stimulus
    fit = probe.RidgeFit.of(x[1:])
    mse = fit.loo_mse(y[1:, None])[:, 0]
    from sklearn.linear_model import Ridge

    for k, a in enumerate(probe.ALPHAS):
        errs = [y[1:][j] - Ridge(alpha=a).fit(np.delete(x[1:], j, 0), np.delete(y[1:], j)).predict(x[1:][j : j + 1])[0]
                for j in range(n - 1)]
        assert mse[k] == pytest.approx(np.mean(np.square(errs)), rel=1e-7)
    if seed == 0:
        leaky = sklearn_leaky(x, y)
        assert np.max(np.abs(leaky - ours[:, 0])) > 1e-3  # a leaking alpha choice would not match


def test_query_probe_ridge_against_sklearn_with_permutations(tmp_path: Path, data_dir: Path) -> None:
    db = tmp_path / "s.duckdb"
    fx = build(db, n_stimuli=12, dim=6, descriptors=("bright", "dim", "soft"), labels=("space-a",),
               audio_only=("audio-only",))
    rows = json.loads(CLI(db, data_dir)("query", "probe", "--dataset", "toy", "--permutations", "15", "--seed", "2",
                                        "--format", "json").stdout)
    assert rows and all(list(r) == RIDGE_KEYS for r in rows)
    assert {r["model"] for r in rows} == {"space-a", "audio-only"}
    for r in rows:
        j = fx.descriptors.index(r["descriptor"])
        x = _unit(fx.audio[r["model"]].astype(np.float64))
        y = fx.ratings[:, j]
        pred, alphas = sklearn_nested(x, y)
        assert r["n"] == 12 and r["method"] == "ridge"
        assert r["pearson_r"] == pytest.approx(sps.pearsonr(y, pred)[0], abs=1e-7)
        assert r["r2"] == pytest.approx(1 - np.sum((y - pred) ** 2) / np.sum((y - y.mean()) ** 2), abs=1e-7)
        assert r["alpha_median"] == pytest.approx(np.median(alphas))
        if r["descriptor"] != "bright":
            continue  # the permutation reference is slow with scikit-learn: one descriptor per model
        # the permutation p: the whole nested procedure on each documented permutation, one-sided
        g = np.random.default_rng([2, stats.stable_key("\x1f".join(["toy", r["model"], "ridge", r["descriptor"]]))])
        perms = np.argsort(g.random((15, y.size)), axis=1)
        null = [sps.pearsonr(y[q], sklearn_nested(x, y[q])[0])[0] for q in perms]
        expected = (1 + sum(v >= r["pearson_r"] - 1e-9 for v in null)) / 16
        assert r["p_value"] == pytest.approx(expected)
    for r in rows:
        y = fx.ratings[:, fx.descriptors.index(r["descriptor"])]
        if r["model"] == "space-a":
            zs = fx.audio["space-a"] @ fx.text[("space-a", "{}")][r["descriptor"]]
            zs = zs / (np.linalg.norm(fx.audio["space-a"], axis=1) * np.linalg.norm(fx.text[("space-a", "{}")][r["descriptor"]]))
            assert r["zero_shot_r"] == pytest.approx(sps.pearsonr(zs, y)[0], abs=1e-6)
        else:
            assert r["zero_shot_r"] is None  # an audio-only model has no zero-shot r (NaN -> null)


def test_probe_p_is_one_sided_on_a_perfectly_predictable_rating(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    x = _unit(rng.standard_normal((14, 5)))
    y = x @ np.array([3.0, -2.0, 1.0, 0.5, 0.0])
    rows = probe._ridge_rows("d", "m", x, np.column_stack([y, -y]), ["up", "down"], {}, 49, 0, None)
    assert rows[0]["pearson_r"] > 0.95 and rows[0]["p_value"] == pytest.approx(1 / 50)
    assert rows[1]["pearson_r"] > 0.95  # the sign of the rating does not matter to a fitted probe


def test_transfer_between_groups_against_sklearn(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    fx = build(db, n_stimuli=16, dim=6, descriptors=("bright", "dim"), labels=("space-a",))
    with Store(db, read_only=True) as store:
        res = probe.run_probe(store, dataset="toy", train_group="east", test_group="west", n_permutations=0)["probe"]
    east = np.array([g == "east" for g in fx.groups])
    x = _unit(fx.audio["space-a"].astype(np.float64))
    for r in res.iter_rows(named=True):
        y = fx.ratings[:, fx.descriptors.index(r["descriptor"])]
        m = RidgeCV(alphas=probe.ALPHAS).fit(x[east], y[east])
        pred = m.predict(x[~east])
        assert r["method"] == "ridge:east->west" and r["n"] == int((~east).sum())
        assert r["alpha_median"] == pytest.approx(m.alpha_)
        assert r["pearson_r"] == pytest.approx(sps.pearsonr(y[~east], pred)[0], abs=1e-7)
        assert math.isnan(r["p_value"])  # no permutations asked


def test_pca_against_sklearn(tmp_path: Path, data_dir: Path) -> None:
    db = tmp_path / "s.duckdb"
    fx = build(db, n_stimuli=12, dim=8, descriptors=("bright", "dim", "soft"), labels=("space-a",))
    rows = json.loads(CLI(db, data_dir)("query", "probe", "--dataset", "toy", "--method", "pca", "--components", "3",
                                        "--format", "json").stdout)
    assert rows and all(list(r) == PCA_KEYS for r in rows)
    x = _unit(fx.audio["space-a"].astype(np.float64))
    ref = PCA(n_components=3, svd_solver="full").fit(x)
    scores = ref.transform(x)
    for r in rows:
        c = r["component"] - 1
        assert r["explained_variance_ratio"] == pytest.approx(ref.explained_variance_ratio_[c])
        # scikit-learn's sign convention: the largest-magnitude loading of each component is positive
        comp = ref.components_[c]
        assert comp[np.argmax(np.abs(comp))] > 0
        y = fx.ratings[:, fx.descriptors.index(r["descriptor"])]
        assert r["pearson_r"] == pytest.approx(sps.pearsonr(scores[:, c], y)[0], abs=1e-7)


@pytest.fixture(scope="module")
def small_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("probe") / "s.duckdb"
    build(db, n_stimuli=8, dim=4, descriptors=("bright", "dim"), labels=("space-a",))
    return db


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--model", "nope"], "no model 'nope'"),
        (["--method", "lasso"], "--method 'lasso'"),
        (["--train-group", "east"], "both --train-group and --test-group"),
        (["--train-group", "east", "--test-group", "north"], "no group 'north'"),
        (["--method", "pca", "--train-group", "east", "--test-group", "west"], "ridge only"),
        (["--dataset", "other"], "no rated dataset 'other'"),
    ],
)
def test_bad_probe_input_is_one_line_exit_1(small_store: Path, data_dir: Path, args, needle: str) -> None:
    res = CLI(small_store, data_dir)("query", "probe", "--dataset", "toy", *args, ok=False)
    assert res.exit_code == 1
    assert needle in res.stderr and res.stderr.strip().count("\n") == 0


def test_fewer_than_three_stimuli_is_refused(tmp_path: Path, data_dir: Path) -> None:
    db = tmp_path / "s.duckdb"
    build(db, n_stimuli=2, dim=4, descriptors=("bright", "dim"), labels=("space-a",), listener_words=())
    for command in (["probe"], ["axes", "--pairs", "bright:dim"], ["exp1"]):
        res = CLI(db, data_dir)("query", *command, "--dataset", "toy", ok=False)
        assert res.exit_code == 1 and "at least 3" in res.stderr, (command, res.stderr)


def test_missing_and_constant_ratings() -> None:
    """A descriptor rated on fewer stimuli is probed on those (its own folds); a constant one has no r."""
    rng = np.random.default_rng(8)
    x = _unit(rng.standard_normal((13, 5)))
    y = x @ rng.standard_normal(5) * 2 + rng.normal(0, 0.5, 13)
    gappy = y.copy()
    gappy[[2, 7]] = np.nan
    ratings = np.column_stack([y, gappy, np.full(13, 4.0)])
    rows = {r["descriptor"]: r for r in probe._ridge_rows("d", "m", x, ratings, ["full", "gappy", "flat"], {}, 0, 0, None)}
    ok = np.isfinite(gappy)
    pred, _ = sklearn_nested(x[ok], gappy[ok])
    assert rows["gappy"]["n"] == 11 and rows["full"]["n"] == 13
    assert rows["gappy"]["pearson_r"] == pytest.approx(sps.pearsonr(gappy[ok], pred)[0], abs=1e-7)
    assert math.isnan(rows["flat"]["pearson_r"]) and math.isnan(rows["flat"]["r2"])
