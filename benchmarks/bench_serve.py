"""Load test of `timbredb serve` (loopback only, bounded), beside the CLI's `describe` cost per file.

Run:  python benchmarks/bench_serve.py [--requests 500] [--concurrency 16] [--rounds 5]
                                       [--model socialfx-eq] [--data-dir ../shared/data]

What it does, all on 127.0.0.1 and bounded in count and time (every request has a
timeout; the server is stopped at the end whatever happens):

1. builds a store of ``--stored`` synthesized clips embedded by mfcc and socialfx-eq,
   and ``--uploads`` other synthesized files that are *not* in the store (checked by
   content hash), so no request is answered from a stored vector;
2. starts `timbredb serve --port 0` as a separate process and warms it up;
3. runs ``--rounds`` interleaved rounds, each:
   a. ``requests / rounds`` POST /api/describe requests, ``--concurrency`` at a time;
   b. the CLI on the same kind of file: `timbredb describe FILE` as its own process
      (what a user pays per sound), and one process describing ``--batch`` files
      (the cost per file once start-up is shared);
   c. the library call in this process (`timbredb.describe.describe`), the floor
      both stand on;
4. prints p50/p90/p99/max latency, requests/s, errors, and the CLI and library
   costs per file, with min and median over rounds, and their ratios.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"  # loopback only: this benchmark never sends traffic anywhere else


def make_clip(path: Path, seed: int, seconds: float, sr: int = 44100) -> Path:
    """A harmonic tone plus coloured noise; every seed gives different content."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    f0 = 70.0 + 7.0 * (seed % 97)
    rolloff = 0.5 + (seed % 11) * 0.2
    x = sum(np.sin(2 * np.pi * k * f0 * t) / k**rolloff for k in range(1, 16) if k * f0 < sr / 2)
    x = 0.2 * x / np.abs(x).max() + 0.02 * rng.standard_normal(t.shape[0])
    sf.write(str(path), x.astype(np.float32), sr, subtype="PCM_16")
    return path


def data_dir(arg: str | None, tmp: Path) -> Path:
    if arg and (Path(arg) / "audealize" / "eqpoints.json").is_file():
        return Path(arg).resolve()
    # socialfx-eq needs audealize/eqpoints.json: synthesize the test data dir when the real one is absent
    sys.path.insert(0, str(REPO))
    from tests.synthetic_data import write_data_dir

    return write_data_dir(tmp / "data")


def multipart(data: bytes, filename: str, fields: dict[str, str]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
             for k, v in fields.items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
                 f"Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def post(port: int, body: bytes, ctype: str, timeout_s: float) -> tuple[int, bytes, float]:
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout_s)
    try:
        conn.request("POST", "/api/describe", body=body, headers={"Content-Type": ctype})
        r = conn.getresponse()
        payload = r.read()
        return r.status, payload, time.perf_counter() - t0
    finally:
        conn.close()


