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
