"""Peak memory of `timbredb ingest` on one long file: 10 minutes and 1 hour of 48 kHz stereo.

    python benchmarks/bench_long_file.py [--minutes 10 60] [--models mfcc,socialfx-eq]

Writes each file block by block (16-bit WAV; 1 h = 691 MB on disk, 1.38 GB as
float32), ingests it in a fresh store in a child process, and reports the
child's peak RSS and wall time next to two references measured in the same
run: the size of the decoded file as float32 and the peak RSS of ingesting a
one-second file (the interpreter and libraries). Targets: peak RSS bounded by a
constant plus one batch, at most 1.5 GB for the hour.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 48000


def write_long(path: Path, minutes: float, block_s: float = 10.0) -> None:
    rng = np.random.default_rng(0)
    t0 = 0.0
    n = int(minutes * 60 * SR)
    with sf.SoundFile(str(path), "w", samplerate=SR, channels=2, subtype="PCM_16") as f:
        done = 0
        while done < n:
            m = min(int(block_s * SR), n - done)
            t = (np.arange(m) + done) / SR
            tone = 0.2 * np.sin(2 * np.pi * (220 + 20 * np.sin(2 * np.pi * 0.01 * t)) * t)
            f.write(np.stack([tone, 0.5 * tone + 0.05 * rng.standard_normal(m)], axis=1).astype(np.float32))
            done += m
            t0 += block_s


def peak_rss_mb(args: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """(peak RSS in MB, wall seconds, exit status) of one child process."""
    code = (
        "import resource, subprocess, sys\n"
        "r = subprocess.run(sys.argv[1:])\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, r.returncode)\n"
    )
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code, sys.executable, "-m", "timbredb", *args],
                         capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    kb, rc = out.stdout.split()[-2:]
    return int(kb) / 1024, wall, int(rc)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, nargs="+", default=[10, 60])
    ap.add_argument("--models", default="mfcc,socialfx-eq")
    ap.add_argument("--data-dir", default=os.environ.get("TIMBREDB_DATA_DIR", "../shared/data"))
    args = ap.parse_args()
    env = dict(os.environ, HF_HUB_OFFLINE="1", TIMBREDB_DATA_DIR=args.data_dir)
    with tempfile.TemporaryDirectory() as tmp:
        one = Path(tmp) / "one.wav"
        write_long(one, 1 / 60)
        base_mb, base_s, rc = peak_rss_mb(["--db", f"{tmp}/ref.duckdb", "ingest", str(one), "--models", args.models], env)
        assert rc == 0
        print(f"reference: a 1 s file peaks at {base_mb:.0f} MB RSS ({base_s:.1f} s)")
        for minutes in args.minutes:
            path = Path(tmp) / f"long-{minutes:g}min.wav"
            write_long(path, minutes)
            decoded_mb = minutes * 60 * SR * 2 * 4 / 2**20
            mb, wall, rc = peak_rss_mb(["--db", f"{tmp}/s{minutes:g}.duckdb", "ingest", str(path), "--models",
                                        args.models, "--format", "json"], env)
            print(f"{minutes:g} min of 48 kHz stereo ({path.stat().st_size / 2**20:.0f} MB WAV, "
                  f"{decoded_mb:.0f} MB as float32): peak RSS {mb:.0f} MB = {mb / decoded_mb:.2f}x the decoded file, "
                  f"{mb - base_mb:.0f} MB above the 1 s reference; {wall:.0f} s; exit {rc}")
            path.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
