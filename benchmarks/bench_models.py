"""End-to-end ingest throughput versus the bare model forward pass, same batches, same process.

A full-size random-weight LAION-CLAP (HTSAT-tiny audio encoder, full RoBERTa-base
text encoder) is built into a temporary Hugging Face cache, through the
package's own classes, in a child process (so its memory does not count here).
Then, in this process, with the model loaded once:

- ingest: ``Ingestor.add_paths`` on synthetic 44.1 kHz stereo WAV files - decode,
  content hash, DuckDB writes, soxr resampling to 48 kHz, windowing, batching,
  the forward pass, pooling and the vector insert;
- embed: ``model.embed_audio`` on the decoded clips (timbredb's model layer:
  resampling, windows, batches, pooling, checks) - no decoding, no store;
- bare: the package's forward pass alone (``get_audio_embedding_from_data``)
  on exactly the windows and batches that ingest formed, prepared in advance
  as tensors on the device.

Each is timed ``--rounds`` times, alternating; the best round of each is
compared. ratio = bare time / ingest time (1.0 = ingest adds nothing); the
same ratio of the process's CPU time is reported too (steadier where other
processes share the cores).
Peak memory: the process's peak RSS, and on CUDA the peak allocated memory.

    python benchmarks/bench_models.py                      # CPU
    python benchmarks/bench_models.py --device cuda --clips 64 --dtype bfloat16
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def build_cache(root: Path) -> None:
    from tests.models import fake_hub

    with fake_hub.pointed_at(root, root / "timbredb-cache"):
        fake_hub.build(root, full_size=True, parts=("laion",))


def write_clips(folder: Path, n: int, seconds: float) -> list[Path]:
    import numpy as np
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    sr = 44100
    paths = []
    t = np.arange(int(seconds * sr)) / sr
    for i in range(n):
        tone = sum(np.sin(2 * np.pi * (110 + 20 * i) * k * t) / k for k in range(1, 12))
        left = 0.2 * tone / np.max(np.abs(tone))
        right = 0.1 * rng.standard_normal(t.shape[0])
        p = folder / f"clip{i:03d}.wav"
        sf.write(str(p), np.stack([left, right], axis=1).astype(np.float32), sr)
        paths.append(p)
    return paths


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    ap.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    ap.add_argument("--clips", type=int, default=8, help="synthetic files (default 8)")
    ap.add_argument("--seconds", type=float, default=20.0, help="length of each file (default 20 s = 2 windows)")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    ap.add_argument("--cache", type=Path, default=None, help="reuse/keep the fake hub cache here")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    ap.add_argument("--build-cache", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.build_cache is not None:
        build_cache(args.build_cache)
        return 0

    work = Path(tempfile.mkdtemp(prefix="timbredb-bench-"))
    cache = args.cache or work / "hub"
    t0 = time.perf_counter()
    # a cache built before the stand-ins recorded their pins would be refused by the digest check
    if not (cache / "models--lukewys--laion_clap").exists() or not (cache / "timbredb-fake-pins.json").exists():
        subprocess.run([sys.executable, __file__, "--build-cache", str(cache)], check=True)
    build_s = time.perf_counter() - t0

    from tests.models import fake_hub

    with fake_hub.pointed_at(cache, cache / "timbredb-cache"):
        result = run(args, work, build_s)
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))
    return 0


def run(args: argparse.Namespace, work: Path, build_s: float) -> dict[str, Any]:
    import numpy as np
    import torch

    from timbredb.audio import decode
    from timbredb.ingest import Ingestor
    from timbredb.models import registry
    from timbredb.store import Store

    if args.threads:
        torch.set_num_threads(args.threads)
    files = write_clips(work / "audio", args.clips, args.seconds)
    model = registry.load("laion-clap", device=args.device, dtype=args.dtype)
    t0 = time.perf_counter()
    model.ensure_loaded()
    load_s = time.perf_counter() - t0
    n_params = sum(p.numel() for p in model._module.parameters())
    cuda = model.device == "cuda"

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

    def bare() -> tuple[float, float]:
        sync()
        t, c = time.perf_counter(), time.process_time()
        with model.inference():
            for x in batches:
                model._module.get_audio_embedding_from_data(x=x, use_tensor=True)
        sync()
        return time.perf_counter() - t, time.process_time() - c

    audios = [decode(f) for f in files]

    def embed() -> tuple[float, float]:
        sync()
        t, c = time.perf_counter(), time.process_time()
        for start in range(0, len(audios), args.batch_size):
            model.embed_audio(audios[start : start + args.batch_size], batch_size=args.batch_size)
        sync()
        return time.perf_counter() - t, time.process_time() - c

    def ingest(round_no: int) -> tuple[float, float]:
        db = work / f"store{round_no}.duckdb"
        sync()
        t, c = time.perf_counter(), time.process_time()
        with Store(db) as store:
            ing = Ingestor(store, [model], batch_size=args.batch_size, command="bench")
            ing.add_paths([work / "audio"])
            summary = ing.finish()
        sync()
        elapsed = time.perf_counter() - t, time.process_time() - c
        if summary.embeddings_added != len(files) or summary.errors:
            raise SystemExit(f"ingest went wrong: {summary.to_dict()}")
        return elapsed

    # warm-up: one batch through each path (allocator, kernels, first DuckDB file)
    with model.inference():
        model._module.get_audio_embedding_from_data(x=batches[0], use_tensor=True)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    bare_runs, embed_runs, ingest_runs = [], [], []
    for r in range(args.rounds):
        bare_runs.append(bare())
        embed_runs.append(embed())
        ingest_runs.append(ingest(r))
    bare_s, bare_cpu = [w for w, _ in bare_runs], [c for _, c in bare_runs]
    embed_s = [w for w, _ in embed_runs]
    ingest_s, ingest_cpu = [w for w, _ in ingest_runs], [c for _, c in ingest_runs]
    best_bare, best_ingest = min(bare_s), min(ingest_s)
    audio_s = len(files) * args.seconds
    out: dict[str, Any] = {
        "model": model.label,
        "device": model.device,
        "device_name": torch.cuda.get_device_name(0) if cuda else None,
        "dtype": args.dtype,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "params_million": round(n_params / 1e6, 1),
        "clips": len(files),
        "clip_seconds": args.seconds,
        "windows": n_windows,
        "batches": len(batches),
        "batch_size": args.batch_size,
        "cache_build_s": round(build_s, 1),
        "load_s": round(load_s, 2),
        "bare_s": [round(x, 3) for x in bare_s],
        "embed_s": [round(x, 3) for x in embed_s],
        "ingest_s": [round(x, 3) for x in ingest_s],
        "bare_windows_per_s": round(n_windows / best_bare, 2),
        "ingest_windows_per_s": round(n_windows / best_ingest, 2),
        "ingest_audio_s_per_s": round(audio_s / best_ingest, 2),
        "ratio": round(best_bare / best_ingest, 3),
        # the model layer alone (resample, windows, batches, pooling, checks) on decoded audio
        "ratio_embed_only": round(best_bare / min(embed_s), 3),
        # CPU seconds of this process: on a shared machine, less sensitive to other load
        "bare_cpu_s": [round(x, 3) for x in bare_cpu],
        "ingest_cpu_s": [round(x, 3) for x in ingest_cpu],
        "ratio_cpu_time": round(min(bare_cpu) / min(ingest_cpu), 3),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }
    if cuda:
        out["peak_cuda_allocated_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    v = model.embed_audio([decode(files[0])])
    out["vector_norm"] = round(float(np.linalg.norm(v)), 5)
    return out


if __name__ == "__main__":
    raise SystemExit(main())
