"""A store at a million clips: IVF vs exact search, SQL, Parquet export/import, Ray vs local engine.

Run:  python benchmarks/bench_scale.py [--n 1000000] [--dim 512] [--rounds 5] [--skip-ray] [--ray-only]

Every figure comes with a reference measured in the same run:
- build: synthetic clustered 512-d audio vectors (64 families, 16384 overlapping
  sub-clusters; see clustered_chunks) written to a real store in chunks, then the audio index (IVF: nlist
  ~ 4 sqrt N, nprobe tuned to recall@10 >= 0.95 on held-back queries) built from it by
  timbredb.index.audio_index, streaming; its time and peak RSS, vs the matrix's size;
- search: per-query latency and batch throughput of that IVF index vs exact search
  (IndexFlatIP over the same vectors), rounds interleaved, each round on other queries
  (no cache can answer a repeated one), min and median; recall@10 of IVF vs exact on
  those fresh queries (not the held-back ones it was tuned on);
- SQL: cosine of every stored vector to one text vector plus a top-10 (the
  `similarities` view's work) and exp3-style pair distances over N rows, vs numpy doing
  the same over chunks streamed from the same store;
- Parquet: `timbredb export` / `import embeddings` throughput vs DuckDB's own
  COPY TO / INSERT ... SELECT FROM read_parquet of the same rows;
- Ray: `ingest --engine ray` vs the local engine on the same files and 2 CPUs, at two
  sizes, rounds interleaved: start-up, per-file cost, and where the lines cross.

Memory: the benchmark holds the IVF index (one copy of the vectors) and, for the
comparison only, the exact index (a second); chunks are 16384 rows.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

CHUNK = 16384


def peak_rss_reset() -> None:
    """Reset the kernel's peak-RSS mark of this process (Linux: /proc/self/clear_refs)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def rss_mb(field: str = "VmHWM") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def clustered_chunks(n: int, dim: int, seed: int = 7) -> Iterator[tuple[int, np.ndarray]]:
    """(start, vectors) chunks of N clustered vectors, generated chunk by chunk.

    Like a corpus of sound families: 64 family centres, 16384 sub-clusters around them
    (offset 0.5 per dimension), points around a sub-cluster with a spread of 0.9-1.3
    per dimension, so clusters overlap: nearest neighbours are cosine ~0.5 apart and an
    IVF index needs several lists per query, not one. The centres come from a fixed
    seed; ``seed`` only draws the points (other seeds: fresh queries from the same corpus).
    """
    centres = np.random.default_rng(1)
    family = centres.standard_normal((64, dim)).astype(np.float32)
    sub = family[centres.integers(0, 64, 16384)] + 0.5 * centres.standard_normal((16384, dim)).astype(np.float32)
    spread = centres.uniform(0.9, 1.3, 16384).astype(np.float32)
    rng = np.random.default_rng(seed)
    for start in range(0, n, CHUNK):
        m = min(CHUNK, n - start)
        which = rng.integers(0, 16384, m)
        yield start, sub[which] + spread[which, None] * rng.standard_normal((m, dim)).astype(np.float32)


def key(i: int) -> str:
    return hashlib.sha256(f"clip-{i}".encode()).hexdigest()


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def build_store(db: Path, n: int, dim: int) -> str:
    from timbredb.audio import Audio
    from timbredb.spaces import SpaceRecord
    from timbredb.store import Store

    space = SpaceRecord("benchscale000001", "bench-scale", "bench-scale", "synthetic", "v1", None,
                        {"kind": "synthetic clustered"}, dim, 48000, "cosine", ("audio", "text"))
    tiny = np.zeros(1, dtype=np.float32)
    with Store(db) as store:
        store.ensure_space(space)
        for start, x in clustered_chunks(n, dim):
            keys = [key(i) for i in range(start, start + x.shape[0])]
            with store.transaction():
                store.add_clips([Audio(tiny, 48000, 1, k, f"synth://{i}") for i, k in zip(range(start, start + len(keys)), keys)])
                batch = store.add_batch(space.space_id, "audio", len(keys), "cpu", "float32", {"synthetic": True}, None)
                store.insert_audio_embeddings(space.space_id, keys, x, batch)
        rng = np.random.default_rng(3)
        words = [f"word{i:04d}" for i in range(1000)]
        with store.transaction():
            store.add_prompts([(w, "{}", w) for w in words])
            batch = store.add_batch(space.space_id, "text", len(words), "cpu", "float32", {"synthetic": True}, None)
            store.insert_text_embeddings(space.space_id, words, rng.standard_normal((1000, dim)).astype(np.float32), batch)
    return space.space_id


