"""The pipelined ingest with a neural model: host throughput per worker, the bare forward, end-to-end ingest.

A full-size random-weight LAION-CLAP is built into a temporary Hugging Face cache
(benchmarks/bench_models.py's builder, in a child process; ``--cache`` keeps it), then,
in this process with the model loaded once, interleaved rounds of:

- host 1 / host 2: the pipeline's worker processes alone (``pipeline.WorkerPool``) on
  ``--host-clips`` files: read, decode, hash, down-mix, soxr to 48 kHz, cut the windows,
  hand them over in shared memory; timed from the first submit to the last result, the
  pool started and warmed before. windows/s/worker = windows / seconds / workers;
  scaling = throughput(2 workers) / throughput(1) (2.0 = linear);
- bare: the package's forward pass alone (``get_audio_embedding_from_data``) on exactly
  the windows and batches ingest forms, prepared in advance on the device;
- ingest: ``Ingestor.add_paths`` on ``--clips`` files with the pipeline (``--workers``,
  default ``cores - 1``; starting the workers is inside the timing), each round into a new
  empty store (a round that does not compute every vector stops the benchmark: a cache hit);
- serial: the same with ``workers=0`` (the sequential engine), for reference.

ratio = bare time / ingest time (1.0 = ingest adds nothing to the forward pass), best
round of each and the medians. It also prints the workers a given accelerator throughput
needs (``--accelerator-windows-per-s``: ceil(that / windows/s/worker)) and, from the
measured per-worker throughput, the ingest/forward ratio predicted for a machine with
``--predict-cores`` cores: min(1, (cores - 1) x windows/s/worker / bare windows/s) - an
upper bound, as it leaves out the main process's own work per window.

    python benchmarks/bench_pipeline.py --cache /tmp/hub                  # CPU
    python benchmarks/bench_pipeline.py --device cuda --dtype bfloat16 --clips 32 --seconds 30 --batch-size 16
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench_models import write_clips  # noqa: E402


def peak_rss_mb() -> dict[str, float]:
    """Peak resident memory of this process and of the largest child (workers), MiB."""
    return {"main": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
            "largest_child": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0, 1)}


def stats(xs: list[float]) -> dict[str, Any]:
    return {"rounds": [round(x, 3) for x in xs], "min": round(min(xs), 3), "median": round(statistics.median(xs), 3)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    ap.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    ap.add_argument("--clips", type=int, default=6, help="files the ingest and bare rounds embed (default 6)")
    ap.add_argument("--seconds", type=float, default=20.0, help="length of each file (default 20 s = 2 windows)")
    ap.add_argument("--host-clips", type=int, default=24, help="files of the host-throughput rounds (default 24)")
    ap.add_argument("--host-seconds", type=float, default=30.0, help="their length (default 30 s = 3 windows)")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=None, help="ingest workers (default: cores - 1)")
    ap.add_argument("--no-serial", action="store_true", help="skip the sequential-engine rounds")
    ap.add_argument("--compare-nice", action="store_true",
                    help="also ingest with the workers at this process's priority (pipeline.WORKER_NICE = 0)")
    ap.add_argument("--accelerator-windows-per-s", type=float, action="append", default=None,
                    help="print the workers this forward throughput needs (repeatable; default 1118 and 1360, "
                         "LAION-CLAP on an H200 in float32 and bfloat16)")
    ap.add_argument("--predict-cores", type=int, default=16, help="cores of the machine to predict for (default 16)")
    ap.add_argument("--predict-bare-windows-per-s", type=float, default=1360.0,
                    help="its bare forward throughput (default 1360: H200, bfloat16)")
    ap.add_argument("--cache", type=Path, default=None, help="reuse/keep the fake hub cache here")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="timbredb-bench-pipeline-"))
    cache = args.cache or work / "hub"
    if not (cache / "models--lukewys--laion_clap").exists() or not (cache / "timbredb-fake-pins.json").exists():
        subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_models.py"), "--build-cache", str(cache)],
                       check=True)
    from tests.models import fake_hub

    load_before = [round(x, 2) for x in os.getloadavg()]
    with fake_hub.pointed_at(cache, cache / "timbredb-cache"):
        result = run(args, work)
    result["loadavg_before"] = load_before
    result["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))
    return 0


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    import torch

    from timbredb.audio import decode
    from timbredb.ingest import Ingestor, pipeline
    from timbredb.ingest_worker import Segment
    from timbredb.models import registry
    from timbredb.parallel import cpu_count
    from timbredb.store import Store

    cores = cpu_count()
    workers = args.workers if args.workers is not None else max(1, cores - 1)
    files = write_clips(work / "audio", args.clips, args.seconds)
    host_files = write_clips(work / "host", args.host_clips, args.host_seconds)
    model = registry.load("laion-clap", device=args.device, dtype=args.dtype)
    t0 = time.perf_counter()
    model.ensure_loaded()
    load_s = time.perf_counter() - t0
    cuda = model.device == "cuda"
    plan = pipeline.plan_for(model, None)
    if plan.kind != "windows":
        raise SystemExit(f"laion-clap is served as {plan.kind!r}, not windows: the benchmark measures window prep")

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    # the batches ingest forms: files in chunks of batch_size, their windows in batches of batch_size
    batches: list[Any] = []
    for start in range(0, len(files), args.batch_size):
        chunk = [decode(f) for f in files[start : start + args.batch_size]]
        windows = [w for a in chunk for w in model.prepare(a)]
        for b in range(0, len(windows), args.batch_size):
            batches.append(model.stack(windows[b : b + args.batch_size]))
    n_windows = sum(int(b.shape[0]) for b in batches)

    def bare() -> float:
        sync()
        t = time.perf_counter()
        with model.inference():
            for x in batches:
                model._module.get_audio_embedding_from_data(x=x, use_tensor=True)
        sync()
        return time.perf_counter() - t

    def ingest(tag: str, n_workers: int) -> float:
        db = work / f"{tag}.duckdb"
        assert not db.exists()
        sync()
        t = time.perf_counter()
        with Store(db) as store:
            ing = Ingestor(store, [model], batch_size=args.batch_size, command="bench", workers=n_workers)
            try:
                ing.add_paths([work / "audio"])
            finally:
                summary = ing.finish()
        sync()
        elapsed = time.perf_counter() - t
        if summary.embeddings_added != len(files) or summary.clips_added != len(files) or summary.errors:
            raise SystemExit(f"{tag}: not every clip computed (a cache hit?): {summary.to_dict()}")
        db.unlink()
        return elapsed

    pools = {k: pipeline.WorkerPool([model], k, args.batch_size, None) for k in (1, 2)}
    for pool in pools.values():
        pool.facts()  # start and warm every worker before the timed rounds
    host_windows = 0

    def host(k: int) -> float:
        nonlocal host_windows
        pool = pools[k]
        t = time.perf_counter()
        futures = [pool.submit(str(f), (0,), False) for f in host_files]
        results = [f.result() for f in futures]
        elapsed = time.perf_counter() - t
        n = 0
        for r in results:
            if r.error is not None or r.shm is None:
                raise SystemExit(f"host round: {r.error}")
            _, refs = r.outputs[0]
            n += len(refs)
            seg = Segment(r.shm)  # maps and unlinks it, as the pipeline does
            seg.close()
        host_windows = n
        return elapsed

    # warm-up: one batch through the forward pass
    with model.inference():
        model._module.get_audio_embedding_from_data(x=batches[0], use_tensor=True)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    runs: dict[str, list[float]] = {"host1": [], "host2": [], "bare": [], "ingest": []}
    if not args.no_serial:
        runs["serial"] = []
    if args.compare_nice:
        runs["ingest_nice0"] = []
    try:
        for r in range(args.rounds):
            # alternate the order of the two host pools, so neither always runs first
            for k in ((1, 2) if r % 2 == 0 else (2, 1)):
                runs[f"host{k}"].append(host(k))
            runs["bare"].append(bare())
            runs["ingest"].append(ingest(f"ingest{r}", workers))
            if not args.no_serial:
                runs["serial"].append(ingest(f"serial{r}", 0))
            if args.compare_nice:
                niced, pipeline.WORKER_NICE = pipeline.WORKER_NICE, 0
                try:
                    runs["ingest_nice0"].append(ingest(f"nice0_{r}", workers))
                finally:
                    pipeline.WORKER_NICE = niced
            print(f"round {r}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in runs.items()), flush=True)
    finally:
        for pool in pools.values():
            pool.close()

    per_worker = {k: host_windows / min(runs[f"host{k}"]) / k for k in (1, 2)}
    per_worker_median = {k: host_windows / statistics.median(runs[f"host{k}"]) / k for k in (1, 2)}
    best_bare, best_ingest = min(runs["bare"]), min(runs["ingest"])
    accel = args.accelerator_windows_per_s or [1118.0, 1360.0]
    h = per_worker[1]
    out: dict[str, Any] = {
        "model": model.label, "device": model.device,
        "device_name": torch.cuda.get_device_name(0) if cuda else None,
        "dtype": args.dtype, "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
        "cores": cores, "ingest_workers": workers, "load_s": round(load_s, 2),
        "clips": len(files), "clip_seconds": args.seconds, "windows": n_windows, "batch_size": args.batch_size,
        "host_clips": len(host_files), "host_clip_seconds": args.host_seconds, "host_windows": host_windows,
        "seconds": {k: stats(v) for k, v in runs.items()},
        "host_windows_per_s_per_worker": {str(k): round(v, 2) for k, v in per_worker.items()},
        "host_windows_per_s_per_worker_median": {str(k): round(v, 2) for k, v in per_worker_median.items()},
        # throughput of 2 workers over 1 (2.0 = linear)
        "host_scaling_2_over_1": round(2 * per_worker[2] / per_worker[1], 3),
        "host_scaling_2_over_1_median": round(2 * per_worker_median[2] / per_worker_median[1], 3),
        "bare_windows_per_s": round(n_windows / best_bare, 2),
        "ingest_windows_per_s": round(n_windows / best_ingest, 2),
        "ratio": round(best_bare / best_ingest, 3),
        "ratio_median": round(statistics.median(runs["bare"]) / statistics.median(runs["ingest"]), 3),
        # per round (bare and ingest of the same round are neighbours in time)
        "ratio_rounds": [round(b / i, 3) for b, i in zip(runs["bare"], runs["ingest"])],
        "workers_needed": {str(a): math.ceil(a / h) for a in accel},
        "predicted_ratio": {
            "cores": args.predict_cores, "workers": args.predict_cores - 1,
            "bare_windows_per_s": args.predict_bare_windows_per_s,
            "ratio": round(min(1.0, (args.predict_cores - 1) * h / args.predict_bare_windows_per_s), 3),
        },
        # the same bound for this machine: its ingest workers against the forward measured here
        "predicted_ratio_here": round(min(1.0, workers * h / (n_windows / best_bare)), 3),
        "peak_rss_mb": peak_rss_mb(),
    }
    if "ingest_nice0" in runs:
        out["worker_nice"] = pipeline.WORKER_NICE
        out["ratio_nice0"] = round(best_bare / min(runs["ingest_nice0"]), 3)
        out["ratio_nice0_median"] = round(statistics.median(runs["bare"]) / statistics.median(runs["ingest_nice0"]), 3)
    if "serial" in runs:
        out["ratio_serial"] = round(best_bare / min(runs["serial"]), 3)
        out["ratio_serial_median"] = round(statistics.median(runs["bare"]) / statistics.median(runs["serial"]), 3)
    # a round faster than the forward pass alone means the round did not do the work
    out["faster_than_bare_rounds"] = {k: [r for r, (b, i) in enumerate(zip(runs["bare"], runs[k])) if i < b]
                                      for k in ("ingest", "serial", "ingest_nice0") if k in runs}
    if cuda:
        out["peak_cuda_allocated_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


if __name__ == "__main__":
    raise SystemExit(main())
