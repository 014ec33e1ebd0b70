"""Start-up cost of the small commands: CPU seconds and peak RSS per process, against `python -c pass`.

Run:  python benchmarks/bench_startup.py [--db STORE] [--rounds 5] [--before main] [--json] [--importtime] [--check]

Each command runs as its own process (`python -m timbredb ...`, what the console
script runs) under GNU ``/usr/bin/time``: its CPU time (user + system) comes from the
kernel's accounting of that child and what it waited for (``os.wait4``, microseconds;
time's own ~1 ms is in every command's figure, the reference's too), its peak RSS from
time's ``%M``. (``os.wait4``'s own ru_maxrss is no use here: Python starts children
with vfork, so a child's peak starts at its parent's; for the same reason the store is
built in a separate process and this one stays small.) The reference is the bare interpreter,
`python -c pass`, measured in the same rounds. Rounds are interleaved (every command
once per round, the order rotated from round to round) after one warm-up round that
is not counted: it compiles timbredb's bytecode into a private cache (as any
installed package has it; this checkout may run with PYTHONDONTWRITEBYTECODE) and
reads the files into the page cache. Nothing else carries over between processes:
each opens the store anew and computes its result from scratch, so a later round
that were much faster than the first counted one would show in the per-round figures.

The store is at the study's scale: Experiment 1 as ``bench_analyses.build`` makes it
(61 stimuli x 16 descriptors x 4 spaces of 512-d, 8 templates, imported release
results), Experiments 2 and 3 from `timbredb ingest audealize timbremetrics
--models mfcc,socialfx-eq` on the real data (``$TIMBREDB_DATA_DIR``; 20 + 20 words
x 5 strengths x 3 sources, every timbremetrics study). Without the real data it
falls back to the synthesized data dir of the tests (smaller; said so in the output).
``--before REV`` runs the timbredb commands of git revision REV too (its tree from ``git
archive``, first on PYTHONPATH), in the same interleaved rounds: before/after in one run.
``--db STORE`` reuses a store built before (it is built there when missing); the
build takes a few minutes on 2 cores.

Targets (issue 17): `sql "select 1"` <= 0.3 s of CPU, `query exp1|exp2|exp3` <= 1 s
(medians); ``--check`` exits 1 when one is missed.
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
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

#: command name -> seconds of CPU it may take (None: reported only)
TARGETS: dict[str, float | None] = {
    "python -c pass": None, "timbredb --help": None, 'sql "select 1"': 0.3,
    "query exp1": 1.0, "query exp2": 1.0, "query exp3": 1.0,
}


def build(db: Path, data_dir: Path | None) -> str:
    """The study-scale store (see the module doc); returns where Experiments 2 and 3 came from."""
    import bench_analyses

    from timbredb.ingest import IngestOptions, run_ingest

    if data_dir is None or not (data_dir / "audealize").is_dir() or not (data_dir / "timbremetrics").is_dir():
        from tests.synthetic_data import write_data_dir

        data_dir = write_data_dir(db.parent / "synth-data")
        source = f"synthesized data ({data_dir}; smaller than the study)"
    else:
        source = f"real data ({data_dir})"
    summary = run_ingest(db, data_dir, ["audealize", "timbremetrics"],
                         IngestOptions(models=["mfcc", "socialfx-eq"]), warn=lambda _m: None)
    if summary.errors:
        raise SystemExit(f"ingest failed: {summary.errors[:3]}")
    bench_analyses.build(db)
    return source


def old_tree(rev: str, dest: Path) -> Path:
    """The timbredb of git revision ``rev`` (``git archive``) under ``dest``, to run beside this one."""
    import tarfile
    from io import BytesIO

    data = subprocess.run(["git", "-C", str(REPO), "archive", rev, "timbredb", "queries", "migrations",
                           "pyproject.toml"], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=BytesIO(data)) as tar:
        tar.extractall(dest, filter="data")
    return dest


def commands(db: Path) -> dict[str, list[str]]:
    py = sys.executable
    tdb = [py, "-m", "timbredb", "--db", str(db)]
    return {
        "python -c pass": [py, "-c", "pass"],
        "timbredb --help": [py, "-m", "timbredb", "--help"],
        'sql "select 1"': [*tdb, "sql", "select 1"],
        "query exp1": [*tdb, "query", "exp1"],
        "query exp2": [*tdb, "query", "exp2"],
        "query exp3": [*tdb, "query", "exp3"],
    }


TIME = Path("/usr/bin/time")


def measure(cmd: list[str], env: dict[str, str]) -> dict[str, float]:
    """One run of ``cmd``: CPU seconds (user + sys), peak RSS (MiB) and wall seconds of that process alone."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        wrapped = [str(TIME), "-f", "%M", "-o", rss.name, *cmd] if TIME.exists() else cmd
        t0 = time.perf_counter()
        # from a neutral folder: with `python -m`, the current folder comes first on sys.path
        proc = subprocess.Popen(wrapped, stdout=out, stderr=err, env=env, cwd=tempfile.gettempdir())
        _, status, usage = os.wait4(proc.pid, 0)  # this child (and what it reaped), not all children
        wall = time.perf_counter() - t0
        proc.returncode = rc = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
        # without GNU time: the kernel's figure, which starts at this (small) process's peak
        rss_kib = float(rss.read().strip().splitlines()[-1]) if TIME.exists() else float(usage.ru_maxrss)
    if rc != 0 or (not stdout.strip() and "timbredb" in cmd):
        raise SystemExit(f"{' '.join(cmd)} failed (exit {rc}):\n{stderr.decode(errors='replace')[-2000:]}")
    return {"cpu_s": usage.ru_utime + usage.ru_stime, "rss_mib": rss_kib / 1024, "wall_s": wall}