def bench_search(db: Path, space_id: str, n: int, dim: int, rounds: int, out: dict[str, Any]) -> None:
    import faiss

    from timbredb.index import audio_index, audio_index_name, normalise
    from timbredb.store import Store

    faiss.omp_set_num_threads(os.cpu_count() or 1)
    with Store(db) as store:
        peak_rss_reset()
        base = rss_mb("VmRSS")
        build_s, idx = timed(lambda: audio_index(store, space_id))
        params = store.index_params(audio_index_name(space_id))
        out["index_build"] = {
            "seconds": round(build_s, 1), "index_type": params["index_type"], "nlist": params["nlist"],
            "nprobe": params["nprobe"], "recall_at_10_held_back": params["recall_at_10"],
            "held_back_queries": params["recall_queries"],
            "peak_rss_increase_mb": round(rss_mb() - base, 0), "matrix_mb": round(n * dim * 4 / 2**20, 0),
            # DuckDB's buffer pool keeps pages it read (a cache it evicts under pressure), counted in RSS
            "duckdb_buffer_mb": round(float(store.frame(
                "SELECT sum(memory_usage_bytes) AS b FROM duckdb_memory()")["b"][0] or 0) / 2**20, 0),
        }
        print(json.dumps({"index_build": out["index_build"]}), flush=True)
        flat = faiss.IndexFlatIP(dim)
        flat_keys: list[str] = []
        for keys, x in store.iter_audio_vectors(space_id, CHUNK):
            flat.add(normalise(x))  # storage order: flat rows map to index rows through their keys
            flat_keys.extend(keys)
    position = {k: i for i, k in enumerate(idx.keys)}
    flat_to_row = np.fromiter((position[k] for k in flat_keys), dtype=np.int64, count=len(flat_keys))
    ivf = idx.index
    # fresh queries: new points from the same clusters (seeded apart from the store's)
    qs = next(clustered_chunks(200 * rounds, dim, seed=99))[1]
    queries = normalise(qs)
    lat: dict[str, list[float]] = {"ivf": [], "exact": []}
    batch_qps: dict[str, list[float]] = {"ivf": [], "exact": []}
    recalls = []
    for r in range(rounds):
        q = queries[r * 200 : (r + 1) * 200]
        for name, index in (("ivf", ivf), ("exact", flat)) if r % 2 == 0 else (("exact", flat), ("ivf", ivf)):
            faiss.omp_set_num_threads(1)  # one query at a time: per-query latency on one core
            t = time.perf_counter()
            for i in range(0, 40):
                index.search(q[i : i + 1], 10)
            lat[name].append((time.perf_counter() - t) / 40)
            faiss.omp_set_num_threads(os.cpu_count() or 1)
            t = time.perf_counter()
            _, ids = index.search(q, 10)
            batch_qps[name].append(q.shape[0] / (time.perf_counter() - t))
            if name == "ivf":
                ivf_ids = ids
            else:
                exact_ids = flat_to_row[ids]
        recalls.append(float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ivf_ids, exact_ids)])))
    out["search"] = {
        "per_query_ms": {k: {"min": round(min(v) * 1e3, 3), "median": round(statistics.median(v) * 1e3, 3)}
                         for k, v in lat.items()},
        "per_query_speedup_median": round(statistics.median(lat["exact"]) / statistics.median(lat["ivf"]), 1),
        "batch_qps": {k: {"max": round(max(v), 0), "median": round(statistics.median(v), 0)} for k, v in batch_qps.items()},
        "batch_speedup_median": round(statistics.median(batch_qps["ivf"]) / statistics.median(batch_qps["exact"]), 1),
        "recall_at_10_fresh_queries": {"min": round(min(recalls), 4), "median": round(statistics.median(recalls), 4)},
        "rounds": rounds,
    }
    print(json.dumps({"search": out["search"]}), flush=True)
    del flat


