"""The baselines through the pipelined ingest: clips/s against the sequential engine, and re-ingest cost.

Every measurement is one ``timbredb ingest FOLDER --models mfcc,socialfx-eq`` command in a
fresh interpreter (start-up, imports, model set-up, the vocabulary's text vectors and
the summary included), timed from outside (wall seconds).

Part 1, ``--files`` one-second files (default 2,000), interleaved rounds, each into a new
empty store (no round can hit a cache: each must add every clip and 2 vectors per clip):

- reference: ``--reference-tree``, a checkout of timbredb before the pipeline (e.g.
  ``git archive 8037b71 | tar -x -C /tmp/ref``), run with this interpreter; skipped if not given;
- serial: this tree, ``--workers 0`` (the sequential engine, in one process);
- pipelined: this tree, default ``--workers`` (every core when only the baselines run).

The stored vectors of serial and pipelined are compared bit for bit (and the reference's,
reported as equal or by their largest difference).

Part 2, re-ingest: ``--reingest-files`` files (default 1,000): a first run into an empty
store, then the same command again on that store (nothing to compute); ratio = re-ingest
/ first run, beside ``python -c pass`` measured in the same rounds.

    python benchmarks/bench_pipeline_baselines.py --reference-tree /tmp/ref --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
MODELS = "mfcc,socialfx-eq"


def write_files(folder: Path, n: int, seconds: float, seed: int) -> None:
    """``n`` one-second 44.1 kHz files: filtered noise and harmonic tones, a quarter of them stereo."""
    import numpy as np
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    sr = 44100
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    for i in range(n):
        f0 = 80.0 + 900.0 * rng.random()
        tone = sum(np.sin(2 * np.pi * f0 * k * t + rng.random()) / k**rng.uniform(0.5, 2.0) for k in range(1, 9))
        x = 0.3 * tone / np.max(np.abs(tone)) + 0.05 * rng.standard_normal(t.shape[0])
        if i % 4 == 0:
            x = np.stack([x, 0.5 * x + 0.05 * rng.standard_normal(t.shape[0])], axis=1)
        sf.write(str(folder / f"f{i:05d}.wav"), x.astype(np.float32), sr, subtype="PCM_16")


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    """(wall s, stdout); exits on failure.

    Wall time only: the CPU time the kernel reports for reaped children leaves out the
    forkserver's workers (not this process's to reap), so it would flatter the pipeline.
    """
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return wall, proc.stdout


def ingest_cmd(db: Path, data_dir: Path, folder: Path, workers: str | None) -> list[str]:
    # the default (text) output, as a user types it: --format json would also import polars to print
    cmd = [sys.executable, "-m", "timbredb", "--db", str(db), "--data-dir", str(data_dir), "ingest", str(folder),
           "--models", MODELS]
    return cmd + (["--workers", workers] if workers is not None else [])


def parse_summary(out: str) -> dict[str, int]:
    """The summary line (``clips added: N, clips skipped: N, embeddings added: N, ..., errors: N``)."""
    m = re.search(r"clips added: (\d+), clips skipped: (\d+), embeddings added: (\d+), .*errors: (\d+)", out)
    if m is None:
        raise SystemExit(f"no summary line in {out!r}")
    added, skipped, embedded, errors = (int(g) for g in m.groups())
    return {"clips_added": added, "clips_skipped": skipped, "embeddings_added": embedded, "errors": errors}


def vectors(db: Path) -> dict[tuple[str, str], bytes]:
    import duckdb
    import numpy as np

    con = duckdb.connect(str(db), read_only=True)
    try:
        rows = con.execute("SELECT space_id, clip_sha256, embedding FROM audio_embeddings").fetchall()
    finally:
        con.close()
    return {(s, c): np.asarray(e, dtype=np.float32).tobytes() for s, c, e in rows}


def max_diff(a: dict[tuple[str, str], bytes], b: dict[tuple[str, str], bytes]) -> float | None:
    import numpy as np

    if a.keys() != b.keys():
        return None
    return max(float(np.max(np.abs(np.frombuffer(a[k], np.float32) - np.frombuffer(b[k], np.float32)))) for k in a)


def summary(xs: list[float]) -> dict[str, Any]:
    return {"rounds": [round(x, 3) for x in xs], "min": round(min(xs), 3), "median": round(statistics.median(xs), 3)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--reingest-files", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--reference-tree", type=Path, default=None, help="timbredb before the pipeline (a checkout)")
    ap.add_argument("--data-dir", type=Path, default=Path(os.environ.get("TIMBREDB_DATA_DIR", REPO / "../shared/data")))
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="timbredb-bench-pipe-"))
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO))
    engines: dict[str, tuple[dict[str, str], str | None]] = {"serial": (env, "0"), "pipelined": (env, None)}
    if args.reference_tree is not None:
        engines = {"reference": (dict(env, PYTHONPATH=str(args.reference_tree.resolve())), None), **engines}
    load = os.getloadavg()
    try:
        big, small = work / "big", work / "small"
        write_files(big, args.files, args.seconds, seed=1)
        write_files(small, args.reingest_files, args.seconds, seed=2)

        wall: dict[str, list[float]] = {k: [] for k in engines}
        kept: dict[str, Path] = {}
        for r in range(args.rounds):
            for name, (e, workers) in engines.items():
                db = work / f"{name}{r}.duckdb"
                # the reference tree has no --workers option
                w, out = timed(ingest_cmd(db, args.data_dir, big, workers if name != "reference" else None), e)
                s = parse_summary(out)
                if s["clips_added"] != args.files or s["embeddings_added"] != 2 * args.files or s["errors"]:
                    raise SystemExit(f"{name} round {r} did not compute every vector (a cache hit?): {s}")
                wall[name].append(w)
                if r == 0:
                    kept[name] = db
                else:
                    db.unlink()
                print(f"round {r} {name}: {w:.2f} s, {args.files / w:.1f} clips/s", flush=True)
        vec = {k: vectors(p) for k, p in kept.items()}
        identical = vec["serial"] == vec["pipelined"]
        part1: dict[str, Any] = {
            "files": args.files,
            "wall_s": {k: summary(v) for k, v in wall.items()},
            "clips_per_s_best": {k: round(args.files / min(v), 1) for k, v in wall.items()},
            "speedup_vs_serial": {"min": round(min(wall["serial"]) / min(wall["pipelined"]), 3),
                                  "median": round(statistics.median(wall["serial"])
                                                  / statistics.median(wall["pipelined"]), 3)},
            "vectors_pipelined_equal_serial": identical,
        }
        if "reference" in wall:
            part1["speedup_vs_reference"] = {
                "min": round(min(wall["reference"]) / min(wall["pipelined"]), 3),
                "median": round(statistics.median(wall["reference"]) / statistics.median(wall["pipelined"]), 3)}
            part1["reference_max_abs_diff"] = max_diff(vec["reference"], vec["pipelined"])

        first, again, bare = [], [], []
        for r in range(args.rounds):
            db = work / f"re{r}.duckdb"
            w, out = timed(ingest_cmd(db, args.data_dir, small, None), env)
            if parse_summary(out)["embeddings_added"] != 2 * args.reingest_files:
                raise SystemExit(f"re-ingest round {r}: the first run did not compute every vector")
            first.append(w)
            w, out = timed(ingest_cmd(db, args.data_dir, small, None), env)
            s = parse_summary(out)
            if s["clips_added"] or s["embeddings_added"] or s["clips_skipped"] != args.reingest_files:
                raise SystemExit(f"re-ingest round {r} computed something: {s}")
            again.append(w)
            bare.append(timed([sys.executable, "-c", "pass"], env)[0])
            db.unlink()
            print(f"round {r} first run {first[-1]:.2f} s, re-ingest {again[-1]:.2f} s, python -c pass "
                  f"{bare[-1]:.3f} s", flush=True)
        part2 = {
            "files": args.reingest_files,
            "first_run_s": summary(first),
            "reingest_s": summary(again),
            "python_pass_s": summary(bare),
            "ratio": {"min": round(min(a / f for a, f in zip(again, first)), 3),
                      "median": round(statistics.median(a / f for a, f in zip(again, first)), 3)},
        }
        result = {"cores": len(os.sched_getaffinity(0)), "loadavg_before": [round(x, 2) for x in load],
                  "loadavg_after": [round(x, 2) for x in os.getloadavg()], "baselines": part1, "reingest": part2}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0 if identical else 1


if __name__ == "__main__":
    raise SystemExit(main())
