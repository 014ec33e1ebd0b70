"""Byte-for-byte comparison of the read commands' outputs between two versions of timbredb.

Run:  python benchmarks/compare_outputs.py --db STORE [--old REV] [--new REV]

Each version is the tree of a git revision (``git archive``, into a temporary folder; default
old: ``main``, the branch without issue 17's start-up work; default new: this working tree). Both run as
`python -m timbredb` with the same interpreter, packages and store (opened read-only), and
every command below is run in every text format: `sql` statements of many types, and
`query exp1`, `exp2`, `exp3` (with their default bootstrap and permutation counts). Exit 1
on the first difference, with a unified diff of it.
"""

from __future__ import annotations

import argparse
import difflib
import os
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

SQL = [
    "select 1",
    "SELECT model, count(*) AS n FROM audio_vectors GROUP BY model ORDER BY model",
    "SELECT * FROM clips ORDER BY clip_sha256 LIMIT 200",
    "SELECT * FROM runs ORDER BY run_id",
    "SELECT * FROM similarities ORDER BY ALL LIMIT 500",
    "SELECT clip_sha256, model, embedding FROM audio_vectors ORDER BY ALL LIMIT 20",
    "SELECT finished_at - started_at AS took, started_at FROM runs ORDER BY run_id",
    "SELECT range / 7 AS q, 1e-5 * range AS small, 1e15 * range AS big, range % 2 = 0 AS even FROM range(300)",
    "SUMMARIZE clips", "SHOW TABLES",
]
QUERIES = [["query", "exp1"], ["query", "exp2"], ["query", "exp3"]]


def tree(rev: str, dest: Path) -> Path:
    """The files of ``rev`` under ``dest``."""
    data = subprocess.run(["git", "-C", str(REPO), "archive", rev, "timbredb", "queries", "migrations", "pyproject.toml"],
                          capture_output=True, check=True).stdout
    with tarfile.open(fileobj=BytesIO(data)) as tar:
        tar.extractall(dest, filter="data")
    return dest


def run(root: Path, db: Path, args: list[str]) -> tuple[int, bytes, bytes]:
    env = {**os.environ, "PYTHONPATH": str(root), "HF_HUB_OFFLINE": "1"}
    p = subprocess.run([sys.executable, "-m", "timbredb", "--db", str(db), *args], capture_output=True, env=env,
                       cwd=root)
    return p.returncode, p.stdout, p.stderr


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", type=Path, required=True, help="the store to read (read-only)")
    ap.add_argument("--old", default="main", help="git revision of the reference version")
    ap.add_argument("--new", default=None, help="git revision of the new version (default: this working tree)")
    ap.add_argument("--skip-queries", action="store_true", help="only the sql statements")
    args = ap.parse_args()
    db = args.db.resolve()
    with tempfile.TemporaryDirectory() as tmp:
        old = tree(args.old, Path(tmp) / "old")
        new = tree(args.new, Path(tmp) / "new") if args.new else REPO
        for root in (old, new):  # each run imports its own tree, not the editable install's
            where = subprocess.run([sys.executable, "-c", "import timbredb; print(timbredb.__file__)"],
                                   capture_output=True, text=True, check=True, cwd=root,
                                   env={**os.environ, "PYTHONPATH": str(root)}).stdout.strip()
            if not Path(where).resolve().is_relative_to(root.resolve()):
                raise SystemExit(f"{root}: imports timbredb from {where}")
        cases = [["sql", s, "--format", f] for s in SQL for f in ("table", "csv", "json")]
        if not args.skip_queries:
            cases += [[*q, "--format", f] for q in QUERIES for f in ("table", "csv", "json")]
        for case in cases:
            a, b = run(old, db, case), run(new, db, case)
            if a != b:
                print(f"DIFFERENT: timbredb {' '.join(case)} (exit {a[0]} vs {b[0]})")
                for label, x, y in (("stdout", a[1], b[1]), ("stderr", a[2], b[2])):
                    if x != y:
                        sys.stdout.writelines(difflib.unified_diff(
                            x.decode(errors="replace").splitlines(True), y.decode(errors="replace").splitlines(True),
                            f"old {label}", f"new {label}", n=1))
                return 1
            if a[0] != 0:  # the same error in both is no comparison of outputs
                print(f"FAILED in both (exit {a[0]}): timbredb {' '.join(case)}\n{a[2].decode(errors='replace')}")
                return 1
            print(f"same ({len(a[1])} bytes): timbredb {' '.join(case)[:90]}")
    print(f"all {len(cases)} outputs identical byte for byte (old {args.old}, new {args.new or 'working tree'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
