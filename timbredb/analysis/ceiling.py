"""The noise ceiling: how well could any predictor agree with the listeners' mean ratings?

For each descriptor of a rated dataset, the reliability of the mean rating over
its stimuli, by one of two methods:

* ``split-half`` (needs raw per-listener ratings): the listeners are split at
  random into two halves (floor(L/2) and the rest); r = Pearson r over stimuli of
  the two halves' mean ratings (each stimulus's mean over the half's listeners who
  rated it; a stimulus without a rating in a half is left out of that split);
  corrected to the full panel by Spearman-Brown, 2r / (1 + r); averaged over
  ``--splits`` seeded splits (default 1000).
* ``sd`` (needs per-stimulus listener SDs with n listeners, and the means):
  reliability = 1 - mean_i(SD_i^2 / n_i) / var(means), var with ddof = 1 over
  the stimuli: the share of the means' spread that is not the error of a mean
  of n noisy ratings. SDs are the dataset's published ones where stored, else
  computed from the raw ratings (ddof = 1); the means are the stored mean
  ratings where every stimulus has one, else the raw ratings' means.

ceiling_r = sqrt(reliability): the expected correlation of the observed means
with their noise-free values, the most a predictor can reach. A reliability
below 0 (noise larger than the means' spread) has no ceiling (NaN). A
descriptor with fewer than 3 stimuli, fewer than 2 listeners (split-half) or
constant means has NaN reliability.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import polars as pl
from numpy.typing import NDArray

from timbredb import queries
from timbredb.analysis import rated, stats
from timbredb.errors import AnalysisError
from timbredb.store import Store
from timbredb.vocabularies import check_query_template

METHODS = ("split-half", "sd")
#: the key under which a row keeps its stimuli (dropped from the output)
STIMULI = "_stimuli"
DEFAULT_SPLITS = 1000
SCHEMA = {
    "dataset": pl.String, "descriptor": pl.String, "method": pl.String, "n_listeners": pl.Int64,
    "n_stimuli": pl.Int64, "reliability": pl.Float64, "ceiling_r": pl.Float64,
}


def spearman_brown(r: NDArray[np.floating] | float, k: float = 2.0) -> NDArray[np.float64]:
    """Reliability of a panel k times as large: k r / (1 + (k - 1) r)."""
    r = np.asarray(r, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return k * r / (1.0 + (k - 1.0) * r)


def _column_pearson(x: NDArray[np.float64], y: NDArray[np.float64], valid: NDArray[np.bool_]) -> NDArray[np.float64]:
    """Pearson r of each column pair of x and y over the rows where ``valid``; NaN below 3 rows or if constant."""
    w = valid.astype(np.float64)
    n = w.sum(axis=0)
    x = np.where(valid, x, 0.0)
    y = np.where(valid, y, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mx = (x * w).sum(axis=0) / n
        my = (y * w).sum(axis=0) / n
        dx = (x - mx) * w
        dy = (y - my) * w
        sxx = (dx * dx).sum(axis=0)
        syy = (dy * dy).sum(axis=0)
        r = (dx * dy).sum(axis=0) / np.sqrt(sxx * syy)
    scale = np.maximum(np.abs(mx), 1.0) ** 2 * n
    flat = (sxx <= 1e-24 * scale) | (syy <= 1e-24 * scale)
    return np.where((n >= rated.MIN_STIMULI) & ~flat, np.clip(r, -1.0, 1.0), np.nan)


def split_half_values(
    matrix: NDArray[np.float64], n_splits: int, rng: np.random.Generator
) -> NDArray[np.float64]:
    """Spearman-Brown corrected split-half r of each of ``n_splits`` random listener splits.

    Args:
        matrix: stimuli x listeners ratings, NaN where a listener gave none.
        n_splits: random splits (each listener set split into floor(L/2) and the rest).
        rng: the seeded generator that draws the splits.

    Returns:
        one value per split (NaN where the split's r is undefined).
    """
    n_stim, n_list = matrix.shape
    if n_list < 2 or n_splits <= 0:
        return np.full(max(n_splits, 0), np.nan)
    order = np.argsort(rng.random((n_splits, n_list)), axis=1)
    first = np.zeros((n_splits, n_list), dtype=bool)
    first[np.arange(n_splits)[:, None], order[:, : n_list // 2]] = True
    ok = np.isfinite(matrix)
    values = np.where(ok, matrix, 0.0)
    a = first.T.astype(np.float64)       # listeners x splits
    b = (~first).T.astype(np.float64)
    okf = ok.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        c1, c2 = okf @ a, okf @ b
        m1, m2 = (values @ a) / c1, (values @ b) / c2
    r = _column_pearson(m1, m2, (c1 > 0) & (c2 > 0))
    sb = spearman_brown(r)
    return np.where(np.isfinite(sb), sb, np.nan)


def split_half_reliability(matrix: NDArray[np.float64], n_splits: int, rng: np.random.Generator) -> float:
    """The mean Spearman-Brown corrected split-half reliability over random splits (see the module doc)."""
    return stats.nanmean(split_half_values(matrix, n_splits, rng))


def sd_reliability(means: NDArray[np.floating], sds: NDArray[np.floating], n_listeners: NDArray[np.floating]) -> float:
    """1 - mean(SD^2 / n) / var(means, ddof=1); NaN below 3 stimuli or for constant means."""
    m = np.asarray(means, dtype=np.float64)
    s = np.asarray(sds, dtype=np.float64)
    n = np.asarray(n_listeners, dtype=np.float64)
    ok = np.isfinite(m) & np.isfinite(s) & (n > 0)
    m, s, n = m[ok], s[ok], n[ok]
    if m.size < rated.MIN_STIMULI or np.ptp(m) == 0:
        return float("nan")
    return float(1.0 - np.mean(s * s / n) / np.var(m, ddof=1))


def ceiling_r(reliability: float) -> float:
    return math.sqrt(reliability) if np.isfinite(reliability) and reliability >= 0 else float("nan")


@dataclass(frozen=True)
class ListenerData:
    """A dataset's listener information: raw matrices, SDs, and stored means."""

    listeners: dict[str, tuple[list[str], NDArray[np.float64]]]
    sds: dict[str, dict[str, tuple[float, int]]]
    means: dict[str, dict[str, float]]

    @property
    def empty(self) -> bool:
        return not self.listeners and not self.sds


def load(store: Store, dataset: str) -> ListenerData:
    """Raw ratings, SDs and stored means of a dataset (empty when it has no listener data)."""
    means: dict[str, dict[str, float]] = {}
    for inst, d, r in queries.run(store, "rated_ratings", dataset=dataset).select(
            "instrument", "descriptor", "rating").iter_rows():
        means.setdefault(str(d), {})[str(inst)] = float(r)
    return ListenerData(rated.listener_matrices(store, dataset), rated.sd_table(store, dataset), means)


def _rng(seed: int, dataset: str, descriptor: str, stimuli: list[str]) -> np.random.Generator:
    # keyed by the stimulus set: the same descriptor over the same stimuli draws the same splits
    return stats.rng(seed, stats.stable_key("\x1f".join([dataset, descriptor, *stimuli])))


def split_half_row(
    data: ListenerData, dataset: str, descriptor: str, stimuli: list[str] | None, n_splits: int, seed: int
) -> dict[str, object] | None:
    """The split-half row of a descriptor over ``stimuli`` (None: all with ratings); None without raw ratings
    or when some of ``stimuli`` have none."""
    if descriptor not in data.listeners:
        return None
    names, m = data.listeners[descriptor]
    index = {s: i for i, s in enumerate(names)}
    if stimuli is not None:
        if any(s not in index for s in stimuli):
            return None
        names = sorted(stimuli)
        m = m[[index[s] for s in names]]
    m = m[:, np.isfinite(m).any(axis=0)]
    rel = split_half_reliability(m, n_splits, _rng(seed, dataset, descriptor, names))
    return {"dataset": dataset, "descriptor": descriptor, "method": "split-half", "n_listeners": int(m.shape[1]),
            "n_stimuli": len(names), "reliability": rel, "ceiling_r": ceiling_r(rel), STIMULI: names}


def sd_row(data: ListenerData, dataset: str, descriptor: str, stimuli: list[str] | None) -> dict[str, object] | None:
    """The SD-method row of a descriptor over ``stimuli`` (None: all with an SD); None when SDs or means are lacking."""
    sds = dict(data.sds.get(descriptor, {}))
    raw_means: dict[str, float] = {}
    if descriptor in data.listeners:
        names, m = data.listeners[descriptor]
        for i, s in enumerate(names):
            v = m[i][np.isfinite(m[i])]
            if v.size >= 2:
                sds.setdefault(s, (float(np.std(v, ddof=1)), int(v.size)))
            if v.size:
                raw_means[s] = float(v.mean())
    names = sorted(sds) if stimuli is None else sorted(stimuli)
    if not names or any(s not in sds for s in names):
        return None
    stored = data.means.get(descriptor, {})
    if all(s in stored for s in names):
        means = [stored[s] for s in names]
    elif all(s in raw_means for s in names):
        means = [raw_means[s] for s in names]
    else:
        return None
    rel = sd_reliability(np.array(means), np.array([sds[s][0] for s in names]), np.array([sds[s][1] for s in names]))
    return {"dataset": dataset, "descriptor": descriptor, "method": "sd",
            "n_listeners": int(max(sds[s][1] for s in names)), "n_stimuli": len(names), "reliability": rel,
            "ceiling_r": ceiling_r(rel), STIMULI: names}


def best_ceiling(
    data: ListenerData, dataset: str, descriptor: str, stimuli: list[str], n_splits: int, seed: int
) -> tuple[float, str] | None:
    """(ceiling_r, method) over exactly these stimuli: split-half where raw ratings cover them, else sd."""
    row = split_half_row(data, dataset, descriptor, stimuli, n_splits, seed) or sd_row(data, dataset, descriptor, stimuli)
    return None if row is None else (float(row["ceiling_r"]), str(row["method"]))  # type: ignore[arg-type]


def _with_model(store: Store, rows: list[dict[str, object]], model: str, template: str) -> pl.DataFrame:
    """Each ceiling row per text-capable space of ``model`` with its exp1 r over the same stimuli and r / ceiling."""
    spaces = rated.resolve_spaces(store, model, need_text=True)
    out: list[dict[str, object]] = []
    for space in spaces:
        pairs = queries.run(store, "rated_pairs", dataset=rows[0]["dataset"], template=template,
                            space_ids=[space.space_id])
        for row in rows:
            names = set(row[STIMULI])  # type: ignore[call-overload]
            sub = pairs.filter((pl.col("descriptor") == row["descriptor"]) & pl.col("instrument").is_in(sorted(names)))
            r = stats.pearson(sub["similarity"].to_numpy(), sub["rating"].to_numpy()) if sub.height else float("nan")
            c = float(row["ceiling_r"])  # type: ignore[arg-type]
            out.append({**{k: v for k, v in row.items() if k != STIMULI}, "model": space.label, "pearson_r": r,
                        "r_over_ceiling": r / c if np.isfinite(c) and c > 0 else float("nan")})
    schema = {**SCHEMA, "model": pl.String, "pearson_r": pl.Float64, "r_over_ceiling": pl.Float64}
    return pl.DataFrame(out, schema=schema, orient="row") if out else pl.DataFrame(schema=schema)


def run_ceiling(
    store: Store, dataset: str = "ccmusic", method: str = "auto", n_splits: int = DEFAULT_SPLITS,
    model: str | None = None, template: str = "{}", seed: int = 0,
) -> dict[str, pl.DataFrame]:
    """The noise ceiling per descriptor (`timbredb query ceiling`).

    Args:
        dataset: the rated dataset.
        method: "split-half", "sd", or "auto" (every method the data allows).
        n_splits: random listener splits of the split-half method.
        model: also give this model's exp1 Pearson r over each row's stimuli (columns model,
            pearson_r, r_over_ceiling; one block of rows per space it names).
        template: the prompt template of that r.
        seed: seeds the splits.

    Returns:
        {"ceilings": rows dataset, descriptor, method, n_listeners, n_stimuli, reliability, ceiling_r}.

    Raises:
        AnalysisError: unknown dataset, method or model, no listener data for the method, fewer than 3 stimuli.
    """
    if method not in ("auto", *METHODS):
        raise AnalysisError(f"--method {method!r}: choose auto, split-half or sd")
    if n_splits < 1:
        raise AnalysisError("--splits must be at least 1")
    rated.check_dataset(store, dataset)
    data = load(store, dataset)
    if method == "split-half" and not data.listeners:
        raise AnalysisError(
            f"dataset {dataset!r} has no raw listener ratings; the split-half ceiling needs them "
            "(a listener table: `timbredb ingest ratings` with stimulus,descriptor,listener,rating; "
            "for CCMusic the ..._long.csv file in the ccmusic folder); try --method sd"
        )
    if data.empty:
        raise AnalysisError(
            f"dataset {dataset!r} has neither raw listener ratings nor listener SDs; a noise ceiling needs one of them"
        )
    descriptors = sorted(set(data.listeners) | set(data.sds))
    rows: list[dict[str, object]] = []
    for d in descriptors:
        if method in ("auto", "split-half"):
            row = split_half_row(data, dataset, d, None, n_splits, seed)
            if row is not None:
                rows.append(row)
        if method in ("auto", "sd"):
            row = sd_row(data, dataset, d, None)
            if row is not None:
                rows.append(row)
    if method == "sd" and not rows:
        raise AnalysisError(
            f"dataset {dataset!r}: the sd method needs per-stimulus SDs (or raw ratings) and the means of the same "
            "stimuli; none of its descriptors has both"
        )
    if not rows or max(int(r["n_stimuli"]) for r in rows) < rated.MIN_STIMULI:  # type: ignore[call-overload]
        raise AnalysisError(
            f"dataset {dataset!r} has listener data for fewer than {rated.MIN_STIMULI} stimuli; a ceiling needs at least "
            f"{rated.MIN_STIMULI}"
        )
    if model is not None:
        check_query_template(template)
        return {"ceilings": _with_model(store, rows, model, template)}
    plain = [{k: v for k, v in r.items() if k != STIMULI} for r in rows]
    return {"ceilings": pl.DataFrame(plain, schema=SCHEMA, orient="row")}
