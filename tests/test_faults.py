"""The fault campaign: kills at seeded random moments (store creation and migrations included), two
writers, a full disk, foreign and damaged files. After every fault: one clear line, a documented exit
status, and nothing already stored lost (exact counts, no duplicate keys, `check` exit 0).

Every ingest here runs the pipelined engine with two worker processes (``--workers 2``); one more test
kills it while its workers are seen running and checks that none of them outlives it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import CLI, db_rows
from tests.synth import lowpassed, noise, write

pytestmark = pytest.mark.faults

N_FILES = 16
MODELS = "mfcc,socialfx-eq"


@pytest.fixture(scope="session")
def data_dir(synth_data_dir: Path) -> Path:
    return synth_data_dir


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("faults-audio")
    for i in range(N_FILES):
        write(src / f"n{i:02d}.wav", lowpassed(noise(0.3, seed=i), 300 + 150 * i))
    return src


def _args(db: Path, data_dir: Path, folder: Path) -> list[str]:
    return [sys.executable, "-m", "timbredb", "--db", str(db), "--data-dir", str(data_dir), "ingest", str(folder),
            "--models", MODELS, "--batch-size", "2", "--workers", "2", "--format", "json"]


def _env() -> dict[str, str]:
    return dict(os.environ, HF_HUB_OFFLINE="1", TIMBREDB_THREADS="1")


def _assert_whole(db: Path, data_dir: Path, n_files: int = N_FILES) -> None:
    """Exact counts, no duplicate keys, every clip with both vectors, `check` clean."""
    assert db_rows(db, "SELECT count(*), count(DISTINCT clip_sha256) FROM clips") == [(n_files, n_files)]
    assert db_rows(db, "SELECT count(*), count(DISTINCT (space_id, clip_sha256)) FROM audio_embeddings") == [
        (2 * n_files, 2 * n_files)]
    assert db_rows(db, "SELECT count(*), count(DISTINCT path) FROM clip_files") == [(n_files, n_files)]
    assert db_rows(db, "SELECT count(*) FROM (SELECT space_id, prompt FROM text_embeddings GROUP BY ALL HAVING count(*) > 1)") == [(0,)]
    assert db_rows(db, "SELECT count(*) FROM (SELECT version FROM schema_migrations GROUP BY ALL HAVING count(*) > 1)") == [(0,)]
    check = CLI(db, data_dir)("check", "--format", "json")
    assert all(r["offending_rows"] == 0 for r in json.loads(check.stdout)["integrity"])


def test_ten_kills_at_seeded_random_moments_then_resume(tmp_path: Path, data_dir: Path, folder: Path) -> None:
    # how long a whole run takes here, to spread the kills over it (start-up included)
    t0 = time.monotonic()
    full = subprocess.run(_args(tmp_path / "timing.duckdb", data_dir, folder), capture_output=True, text=True,
                          env=_env(), timeout=300)
    assert full.returncode == 0, full.stderr
    duration = time.monotonic() - t0
    rng = np.random.default_rng(20251014)
    survived = 0
    for k, at in enumerate(np.sort(rng.uniform(0.05, 1.0, 10)) * duration):
        db = tmp_path / f"kill{k}.duckdb"
        proc = subprocess.Popen(_args(db, data_dir, folder), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=_env())
        time.sleep(at)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
        resumed = subprocess.run(_args(db, data_dir, folder), capture_output=True, text=True, env=_env(), timeout=300)
        assert resumed.returncode == 0, (k, at, resumed.stderr)
        _assert_whole(db, data_dir)
        survived += 1
    assert survived == 10


def _descendants(pid: int) -> dict[int, int]:
    """pid -> depth below ``pid`` of every live (not zombie) descendant, from /proc."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] != "Z":
            parents[int(entry)] = int(fields[1])
    out: dict[int, int] = {}
    frontier = {pid: 0}
    while frontier:
        nxt = {}
        for p, depth in frontier.items():
            for child, parent in parents.items():
                if parent == p and child not in out:
                    out[child] = depth + 1
                    nxt[child] = depth + 1
        frontier = nxt
    return out


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_kill_9_while_the_pipeline_runs_then_resume(tmp_path: Path, data_dir: Path) -> None:
    """SIGKILL at seeded moments while worker processes are running: no worker outlives the run, and
    the resumed run leaves exactly the expected rows, no duplicates."""
    n = 80
    src = tmp_path / "many"
    for i in range(n):
        write(src / f"p{i:02d}.wav", lowpassed(noise(0.4, seed=300 + i), 200 + 90 * i))
    rng = np.random.default_rng(20260117)

    def start(db: Path) -> tuple[subprocess.Popen[bytes], float]:
        """The ingest, once its workers run (and when they appeared)."""
        proc = subprocess.Popen(_args(db, data_dir, src), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env())
        workers: dict[int, int] = {}
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            # the forkserver is a child; the workers are its children
            workers = {p: d for p, d in _descendants(proc.pid).items() if d >= 2}
            if workers:
                break
            time.sleep(0.02)
        assert workers, "the pipeline's workers never appeared"
        return proc, time.monotonic()

    # how long this machine's run lasts once the workers are up: the kills land inside it
    proc, t0 = start(tmp_path / "whole.duckdb")
    proc.communicate(timeout=300)
    assert proc.returncode == 0
    run_s = time.monotonic() - t0
    _assert_whole(tmp_path / "whole.duckdb", data_dir, n)
    for k in range(3):
        db = tmp_path / f"pipe{k}.duckdb"
        proc, t0 = start(db)
        time.sleep(max(0.0, float(rng.uniform(0.05, 0.6)) * run_s - (time.monotonic() - t0)))
        family = _descendants(proc.pid)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
        assert proc.returncode == -9, "the run finished before the kill"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() and
                                                  Path(f"/proc/{p}/stat").read_text().split()[2] != "Z"
                                                  for p in family):
            time.sleep(0.05)
        alive = [p for p in family if Path(f"/proc/{p}").exists() and Path(f"/proc/{p}/stat").read_text().split()[2] != "Z"]
        assert not alive, f"processes outlived the killed ingest: {alive}"
        resumed = subprocess.run(_args(db, data_dir, src), capture_output=True, text=True, env=_env(), timeout=300)
        assert resumed.returncode == 0, (k, resumed.stderr)
        _assert_whole(db, data_dir, n)