def bench_sql(db: Path, space_id: str, out: dict[str, Any]) -> None:
    from timbredb.store import Store

    sql_sim = ("SELECT a.clip_sha256, list_cosine_similarity(a.embedding, t.embedding) AS cosine "
               "FROM audio_embeddings a JOIN text_embeddings t ON t.space_id = a.space_id AND t.prompt = 'word0001' "
               "ORDER BY cosine DESC LIMIT 10")
    sql_pairs = ("WITH r AS (SELECT clip_sha256, embedding, row_number() OVER (ORDER BY clip_sha256) AS i FROM audio_embeddings) "
                 "SELECT count(*) AS n, avg(1 - list_cosine_similarity(x.embedding, y.embedding)) AS cosine_distance, "
                 "avg(list_distance(x.embedding, y.embedding)) AS l2 FROM r x JOIN r y ON y.i = x.i + 1")
    with Store(db, read_only=True) as store:
        s_sql, top = timed(lambda: store.frame(sql_sim))
        s_pairs, pairs = timed(lambda: store.frame(sql_pairs))
        t_vec = store.text_matrix(space_id, ["word0001"])[1][0].astype(np.float64)
        t_unit = t_vec / np.linalg.norm(t_vec)

        def numpy_sim() -> list[tuple[float, str]]:
            best: list[tuple[float, str]] = []
            for keys, x in store.iter_audio_vectors(space_id, CHUNK):
                c = (x.astype(np.float64) @ t_unit) / np.linalg.norm(x.astype(np.float64), axis=1)
                top_i = np.argpartition(-c, 10)[:10]
                best = sorted(best + [(float(c[i]), keys[i]) for i in top_i], reverse=True)[:10]
            return best

        s_np, best = timed(numpy_sim)
    assert [k for _, k in best] == top["clip_sha256"].to_list(), "SQL and numpy disagree on the top 10"
    n = int(pairs["n"][0]) + 1
    out["sql"] = {
        "similarity_top10_s": round(s_sql, 2), "numpy_streamed_same_s": round(s_np, 2),
        "sql_vs_numpy": round(s_np / s_sql, 2), "rows": n, "pair_distances_s": round(s_pairs, 2),
        "pairs_per_s": round((n - 1) / s_pairs, 0),
    }
    print(json.dumps({"sql": out["sql"]}), flush=True)


def bench_parquet(db: Path, work: Path, n: int, dim: int, out: dict[str, Any]) -> None:
    import duckdb

    from timbredb.interchange import export_store, import_embeddings

    dump = work / "export"
    s_export, _ = timed(lambda: export_store(db, dump, what="embeddings"))
    size_mb = sum(f.stat().st_size for f in dump.rglob("*.parquet")) / 2**20
    ref = work / "duckdb-copy.parquet"
    con = duckdb.connect(str(db), read_only=True)
    s_copy, _ = timed(lambda: con.execute(f"COPY (SELECT * FROM audio_embeddings) TO '{ref}' (FORMAT parquet)"))
    con.close()
    target = work / "imported.duckdb"
    s_import, summary = timed(lambda: import_embeddings(target, dump))
    assert summary.added.get("audio_embeddings") == n and not summary.errors
    ref_db = work / "ref.duckdb"
    con = duckdb.connect(str(ref_db))
    con.execute("CREATE TABLE audio_embeddings (space_id VARCHAR, clip_sha256 VARCHAR, embedding FLOAT[], batch_id BIGINT, "
                "PRIMARY KEY (space_id, clip_sha256))")
    s_ref_import, _ = timed(lambda: con.execute(f"INSERT INTO audio_embeddings SELECT * FROM read_parquet('{ref}')"))
    con.close()
    s_again, again = timed(lambda: import_embeddings(target, dump))
    assert sum(again.added.values()) == 0
    out["parquet"] = {
        "export_s": round(s_export, 1), "export_rows_per_s": round(n / s_export, 0), "export_mb": round(size_mb, 0),
        "duckdb_copy_s": round(s_copy, 1), "export_vs_duckdb_copy": round(s_export / s_copy, 2),
        "import_s": round(s_import, 1), "import_rows_per_s": round(n / s_import, 0),
        "duckdb_insert_from_parquet_s": round(s_ref_import, 1), "import_vs_duckdb_insert": round(s_import / s_ref_import, 2),
        "reimport_all_skipped_s": round(s_again, 1),
    }
    print(json.dumps({"parquet": out["parquet"]}), flush=True)
    for p in (dump, ref, target, ref_db):
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()


