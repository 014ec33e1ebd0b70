"""Experiment 3: timbremetrics ingest, the alignment statistics, and `query exp3`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import duckdb
import numpy as np
import pytest
from scipy import stats

from tests import synth
from tests.conftest import CLI
from timbredb.analysis.exp3 import (
    anchor_rows,
    anchor_scores,
    distance_matrix,
    mask_normalise,
    ndcg,
    study_scores,
    summarise,
    triplet_agreement,
)
from timbredb.datasets.timbremetrics import read_matrix
from timbredb.errors import DatasetError

METRICS = ("spearman", "kendall", "ndcg", "triplet_agreement", "mae")


# ---------------------------------------------------------------- matrices
def test_mask_normalise_zeroes_lower_triangle_and_lets_the_zeros_take_part() -> None:
    d = np.array([[9.0, 2.0, 4.0], [7.0, 9.0, 3.0], [5.0, 6.0, 9.0]])
    m = mask_normalise(d)
    # upper values 2, 3, 4 with the zeros: min 0, max 4 (not min 2)
    np.testing.assert_allclose(m, [[0, 0.5, 1.0], [0, 0, 0.75], [0, 0, 0]])
    # negative ratings: the minimum is the negative value, and the zeros land above it
    n = mask_normalise(np.array([[0.0, -1.0], [0.0, 0.0]]))
    np.testing.assert_allclose(n, [[1.0, 0.0], [1.0, 1.0]])
    assert not mask_normalise(np.zeros((3, 3))).any()


def test_anchor_rows_symmetrise_then_drop_the_diagonal() -> None:
    m = np.triu(np.arange(16, dtype=float).reshape(4, 4), k=1)
    rows = anchor_rows(m)
    assert rows.shape == (4, 3)
    np.testing.assert_array_equal(rows[0], [1, 2, 3])
    np.testing.assert_array_equal(rows[2], [2, 6, 11])  # d(2,0), d(2,1), d(2,3)


def test_distance_matrices() -> None:
    x = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0], [-1.0, 0.0]])
    cos = distance_matrix(x, "cosine")
    np.testing.assert_allclose(cos[0], [0.0, 1.0, 0.0, 2.0], atol=1e-12)
    l2 = distance_matrix(x, "l2")
    np.testing.assert_allclose(l2[0], [0.0, math.sqrt(5), 2.0, 2.0])


# ---------------------------------------------------------------- per-anchor statistics
def _fixed_pair(n: int = 9, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    human = mask_normalise(rng.uniform(1, 9, (n, n)))
    model = mask_normalise(human + rng.normal(0, 0.3, (n, n)))
    return model, human


def test_rank_correlations_match_scipy_per_anchor() -> None:
    model, human = _fixed_pair()
    s = anchor_scores(model, human)
    pm, th = anchor_rows(model), anchor_rows(human)
    for i in range(model.shape[0]):
        assert s.spearman[i] == pytest.approx(stats.spearmanr(pm[i], th[i]).statistic, abs=1e-12)
        assert s.kendall[i] == pytest.approx(stats.kendalltau(pm[i], th[i], variant="b").statistic, abs=1e-12)
    assert 0.2 < s.spearman.mean() < 1.0  # noisy copy of the human matrix: clearly positive, not perfect


def test_rank_correlations_with_ties_match_scipy_and_constant_rows_score_zero() -> None:
    human = mask_normalise(np.triu(np.array([[0, 1, 1, 2, 3], [0, 0, 2, 2, 1], [0, 0, 0, 1, 3], [0, 0, 0, 0, 2],
                                             [0, 0, 0, 0, 0]], dtype=float), 1))
    model = mask_normalise(np.triu(np.array([[0, 2, 1, 2, 4], [0, 0, 3, 1, 1], [0, 0, 0, 2, 2], [0, 0, 0, 0, 1],
                                             [0, 0, 0, 0, 0]], dtype=float), 1))
    s = anchor_scores(model, human)
    pm, th = anchor_rows(model), anchor_rows(human)
    for i in range(5):
        assert s.spearman[i] == pytest.approx(stats.spearmanr(pm[i], th[i]).statistic, abs=1e-12)
        assert s.kendall[i] == pytest.approx(stats.kendalltau(pm[i], th[i]).statistic, abs=1e-12)
    # identical embeddings: no ranking at all -> 0, as timbremetrics scores it
    flat = anchor_scores(np.zeros((5, 5)), human)
    assert not flat.spearman.any() and not flat.kendall.any() and not flat.triplet_agreement.any()


def test_ndcg_by_hand() -> None:
    # ranking by score: gains 0, 1, 0.5 at ranks 1..3
    dcg = 0 / math.log2(2) + 1 / math.log2(3) + 0.5 / math.log2(4)
    ideal = 1 / math.log2(2) + 0.5 / math.log2(3) + 0 / math.log2(4)
    assert ndcg(np.array([3.0, 2.0, 1.0]), np.array([0.0, 1.0, 0.5])) == pytest.approx(dcg / ideal)
    assert ndcg(np.array([0.1, 0.9, 0.5]), np.array([0.0, 1.0, 0.5])) == pytest.approx(1.0)
    # tied scores share the mean gain over the positions they occupy
    tied = (1 + 0) / 2 * (1 / math.log2(2) + 1 / math.log2(3))
    assert ndcg(np.array([1.0, 1.0, 0.0]), np.array([1.0, 0.0, 0.0])) == pytest.approx(tied)
    assert ndcg(np.array([1.0, 2.0]), np.zeros(2)) == 0.0


def test_ndcg_matches_scikit_learn() -> None:
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(7)
    for _ in range(20):
        gains = rng.uniform(0, 1, 12)
        scores = np.round(rng.uniform(0, 1, 12), 1)  # rounded: many ties
        assert ndcg(scores, gains) == pytest.approx(sk.ndcg_score(gains[None], scores[None]), abs=1e-12)


def test_triplet_agreement_by_hand() -> None:
    human = np.array([0.0, 0.5, 0.55, 1.0])
    model = np.array([0.1, 0.2, 0.9, 0.3])
    # pairs over the 0.1 margin: (0,1) (0,2) (0,3) (1,3) (2,3); (1,2) differs by 0.05 only.
    # the model orders all but (2,3) the same way
    assert triplet_agreement(model, human) == pytest.approx(4 / 5)
    # a model tie on a counted pair is a disagreement
    assert triplet_agreement(np.array([0.1, 0.1, 0.9, 0.95]), human) == pytest.approx(4 / 5)
    # no pair over the margin: 0, as in the reference
    assert triplet_agreement(np.array([0.0, 1.0, 2.0]), np.array([0.5, 0.55, 0.58])) == 0.0


def test_mae_is_over_the_upper_triangle_pairs() -> None:
    human = np.triu(np.array([[0, 1.0, 0.5], [0, 0, 0.25], [0, 0, 0]]), 1)
    model = np.triu(np.array([[0, 0.5, 1.0], [0, 0, 0.25], [0, 0, 0]]), 1)
    s = anchor_scores(model, human)
    assert s.abs_error.sum() / s.n_pairs.sum() == pytest.approx((0.5 + 0.5 + 0.0) / 3)


def test_perfect_model_scores_perfectly() -> None:
    # stimuli on a line; the listeners' dissimilarity is the distance (on another scale)
    pos = np.array([0.0, 1.0, 2.5, 4.0, 7.0, 7.5])
    human = 3.0 * np.abs(pos[:, None] - pos[None, :]) + 0.0
    s = study_scores(pos[:, None], human, "l2")
    for m in ("spearman", "kendall", "ndcg", "triplet_agreement"):
        np.testing.assert_allclose(getattr(s, m), 1.0)
    assert s.abs_error.sum() == pytest.approx(0.0, abs=1e-12)


def test_aggregate_sums_anchors_over_all_studies_and_pairs_for_mae() -> None:
    a = anchor_scores(*_fixed_pair(5, seed=1))
    b = anchor_scores(*_fixed_pair(12, seed=2))
    rows = summarise("m", "cosine", {"small": a, "big": b}, n_bootstrap=0)
    assert [r["dataset"] for r in rows] == ["big", "small", "all"]
    overall = rows[-1]
    assert overall["n_stimuli"] == 17 and overall["n_datasets"] == 2
    for m in ("spearman", "kendall", "ndcg", "triplet_agreement"):
        assert overall[m] == pytest.approx((getattr(a, m).sum() + getattr(b, m).sum()) / 17)
        assert rows[1][m] == pytest.approx(getattr(a, m).mean())
    mae_small = a.abs_error.sum() / a.n_pairs.sum()
    mae_big = b.abs_error.sum() / b.n_pairs.sum()
    assert overall["mae"] == pytest.approx((mae_small * 10 + mae_big * 66) / 76)  # 10 and 66 pairs
    assert overall["mae_ci_low"] is None


def test_bootstrap_is_seeded_and_brackets_the_estimate() -> None:
    parts = {"a": anchor_scores(*_fixed_pair(10, 1)), "b": anchor_scores(*_fixed_pair(14, 2))}
    one = summarise("m", "cosine", parts, n_bootstrap=300, seed=5)
    again = summarise("m", "cosine", parts, n_bootstrap=300, seed=5)
    other = summarise("m", "cosine", parts, n_bootstrap=300, seed=6)
    assert one == again
    assert one[-1]["spearman_ci_low"] != other[-1]["spearman_ci_low"]
    negative = summarise("m", "cosine", parts, n_bootstrap=300, seed=-5)  # --seed takes any int
    assert negative == summarise("m", "cosine", parts, n_bootstrap=300, seed=-5)
    for row in one:
        for m in METRICS:
            assert row[f"{m}_ci_low"] <= row[m] + 1e-9 and row[m] - 1e-9 <= row[f"{m}_ci_high"]
    # the pooled interval is narrower than a single study's
    width = lambda r: r["spearman_ci_high"] - r["spearman_ci_low"]  # noqa: E731
    assert width(one[-1]) < max(width(one[0]), width(one[1]))


# ---------------------------------------------------------------- matrix files
@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0 1 2\n0 0 x\n0 0 0\n", "line 2, column 3: 'x' is not a number"),
        ("0 1 2\n0 0 1\n", "2 rows and 3 columns; it must be square"),
        ("0 1 2\n0 0\n0 0 0\n", "line 2 has 2 values but the first row has 3"),
        ("0 1\n0 nan\n", "is not a finite number"),
        ("", "is empty"),
        ("0 0 0\n1 0 0\n2 3 0\n", "looks lower-triangular"),
        ("5\n", "at least 2 stimuli"),
    ],
)
def test_read_matrix_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "X_dissimilarity_matrix.txt"
    path.write_text(text)
    with pytest.raises(DatasetError, match=message.replace("(", r"\(")) as info:
        read_matrix(path)
    assert "\n" not in str(info.value)


def test_read_matrix_accepts_full_symmetric_and_comma_separated(tmp_path: Path) -> None:
    path = tmp_path / "m.txt"
    path.write_text("0, 1, 2\n1, 0, 3\n2, 3, 0\n")
    np.testing.assert_array_equal(read_matrix(path)[0], [0, 1, 2])


# ---------------------------------------------------------------- ingest on synthetic studies
ROLLOFFS = (0.4, 0.8, 1.3, 2.0, 3.0)


def _study(root: Path, name: str, n_files: int, matrix: str | None) -> None:
    for k in range(n_files):
        tone = synth.harmonic_tone(220.0, seconds=0.5, rolloff=ROLLOFFS[k % len(ROLLOFFS)])
        synth.write(root / "timbremetrics" / "sounds" / name / f"{k:02d}_tone.aiff", tone, subtype="PCM_16")
    if matrix is not None:
        path = root / "timbremetrics" / "true_dissim" / f"{name}_dissimilarity_matrix.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(matrix)


def _brightness_matrix(n: int) -> str:
    r = np.array(ROLLOFFS[:n])
    m = np.triu(np.abs(r[:, None] - r[None, :]), 1)
    return "\n".join(" ".join(f"{v:.6f}" for v in row) for row in m) + "\n"


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> tuple[CLI, dict]:
    root = tmp_path_factory.mktemp("data")
    _study(root, "Good", 5, _brightness_matrix(5))
    _study(root, "Mismatch", 3, _brightness_matrix(4))
    _study(root, "NonSquare", 3, "0 1 2 3\n0 0 1 2\n0 0 0 1\n")
    _study(root, "NonNumeric", 3, "0 1 2\n0 0 oops\n0 0 0\n")
    _study(root, "SoundsOnly", 3, None)
    matrices = root / "timbremetrics" / "true_dissim"
    (matrices / "MatrixOnly_dissimilarity_matrix.txt").write_text(_brightness_matrix(3))
    _study(root, "Broken", 3, _brightness_matrix(3))
    (root / "timbremetrics" / "sounds" / "Broken" / "01_tone.aiff").write_bytes(b"FORM not really audio")
    (root / "timbremetrics" / "sounds" / "Empty").mkdir()
    (matrices / "Empty_dissimilarity_matrix.txt").write_text(_brightness_matrix(3))
    cli = CLI(root / "store.duckdb", root)
    result = cli("ingest", "timbremetrics", "--models", "mfcc", "--format", "json")
    return cli, json.loads(result.stdout)


def test_each_bad_study_is_one_clear_error_and_the_good_one_is_stored(synthetic: tuple[CLI, dict]) -> None:
    cli, summary = synthetic
    assert summary["datasets"]["timbremetrics"]["datasets"] == ["Good"]
    errors = {e["path"]: e["error"] for e in summary["errors"] if e["path"].startswith("timbremetrics/")}
    expected = {
        "Mismatch": "the matrix is 4 x 4 but",
        "NonSquare": "3 rows and 4 columns",
        "NonNumeric": "'oops' is not a number",
        "SoundsOnly": "has sounds but no matrix",
        "MatrixOnly": "has a matrix but no sounds",
        "Broken": "1 of 3 stimuli could not be stored (01_tone.aiff)",
        "Empty": "no audio files",
    }
    for name, phrase in expected.items():
        assert phrase in errors[f"timbremetrics/{name}"], errors[f"timbremetrics/{name}"]
    assert all("\n" not in e for e in errors.values())
    con = duckdb.connect(str(cli.db), read_only=True)
    try:
        stages = con.execute("SELECT path FROM ingest_errors WHERE stage = 'dataset' ORDER BY path").fetchall()
        stimuli = con.execute(
            "SELECT dataset, stimulus_index, file FROM dissimilarity_stimuli ORDER BY 1, 2").fetchall()
        n_ratings = con.execute("SELECT count(*) FROM dissimilarity_ratings").fetchall()[0][0]
    finally:
        con.close()
    assert [p for (p,) in stages] == sorted(f"timbremetrics/{n}" for n in expected)
    assert stimuli == [("Good", k, f"{k:02d}_tone.aiff") for k in range(5)]
    assert n_ratings == 10


def test_exp3_on_synthetic_brightness_study(synthetic: tuple[CLI, dict]) -> None:
    cli, _ = synthetic
    rows = json.loads(cli("query", "exp3", "--model", "mfcc", "--bootstrap", "50", "--format", "json").stdout)
    assert {(r["dataset"], r["distance"]) for r in rows} == {
        ("Good", "cosine"), ("Good", "l2"), ("all", "cosine"), ("all", "l2")}
    for r in rows:
        assert r["model"] == "mfcc" and r["n_stimuli"] == 5
        # listeners' dissimilarity = difference in spectral slope; MFCCs see the slope
        assert r["spearman"] > 0.5 and r["triplet_agreement"] > 0.7, r
        assert 0 <= r["mae"] <= 1 and 0 < r["ndcg"] <= 1


def test_missing_collection_is_recorded_not_raised(tmp_path: Path) -> None:
    cli = CLI(tmp_path / "s.duckdb", tmp_path)
    result = cli("ingest", "timbremetrics", "--models", "mfcc", "--format", "json")
    errors = json.loads(result.stdout)["errors"]
    assert len(errors) == 1 and "timbremetrics: not found" in errors[0]["error"]
    failed = cli("query", "exp3", ok=False)
    assert failed.exit_code == 1
    assert "run `timbredb ingest timbremetrics` first" in failed.stderr


# ---------------------------------------------------------------- end to end on real studies
REAL = ("Patil2012_A3", "Patil2012_DX4")


def test_end_to_end_on_two_real_studies(tmp_path: Path, data_dir: Path) -> None:
    root = tmp_path / "data"
    for sub in ("sounds", "true_dissim"):
        (root / "timbremetrics" / sub).mkdir(parents=True)
    for name in REAL:
        (root / "timbremetrics" / "sounds" / name).symlink_to(data_dir / "timbremetrics" / "sounds" / name)
        m = f"{name}_dissimilarity_matrix.txt"
        (root / "timbremetrics" / "true_dissim" / m).symlink_to(data_dir / "timbremetrics" / "true_dissim" / m)
    (root / "audealize").symlink_to(data_dir / "audealize")  # socialfx-eq reads its EQ curves there
    cli = CLI(tmp_path / "store.duckdb", root)
    first = json.loads(cli("ingest", "timbremetrics", "--models", "mfcc,socialfx-eq", "--format", "json").stdout)
    assert first["errors"] == [] and first["datasets"]["timbremetrics"]["stimuli"] == 22
    again = json.loads(cli("ingest", "timbremetrics", "--models", "mfcc,socialfx-eq", "--format", "json").stdout)
    assert again["clips_added"] == 0 and again["embeddings_added"] == 0

    rows = json.loads(cli("query", "exp3", "--format", "json").stdout)
    assert {r["model"] for r in rows} == {"mfcc", "socialfx-eq"}
    mfcc = {(r["dataset"], r["distance"]): r for r in rows if r["model"] == "mfcc"}
    assert set(mfcc) == {(d, k) for d in (*REAL, "all") for k in ("cosine", "l2")}
    for (dataset, distance), r in mfcc.items():
        assert r["n_stimuli"] == (22 if dataset == "all" else 11)
        for m in METRICS:
            assert r[f"{m}_ci_low"] <= r[m] <= r[f"{m}_ci_high"]
    # equal study sizes: the aggregate is the mean of the two studies
    for m in ("spearman", "kendall", "ndcg", "triplet_agreement", "mae"):
        assert mfcc[("all", "cosine")][m] == pytest.approx(
            (mfcc[(REAL[0], "cosine")][m] + mfcc[(REAL[1], "cosine")][m]) / 2)
    # values cross-checked against timbremetrics' torchmetrics implementation on these vectors
    a3 = mfcc[("Patil2012_A3", "cosine")]
    assert (a3["spearman"], a3["kendall"], a3["ndcg"], a3["triplet_agreement"], a3["mae"]) == pytest.approx(
        (0.582, 0.475, 0.920, 0.781, 0.227), abs=2e-3)

    # the same seed gives the same intervals, for one model or all
    only = json.loads(cli("query", "exp3", "--model", "mfcc", "--format", "json").stdout)
    assert only == [r for r in rows if r["model"] == "mfcc"]

    # the pairs view agrees with the analysis' normalisation (MAE recomputed in SQL)
    got = cli("sql", "SELECT dataset, avg(abs(cosine_norm - human_norm)) AS mae, bool_and(complete) AS complete "
                     "FROM dissimilarity_pairs WHERE model = 'mfcc' GROUP BY dataset ORDER BY dataset",
              "--format", "json")
    by_sql = json.loads(got.stdout)
    assert [r["dataset"] for r in by_sql] == list(REAL) and all(r["complete"] for r in by_sql)
    for r in by_sql:
        assert r["mae"] == pytest.approx(mfcc[(r["dataset"], "cosine")]["mae"], abs=1e-6)
