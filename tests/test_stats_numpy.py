"""The NumPy statistics of timbredb.analysis.stats against SciPy's, bit for bit.

`timbredb query` no longer imports scipy.stats (about 1 s of CPU at start-up); these
tests hold the replacement to SciPy's exact numbers, over inputs with ties, NaN,
constants, infinities, large and tiny magnitudes and many lengths.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import numpy as np
import pytest
from scipy import stats as sps

from timbredb.analysis import stats


def _same(a: float, b: float) -> bool:
    """Equal to the last bit (NaN equals NaN)."""
    return bool(np.float64(a).tobytes() == np.float64(b).tobytes()) or (np.isnan(a) and np.isnan(b))


def _pairs(seed: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    for n in (2, 3, 4, 5, 7, 10, 16, 19, 23, 37, 61, 100, 257):
        for _ in range(6):
            x = rng.standard_normal(n)
            y = 0.3 * x + rng.standard_normal(n)
            yield x, y
            yield np.round(x * 2) / 2, np.round(y)  # many ties
            yield rng.integers(0, 3, n).astype(np.float64), rng.integers(0, 4, n).astype(np.float64)
            yield x * 1e150, y * 1e-150  # extreme magnitudes (SciPy scales before the norm)
            yield x + 1e6, y  # a large offset
            yield -x, x  # perfect negative correlation
            yield x, 2 * x + 1  # perfect positive correlation


def test_pearson_spearman_kendall_are_scipys_bits() -> None:
    n_cases = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SciPy's near-constant warnings
        for x, y in _pairs():
            assert _same(stats.pearsonr_statistic(x, y), sps.pearsonr(x, y).statistic), (x, y)
            assert _same(stats.spearmanr_statistic(x, y), sps.spearmanr(x, y).statistic), (x, y)
            assert _same(stats.kendalltau_b_statistic(x, y), sps.kendalltau(x, y, variant="b").statistic), (x, y)
            n_cases += 1
    assert n_cases > 500


@pytest.mark.parametrize("x, y", [
    ([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]),          # constant x
    ([1.0, 2.0, 3.0], [5.0, 5.0, 5.0]),          # constant y
    ([1.0, np.nan, 3.0, 4.0], [1.0, 2.0, 3.0, 5.0]),  # NaN propagates
    ([np.inf, 1.0, 2.0, 3.0], [1.0, 2.0, 3.0, 4.0]),  # infinities rank last
    ([np.inf, np.inf], [1.0, 2.0]),               # constant infinities
    ([1.0, 2.0], [2.0, 1.0]),                     # the shortest input
])
def test_edge_cases_match_scipy(x: list[float], y: list[float]) -> None:
    xa, ya = np.asarray(x), np.asarray(y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert _same(stats.spearmanr_statistic(xa, ya), sps.spearmanr(xa, ya).statistic)
        assert _same(stats.kendalltau_b_statistic(xa, ya), sps.kendalltau(xa, ya, variant="b").statistic)
        if np.isfinite(xa).all() and np.isfinite(ya).all():
            assert _same(stats.pearsonr_statistic(xa, ya), sps.pearsonr(xa, ya).statistic)


def test_wrappers_keep_their_nan_rules() -> None:
    # fewer than 2 finite pairs or a constant input: NaN, never a warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(stats.pearson(np.array([1.0, np.nan]), np.array([1.0, 2.0])))
        assert np.isnan(stats.spearman(np.array([2.0, 2.0, 2.0]), np.array([1.0, 2.0, 3.0])))
        assert np.isnan(stats.kendall(np.array([1.0, 2.0, 3.0]), np.array([4.0, 4.0, 4.0])))
    x = np.array([1.0, 2.0, np.nan, 4.0, 5.0, 7.0])
    y = np.array([2.0, 1.0, 3.0, np.inf, 6.0, 5.0])
    ok = np.isfinite(x) & np.isfinite(y)
    assert _same(stats.pearson(x, y), sps.pearsonr(x[ok], y[ok]).statistic)
    assert _same(stats.kendall(x, y), sps.kendalltau(x[ok], y[ok]).statistic)


def test_rankdata_is_scipys() -> None:
    rng = np.random.default_rng(1)
    for n in (1, 2, 5, 50, 500):
        a = rng.integers(0, max(2, n // 3), n).astype(np.float64)
        np.testing.assert_array_equal(stats.rankdata_average(a), sps.rankdata(a))


def test_discordant_pairs_by_enumeration() -> None:
    # the one count SciPy takes from compiled code, checked against explicit enumeration,
    # also across block boundaries
    rng = np.random.default_rng(2)
    for n in (2, 3, 17, 90):
        x = rng.integers(0, 5, n).astype(np.intp)
        y = rng.integers(0, 5, n).astype(np.intp)
        expected = sum(1 for i in range(n) for j in range(i + 1, n) if (x[i] - x[j]) * (y[i] - y[j]) < 0)
        assert stats._discordant_pairs(x, y) == expected


def test_discordant_pairs_in_blocks() -> None:
    rng = np.random.default_rng(3)
    x = rng.integers(0, 7, 300).astype(np.intp)
    y = rng.integers(0, 7, 300).astype(np.intp)
    whole = stats._discordant_pairs(x, y)
    assert whole > 0
    for block in (1, 7, 299, 1000):
        assert stats._discordant_pairs(x, y, block=block) == whole


def test_benjamini_hochberg_is_scipys() -> None:
    rng = np.random.default_rng(4)
    for m in (1, 2, 3, 10, 16, 100):
        for _ in range(20):
            p = rng.uniform(0, 1, m) ** 3
            p[rng.integers(0, m, max(1, m // 4))] = p[0]  # ties
            np.testing.assert_array_equal(stats.false_discovery_control_bh(p),
                                          sps.false_discovery_control(p, method="bh"))
    p = np.array([0.01, np.nan, 0.04, 0.03, np.nan, 0.5])
    q = stats.benjamini_hochberg(p)
    ok = np.isfinite(p)
    assert np.isnan(q[~ok]).all()
    np.testing.assert_array_equal(q[ok], sps.false_discovery_control(p[ok], method="bh"))
    with pytest.raises(ValueError):
        stats.false_discovery_control_bh(np.array([0.5, 1.5]))