_KILL_IN_CREATION = """
import os, signal, sys
from timbredb import schema
real_execute = None
count = {"n": 0}
target = int(sys.argv[1])
def killing_create(con):
    class Killer:
        def __init__(self, con): self.con = con
        def execute(self, *a, **k):
            count["n"] += 1
            if count["n"] == target:
                os.kill(os.getpid(), signal.SIGKILL)
            return self.con.execute(*a, **k)
    return real_create(Killer(con))
real_create = schema.create
schema.create = killing_create
from timbredb.cli import cli
cli(sys.argv[2:], prog_name="timbredb")
"""


@pytest.mark.parametrize("statement", [1, 3, 6])
def test_a_kill_during_store_creation_leaves_nothing_half_made(tmp_path: Path, data_dir: Path, folder: Path,
                                                               statement: int) -> None:
    """SIGKILL between the statements that create the store (BEGIN, each migration, its record, COMMIT)."""
    db = tmp_path / "c.duckdb"
    proc = subprocess.run([sys.executable, "-c", _KILL_IN_CREATION, str(statement), *_args(db, data_dir, folder)[3:]],
                          capture_output=True, text=True, env=_env(), timeout=120)
    assert proc.returncode == -9, proc.stderr
    if db.exists():  # an empty DuckDB file: no half-migrated store
        assert db_rows(db, "SELECT count(*) FROM information_schema.tables") == [(0,)]
    resumed = subprocess.run(_args(db, data_dir, folder), capture_output=True, text=True, env=_env(), timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    _assert_whole(db, data_dir)


def test_a_second_writer_gets_one_line_and_nothing_is_lost(tmp_path: Path, data_dir: Path, folder: Path) -> None:
    db = tmp_path / "w.duckdb"
    first = subprocess.Popen(_args(db, data_dir, folder), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=_env())
    # wait until the first writer holds the store
    for _ in range(200):
        if db.exists() and db.stat().st_size > 0:
            break
        time.sleep(0.05)
    second = subprocess.run(_args(db, data_dir, folder), capture_output=True, text=True, env=_env(), timeout=120)
    importer = subprocess.run([sys.executable, "-m", "timbredb", "--db", str(db), "import", "exp2",
                               str(tmp_path / "missing.csv"), "--model", "x"], capture_output=True, text=True,
                              env=_env(), timeout=120)
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    if second.returncode != 0:  # it ran while the first held the store
        assert second.returncode == 1
        lines = second.stderr.strip().splitlines()
        assert lines[-1].startswith("timbredb: error:") and "in use" in lines[-1], second.stderr
    assert importer.returncode in (1, 2) and "Traceback" not in importer.stderr
    _assert_whole(db, data_dir)


def _small_filesystem(path: Path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def test_a_full_disk_is_one_line_and_the_store_keeps_what_was_committed(tmp_path: Path, data_dir: Path) -> None:
    mnt = tmp_path / "small"
    if not _small_filesystem(mnt, "8m"):
        pytest.skip("needs root and tmpfs mounts to make a small file system")
    try:
        src = tmp_path / "many"
        for i in range(120):
            write(src / f"f{i:03d}.wav", noise(0.2, seed=100 + i))
        db = mnt / "full.duckdb"
        filler = mnt / "filler"  # leaves the store about 0.7 MB: it runs out part-way
        filler.write_bytes(b"\0" * 7_600_000)
        args = [sys.executable, "-m", "timbredb", "--db", str(db), "--data-dir", str(data_dir), "ingest", str(src),
                "--models", MODELS, "--batch-size", "4"]
        run = subprocess.run(args, capture_output=True, text=True, env=_env(), timeout=300)
        assert run.returncode == 1, run.stderr
        errors = [ln for ln in run.stderr.splitlines() if ln.startswith("timbredb: error:")]
        assert len(errors) == 1 and "No space left on device" in errors[0] and "Traceback" not in run.stderr
        # check on the full disk: one line or a clean report, never a traceback
        check = subprocess.run([sys.executable, "-m", "timbredb", "--db", str(db), "check"], capture_output=True,
                               text=True, env=_env(), timeout=120)
        assert "Traceback" not in check.stderr and check.returncode in (0, 1), check.stderr
        filler.unlink()
        committed = db_rows(db, "SELECT count(*) FROM clips")[0][0]
        assert 0 < committed < 120
        fine = subprocess.run([sys.executable, "-m", "timbredb", "--db", str(db), "check", "--format", "json"],
                              capture_output=True, text=True, env=_env(), timeout=120)
        assert fine.returncode == 0, fine.stderr
        # the committed batches are there, and a re-run adds exactly what is missing
        again = subprocess.run(args + ["--format", "json"], capture_output=True, text=True, env=_env(), timeout=300)
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout)["clips_added"] == 120 - committed
        assert db_rows(db, "SELECT count(*), count(DISTINCT (space_id, clip_sha256)) FROM audio_embeddings") == [(240, 240)]
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


def test_readers_are_served_while_an_ingest_writes(tmp_path: Path, data_dir: Path) -> None:
    """The ingest holds the store only in short write windows: `sql` gets in between (it waits for one)."""
    src = tmp_path / "lots"
    for i in range(60):
        write(src / f"r{i:02d}.wav", lowpassed(noise(0.4, seed=200 + i), 250 + 60 * i))
    db = tmp_path / "r.duckdb"
    writer = subprocess.Popen(_args(db, data_dir, src), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=_env())
    counts, failures = [], []
    while writer.poll() is None:
        if not db.exists():
            time.sleep(0.1)
            continue
        read = subprocess.run([sys.executable, "-m", "timbredb", "--db", str(db), "sql",
                               "SELECT count(*) AS n FROM clips", "--format", "json"],
                              capture_output=True, text=True, env=_env(), timeout=120)
        if read.returncode == 0:
            counts.append(json.loads(read.stdout)[0]["n"])
        elif "no timbredb store" not in read.stderr and "migration 0 of" not in read.stderr:
            failures.append(read.stderr)
    out, err = writer.communicate(timeout=60)
    assert writer.returncode == 0, err
    assert not failures, failures
    assert len(counts) >= 2 and counts == sorted(counts), counts  # served during the ingest, never going back
    assert db_rows(db, "SELECT count(*) FROM clips") == [(60,)]
