"""Statistics shared by the experiments. Constant inputs give NaN, never a warning."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy import stats


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
    return float("nan") if v is None else float(stats.pearsonr(*v).statistic)


def spearman(x: NDArray[np.floating], y: NDArray[np.floating]) -> float:
    v = _valid(x, y)
    return float("nan") if v is None else float(stats.spearmanr(*v).statistic)


def kendall(x: NDArray[np.floating], y: NDArray[np.floating]) -> float:
    """Kendall tau-b."""
    v = _valid(x, y)
    return float("nan") if v is None else float(stats.kendalltau(*v, variant="b").statistic)


def benjamini_hochberg(p: NDArray[np.floating]) -> NDArray[np.float64]:
    """BH-adjusted q-values; NaN p-values stay NaN and do not count toward m."""
    p = np.asarray(p, dtype=np.float64)
    q = np.full_like(p, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        q[ok] = stats.false_discovery_control(p[ok], method="bh")
    return q


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
