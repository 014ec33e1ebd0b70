"""Approximate nearest neighbours for audio indexes at scale: exact below a size, IVF above it.

Below ``ivf_min_rows()`` vectors (default 100 000, ``$TIMBREDB_IVF_MIN_ROWS``) an
audio index is exact (``IndexFlatIP``). From there it is an inverted-file index
(``IndexIVFFlat``, inner product over L2-normalised vectors, so scores stay cosines):

* nlist = round(4·√N) lists, k-means trained on a uniform sample of the vectors
  (the rows with the smallest clip hashes: sha256 values are uniform);
* held-back queries — stored vectors outside the training sample (the largest
  hashes) — are searched exactly while the index is filled, so the exact top 10
  of each (itself excluded) is known without a second copy of the matrix;
* nprobe is the smallest number of lists whose recall@10 against that exact
  answer reaches ``TARGET_RECALL`` (0.95) with 95% confidence (the one-sided lower
  bound over the queries, so the tuned recall holds for other queries too); it and
  the measured mean recall are recorded with the index (``faiss_indexes``) and
  shown by `timbredb check`.

The vectors stream from DuckDB in chunks: the index holds its one copy, plus the
training sample and the queries; nothing else holds the whole matrix.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

#: recall@10 that nprobe is tuned to reach
TARGET_RECALL = 0.95
#: neighbours recall is measured on
K = 10
#: the standard normal's 95th percentile (scipy.stats.norm.ppf(0.95))
Z_ONE_SIDED_95 = 1.6448536269514722
_DEFAULT_MIN_ROWS = 100_000
#: DuckDB's memory limit while an index streams its vectors (its cache would otherwise keep them all)
BUILD_MEMORY_LIMIT = "512MB"
#: vectors per chunk streamed from DuckDB while an index is filled (a 512-d chunk is 32 MB)
CHUNK_ROWS = 16384
#: hashes sort below this string (clip hashes are lower-case hex)
_AFTER_ALL = "g"


def ivf_min_rows() -> int:
    """Vectors from which an audio index is IVF: ``$TIMBREDB_IVF_MIN_ROWS``, else 100 000."""
    env = os.environ.get("TIMBREDB_IVF_MIN_ROWS", "").strip()
    return int(env) if env.isdigit() and int(env) > 0 else _DEFAULT_MIN_ROWS


def use_ivf(n_rows: int) -> bool:
    return n_rows >= ivf_min_rows()


def nlist_for(n_rows: int) -> int:
    """Inverted lists for N vectors: about 4·√N."""
    return max(1, int(round(4 * math.sqrt(n_rows))))


@dataclass(frozen=True)
class AnnPlan:
    """Sizes of an IVF build over N vectors (sorted by key: training = first rows, queries = last)."""

    n_rows: int
    nlist: int
    n_train: int
    n_queries: int

    @classmethod
    def for_rows(cls, n_rows: int) -> AnnPlan:
        nlist = nlist_for(n_rows)
        n_queries = min(1000, max(1, n_rows // 20))
        # FAISS wants >= 39 points per centroid; 40 is plenty and keeps k-means affordable at 10^6
        n_train = max(nlist, min(n_rows - n_queries, 40 * nlist))
        return cls(n_rows, nlist, n_train, n_queries)


@dataclass(frozen=True)
class AnnResult:
    """A built IVF index and how it was tuned."""

    index: Any  # faiss.IndexIVFFlat
    nlist: int
    nprobe: int
    recall_at_10: float
    recall_queries: int
    recall_by_nprobe: dict[int, float]


def _normalise(x: NDArray[np.floating]) -> NDArray[np.float32]:
    x = np.ascontiguousarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x / np.where(norms > 0, norms, 1.0), dtype=np.float32)


class _ExactTopK:
    """The running exact top-k of fixed queries over vectors that arrive in chunks (self-matches excluded)."""

    def __init__(self, queries: NDArray[np.float32], query_ids: NDArray[np.int64], k: int) -> None:
        self.q = queries
        self.qid = query_ids
        self.k = k
        n = queries.shape[0]
        self.scores = np.full((n, k), -np.inf, dtype=np.float32)
        self.ids = np.full((n, k), -1, dtype=np.int64)

    def add(self, chunk: NDArray[np.float32], ids: NDArray[np.int64], block: int = 4096) -> None:
        # in blocks of rows, so the score matrix stays small (1000 queries x 4096 rows = 16 MB)
        for start in range(0, chunk.shape[0], block):
            c, cid = chunk[start : start + block], ids[start : start + block]
            s = self.q @ c.T
            s[self.qid[:, None] == cid[None, :]] = -np.inf
            scores = np.concatenate([self.scores, s], axis=1)
            top = np.argpartition(-scores, self.k - 1, axis=1)[:, : self.k]
            old = top < self.k
            picked = np.where(old, np.take_along_axis(self.ids, np.minimum(top, self.k - 1), axis=1),
                              cid[np.maximum(top - self.k, 0)])
            self.scores = np.take_along_axis(scores, top, axis=1)
            self.ids = picked


def recall_per_query(found: NDArray[np.int64], exact: NDArray[np.int64]) -> NDArray[np.float64]:
    """|found ∩ exact| / |exact| for each query (ids < 0 are no result; a query with no exact answer counts 1)."""
    out = np.ones(len(exact), dtype=np.float64)
    for r, (f, e) in enumerate(zip(found, exact)):
        e_set = {int(i) for i in e if i >= 0}
        if e_set:
            out[r] = len(e_set & {int(i) for i in f if i >= 0}) / len(e_set)
    return out


def recall_at_k(found: NDArray[np.int64], exact: NDArray[np.int64]) -> float:
    """Mean over queries of |found ∩ exact| / |exact|."""
    return float(recall_per_query(found, exact).mean()) if len(exact) else 1.0


def lower_bound(per_query: NDArray[np.float64]) -> float:
    """One-sided 95% lower confidence bound of the mean recall: mean - 1.645 * SD / sqrt(n).

    nprobe is tuned on this bound, not on the mean: the smallest nprobe whose *sample* mean
    crosses the target overstates the recall other queries get (the winner's curse).
    """
    n = len(per_query)
    if n < 2:
        return float(per_query.mean()) if n else 1.0
    return float(per_query.mean() - Z_ONE_SIDED_95 * per_query.std(ddof=1) / np.sqrt(n))


def search_excluding_self(index: Any, queries: NDArray[np.float32], query_ids: NDArray[np.int64], k: int) -> NDArray[np.int64]:
    """Top-k ids per query with the query's own row left out (search k+1, drop it)."""
    _, ids = index.search(queries, k + 1)
    out = np.full((queries.shape[0], k), -1, dtype=np.int64)
    for r, (row, own) in enumerate(zip(ids, query_ids)):
        kept = [int(i) for i in row if i != own][:k]
        out[r, : len(kept)] = kept
    return out


def tune_nprobe(index: Any, queries: NDArray[np.float32], query_ids: NDArray[np.int64], exact: NDArray[np.int64],
                nlist: int, target: float = TARGET_RECALL) -> tuple[int, float, dict[int, float]]:
    """The smallest nprobe whose recall@k reaches ``target`` with 95% confidence (its one-sided lower
    bound over the queries; doubling, then bisecting). Returns it, its mean recall, and every try's mean."""
    tried: dict[int, float] = {}
    bounds: dict[int, float] = {}

    def recall(nprobe: int) -> float:
        if nprobe not in bounds:
            index.nprobe = nprobe
            per_query = recall_per_query(search_excluding_self(index, queries, query_ids, exact.shape[1]), exact)
            tried[nprobe] = float(per_query.mean())
            bounds[nprobe] = lower_bound(per_query)
        return bounds[nprobe]

    lo, hi = 0, 1
    while recall(hi) < target and hi < nlist:
        lo, hi = hi, min(nlist, hi * 2)
    while hi - lo > 1:  # recall(lo) < target <= recall(hi), or hi = nlist
        mid = (lo + hi) // 2
        if recall(mid) >= target:
            hi = mid
        else:
            lo = mid
    index.nprobe = hi
    recall(hi)
    return hi, tried[hi], dict(sorted(tried.items()))


def build_ivf(
    keys: list[str],
    dim: int,
    sample: Any,
    stream: Any,
    target: float = TARGET_RECALL,
) -> AnnResult:
    """Build and tune an IVF index over vectors that stream in chunks.

    Args:
        keys: every row's key, sorted (row i of the index is ``keys[i]``).
        dim: vector dimension.
        sample: ``(lo, hi) -> (keys, matrix)``: the vectors whose key is in [lo, hi), in any order.
        stream: ``() -> iterator of (keys, matrix)`` chunks covering every vector once, any order.
    """
    import faiss

    n = len(keys)
    plan = AnnPlan.for_rows(n)
    train_hi = keys[plan.n_train] if plan.n_train < n else _AFTER_ALL
    _, train = sample("", train_hi)
    q_lo = keys[n - plan.n_queries]
    q_keys, q_matrix = sample(q_lo, _AFTER_ALL)
    by_key = sorted(range(len(q_keys)), key=q_keys.__getitem__)
    q_keys = [q_keys[i] for i in by_key]
    queries = _normalise(q_matrix[by_key])
    query_ids = np.arange(n - plan.n_queries, n, dtype=np.int64)
    assert q_keys == keys[n - plan.n_queries :]

    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFFlat(quantizer, dim, plan.nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.niter = 10  # 10 k-means iterations: the tuned nprobe absorbs the rest
    index.cp.seed = 1234
    train = _normalise(train)  # drops the sample as read (a view of DuckDB's Arrow result) before k-means
    index.train(train)
    del train
    position = {k: i for i, k in enumerate(keys)}
    exact = _ExactTopK(queries, query_ids, min(K, n - 1))
    for chunk_keys, matrix in stream():
        ids = np.fromiter((position[k] for k in chunk_keys), dtype=np.int64, count=len(chunk_keys))
        x = _normalise(matrix)
        index.add_with_ids(x, ids)
        exact.add(x, ids)
    if index.ntotal != n:
        raise RuntimeError(f"IVF index holds {index.ntotal} vectors, the store {n}")
    nprobe, recall, tried = tune_nprobe(index, queries, query_ids, exact.ids, plan.nlist, target)
    return AnnResult(index, plan.nlist, nprobe, recall, plan.n_queries, tried)


def ivf_from_store(store: Any, space_id: str, keys: list[str], dim: int, chunk_rows: int | None = None) -> AnnResult:
    """``build_ivf`` over a space's audio vectors in a Store (sample by hash range, stream in chunks)."""
    rows = chunk_rows or CHUNK_ROWS
    with store.memory_limit(BUILD_MEMORY_LIMIT):
        return build_ivf(keys, dim, lambda lo, hi: store.audio_vectors_range(space_id, lo, hi),
                         lambda: store.iter_audio_vectors(space_id, rows))
