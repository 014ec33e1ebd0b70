"""Bulk `timbredb import exp2`: a study-format CSV of N rows (default 2.1 M, about 200 MB).

    python benchmarks/bench_import.py [--rows 2100000]

Writes a valid study-format file (effect_type, source_type, descriptor, scale,
orig_target_sim, manip_target_sim, delta_target_sim, target_text), then times
reading + validating (parse_import) and the whole CLI import into a fresh store,
and reports peak RSS. The reference in the same run is the time DuckDB takes to
read the same CSV into a table (read_csv), so the figure is a ratio to the
fastest possible load of that file.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def write_csv(path: Path, rows: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    strengths = np.array([0.2, 0.4, 0.6, 0.8, 1.0])
    n_traj = rows // 5
    with path.open("w") as f:
        f.write("effect_type,source_type,descriptor,scale,orig_target_sim,manip_target_sim,delta_target_sim,target_text\n")
        block = 50000
        for start in range(0, n_traj, block):
            k = np.arange(start, min(n_traj, start + block))
            orig = rng.uniform(-0.2, 0.4, k.size)
            lines = []
            for j, t in enumerate(k):
                effect = "eq" if t % 2 else "reverb"
                src, word = f"src{t % 97}", f"w{t // 97}"
                for s in strengths:
                    manip = orig[j] + 0.05 * s
                    lines.append(f"{effect},{src},{word},{s},{orig[j]!r},{manip!r},{manip - orig[j]!r},a {word} sound\n")
            f.writelines(lines)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=2_100_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        csv_path = Path(tmp) / "study.csv"
        write_csv(csv_path, args.rows)
        size_mb = csv_path.stat().st_size / 1e6
        import duckdb

        t0 = time.perf_counter()
        con = duckdb.connect()
        con.execute(f"CREATE TABLE t AS SELECT * FROM read_csv('{csv_path}')")
        ref = time.perf_counter() - t0
        con.close()
        from timbredb.importers.exp2 import parse_import

        t0 = time.perf_counter()
        _, rows = parse_import(csv_path)
        parse_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "timbredb", "--db", str(Path(tmp) / "s.duckdb"), "import", "exp2",
                              str(csv_path), "--model", "bench", "--format", "json"], capture_output=True, text=True)
        cli_s = time.perf_counter() - t0
        child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        assert out.returncode == 0, out.stderr
    print(f"{rows.height} rows, {size_mb:.0f} MB CSV")
    print(f"duckdb read_csv (reference): {ref:.2f} s")
    print(f"parse + validate (in process): {parse_s:.2f} s = {parse_s / ref:.1f}x the reference")
    print(f"timbredb import exp2 (CLI, fresh store): {cli_s:.2f} s = {cli_s / ref:.1f}x the reference; "
          f"peak RSS of the CLI process {child:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
