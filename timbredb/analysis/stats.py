"""Statistics shared by the experiments. Constant inputs give NaN, never a warning.

The correlation statistics and the Benjamini-Hochberg adjustment are written here in NumPy,
operation for operation as SciPy computes them (scipy.stats ``pearsonr``, ``spearmanr``,
``kendalltau`` with ``variant="b"``, ``false_discovery_control``), so the numbers are the same
to the last bit (tests/test_stats_numpy.py compares them with SciPy) without importing
``scipy.stats``, which cost most of a `timbredb query` run's start-up (about 0.8 s of CPU here).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def _valid(x: NDArray[np.floating], y: NDArray[np.floating]) -> tuple[NDArray[np.float64], NDArray[np.float64]] | None:
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if x.shape[0] < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    return x, y


def pearson(x: NDArray[np.floating], y: NDArray[np.floating]) -> float:
    """Pearson r over pairs where both are finite; NaN if fewer than 2 or either is constant."""
    v = _valid(x, y)
    return float("nan") if v is None else float(pearsonr_statistic(*v))


def spearman(x: NDArray[np.floating], y: NDArray[np.floating]) -> float:
    v = _valid(x, y)
    return float("nan") if v is None else float(spearmanr_statistic(*v))


def kendall(x: NDArray[np.floating], y: NDArray[np.floating]) -> float:
    """Kendall tau-b."""
    v = _valid(x, y)
    return float("nan") if v is None else float(kendalltau_b_statistic(*v))


def benjamini_hochberg(p: NDArray[np.floating]) -> NDArray[np.float64]:
    """BH-adjusted q-values; NaN p-values stay NaN and do not count toward m."""
    p = np.asarray(p, dtype=np.float64)
    q = np.full_like(p, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        q[ok] = false_discovery_control_bh(p[ok])
    return q


# ---------------------------------------------------------------- SciPy's statistics, without scipy.stats
def pearsonr_statistic(x: NDArray[np.floating], y: NDArray[np.floating]) -> float:
    """``scipy.stats.pearsonr(x, y).statistic`` for two 1-D float arrays of length >= 2.

    SciPy's operations in its order (mean, centre, scale by the largest magnitude, Euclidean
    norm, a dot product through matmul, clip to [-1, 1], rounded for two points); NaN when
    either input is constant.
    """
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if x.shape != y.shape or x.shape[0] < 2:
        raise ValueError("pearsonr needs two arrays of the same length, at least 2")
    if bool(np.all(x == x[0])) or bool(np.all(y == y[0])):
        return float("nan")
    xmean = np.mean(x, axis=-1, keepdims=True)
    ymean = np.mean(y, axis=-1, keepdims=True)
    xm = x - xmean
    ym = y - ymean
    xmax = np.max(np.abs(xm), axis=-1, keepdims=True)
    ymax = np.max(np.abs(ym), axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        normxm = xmax * np.linalg.norm(xm / xmax, ord=2, axis=-1, keepdims=True)
        normym = ymax * np.linalg.norm(ym / ymax, ord=2, axis=-1, keepdims=True)
        a = xm / normxm
        b = ym / normym
        r = (np.conj(a)[..., None, :] @ b[..., None])[..., 0, 0]
    r = np.clip(r, -1.0, 1.0)
    if x.shape[0] == 2:  # SciPy returns exactly -1 or 1 for two points
        r = np.round(r)
    return float(r)


def rankdata_average(a: NDArray[np.floating]) -> NDArray[np.float64]:
    """``scipy.stats.rankdata(a)`` (method "average") of a 1-D array without NaN: ranks 1..n, ties averaged.

    Ranks are half-integers, exact in float64, so any correct algorithm gives SciPy's bits.
    """
    a = np.asarray(a).reshape(-1)
    sorter = np.argsort(a, kind="mergesort")
    inv = np.empty(sorter.size, dtype=np.intp)
    inv[sorter] = np.arange(sorter.size, dtype=np.intp)
    s = a[sorter]
    obs = np.concatenate(([True], s[1:] != s[:-1]))
    dense = obs.cumsum()[inv]
    count = np.concatenate((np.nonzero(obs)[0], [len(obs)]))
    return 0.5 * (count[dense] + count[dense - 1] + 1)


def spearmanr_statistic(x: NDArray[np.floating], y: NDArray[np.floating]) -> float:
    """``scipy.stats.spearmanr(x, y).statistic`` for two 1-D arrays: NaN if either is constant or holds NaN.

    SciPy ranks the stacked (n, 2) columns with ``apply_along_axis`` (which fills a (2, n)
    array and returns its transpose) and takes ``np.corrcoef`` of that; the same memory
    layout and calls here give the same bits.
    """
    x = np.asarray(x).reshape(-1)
    y = np.asarray(y).reshape(-1)
    if x.shape != y.shape:
        raise ValueError("spearmanr needs two arrays of the same length")
    if x.shape[0] <= 1:
        return float("nan")
    if bool((x[0] == x).all()) or bool((y[0] == y).all()):
        return float("nan")
    for v in (x, y):
        if np.issubdtype(v.dtype, np.inexact) and bool(np.isnan(v).any()):
            return float("nan")
    ranks = np.zeros((2, x.shape[0]))
    ranks[0] = rankdata_average(x)
    ranks[1] = rankdata_average(y)
    return float(np.corrcoef(ranks.T, rowvar=False)[1, 0])


def _discordant_pairs(x: NDArray[np.intp], y: NDArray[np.intp], block: int | None = None) -> int:
    """Pairs i < j with (x_i - x_j) (y_i - y_j) < 0, counted exactly.

    Args:
        block: rows compared with all others at a time (default: about 4 M comparisons), so
            memory stays O(n) however long the input.
    """
    n = x.shape[0]
    block = block or max(1, 4_000_000 // max(n, 1))
    total = 0
    for start in range(0, n, block):
        xs, ys = x[start:start + block, None], y[start:start + block, None]
        total += int(np.count_nonzero((np.sign(xs - x[None, :]) * np.sign(ys - y[None, :])) < 0))
    return total // 2


def kendalltau_b_statistic(x: NDArray[np.floating], y: NDArray[np.floating]) -> float:
    """``scipy.stats.kendalltau(x, y, variant="b").statistic`` for two 1-D arrays of the same length.

    The pair counts are integers (exact whatever the algorithm); the final expression is
    SciPy's: (concordant - discordant) / sqrt(n0 - ties_x) / sqrt(n0 - ties_y), clipped to
    [-1, 1]. NaN for fewer than 2 values, any NaN, or a constant input.
    """
    x = np.asarray(x).reshape(-1)
    y = np.asarray(y).reshape(-1)
    if x.size != y.size:
        raise ValueError("kendalltau needs two arrays of the same length")
    if x.size < 2:
        return float("nan")
    for v in (x, y):
        if np.issubdtype(v.dtype, np.inexact) and bool(np.isnan(v).any()):
            return float("nan")

    def ties(ranks: NDArray[np.intp]) -> int:
        cnt = np.bincount(ranks).astype("int64", copy=False)
        cnt = cnt[cnt > 1]
        return int((cnt * (cnt - 1) // 2).sum())

    size = x.size
    perm = np.argsort(y)
    x, y = x[perm], y[perm]
    yr = np.concatenate(([True], y[1:] != y[:-1])).cumsum(dtype=np.intp)
    perm = np.argsort(x, kind="mergesort")
    x, yr = x[perm], yr[perm]
    xr = np.concatenate(([True], x[1:] != x[:-1])).cumsum(dtype=np.intp)
    dis = _discordant_pairs(xr, yr)
    obs = np.concatenate(([True], (xr[1:] != xr[:-1]) | (yr[1:] != yr[:-1]), [True]))
    cnt = np.diff(np.nonzero(obs)[0]).astype("int64", copy=False)
    ntie = int((cnt * (cnt - 1) // 2).sum())
    xtie, ytie = ties(xr), ties(yr)
    tot = (size * (size - 1)) // 2
    if xtie == tot or ytie == tot:
        return float("nan")
    con_minus_dis = tot - xtie - ytie + ntie - 2 * dis
    tau = con_minus_dis / np.sqrt(tot - xtie) / np.sqrt(tot - ytie)
    return float(np.minimum(1.0, max(-1.0, tau)))


def false_discovery_control_bh(ps: NDArray[np.floating]) -> NDArray[np.float64]:
    """``scipy.stats.false_discovery_control(ps, method="bh")`` for a 1-D array of p-values in [0, 1]."""
    ps = np.asarray(ps)
    if not (np.issubdtype(ps.dtype, np.integer) or np.issubdtype(ps.dtype, np.floating)) or not bool(
            np.all(ps == np.clip(ps, 0.0, 1.0))):
        raise ValueError("`ps` must include only numbers between 0 and 1.")
    ps = ps.reshape(-1)
    if ps.size <= 1:
        return ps
    m = ps.shape[-1]
    order = np.argsort(ps, axis=-1)
    ps = np.take_along_axis(ps, order, axis=-1)
    i = np.arange(1, m + 1, dtype=ps.dtype)
    ps = ps * (m / i)
    np.minimum.accumulate(ps[..., ::-1], out=ps[..., ::-1], axis=-1)
    np.put_along_axis(ps, order, values=ps.copy(), axis=-1)
    return np.asarray(np.clip(ps, 0.0, 1.0), dtype=np.float64)


def nanmean(x: NDArray[np.floating]) -> float:
    """Mean of the finite values; NaN if there are none (no warning)."""
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.size else float("nan")


# ---------------------------------------------------------------- resampling helpers
def stable_key(text: str) -> int:
    """A 64-bit integer digest of a text, the same in every process (unlike ``hash``)."""
    import hashlib

    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def rng(seed: int, *entropy: int) -> np.random.Generator:
    """The one seeded generator of the analyses: ``default_rng([seed mod 2**63, *entropy])``.

    Callers pass entropy that names what is resampled (e.g. ``stable_key(model + descriptor)``
    and a stream number), so a number does not change with the other models in the store.
    Any int is a valid ``--seed`` (NumPy seeds must be non-negative, hence the modulus).
    """
    return np.random.default_rng([seed % 2**63, *entropy])


def percentile_interval(values: NDArray[np.floating], level: float = 0.95) -> tuple[float, float]:
    """The percentile interval of bootstrap replicates: their (1 - level)/2 and (1 + level)/2 percentiles.

    Non-finite replicates are dropped; (NaN, NaN) when none is left. Percentiles use
    NumPy's default linear interpolation; for level 0.95 they are exactly 2.5 and 97.5.
    """
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan"), float("nan")
    tail = (100.0 - 100.0 * level) / 2.0
    lo, hi = np.percentile(v, [tail, 100.0 - tail])
    return float(lo), float(hi)


# ---------------------------------------------------------------- paired tests (issue 11)
#: a paired sign-flip test enumerates all 2**n sign patterns up to this many pairs
EXACT_MAX_N = 20
#: random sign patterns of the Monte Carlo test beyond EXACT_MAX_N pairs
MONTE_CARLO_FLIPS = 10_000
# relative tolerance: sign patterns reproducing |mean| up to rounding count as "as extreme"
_TIE = 1e-12


def _signed_sums(d: NDArray[np.float64]) -> NDArray[np.float64]:
    """Sum of s * d over all 2**len(d) sign vectors s (bit k of the index: sign of d[k])."""
    sums = np.zeros(1)
    for value in d:
        sums = np.concatenate([sums + value, sums - value])
    return sums


def sign_flip_p(
    diffs: NDArray[np.floating], rng_: np.random.Generator | None = None, n_flips: int = MONTE_CARLO_FLIPS
) -> tuple[float, str]:
    """Two-sided paired sign-flip permutation p-value of mean(diffs) = 0.

    Under H0 each paired difference is symmetric about 0, so every sign pattern is
    equally likely. Statistic |mean(s * d)|. For n <= EXACT_MAX_N every one of the
    2**n patterns is enumerated (meet in the middle: the signed sums of each half,
    one sorted): p = #{|sum(s * d)| >= |sum(d)|} / 2**n, the identity included.
    Beyond, ``n_flips`` seeded random patterns: p = (1 + hits) / (1 + n_flips).

    Returns:
        (p, "exact" | "monte-carlo"); (NaN, "exact") for no finite difference.
    """
    d = np.asarray(diffs, dtype=np.float64)
    d = d[np.isfinite(d)]
    n = d.size
    if n == 0:
        return float("nan"), "exact"
    observed = abs(float(d.sum()))
    tol = _TIE * max(1.0, float(np.abs(d).sum()))
    if n <= EXACT_MAX_N:
        half = n // 2
        left = _signed_sums(d[:half])
        right = np.sort(_signed_sums(d[half:]))
        # |l + r| >= T  <=>  r >= T - l  or  r <= -T - l
        upper = right.size - np.searchsorted(right, observed - tol - left, side="left")
        lower = np.searchsorted(right, -observed + tol - left, side="right")
        # patterns with |l + r| = 0 can be counted twice only when T <= tol (then p = 1 anyway)
        hits = int(np.minimum(upper + lower, right.size).sum())
        return min(1.0, hits / float(2**n)), "exact"
    if rng_ is None:
        raise ValueError("a Monte Carlo sign-flip test needs a seeded generator")
    hits = 0
    done = 0
    chunk = max(1, min(n_flips, 2_000_000 // n))
    while done < n_flips:
        m = min(chunk, n_flips - done)
        signs = rng_.integers(0, 2, size=(m, n)) * 2 - 1
        hits += int(np.count_nonzero(np.abs(signs @ d) >= observed - tol))
        done += m
    return (1 + hits) / (1 + n_flips), "monte-carlo"


def paired_bootstrap_ci(
    a: NDArray[np.floating], b: NDArray[np.floating], n_bootstrap: int, rng_: np.random.Generator, level: float = 0.95
) -> tuple[float, float]:
    """Percentile interval of mean(a - b) with the units resampled in pairs (NaN if n_bootstrap <= 0)."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    n = d.size
    if n_bootstrap <= 0 or n == 0:
        return float("nan"), float("nan")
    idx = rng_.integers(0, n, size=(n_bootstrap, n))
    return percentile_interval(d[idx].mean(axis=1), level)


def holm(p: NDArray[np.floating]) -> NDArray[np.float64]:
    """Holm's step-down adjusted p-values; NaN p-values stay NaN and do not count toward m.

    p_adj(i) = max over j <= i of min(1, (m - j + 1) * p(j)), p sorted ascending.
    """
    p = np.asarray(p, dtype=np.float64)
    out = np.full_like(p, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = ok.size
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out[order] = np.maximum.accumulate(scaled)
    return out