def importtime(cmd: list[str], env: dict[str, str], top: int = 8) -> list[tuple[str, float]]:
    """The top-level packages a command imports, by cumulative import time (ms, `python -X importtime`)."""
    p = subprocess.run([cmd[0], "-X", "importtime", *cmd[1:]], capture_output=True, text=True, env=env,
                       cwd=tempfile.gettempdir())
    totals: dict[str, float] = {}
    for line in p.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cum, name = (part.strip() for part in line.split("|"))
        if cum.isdigit() and not name.startswith(" ") and "." not in name.strip():
            totals[name.strip()] = totals.get(name.strip(), 0.0) + int(cum) / 1000
    return sorted(totals.items(), key=lambda kv: -kv[1])[:top]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", type=Path, default=None, help="store to use (built there when missing)")
    ap.add_argument("--data-dir", type=Path, default=None, help="real data (default $TIMBREDB_DATA_DIR)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    ap.add_argument("--importtime", action="store_true", help="also list what sql and query exp3 import")
    ap.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    ap.add_argument("--before", default=None, metavar="REV",
                    help="also run the timbredb commands of git revision REV (e.g. main) in the same rounds")
    ap.add_argument("--build-only", action="store_true", help=argparse.SUPPRESS)  # the child that builds --db
    args = ap.parse_args()
    data_dir = args.data_dir or (Path(os.environ["TIMBREDB_DATA_DIR"]) if os.environ.get("TIMBREDB_DATA_DIR") else None)
    if args.build_only:
        print(build(args.db, data_dir))
        return 0

    with tempfile.TemporaryDirectory() as tmp:
        db = args.db or Path(tmp) / "study.duckdb"
        source = "an existing store"
        if not db.exists():
            t0 = time.perf_counter()
            # in a child process: this one stays small (see the module doc)
            child = [sys.executable, __file__, "--build-only", "--db", str(db)]
            if data_dir is not None:
                child += ["--data-dir", str(data_dir)]
            built = subprocess.run(child, capture_output=True, text=True)
            if built.returncode != 0:
                raise SystemExit(f"building the store failed:\n{built.stderr[-3000:]}")
            source = built.stdout.strip().splitlines()[-1] + f", built in {time.perf_counter() - t0:.0f} s"
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env.update({"PYTHONPYCACHEPREFIX": str(Path(tmp) / "pycache"), "HF_HUB_OFFLINE": "1"})
        cmds = commands(db)
        envs = dict.fromkeys(cmds, env)
        if args.before:
            # the same commands from the old tree (PYTHONPATH wins over the editable install), interleaved
            root = old_tree(args.before, Path(tmp) / "before")
            for name, cmd in commands(db).items():
                if cmd[1:3] == ["-m", "timbredb"]:
                    cmds[f"{name} [{args.before}]"] = cmd
                    envs[f"{name} [{args.before}]"] = {**env, "PYTHONPATH": str(root)}
                    TARGETS[f"{name} [{args.before}]"] = None
        names = list(cmds)
        for name in names:  # warm-up, not counted
            measure(cmds[name], envs[name])
        runs: dict[str, list[dict[str, float]]] = {n: [] for n in names}
        for r in range(args.rounds):
            order = names[r % len(names):] + names[:r % len(names)]
            for name in order:
                runs[name].append(measure(cmds[name], envs[name]))
        imports = {n: importtime(cmds[n], envs[n]) for n in ('sql "select 1"', "query exp3")} if args.importtime else {}

    ref = statistics.median(m["cpu_s"] for m in runs["python -c pass"])
    rows: list[dict[str, Any]] = []
    for name in names:
        cpu = [m["cpu_s"] for m in runs[name]]
        rss = [m["rss_mib"] for m in runs[name]]
        target = TARGETS[name]
        med = statistics.median(cpu)
        rows.append({
            "command": name, "cpu_min_s": min(cpu), "cpu_median_s": med, "x_python": med / ref,
            "above_python_s": med - ref, "rss_median_mib": statistics.median(rss),
            "wall_median_s": statistics.median(m["wall_s"] for m in runs[name]),
            "rounds_cpu_s": [round(c, 3) for c in cpu], "target_s": target,
            "ok": None if target is None else med <= target,
        })
    failed = [r["command"] for r in rows if r["ok"] is False]
    # every process computes from scratch; a later round far below the first counted one would mean a cache
    suspicious = [r["command"] for r in rows if min(r["rounds_cpu_s"][1:], default=1e9) < 0.5 * r["rounds_cpu_s"][0]]
    if args.json:
        print(json.dumps({"store": str(db) if args.db else "temporary", "source": source, "rounds": args.rounds,
                          "commands": rows, "imports_ms": imports, "targets_met": not failed,
                          "suspiciously_fast_rounds": suspicious, "load_average": os.getloadavg()}, indent=2))
    else:
        print(f"store: {source}; {args.rounds} rounds after a warm-up; reference `python -c pass` = {ref:.3f} s CPU")
        print(f"{'command':26s} {'cpu min':>8s} {'cpu med':>8s} {'x python':>8s} {'rss MiB':>8s} {'wall med':>8s}  "
              f"{'target':>7s}  rounds (cpu s)")
        for r in rows:
            verdict = "" if r["target_s"] is None else f"<={r['target_s']:.1f} {'pass' if r['ok'] else 'FAIL'}"
            print(f"{r['command']:26s} {r['cpu_min_s']:8.3f} {r['cpu_median_s']:8.3f} {r['x_python']:8.1f} "
                  f"{r['rss_median_mib']:8.0f} {r['wall_median_s']:8.3f}  {verdict:>10s}  {r['rounds_cpu_s']}")
        for name, top in imports.items():
            print(f"imports of {name} (cumulative ms): " + ", ".join(f"{m} {ms:.0f}" for m, ms in top))
        if suspicious:
            print(f"WARNING: a later round under half the first (a cache?): {', '.join(suspicious)}")
        print(f"load average at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
        print("targets met" if not failed else f"targets missed: {', '.join(failed)}")
    return 1 if (failed and args.check) else 0


if __name__ == "__main__":
    sys.exit(main())
