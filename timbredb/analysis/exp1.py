"""Experiment 1: audio-descriptor similarity vs human timbre ratings (CCMusic, or any rated dataset).

For each embedding space, S[i, d] is the cosine between the audio embedding of
instrument i and the text embedding of descriptor d (one prompt template), and
R[i, d] the instrument's mean human rating (the view ``rated_pairs``; for
CCMusic the same rows as ``exp1_pairs``). Any rated dataset (``--dataset``)
works the same way, its groups in the role of CCMusic's chinese/western splits.

* Descriptor level (the study's Figure 2, extended per split): Pearson r and
  Spearman rho of S[:, d] vs R[:, d] over the instruments of a split
  ("all" = the 61 pooled, "chinese", "western"). Beyond the study: a
  percentile bootstrap 95% interval of r (instruments resampled with
  replacement), a two-sided permutation p-value of r (ratings shuffled over
  instruments) and Benjamini-Hochberg q-values over the descriptors of one
  model and split.
* Instrument level (Figure 3): Pearson r and Spearman rho of S[i, :] vs
  R[i, :] across the descriptors; per split the mean r, the 95% interval
  half-width 1.96 * SD / sqrt(n) (sample SD), the count of instruments with
  r > 0 and the mean rho.

A constant (or fewer than two finite pairs) has no correlation: NaN, reported,
and left out of every mean and count. A descriptor a closed-vocabulary model
cannot embed has no pairs: its rows say n = 0 with NaN statistics.
Bootstrap and permutations are seeded per (seed, model, descriptor, split), so
a number does not change with the other models in the store.
"""

from __future__ import annotations

import threading
import zlib

import numpy as np
import polars as pl
from numpy.typing import NDArray

from timbredb import queries
from timbredb.analysis import rated, stats
from timbredb.errors import AnalysisError
from timbredb.store import Store
from timbredb.vocabularies import BARE, check_query_template

#: the rated dataset exp1 reads by default
DATASET = "ccmusic"

#: descriptor-level splits, in output order ("all" = every instrument pooled)
SPLITS = ("all", "chinese", "western")
#: z of a two-sided 95% normal interval (the study's mean +/- 1.96 * SEM)
Z95 = 1.96

DESCRIPTOR_SCHEMA = {
    "model": pl.String, "descriptor": pl.String, "split": pl.String, "n": pl.Int64,
    "pearson_r": pl.Float64, "spearman_rho": pl.Float64, "ci_low": pl.Float64, "ci_high": pl.Float64,
    "p_value": pl.Float64, "q_value": pl.Float64,
}
INSTRUMENT_SCHEMA = {
    "model": pl.String, "instrument": pl.String, "split": pl.String,
    "pearson_r": pl.Float64, "spearman_rho": pl.Float64,
}
SPLIT_SCHEMA = {
    "model": pl.String, "split": pl.String, "n": pl.Int64, "mean_pearson_r": pl.Float64,
    "ci95_half_width": pl.Float64, "n_positive": pl.Int64, "mean_spearman_rho": pl.Float64,
}


