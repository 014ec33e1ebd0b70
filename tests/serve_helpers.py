"""Helpers for the `timbredb serve` tests: a small real store, a real server process, raw HTTP.

The server runs as `python -m timbredb ... serve --port 0` (a real process on a
loopback port); requests go through http.client or raw sockets, so what is
tested is what a client on the wire sees.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from click.testing import Result

from tests.synth import harmonic_tone, highpassed, lowpassed, noise, write

LISTENING = re.compile(r"listening on http://127\.0\.0\.1:(\d+)/")


def build_store(root: Path, data_dir: Path) -> tuple[Path, dict[str, Path]]:
    """A store of nine synthesized clips (wav, flac, aiff) embedded by mfcc and socialfx-eq.

    Returns:
        (store path, name -> file ingested).
    """
    from timbredb.ingest import IngestOptions, run_ingest

    folder = root / "clips"
    files: dict[str, Path] = {}
    for i, (f0, rolloff) in enumerate([(110.0, 1.0), (196.0, 1.6), (330.0, 0.8), (440.0, 2.2), (587.0, 1.2)]):
        files[f"tone{i}"] = write(folder / f"tone{i}.wav", harmonic_tone(f0, 0.7, rolloff=rolloff))
    files["low"] = write(folder / "low.wav", lowpassed(noise(0.9, seed=11), 500))
    files["high"] = write(folder / "high.flac", highpassed(noise(0.9, seed=12), 4000))
    files["aiff"] = write(folder / "tone.aiff", harmonic_tone(262.0, 0.5, rolloff=1.4), subtype="PCM_16")
    files["stereo"] = write(folder / "stereo.wav", np.stack([noise(0.6, seed=13), noise(0.6, seed=14)], axis=1))
    db = root / "serve.duckdb"
    summary = run_ingest(db, data_dir, [str(folder)], IngestOptions(models=["mfcc", "socialfx-eq"]))
    assert not summary.errors, summary.errors
    return db, files


@dataclass
class Server:
    """A running `timbredb serve` process and what it wrote on stderr."""

    proc: subprocess.Popen[str]
    port: int
    stderr_lines: list[str] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stderr(self) -> str:
        return "".join(self.stderr_lines)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        return int(self.proc.returncode)


def env_for(tmpdir: Path | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("HF_HUB_OFFLINE", "1")
    if tmpdir is not None:
        env["TMPDIR"] = str(tmpdir)  # the server's temporary files go here, so a test can see them
    return env


def start_server(db: Path, data_dir: Path, *args: str, tmpdir: Path | None = None, timeout_s: float = 90.0) -> Server:
    """Start `timbredb --db DB --data-dir DATA serve --port 0 ARGS...` and wait until it listens."""
    cmd = [sys.executable, "-m", "timbredb", "--db", str(db), "--data-dir", str(data_dir), "serve", "--port", "0", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env_for(tmpdir))
    lines: list[str] = []
    found = threading.Event()
    port: list[int] = []

    def drain() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            m = LISTENING.search(line)
            if m and not port:
                port.append(int(m.group(1)))
                found.set()
        found.set()

    threading.Thread(target=drain, daemon=True).start()
    found.wait(timeout_s)
    if not port:
        proc.kill()
        proc.wait(timeout=5)
        raise AssertionError(f"timbredb serve did not start: {''.join(lines)}")
    return Server(proc, port[0], lines)


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def error(self) -> str:
        """The one-line error of a refused request (and check that is all the body holds)."""
        payload = self.json()
        assert isinstance(payload, dict) and set(payload) == {"error"}, payload
        message = payload["error"]
        assert isinstance(message, str) and message and "\n" not in message, message
        assert "Traceback" not in message
        return message


def request(port: int, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None,
            timeout_s: float = 60.0) -> Reply:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return Reply(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
    finally:
        conn.close()


def multipart(fields: dict[str, str | list[str]], files: dict[str, tuple[str, bytes]]) -> tuple[bytes, str]:
    """A multipart/form-data body and its content type."""
    boundary = uuid.uuid4().hex
    parts: list[bytes] = []
    for name, value in fields.items():
        for v in value if isinstance(value, list) else [value]:
            parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{v}\r\n'.encode())
    for name, (filename, data) in files.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n"
        )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def post_file(port: int, path: str, filename: str, data: bytes, **fields: str | list[str]) -> Reply:
    body, ctype = multipart(fields, {"file": (filename, data)})
    return request(port, "POST", path, body, {"Content-Type": ctype})


@contextmanager
def chdir(path: Path | None) -> Iterator[None]:
    before = os.getcwd()
    if path is not None:
        os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def cli(db: Path, data_dir: Path, *args: str, cwd: Path | None = None) -> Result:
    """Run the real click app in this process (as `timbredb --db DB --data-dir DATA ARGS...` from ``cwd``)."""
    from click.testing import CliRunner

    from timbredb.cli import cli as app

    with chdir(cwd):
        return CliRunner().invoke(app, ["--db", str(db), "--data-dir", str(data_dir), *args], catch_exceptions=False)


def cli_json(db: Path, data_dir: Path, *args: str, cwd: Path | None = None) -> tuple[str, Any]:
    """(stdout, parsed JSON) of a CLI command that must succeed."""
    result = cli(db, data_dir, *args, cwd=cwd)
    assert result.exit_code == 0, result.stderr
    return result.stdout, json.loads(result.stdout)


def wait_until(predicate: Any, timeout_s: float, step_s: float = 0.1) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(step_s)
    return bool(predicate())