def bench_ray(work: Path, sizes: tuple[int, int], rounds: int, out: dict[str, Any]) -> None:
    import ray
    import soundfile as sf

    from tests.synthetic_data import write_data_dir
    from timbredb.ingest import IngestOptions, run_ingest

    data = write_data_dir(work / "data")
    folders = {}
    rng = np.random.default_rng(0)
    sr = 44100
    for n in sizes:
        folder = work / f"audio{n}"
        folder.mkdir()
        for i in range(n):
            t = np.arange(int(2.0 * sr)) / sr
            x = sum(np.sin(2 * np.pi * k * (80 + 7 * i) * t) / k ** (0.6 + (i % 5) * 0.3) for k in range(1, 10))
            x = 0.2 * x / np.abs(x).max() + 0.01 * rng.standard_normal(t.size)
            sf.write(str(folder / f"c{i:04d}.wav"), x.astype(np.float32), sr)
        folders[n] = folder
    s_init, _ = timed(lambda: ray.init(num_cpus=2, include_dashboard=False, logging_level="error", log_to_driver=False))
    times: dict[str, dict[int, list[float]]] = {"local": {n: [] for n in sizes}, "ray": {n: [] for n in sizes}}
    try:
        for r in range(rounds):
            for n in sizes:
                order = ("local", "ray") if r % 2 == 0 else ("ray", "local")
                for engine in order:
                    db = work / f"{engine}-{n}-{r}.duckdb"  # a fresh store each round: everything is computed
                    opts = IngestOptions(models=["mfcc", "socialfx-eq"], batch_size=8, engine=engine)
                    s, summary = timed(lambda db=db, n=n, opts=opts: run_ingest(db, data, [str(folders[n])], opts))
                    assert summary.embeddings_added == 2 * n
                    times[engine][n].append(s)
                    db.unlink()
    finally:
        ray.shutdown()
    med = {e: {n: statistics.median(v) for n, v in d.items()} for e, d in times.items()}
    a, b = sizes
    slope = {e: (med[e][b] - med[e][a]) / (b - a) for e in med}
    fixed = {e: med[e][a] - slope[e] * a for e in med}
    cross = (fixed["ray"] - fixed["local"]) / (slope["local"] - slope["ray"]) if slope["ray"] < slope["local"] else None
    out["ray"] = {
        "cluster_start_s": round(s_init, 1),
        "seconds": {e: {str(n): {"min": round(min(v), 2), "median": round(statistics.median(v), 2)} for n, v in d.items()}
                    for e, d in times.items()},
        "per_file_ms": {e: round(v * 1e3, 1) for e, v in slope.items()},
        "fixed_cost_per_job_s": {e: round(v, 2) for e, v in fixed.items()},
        "ray_vs_local_at": {str(n): round(med["ray"][n] / med["local"][n], 2) for n in sizes},
        "crossover_files": None if cross is None else round(cross, 0),
        "files": "2 s, 44.1 kHz mono WAV; models mfcc + socialfx-eq; batch 8; 2 CPUs",
    }
    print(json.dumps({"ray": out["ray"]}), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="audio vectors in the synthetic store")
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--ray-sizes", default="16,64", help="two file counts for the Ray vs local comparison")
    ap.add_argument("--skip-ray", action="store_true")
    ap.add_argument("--ray-only", action="store_true")
    ap.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one, removed)")
    ap.add_argument("--store", type=Path, default=None,
                    help="keep the synthetic store here and reuse it when it exists (its index is rebuilt)")
    ap.add_argument("--phases", default="search,sql,parquet", help="of search, sql, parquet")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    work = Path(tempfile.mkdtemp(prefix="bench-scale-", dir=args.work))
    out: dict[str, Any] = {"n": args.n, "dim": args.dim, "cpus": os.cpu_count()}
    phases = set(args.phases.split(","))
    try:
        if not args.ray_only:
            db = args.store or work / "scale.duckdb"
            if db.exists():
                space_id = "benchscale000001"
                shutil.rmtree(db.with_name(db.name + ".faiss"), ignore_errors=True)
            else:
                s_build, space_id = timed(lambda: build_store(db, args.n, args.dim))
                out["store_build"] = {"seconds": round(s_build, 1), "rows_per_s": round(args.n / s_build, 0),
                                      "file_mb": round(db.stat().st_size / 2**20, 0)}
                print(json.dumps({"store_build": out["store_build"]}), flush=True)
            if "search" in phases:
                bench_search(db, space_id, args.n, args.dim, args.rounds, out)
            if "sql" in phases:
                bench_sql(db, space_id, out)
            if "parquet" in phases:
                bench_parquet(db, work, args.n, args.dim, out)
        if not args.skip_ray:
            a, b = (int(x) for x in args.ray_sizes.split(","))
            bench_ray(work, (a, b), max(2, args.rounds // 2 + 1), out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
