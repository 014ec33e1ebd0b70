"""Audio indexes at scale: exact below the threshold, IVF above it with nprobe tuned to recall@10 >= 0.95."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import pytest

from timbredb import ann
from timbredb.audio import Audio
from timbredb.index import audio_index, audio_index_name
from timbredb.spaces import SpaceRecord
from timbredb.store import Store

DIM = 32
N = 6000


def _clustered(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """Vectors around 60 centres (like embeddings of a corpus: clustered, not uniform)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((60, dim))
    which = rng.integers(0, 60, n)
    return (centres[which] + 0.45 * rng.standard_normal((n, dim))).astype(np.float32)


def _fill(db: Path, n: int = N) -> tuple[str, list[str], np.ndarray]:
    space = SpaceRecord("synthspace000001", "synth", "synth", "test", "v1", None, {"kind": "synthetic"}, DIM, 16000,
                        "cosine", ("audio",))
    keys = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(n)]
    vectors = _clustered(n, DIM)
    with Store(db) as store:
        store.ensure_space(space)
        tiny = np.zeros(16, dtype=np.float32)
        store.add_clips([Audio(tiny, 16000, 1, k, f"synth://{i}") for i, k in enumerate(keys)])
        batch = store.add_batch(space.space_id, "audio", n, "cpu", "float32", {"synthetic": True}, None)
        store.insert_audio_embeddings(space.space_id, keys, vectors, batch)
    return space.space_id, keys, vectors


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _exact_top(vectors: np.ndarray, rows: np.ndarray, k: int = 10) -> np.ndarray:
    """Brute force in float64 with numpy: the k nearest rows by cosine, the query row left out."""
    u = _unit(vectors.astype(np.float64))
    s = u[rows] @ u.T
    s[np.arange(len(rows)), rows] = -np.inf
    return np.argsort(-s, axis=1)[:, :k]


def _recall(found: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(e)) / len(e) for f, e in zip(found, exact)]))


def test_ivf_above_the_threshold_is_tuned_to_the_target_recall_and_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import faiss

    db = tmp_path / "s.duckdb"
    space_id, keys, vectors = _fill(db)
    monkeypatch.setenv("TIMBREDB_IVF_MIN_ROWS", "5000")
    monkeypatch.setattr(ann, "CHUNK_ROWS", 700)  # several chunks, as at 10^6
    with Store(db) as store:
        # the build streams: loading the whole matrix at once is not allowed
        monkeypatch.setattr(Store, "audio_matrix", lambda *a, **k: pytest.fail("audio_matrix loaded the whole matrix"))
        idx = audio_index(store, space_id)
        params = store.index_params(audio_index_name(space_id))
    monkeypatch.undo()
    assert isinstance(idx.index, faiss.IndexIVFFlat)
    assert idx.index.nlist == round(4 * math.sqrt(N)) == params["nlist"]
    assert params["index_type"] == "ivf" and params["recall_queries"] == 300
    nprobe = params["nprobe"]
    assert idx.index.nprobe == nprobe and 1 < nprobe < idx.index.nlist
    # the recorded recall is the recall on the held-back queries (the 300 largest hashes), recomputed here
    # independently, and nprobe is the smallest that reaches 0.95
    order = np.argsort(keys)
    held = order[-300:]
    exact = _exact_top(vectors[order], np.arange(N - 300, N))

    def found(nprobe: int) -> np.ndarray:
        idx.index.nprobe = nprobe
        return np.asarray([[i for i in row if i != q][:10] for row, q in
                           zip(idx.index.search(_unit(vectors[held]).astype(np.float32), 11)[1], range(N - 300, N))])

    assert abs(_recall(found(nprobe), exact) - params["recall_at_10"]) < 1e-12

    def lower(nprobe: int) -> float:  # one-sided 95% bound, from scipy's normal quantile
        from scipy import stats

        per = np.asarray([len(set(f) & set(e)) / 10 for f, e in zip(found(nprobe), exact)])
        return float(per.mean() - stats.norm.ppf(0.95) * per.std(ddof=1) / np.sqrt(len(per)))

    assert lower(nprobe) >= 0.95 > lower(nprobe - 1)
    assert params["recall_at_10"] > lower(nprobe)
    # and on other queries (not held back) the recall is about as good
    others = order[:200]
    sorted_vectors = vectors[order]
    idx.index.nprobe = nprobe
    got = [[idx.keys.index(k) for k, _ in hits] for hits in idx.search(vectors[others], 11)]
    got = [[i for i in row if i != q][:10] for row, q in zip(got, range(200))]
    assert _recall(np.asarray(got), _exact_top(sorted_vectors, np.arange(200))) >= 0.9


