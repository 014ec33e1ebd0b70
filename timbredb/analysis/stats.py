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
