"""Core benchmarks: baseline ingest throughput, re-ingest cost, CLI start-up.

Run:  python benchmarks/bench_core.py [--clips 200] [--seconds 5] [--data-dir ../shared/data]

Each figure comes with a reference measured in the same run, so the ratios
hold across machines:
- ingest throughput (clips/s) of each baseline, vs decoding the same files alone;
- re-ingest wall time as a fraction of the first ingest (as CLI runs, and in one
  process, which leaves out interpreter start-up and imports);
- `timbredb --help` start-up, vs a bare `python -c pass`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parent.parent


def make_clips(folder: Path, n: int, seconds: float, sr: int = 44100) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        t = np.arange(int(seconds * sr)) / sr
        f0 = 80 + 10 * i
        x = sum(np.sin(2 * np.pi * k * f0 * t) / k ** (0.5 + (i % 7) * 0.3) for k in range(1, 12))
        x = 0.2 * x / np.abs(x).max() + 0.01 * rng.standard_normal(t.shape[0])
        p = folder / f"clip{i:04d}.wav"
        sf.write(str(p), x.astype(np.float32), sr, subtype="PCM_16")
        paths.append(p)
    return paths


def timed(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args()

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TIMBREDB_DATA_DIR": args.data_dir}
    exe = [sys.executable, "-m", "timbredb"]
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "clips"
        folder.mkdir()
        files = make_clips(folder, args.clips, args.seconds)

        t0 = time.perf_counter()
        for f in files:
            sf.read(str(f), dtype="float32")
        decode_s = time.perf_counter() - t0
        results["decode_only_clips_per_s"] = len(files) / decode_s

        for model in ("mfcc", "socialfx-eq"):
            db = Path(tmp) / f"{model}.duckdb"
            first = timed([*exe, "--db", str(db), "ingest", str(folder), "--models", model, "--batch-size", "32"], env)
            again = timed([*exe, "--db", str(db), "ingest", str(folder), "--models", model, "--batch-size", "32"], env)
            results[f"{model}_ingest_clips_per_s"] = len(files) / first
            results[f"{model}_ingest_vs_decode_only"] = (len(files) / first) / results["decode_only_clips_per_s"]
            results[f"{model}_reingest_fraction_of_first"] = again / first

        # the same, in one process: what a re-run costs beyond interpreter start-up and imports
        from timbredb.ingest import Ingestor
        from timbredb.models import load
        from timbredb.store import Store

        with Store(Path(tmp) / "inproc.duckdb") as store:
            ing = Ingestor(store, [load("mfcc")], batch_size=32)
            t0 = time.perf_counter()
            ing.add_files(files)
            first = time.perf_counter() - t0
            t0 = time.perf_counter()
            ing.add_files(files)
            results["mfcc_reingest_fraction_in_process"] = (time.perf_counter() - t0) / first

        help_s = statistics.median(timed([*exe, "--help"], env) for _ in range(7))
        bare_s = statistics.median(timed([sys.executable, "-c", "pass"], env) for _ in range(7))
        results["help_startup_s"] = help_s
        results["python_startup_s"] = bare_s
        results["help_startup_vs_bare_python"] = help_s / bare_s

    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{args.clips} clips x {args.seconds:g} s, 44.1 kHz mono 16-bit WAV")
    for k, v in results.items():
        print(f"  {k:40s} {v:10.3f}")


if __name__ == "__main__":
    main()