def start_server(exe: list[str], db: Path, data: Path, env: dict[str, str], threads: int | None) -> tuple[Any, int]:
    cmd = [*exe, "--db", str(db), "--data-dir", str(data), "serve", "--port", "0"]
    if threads:
        cmd += ["--threads", str(threads)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    port: list[int] = []
    ready = threading.Event()

    def drain() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            m = re.search(r"listening on http://127\.0\.0\.1:(\d+)/", line)
            if m and not port:
                port.append(int(m.group(1)))
                ready.set()
            elif "Traceback" in line or "error" in line.lower():
                sys.stderr.write("server: " + line)
        ready.set()

    threading.Thread(target=drain, daemon=True).start()
    ready.wait(120)
    if not port:
        proc.kill()
        raise SystemExit("timbredb serve did not start")
    return proc, port[0]


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=500)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--model", default="socialfx-eq")
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--stored", type=int, default=200, help="clips in the store")
    ap.add_argument("--uploads", type=int, default=50, help="distinct files sent (none of them stored)")
    ap.add_argument("--seconds", type=float, default=2.0, help="length of every clip")
    ap.add_argument("--batch", type=int, default=10, help="files per CLI process in the amortised measure")
    ap.add_argument("--threads", type=int, default=None, help="serve --threads (default: its own)")
    ap.add_argument("--timeout-s", type=float, default=60.0, help="per request")
    ap.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args()

    exe = [sys.executable, "-m", "timbredb"]
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        data = data_dir(args.data_dir, tmp)
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TIMBREDB_DATA_DIR": str(data)}
        stored_dir, upload_dir = tmp / "stored", tmp / "uploads"
        stored_dir.mkdir()
        upload_dir.mkdir()
        for i in range(args.stored):
            make_clip(stored_dir / f"s{i:04d}.wav", seed=i, seconds=args.seconds)
        uploads = [make_clip(upload_dir / f"u{i:04d}.wav", seed=100_000 + i, seconds=args.seconds)
                   for i in range(args.uploads)]
        db = tmp / "bench.duckdb"
        subprocess.run([*exe, "--db", str(db), "--data-dir", str(data), "ingest", str(stored_dir), "--models",
                        f"mfcc,{args.model}"], check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        from timbredb.audio import decode
        from timbredb.describe import describe
        from timbredb.models import load
        from timbredb.store import Store
        from timbredb.vocabularies import DEFAULT_VOCABULARY, resolve

        with Store(db, read_only=True) as store:
            hashes = [decode(u).sha256 for u in uploads]
            # no upload may be answered from a stored vector (that would be a cache hit, not the work)
            assert not store.stored_clips(hashes), "an upload's content is in the store"
            assert len(set(hashes)) == len(hashes), "two uploads have the same content"
            vocab_name, words = resolve(DEFAULT_VOCABULARY, data, store.vocabularies())
        model = load(args.model, data_dir=data)
        model.ensure_loaded()

        bodies = [multipart(u.read_bytes(), u.name, {"model": args.model, "k": str(args.k)}) for u in uploads]
        proc, port = start_server(exe, db, data, env, args.threads)
        latencies: list[float] = []
        errors: list[str] = []
        answers: dict[int, bytes] = {}
        rps: list[float] = []
        cli_cold: list[float] = []
        cli_batch: list[float] = []
        library: list[float] = []
        try:
            for i in range(4):  # warm-up: the model loads on the first request
                status, payload, _ = post(port, *bodies[i], args.timeout_s)
                if status != 200:
                    raise SystemExit(f"warm-up request failed: {status} {payload[:300]!r}")
            per_round = args.requests // args.rounds
            sent = 0
            for r in range(args.rounds):
                n = per_round if r < args.rounds - 1 else args.requests - sent
                idx = [(sent + j) % len(bodies) for j in range(n)]
                sent += n

                def one(i: int) -> tuple[int, int, bytes, float]:
                    try:
                        status, payload, dt = post(port, *bodies[i], args.timeout_s)
                    except (OSError, http.client.HTTPException) as exc:
                        return i, -1, str(exc).encode(), float("nan")
                    return i, status, payload, dt

                t0 = time.perf_counter()
                with ThreadPoolExecutor(args.concurrency) as pool:
                    results = list(pool.map(one, idx))
                wall = time.perf_counter() - t0
                rps.append(n / wall)
                for i, status, payload, dt in results:
                    if status != 200:
                        errors.append(f"{status}: {payload[:200]!r}")
                        continue
                    latencies.append(dt)
                    # the same file must get the same answer in every round (no stale or mixed-up state)
                    if answers.setdefault(i, payload) != payload:
                        errors.append(f"upload {i}: a different answer than before")

                # the CLI, one process per file (cold: interpreter, imports, model, store)
                for u in uploads[r * 2 : r * 2 + 2]:
                    t0 = time.perf_counter()
                    subprocess.run([*exe, "--db", str(db), "--data-dir", str(data), "describe", str(u), "--model",
                                    args.model, "-k", str(args.k), "--format", "json"], check=True, env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)
                    cli_cold.append(time.perf_counter() - t0)
                batch = [str(u) for u in uploads[: args.batch]]
                t0 = time.perf_counter()
                subprocess.run([*exe, "--db", str(db), "--data-dir", str(data), "describe", *batch, "--model", args.model,
                                "-k", str(args.k), "--format", "json"], check=True, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, timeout=300)
                cli_batch.append((time.perf_counter() - t0) / len(batch))

                # the library call itself, in this process (the store opened read-only, as the CLI does)
                with Store(db, read_only=True) as store:
                    t0 = time.perf_counter()
                    for u in uploads[: args.batch]:
                        out, errs = describe(store, [str(u)], model, words, vocab_name, k=args.k)
                        assert out and not errs
                    library.append((time.perf_counter() - t0) / args.batch)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()

    ok = len(latencies)
    figures: dict[str, Any] = {
        "requests": args.requests, "concurrency": args.concurrency, "rounds": args.rounds, "model": args.model,
        "stored_clips": args.stored, "distinct_uploads": args.uploads, "clip_seconds": args.seconds,
        "ok": ok, "errors": len(errors),
        "latency_ms_p50": 1000 * percentile(latencies, 50), "latency_ms_p90": 1000 * percentile(latencies, 90),
        "latency_ms_p99": 1000 * percentile(latencies, 99), "latency_ms_max": 1000 * max(latencies),
        "requests_per_s_min": min(rps), "requests_per_s_median": statistics.median(rps),
        "cli_cold_s_per_file_min": min(cli_cold), "cli_cold_s_per_file_median": statistics.median(cli_cold),
        "cli_batch_s_per_file_min": min(cli_batch), "cli_batch_s_per_file_median": statistics.median(cli_batch),
        "library_ms_per_file_min": 1000 * min(library), "library_ms_per_file_median": 1000 * statistics.median(library),
    }
    server_s_per_file = 1.0 / figures["requests_per_s_median"]
    figures["server_s_per_file_at_load"] = server_s_per_file
    figures["cli_cold_per_file_over_server_per_file"] = figures["cli_cold_s_per_file_median"] / server_s_per_file
    figures["cli_batch_per_file_over_server_per_file"] = figures["cli_batch_s_per_file_median"] / server_s_per_file
    figures["server_per_file_over_library_per_file"] = server_s_per_file / statistics.median(library)
    figures["server_p50_over_library_per_file"] = (figures["latency_ms_p50"] / 1000) / statistics.median(library)
    if errors:
        figures["first_errors"] = errors[:5]
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        print(f"{args.requests} POST /api/describe ({args.model}, k={args.k}), {args.concurrency} concurrent, "
              f"{args.rounds} rounds interleaved with the CLI; {args.uploads} distinct {args.seconds:g} s uploads "
              f"(none stored), store of {args.stored} clips")
        for k, v in figures.items():
            print(f"  {k:45s} {v:12.3f}" if isinstance(v, float) else f"  {k:45s} {v}")
    if errors:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