def test_ivf_index_is_reloaded_fresh_and_check_shows_its_recall(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from timbredb.check import run_check

    db = tmp_path / "s.duckdb"
    space_id, keys, vectors = _fill(db)
    monkeypatch.setenv("TIMBREDB_IVF_MIN_ROWS", "5000")
    with Store(db) as store:
        first = audio_index(store, space_id)
        hits = first.search(vectors[:3], 5)
    with Store(db, read_only=True) as store:
        again = audio_index(store, space_id)  # from the file: same nprobe, same answers
        assert again.index.nprobe == first.index.nprobe and again.search(vectors[:3], 5) == hits
    frames, ok = run_check(db)
    row = frames["indexes"].filter(frames["indexes"]["index_name"] == audio_index_name(space_id)).row(0, named=True)
    assert ok and row["state"] == "fresh" and row["index_type"] == "ivf" and row["recall_at_10"] >= 0.95
    assert row["nprobe"] == first.index.nprobe


def test_below_the_threshold_the_index_is_exact_and_a_read_only_store_gets_it_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import faiss

    db = tmp_path / "s.duckdb"
    space_id, keys, vectors = _fill(db, 800)
    monkeypatch.setenv("TIMBREDB_IVF_MIN_ROWS", "5000")
    with Store(db, read_only=True) as store:
        idx = audio_index(store, space_id)
    assert isinstance(idx.index, faiss.IndexFlat)
    assert not (tmp_path / "s.duckdb.faiss").exists()  # read paths never write
    order = np.argsort(keys)
    exact = _exact_top(vectors[order], np.arange(20))
    got = [[idx.keys.index(k) for k, _ in hits][1:] for hits in idx.search(vectors[order][:20], 11)]
    assert _recall(np.asarray(got), exact) == 1.0
    monkeypatch.setenv("TIMBREDB_IVF_MIN_ROWS", "500")
    with Store(db, read_only=True) as store:
        ivf = audio_index(store, space_id)  # above the threshold even in memory: IVF, recorded nowhere
    assert isinstance(ivf.index, faiss.IndexIVFFlat)
    assert not (tmp_path / "s.duckdb.faiss").exists()
    with Store(db) as store:
        audio_index(store, space_id)
        assert store.index_params(audio_index_name(space_id))["index_type"] == "ivf"


def test_nprobe_tuning_finds_the_smallest_nprobe_whose_lower_bound_reaches_the_target() -> None:
    # 400 queries with 10 neighbours each; at nprobe p a fraction hit[p] of the queries finds all 10,
    # the others 8 of 10
    hit = {1: 0.0, 2: 0.3, 3: 0.6, 4: 0.7, 5: 0.76, 6: 0.8, 7: 0.85, 8: 0.95}
    n_q = 400

    class Fake:
        nprobe = 0

        def search(self, q: np.ndarray, k: int) -> tuple[None, np.ndarray]:
            full = int(round(hit.get(self.nprobe, 1.0) * n_q))
            rows = [[10_000 + r] + list(range(10)) if r < full else [10_000 + r] + list(range(8)) + [-1, -1]
                    for r in range(n_q)]
            return None, np.asarray(rows)

    exact = np.tile(np.arange(10), (n_q, 1))
    qids = np.arange(10_000, 10_000 + n_q)
    nprobe, recall, tried = ann.tune_nprobe(Fake(), np.zeros((n_q, 2), np.float32), qids, exact, nlist=64)
    # mean recall at p: 0.8 + 0.2 * hit[p]; p=5 has mean 0.952 but its lower bound is below 0.95,
    # p=6 has mean 0.96 and sd 0.2*sqrt(0.8*0.2*400/399): bound 0.96 - 1.645*0.0801/20 = 0.9534
    assert nprobe == 6 and abs(recall - 0.96) < 1e-12
    per5 = np.asarray([1.0] * 304 + [0.8] * 96)
    assert per5.mean() > 0.95 > ann.lower_bound(per5)
    assert set(tried) <= {1, 2, 4, 8, 5, 6, 7} and {5, 6} <= set(tried)  # doubled to 8, then bisected