def row_pearson(x: NDArray[np.float64], y: NDArray[np.float64]) -> NDArray[np.float64]:
    """Pearson r of each row pair of two (k, n) arrays; NaN where a row is constant."""
    xm = x - x.mean(axis=1, keepdims=True)
    ym = y - y.mean(axis=1, keepdims=True)
    num = (xm * ym).sum(axis=1)
    den = np.sqrt((xm * xm).sum(axis=1) * (ym * ym).sum(axis=1))
    constant = (np.ptp(x, axis=1) == 0) | (np.ptp(y, axis=1) == 0) | (den == 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = num / np.where(constant, 1.0, den)
    return np.where(constant, np.nan, np.clip(r, -1.0, 1.0))


#: per thread (`timbredb serve` runs analyses on threads), reusable (k, n) work arrays
_LOCAL = threading.local()
#: the largest work array kept for reuse (elements): 4 of them at 8 bytes, at most 32 MiB a thread
_SCRATCH_MAX = 1 << 20


def _scratch(slot: str, shape: tuple[int, int]) -> NDArray[np.float64]:
    """A float64 work array of ``shape``, the same one on every call with this slot and shape.

    Fresh (k, n) arrays for every cell were page-faulted in anew each time (glibc hands the
    memory back on free): a third of `query exp1`'s system time. Contents are undefined.
    """
    if shape[0] * shape[1] > _SCRATCH_MAX:
        return np.empty(shape)
    bufs: dict[tuple[str, tuple[int, int]], NDArray[np.float64]] = _LOCAL.__dict__.setdefault("bufs", {})
    buf = bufs.get((slot, shape))
    if buf is None:
        if len(bufs) >= 32:  # a few shapes per run (one per split size); never grows without bound
            bufs.clear()
        buf = bufs[(slot, shape)] = np.empty(shape)
    return buf


def _constant_rows(a: NDArray[np.float64]) -> NDArray[np.bool_]:
    """``np.ptp(a, axis=1) == 0`` for finite values: a row whose first two values differ is not
    constant, so only the few rows where they are equal are scanned in full."""
    if a.shape[1] < 2:
        return np.ones(a.shape[0], dtype=bool)
    out = np.zeros(a.shape[0], dtype=bool)
    candidates = np.flatnonzero(a[:, 0] == a[:, 1])
    if candidates.size:
        sub = a[candidates]
        out[candidates] = sub.max(axis=1) == sub.min(axis=1)
    return out


def resampled_pearson(x: NDArray[np.float64], y: NDArray[np.float64], idx: NDArray[np.intp]) -> NDArray[np.float64]:
    """``row_pearson(x[idx], y[idx])`` for a (k, n) array of resampled indices, the same bits in
    about half the time: the same element-wise operations and row reductions, on the gathered
    rows in place (no temporary (k, n) arrays beyond one), and the constant-row test as max ==
    min (``ptp == 0`` for finite values, which these are) on the rows that may be constant."""
    shape = (idx.shape[0], idx.shape[1])
    # mode="clip": the indices are in range, so the same values, written straight into out (unbuffered)
    xs = np.take(np.asarray(x, dtype=np.float64), idx, out=_scratch("xs", shape), mode="clip")
    ys = np.take(np.asarray(y, dtype=np.float64), idx, out=_scratch("ys", shape), mode="clip")
    constant = _constant_rows(xs) | _constant_rows(ys)
    xs -= xs.mean(axis=1, keepdims=True)
    ys -= ys.mean(axis=1, keepdims=True)
    t = np.multiply(xs, ys, out=_scratch("t", shape))
    num = t.sum(axis=1)
    sxx = np.multiply(xs, xs, out=t).sum(axis=1)
    syy = np.multiply(ys, ys, out=t).sum(axis=1)
    den = np.sqrt(sxx * syy)
    constant |= den == 0
    with np.errstate(invalid="ignore", divide="ignore"):
        r = num / np.where(constant, 1.0, den)
    return np.where(constant, np.nan, np.clip(r, -1.0, 1.0))


def permuted_pearson(x: NDArray[np.float64], y: NDArray[np.float64], idx: NDArray[np.intp]) -> NDArray[np.float64]:
    """``row_pearson(broadcast_to(x, (k, n)), y[idx])`` for k permutations ``idx`` of y, the same bits
    for less work: the k rows of x are one row (its mean, deviations and their sum of squares are
    computed once, as NumPy computes them per row), and the range of every permuted row of y is
    the range of y (max and min are exact)."""
    shape = (idx.shape[0], idx.shape[1])
    xm = x - x.mean()
    ym = np.take(np.asarray(y, dtype=np.float64), idx, out=_scratch("ys", shape), mode="clip")
    ym -= ym.mean(axis=1, keepdims=True)
    t = np.multiply(ym, xm, out=_scratch("t", shape))  # x * y == y * x, bit for bit
    num = t.sum(axis=1)
    den = np.sqrt((xm * xm).sum() * np.multiply(ym, ym, out=t).sum(axis=1))
    constant = (np.ptp(x) == 0) | (np.ptp(y) == 0) | (den == 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = num / np.where(constant, 1.0, den)
    return np.where(constant, np.nan, np.clip(r, -1.0, 1.0))


def _rng(seed: int, key: str, stream: int) -> np.random.Generator:
    # crc32 keys: the streams exp1 has always used (its published intervals and p-values)
    return stats.rng(seed, zlib.crc32(key.encode("utf-8")), stream)


def bootstrap_ci(
    x: NDArray[np.float64], y: NDArray[np.float64], n_bootstrap: int, rng: np.random.Generator
) -> tuple[float, float]:
    """Percentile 95% interval of Pearson r over pairs resampled with replacement.

    Resamples whose r is undefined (constant) are dropped; NaN if none is left.
    """
    n = x.shape[0]
    if n_bootstrap <= 0 or n < 2:
        return float("nan"), float("nan")
    idx = rng.integers(0, n, size=(n_bootstrap, n))
    return stats.percentile_interval(resampled_pearson(x, y, idx))


def permutation_p(
    x: NDArray[np.float64], y: NDArray[np.float64], r: float, n_permutations: int, rng: np.random.Generator
) -> float:
    """Two-sided p of Pearson r: (1 + #{|r_perm| >= |r|}) / (1 + permutations)."""
    if n_permutations <= 0 or not np.isfinite(r):
        return float("nan")
    n = x.shape[0]
    # the generator's draws written into a reused array: the same numbers
    idx = np.argsort(rng.random((n_permutations, n), out=_scratch("keys", (n_permutations, n))), axis=1)
    r_perm = permuted_pearson(x, y, idx)
    # a tolerance so that permutations reproducing r exactly (up to rounding) count
    hits = int(np.count_nonzero(np.abs(r_perm) >= abs(r) - 1e-12))
    return (1 + hits) / (1 + n_permutations)


def _split_names(groups: NDArray[np.object_]) -> tuple[str, ...]:
    """'all', then the groups in sorted order (CCMusic: all, chinese, western); '' is no group."""
    return ("all", *sorted({str(g) for g in groups if g}))


def _finite_pairs(x: NDArray[np.float64], y: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    ok = np.isfinite(x) & np.isfinite(y)
    return x[ok], y[ok]


def _split_summary(model: str, split: str, r: NDArray[np.float64], rho: NDArray[np.float64]) -> dict[str, object]:
    finite = r[np.isfinite(r)]
    n = int(finite.size)
    sd = float(np.std(finite, ddof=1)) if n >= 2 else float("nan")
    return {
        "model": model,
        "split": split,
        "n": n,
        "mean_pearson_r": stats.nanmean(finite),
        "ci95_half_width": Z95 * sd / np.sqrt(n) if n >= 2 else float("nan"),
        "n_positive": int(np.count_nonzero(finite > 0)),
        "mean_spearman_rho": stats.nanmean(rho),
    }


def analyse_pairs(
    pairs: pl.DataFrame,
    descriptors: list[str],
    *,
    n_bootstrap: int = 1000,
    n_permutations: int = 1000,
    seed: int = 0,
) -> dict[str, pl.DataFrame]:
    """The Experiment 1 statistics from rows shaped like the ``exp1_pairs`` view.

    Args:
        pairs: columns model, instrument, split, descriptor, similarity, rating (one template).
        descriptors: every rated descriptor; one a model lacks gets n = 0 rows.
        n_bootstrap: bootstrap resamples per descriptor-level r (0 = no interval).
        n_permutations: permutations per descriptor-level r (0 = no p-value).
        seed: seeds the bootstrap and permutations.

    Returns:
        {"descriptors", "instruments", "splits"} frames (see the module doc).
    """
    if n_bootstrap < 0 or n_permutations < 0:
        raise AnalysisError("bootstrap resamples and permutations must be >= 0")
    desc_rows: list[dict[str, object]] = []
    inst_rows: list[dict[str, object]] = []
    split_rows: list[dict[str, object]] = []
    for model in sorted(pairs["model"].unique().to_list()):
        sub = pairs.filter(pl.col("model") == model)
        inst = sub.select("instrument", "split").unique().sort("split", "instrument")
        names = inst["instrument"].to_list()
        splits = np.asarray(inst["split"].to_list(), dtype=object)
        row_of = {name: i for i, name in enumerate(names)}
        col_of = {d: j for j, d in enumerate(descriptors)}
        s_mat = np.full((len(names), len(descriptors)), np.nan)
        r_mat = np.full_like(s_mat, np.nan)
        for name, d, s, r in sub.select("instrument", "descriptor", "similarity", "rating").iter_rows():
            if d in col_of:
                s_mat[row_of[name], col_of[d]] = np.nan if s is None else s
                r_mat[row_of[name], col_of[d]] = np.nan if r is None else r

        for split in _split_names(splits):
            mask = np.ones(len(names), bool) if split == "all" else splits == split
            if not mask.any():
                continue
            block: list[dict[str, object]] = []
            for j, d in enumerate(descriptors):
                x, y = _finite_pairs(s_mat[mask, j], r_mat[mask, j])
                r = stats.pearson(x, y)
                key = f"{model}\x1f{d}\x1f{split}"
                lo, hi = bootstrap_ci(x, y, n_bootstrap, _rng(seed, key, 0)) if np.isfinite(r) else (np.nan, np.nan)
                block.append({
                    "model": model, "descriptor": d, "split": split, "n": int(x.size),
                    "pearson_r": r, "spearman_rho": stats.spearman(x, y), "ci_low": lo, "ci_high": hi,
                    "p_value": permutation_p(x, y, r, n_permutations, _rng(seed, key, 1)),
                })
            q = stats.benjamini_hochberg(np.asarray([b["p_value"] for b in block], dtype=np.float64))
            for b, qv in zip(block, q):
                b["q_value"] = float(qv)
            desc_rows.extend(block)

        r_inst = np.array([stats.pearson(s_mat[i], r_mat[i]) for i in range(len(names))])
        rho_inst = np.array([stats.spearman(s_mat[i], r_mat[i]) for i in range(len(names))])
        for i, name in enumerate(names):
            inst_rows.append({
                "model": model, "instrument": name, "split": splits[i],
                "pearson_r": float(r_inst[i]), "spearman_rho": float(rho_inst[i]),
            })
        for split in _split_names(splits):
            mask = np.ones(len(names), bool) if split == "all" else splits == split
            if mask.any():
                split_rows.append(_split_summary(model, split, r_inst[mask], rho_inst[mask]))
    return {
        "descriptors": pl.DataFrame(desc_rows, schema=DESCRIPTOR_SCHEMA, orient="row")
        if desc_rows else pl.DataFrame(schema=DESCRIPTOR_SCHEMA),
        "instruments": pl.DataFrame(inst_rows, schema=INSTRUMENT_SCHEMA, orient="row")
        if inst_rows else pl.DataFrame(schema=INSTRUMENT_SCHEMA),
        "splits": pl.DataFrame(split_rows, schema=SPLIT_SCHEMA, orient="row")
        if split_rows else pl.DataFrame(schema=SPLIT_SCHEMA),
    }


def run_exp1(
    store: Store,
    model: str | None = None,
    template: str = BARE,
    n_bootstrap: int = 1000,
    n_permutations: int = 1000,
    seed: int = 0,
    dataset: str = DATASET,
    calibrated: bool = False,
) -> dict[str, pl.DataFrame]:
    """Experiment 1 over what the store holds (`timbredb query exp1`).

    Args:
        store: a store with a rated dataset ingested by at least one text-capable model.
        model: only this space (label, model id or space id); None = every space with pairs.
        template: the prompt template whose text embeddings to use ('{}' = bare word, the study's
            choice; 'ensemble' = the mean of the word's normalised template vectors).
        n_bootstrap, n_permutations, seed: see ``analyse_pairs``.
        dataset: the rated dataset (CCMusic by default; its groups play the chinese/western role).
        calibrated: beyond the study: S is `describe`'s calibrated score instead of the cosine
            (``calibrate``). Descriptor-level r is unchanged by it (an affine map per descriptor);
            the instrument level, which compares descriptors with each other, is not.

    Returns:
        {"descriptors": ..., "instruments": ..., "splits": ...} frames. Where the dataset has
        listener data (raw ratings or SDs) covering a split's stimuli, "descriptors" gains
        ``ceiling_r`` (the noise ceiling over that split's stimuli, see ``timbredb.analysis.ceiling``)
        and ``r_over_ceiling`` (pearson_r / ceiling_r); without listener data the frames are
        exactly the study's.

    Raises:
        AnalysisError: no ratings, no such model, fewer than 3 stimuli, or no similarities for that
        model/template.
    """
    check_query_template(template)
    if store.count_ratings(dataset) == 0:
        if dataset == DATASET:
            raise AnalysisError("no CCMusic ratings in the store; run `timbredb ingest ccmusic` first")
        rated.check_dataset(store, dataset)
        raise AnalysisError(f"rated dataset {dataset!r} has no stored recordings with mean ratings")
    ratings = rated.load_ratings(store, dataset)
    space_ids: list[str] | None = None
    if model is not None:
        spaces = store.spaces(model)
        if not spaces:
            known = ", ".join(sorted({s.label for s in store.spaces()})) or "none"
            raise AnalysisError(f"no model {model!r} in the store (stored: {known})")
        space_ids = [s.space_id for s in spaces]
    pairs = queries.run(store, "rated_pairs", dataset=dataset, template=template, space_ids=space_ids)
    if pairs.is_empty():
        # only the message needs the coverage (every template's pairs counted: a fifth of a run's CPU)
        coverage = rated.coverage(store, dataset)
        if space_ids is not None:
            coverage = coverage.filter(pl.col("space_id").is_in(space_ids))
        who = f"model {model!r}" if model is not None else "any model"
        if not coverage.is_empty():
            templates = ", ".join(repr(t) for t in sorted(set(coverage["template"].to_list())))
            raise AnalysisError(f"no exp1 similarities for {who} with template {template!r}; stored templates: {templates}")
        what = "the CCMusic recordings" if dataset == DATASET else f"the {dataset!r} recordings"
        cmd = f"ingest {dataset}" if dataset == DATASET else "ingest ratings PATH"
        raise AnalysisError(
            f"no exp1 similarities for {who}: it needs a text-capable model's embeddings of {what} "
            f"and descriptors (`timbredb {cmd} --models M`)"
        )
    if calibrated:
        pairs = calibrate(store, pairs, template)
    result = analyse_pairs(pairs, ratings.descriptors, n_bootstrap=n_bootstrap, n_permutations=n_permutations,
                           seed=seed)
    return with_ceilings(store, result, ratings, seed=seed)


def calibrate(store: Store, pairs: pl.DataFrame, template: str) -> pl.DataFrame:
    """``pairs`` with each similarity replaced by `describe`'s calibrated score.

    The score is (cosine − mean) / SD, the mean and population SD of that descriptor's
    cosines over the space's stored clips (the first ``MAX_REFERENCE`` in hash order;
    queries/calibration_reference.sql). Hub words, close to every sound, lose their
    advantage when descriptors are compared with each other. A descriptor whose reference
    cosines do not vary gets NaN (no score), so it drops out of the correlations.

    Raises:
        AnalysisError: a space has fewer than ``MIN_REFERENCE`` stored clips (too few for a
            reference distribution).
    """
    from timbredb.reference import MAX_REFERENCE, MIN_REFERENCE

    space_ids = sorted(set(pairs["space_id"].to_list()))
    ref = queries.run(store, "calibration_reference", template=template, space_ids=space_ids,
                      max_clips=MAX_REFERENCE)
    labels = dict(pairs.select("space_id", "model").unique().iter_rows())
    counts = dict(ref.group_by("space_id").agg(pl.col("n_clips").max()).iter_rows())
    for space_id in space_ids:
        n = counts.get(space_id) or 0
        if n < MIN_REFERENCE:
            raise AnalysisError(
                f"--calibrated: model {labels[space_id]!r} has {n} stored clips with vectors; the reference "
                f"distribution needs at least {MIN_REFERENCE} (ingest more audio with that model)"
            )
    sd = pl.col("sd_cosine")
    return (
        pairs.join(ref.select("space_id", "descriptor", "mean_cosine", "sd_cosine"), on=["space_id", "descriptor"],
                   how="left")
        .with_columns(
            pl.when(sd > 0).then((pl.col("similarity") - pl.col("mean_cosine")) / sd).otherwise(None)
            .fill_nan(None).alias("similarity")
        )
        .drop("mean_cosine", "sd_cosine")
    )


def with_ceilings(store: Store, result: dict[str, pl.DataFrame], ratings: rated.Ratings, seed: int = 0
                  ) -> dict[str, pl.DataFrame]:
    """The descriptors frame with ceiling_r and r_over_ceiling where listener data covers a split's stimuli.

    A split's ceiling is over exactly its stimuli (all of them, or one group), by split-half where
    raw ratings cover them, else by the sd method. Without listener data nothing changes.
    """
    from timbredb.analysis import ceiling

    data = ceiling.load(store, ratings.dataset)
    if data.empty:
        return result
    members = {"all": list(ratings.stimuli)}
    for g in ratings.group_names():
        members[g] = [s for s, grp in zip(ratings.stimuli, ratings.groups) if grp == g]
    cache: dict[tuple[str, str], float] = {}
    for split, stimuli in members.items():
        for d in ratings.descriptors:
            best = ceiling.best_ceiling(data, ratings.dataset, d, stimuli, ceiling.DEFAULT_SPLITS, seed)
            if best is not None:
                cache[(split, d)] = best[0]
    desc = result["descriptors"]
    ceil = [cache.get((sp, d), float("nan")) for sp, d in desc.select("split", "descriptor").iter_rows()]
    desc = desc.with_columns(pl.Series("ceiling_r", ceil, dtype=pl.Float64))
    desc = desc.with_columns(
        pl.when(pl.col("ceiling_r") > 0).then(pl.col("pearson_r") / pl.col("ceiling_r"))
        .otherwise(float("nan")).alias("r_over_ceiling")
    )
    return {**result, "descriptors": desc}
