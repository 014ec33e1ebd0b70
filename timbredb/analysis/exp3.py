"""Experiment 3: do embedding distances follow human timbre dissimilarity?

The metrics are those of timbremetrics (Tian et al. 2025,
github.com/tiianhk/timbremetrics, ``metrics.py`` and ``utils.py``), so numbers
are comparable with its published leaderboard:

1. Per study with N stimuli, the model's distance matrix (1 - cosine, or L2)
   and the human matrix each get their diagonal and lower triangle set to 0;
   then the whole N x N matrix is min-max normalised (the zeros take part).
2. Both matrices are symmetrised (M + M^T); each stimulus (anchor) i gets its
   row of N - 1 distances to the others.
3. Per anchor, model row vs human row: Spearman rho, Kendall tau-b, NDCG of
   retrieving similar items (scores 1 - model, gains 1 - human, all N - 1
   items, log2 discount, tied scores averaged as scikit-learn does), and
   triplet agreement (pairs j < k of the row whose human distances differ by
   more than 0.1; the share the model orders the same way, model ties count as
   disagreement). An anchor where a value is undefined (a constant row, no pair
   over the margin) scores 0, as in the reference.
4. A study's score is the mean over its anchors; "all" is the sum over the
   anchors of every study divided by the total number of stimuli. MAE is the
   sum of |model - human| over the normalised upper triangles divided by the
   number of pairs (per study, and over all studies).

Beyond the reference: 95% percentile bootstrap intervals over anchors,
resampled within each study (seeded, deterministic per model and distance).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
from numpy.typing import NDArray

from timbredb import queries
from timbredb.analysis.stats import (
    kendalltau_b_statistic,
    percentile_interval,
    rng,
    spearmanr_statistic,
    stable_key,
)
from timbredb.errors import AnalysisError
from timbredb.store import Store

DISTANCES: tuple[str, ...] = ("cosine", "l2")
#: metrics averaged over anchors (MAE is a ratio over pairs)
ANCHOR_METRICS: tuple[str, ...] = ("spearman", "kendall", "ndcg", "triplet_agreement")
METRICS: tuple[str, ...] = ANCHOR_METRICS + ("mae",)
#: timbremetrics' margin: a triplet counts only if the human distances differ by more than this
TRIPLET_MARGIN = 0.1
CI_LEVEL = 0.95
ALL = "all"


# ---------------------------------------------------------------- matrices
def distance_matrix(x: NDArray[np.floating], distance: str) -> NDArray[np.float64]:
    """N x N distances between the rows of ``x``: "cosine" (1 - cosine similarity) or "l2".

    A zero vector has cosine similarity 0 with everything.
    """
    x = np.asarray(x, dtype=np.float64)
    if distance == "cosine":
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        unit = x / np.maximum(norms, np.finfo(np.float64).tiny)
        return 1.0 - unit @ unit.T
    if distance == "l2":
        return np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(axis=-1))
    raise AnalysisError(f"unknown distance {distance!r}; use one of {', '.join(DISTANCES)}")


def mask_normalise(d: NDArray[np.floating]) -> NDArray[np.float64]:
    """Zero the diagonal and lower triangle, then min-max normalise the whole N x N matrix.

    The zeros take part, so the minimum is min(0, upper values). A matrix whose
    upper triangle is all zero (identical embeddings) stays all zero.
    """
    m = np.triu(np.asarray(d, dtype=np.float64), k=1)
    lo, hi = float(m.min()), float(m.max())
    if hi == lo:
        return np.zeros_like(m)
    return (m - lo) / (hi - lo)


def anchor_rows(m: NDArray[np.floating]) -> NDArray[np.float64]:
    """(N, N-1): row i = distances from stimulus i to the others, after symmetrising M + M^T."""
    s = np.asarray(m, dtype=np.float64)
    s = s + s.T
    n = s.shape[0]
    return s[~np.eye(n, dtype=bool)].reshape(n, n - 1)


# ---------------------------------------------------------------- per-anchor statistics
def _rank_corr(kind: str, x: NDArray[np.float64], y: NDArray[np.float64]) -> float:
    # A constant row has no ranking: the reference scores it 0 (Spearman via an
    # epsilon in the denominator, Kendall via nansum).
    if x.shape[0] < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return 0.0
    if kind == "spearman":
        value = spearmanr_statistic(x, y)
    else:
        value = kendalltau_b_statistic(x, y)
    return float(value) if np.isfinite(value) else 0.0


def ndcg(scores: NDArray[np.floating], gains: NDArray[np.floating]) -> float:
    """NDCG over all items: linear gains, discount 1/log2(rank + 1), tied scores averaged.

    Items are ranked by ``scores`` (descending); items with equal scores share
    the mean of their gains over the positions they occupy (scikit-learn's
    ``ndcg_score`` and torchmetrics' ``retrieval_normalized_dcg``). 0 when all gains are 0.
    """
    scores = np.asarray(scores, dtype=np.float64)
    gains = np.asarray(gains, dtype=np.float64)
    n = scores.shape[0]
    discount = 1.0 / np.log2(np.arange(n, dtype=np.float64) + 2.0)
    ideal = float((np.sort(gains)[::-1] * discount).sum())
    if ideal == 0:
        return 0.0
    _, inverse, counts = np.unique(-scores, return_inverse=True, return_counts=True)
    group_gain = np.bincount(inverse, weights=gains) / counts
    ends = np.cumsum(counts)
    cum = np.concatenate([[0.0], np.cumsum(discount)])
    group_discount = cum[ends] - cum[ends - counts]
    return float((group_gain * group_discount).sum() / ideal)


def triplet_agreement(
    model_row: NDArray[np.floating], human_row: NDArray[np.floating], margin: float = TRIPLET_MARGIN
) -> float:
    """Share of pairs j < k with |human_j - human_k| > margin that the model orders the same way.

    A model tie is a disagreement; 0 when no pair passes the margin (as in the reference).
    """
    m = np.asarray(model_row, dtype=np.float64)
    h = np.asarray(human_row, dtype=np.float64)
    j, k = np.triu_indices(h.shape[0], k=1)
    dh = h[k] - h[j]
    dm = m[k] - m[j]
    valid = np.abs(dh) > margin
    n_valid = int(valid.sum())
    if n_valid == 0:
        return 0.0
    return float(((dh * dm > 0) & valid).sum() / n_valid)


@dataclass(frozen=True)
class AnchorScores:
    """Per-anchor results for one study, model vs human (arrays of length N).

    ``abs_error`` is the sum over the anchor's N - 1 symmetrised pairs of
    |model - human|; summed over anchors it counts every pair twice, as does
    ``n_pairs`` (= N - 1 per anchor), so sum(abs_error) / sum(n_pairs) is the MAE.
    """

    spearman: NDArray[np.float64]
    kendall: NDArray[np.float64]
    ndcg: NDArray[np.float64]
    triplet_agreement: NDArray[np.float64]
    abs_error: NDArray[np.float64]
    n_pairs: NDArray[np.float64]

    @property
    def n(self) -> int:
        return int(self.spearman.shape[0])


def anchor_scores(model_norm: NDArray[np.floating], human_norm: NDArray[np.floating]) -> AnchorScores:
    """Every per-anchor statistic for normalised (masked) model and human matrices."""
    pm, th = anchor_rows(model_norm), anchor_rows(human_norm)
    n = pm.shape[0]
    return AnchorScores(
        spearman=np.array([_rank_corr("spearman", pm[i], th[i]) for i in range(n)]),
        kendall=np.array([_rank_corr("kendall", pm[i], th[i]) for i in range(n)]),
        ndcg=np.array([ndcg(1.0 - pm[i], 1.0 - th[i]) for i in range(n)]),
        triplet_agreement=np.array([triplet_agreement(pm[i], th[i]) for i in range(n)]),
        abs_error=np.abs(pm - th).sum(axis=1),
        n_pairs=np.full(n, n - 1, dtype=np.float64),
    )


def study_scores(embeddings: NDArray[np.floating], human: NDArray[np.floating], distance: str) -> AnchorScores:
    """Per-anchor statistics of one study from its embeddings (rows in matrix order) and raw human matrix."""
    return distance_scores(distance_matrix(embeddings, distance), human)


def distance_scores(model: NDArray[np.floating], human: NDArray[np.floating]) -> AnchorScores:
    """Per-anchor statistics of one study from a model distance matrix (only i < j is read) and the human one."""
    return anchor_scores(mask_normalise(model), mask_normalise(human))


def pair_matrices(store: Store, space_id: str, clips: list[str]) -> dict[str, NDArray[np.float64]]:
    """A pairwise space's N x N distance matrices ("cosine", "l2") for clips in matrix order (i < j filled).

    Raises:
        AnalysisError: a pair's distance is not stored.
    """
    n = len(clips)
    pairs = [(clips[i], clips[j]) for i in range(n) for j in range(i + 1, n)]
    stored = store.pair_distances(space_id, pairs)
    out = {d: np.zeros((n, n), dtype=np.float64) for d in DISTANCES}
    for i in range(n):
        for j in range(i + 1, n):
            a, b = sorted((clips[i], clips[j]))
            if (a, b) not in stored:
                raise AnalysisError(f"space {space_id} lacks the distance of pair ({i}, {j})")
            out["cosine"][i, j], out["l2"][i, j] = stored[(a, b)]
    return out


# ---------------------------------------------------------------- aggregation
def _point(parts: list[AnchorScores]) -> dict[str, float]:
    n = sum(p.n for p in parts)
    out = {m: float(sum(getattr(p, m).sum() for p in parts) / n) for m in ANCHOR_METRICS}
    out["mae"] = float(sum(p.abs_error.sum() for p in parts) / sum(p.n_pairs.sum() for p in parts))
    return out


def _rng(seed: int, model: str, distance: str) -> np.random.Generator:
    # the stream depends only on (seed, model, distance), so --model X gives the
    # same intervals as a run over every model
    return rng(seed, stable_key(f"{model}\0{distance}"))


def _bootstrap(
    studies: list[AnchorScores], n_bootstrap: int, rng: np.random.Generator
) -> tuple[list[dict[str, NDArray[np.float64]]], dict[str, NDArray[np.float64]]]:
    """Resample anchors within each study; returns per-study and pooled replicate arrays."""
    per_study: list[dict[str, NDArray[np.float64]]] = []
    sums = {m: np.zeros(n_bootstrap) for m in ANCHOR_METRICS + ("abs_error", "n_pairs")}
    for s in studies:
        idx = rng.integers(0, s.n, size=(n_bootstrap, s.n))
        rep: dict[str, NDArray[np.float64]] = {}
        for m in ANCHOR_METRICS + ("abs_error", "n_pairs"):
            total = getattr(s, m)[idx].sum(axis=1)
            sums[m] += total
            rep[m] = total
        per_study.append(_finish(rep, s.n))
    total_n = sum(s.n for s in studies)
    return per_study, _finish(sums, total_n)


def _finish(sums: dict[str, NDArray[np.float64]], n: int) -> dict[str, NDArray[np.float64]]:
    out = {m: sums[m] / n for m in ANCHOR_METRICS}
    out["mae"] = sums["abs_error"] / sums["n_pairs"]
    return out


def _interval(replicates: dict[str, NDArray[np.float64]] | None) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for m in METRICS:
        if replicates is None:
            out[f"{m}_ci_low"] = out[f"{m}_ci_high"] = None
        else:
            out[f"{m}_ci_low"], out[f"{m}_ci_high"] = percentile_interval(replicates[m], CI_LEVEL)
    return out


def summarise(
    model: str, distance: str, studies: dict[str, AnchorScores], n_bootstrap: int = 1000, seed: int = 0
) -> list[dict[str, object]]:
    """Rows for one model and distance: one per study (sorted), then "all"."""
    names = sorted(studies)
    parts = [studies[k] for k in names]
    if n_bootstrap > 0:
        per_study, pooled = _bootstrap(parts, n_bootstrap, _rng(seed, model, distance))
    rows: list[dict[str, object]] = []
    for k, (name, part) in enumerate(zip(names, parts)):
        rows.append({
            "model": model, "dataset": name, "distance": distance, "n_stimuli": part.n, "n_datasets": 1,
            **_point([part]), **_interval(per_study[k] if n_bootstrap > 0 else None),
        })
    rows.append({
        "model": model, "dataset": ALL, "distance": distance, "n_stimuli": sum(p.n for p in parts),
        "n_datasets": len(parts), **_point(parts), **_interval(pooled if n_bootstrap > 0 else None),
    })
    return rows


# ---------------------------------------------------------------- the experiment
@dataclass(frozen=True)
class Study:
    """A stored study: its clips in matrix order and its raw human matrix (upper triangle)."""

    name: str
    clip_sha256: list[str]
    human: NDArray[np.float64]


def load_studies(store: Store) -> dict[str, Study]:
    """The stored dissimilarity studies (empty if none)."""
    stimuli = queries.run(store, "exp3_stimuli")
    ratings = queries.run(store, "exp3_ratings")
    studies: dict[str, Study] = {}
    for (name,), group in stimuli.group_by("dataset", maintain_order=True):
        n = group.height
        human = np.zeros((n, n), dtype=np.float64)
        r = ratings.filter(pl.col("dataset") == name)
        human[r["i"].to_numpy(), r["j"].to_numpy()] = r["dissimilarity"].to_numpy()
        studies[str(name)] = Study(str(name), group["clip_sha256"].to_list(), human)
    return studies


_SCHEMA: dict[str, type[pl.DataType] | pl.DataType] = {
    "model": pl.Utf8, "dataset": pl.Utf8, "distance": pl.Utf8, "n_stimuli": pl.Int64, "n_datasets": pl.Int64,
    **{m: pl.Float64 for m in METRICS},
    **{f"{m}_ci_{side}": pl.Float64 for m in METRICS for side in ("low", "high")},
}


def run_exp3(
    store: Store, model: str | None = None, n_bootstrap: int = 1000, seed: int = 0
) -> dict[str, pl.DataFrame]:
    """Alignment of every audio model's distances with human timbre dissimilarity.

    Args:
        store: an open store holding ingested timbremetrics studies.
        model: one model (label, model id or space id); default every audio model
            that has vectors for all stimuli of at least one study (or, for a pairwise
            space such as ``mfcc-frames``, a distance for every pair of a study).
        n_bootstrap: bootstrap resamples over anchors for the intervals (0 = none).
        seed: seed of the bootstrap.

    Returns:
        {"metrics": one row per model x study (then "all") x distance}: model, dataset, distance
        ("cosine" | "l2"), n_stimuli, n_datasets, spearman, kendall, ndcg,
        triplet_agreement, mae, and <metric>_ci_low / <metric>_ci_high (95%).
        A model is evaluated only on the studies whose stimuli it has all embedded.

    Raises:
        AnalysisError: no study is stored, the model is unknown, or nothing is embedded.
    """
    if n_bootstrap < 0:
        raise AnalysisError(f"n_bootstrap must be >= 0, got {n_bootstrap}")
    studies = load_studies(store)
    if not studies:
        raise AnalysisError("no timbre-dissimilarity studies are stored; run `timbredb ingest timbremetrics` first")
    spaces = [s for s in store.spaces(model) if "audio" in s.modalities]
    if model is not None and not spaces:
        raise AnalysisError(f"no stored audio model matches {model!r}; see `timbredb sql \"SELECT label FROM spaces\"`")
    coverage = queries.run(store, "exp3_coverage", space_ids=[s.space_id for s in spaces]).filter(pl.col("complete"))
    rows: list[dict[str, object]] = []
    for space in spaces:
        names = coverage.filter(pl.col("space_id") == space.space_id)["dataset"].to_list()
        if not names:
            continue
        by_distance: dict[str, dict[str, AnchorScores]] = {d: {} for d in DISTANCES}
        for name in names:
            study = studies[name]
            if space.pairwise:
                # frame-level spaces: distances stored pair by pair (timbredb.models.pairwise)
                mats = pair_matrices(store, space.space_id, study.clip_sha256)
                for distance in DISTANCES:
                    by_distance[distance][name] = distance_scores(mats[distance], study.human)
                continue
            _, x = store.audio_matrix(space.space_id, study.clip_sha256)
            for distance in DISTANCES:
                by_distance[distance][name] = study_scores(x, study.human, distance)
        for distance in DISTANCES:
            rows.extend(summarise(space.label, distance, by_distance[distance], n_bootstrap, seed))
    if not rows:
        if model is not None:
            raise AnalysisError(
                f"model {model!r} lacks vectors for some stimuli of every stored study; "
                f"run `timbredb ingest timbremetrics --models {model}`"
            )
        raise AnalysisError(
            "no audio model has vectors for all the stimuli of a stored study; run `timbredb ingest timbremetrics`"
        )
    return {"metrics": pl.DataFrame(rows, schema=_SCHEMA)}
