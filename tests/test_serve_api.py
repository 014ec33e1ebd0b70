"""`timbredb serve` JSON API against a real server process on a loopback port and a real store.

One server per module, with small limits (0.25 MiB uploads, 3 s of audio, 2 s
to send a body) so the limit tests are quick. Every bad input must get a 4xx
with exactly one JSON line; the module ends by checking that the server wrote
no traceback, left no temporary file, and did not change the store.
"""

from __future__ import annotations

import hashlib
import io
import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import db_rows
from tests.serve_helpers import (
    Reply,
    Server,
    build_store,
    cli,
    cli_json,
    post_file,
    request,
    start_server,
    wait_until,
)
from tests.synth import SR, harmonic_tone, lowpassed, noise, write

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install 'timbredb[serve]'")
pytest.importorskip("uvicorn", reason="the serve extra is not installed: pip install 'timbredb[serve]'")

MAX_UPLOAD_BYTES = 256 * 1024
UPLOAD_TIMEOUT_S = 2.0


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, synth_data_dir: Path) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("serve")
    db, files = build_store(root, synth_data_dir)
    uploads = root / "uploads"
    uploads.mkdir()
    server_tmp = root / "server-tmp"
    server_tmp.mkdir()
    digest = hashlib.sha256(db.read_bytes()).hexdigest()
    server = start_server(db, synth_data_dir, "--max-upload-mb", str(MAX_UPLOAD_BYTES / 2**20), "--max-duration-s", "3",
                          "--upload-timeout-s", str(UPLOAD_TIMEOUT_S), "--threads", "2", tmpdir=server_tmp)
    yield {"db": db, "files": files, "data": synth_data_dir, "server": server, "uploads": uploads,
           "server_tmp": server_tmp, "digest": digest, "root": root}
    server.stop()


@pytest.fixture(scope="module")
def server(world: dict[str, Any]) -> Server:
    return world["server"]


def _upload(world: dict[str, Any], name: str, x: np.ndarray, sr: int = SR, subtype: str | None = None) -> Path:
    return write(world["uploads"] / name, x, sr, subtype=subtype)


def _hashes(db: Path, model: str) -> list[str]:
    return [r[0] for r in db_rows(db, f"SELECT clip_sha256 FROM audio_vectors WHERE model = '{model}' ORDER BY 1")]


# ---------------------------------------------------------------- describe equals the CLI
def test_describe_is_exactly_what_the_cli_prints(world: dict[str, Any], server: Server) -> None:
    f = _upload(world, "bright one.wav", harmonic_tone(880.0, 1.0, rolloff=0.6))
    data = f.read_bytes()
    for extra, fields in [
        ([], {"model": "socialfx-eq"}),
        (["-k", "7", "--clips", "3"], {"model": "socialfx-eq", "k": "7", "clips": "3"}),
        (["--vocabulary", "audealize-eq", "--prompt", "a {} sound", "-k", "4"],
         {"model": "socialfx-eq", "vocabulary": "audealize-eq", "prompt": "a {} sound", "k": "4"}),
    ]:
        text, expected = cli_json(world["db"], world["data"], "describe", f.name, "--model", "socialfx-eq", *extra,
                                  "--format", "json", cwd=f.parent)
        reply = post_file(server.port, "/api/describe", f.name, data, **fields)
        assert reply.status == 200, reply.body
        assert reply.json() == expected
        # byte for byte: the same renderer prints the same numbers
        assert reply.body.decode() == text.rstrip("\n")
    assert len(expected[0]["descriptors"]) == 4


def test_describe_defaults_follow_the_cli(world: dict[str, Any], server: Server) -> None:
    """No model, k or vocabulary: the server uses describe's own defaults (default model, k, vocabulary)."""
    f = _upload(world, "dark.wav", lowpassed(noise(1.0, seed=5), 400))
    _, expected = cli_json(world["db"], world["data"], "describe", f.name, "--format", "json", cwd=f.parent)
    reply = post_file(server.port, "/api/describe", f.name, f.read_bytes())
    assert reply.status == 200 and reply.json() == expected
    from timbredb.cli import describe as describe_command

    defaults = {p.name: p.default for p in describe_command.params}
    from timbredb.vocabularies import BARE, DEFAULT_VOCABULARY

    # the server's defaults are the same constants as the CLI's
    assert defaults["vocabulary"] == DEFAULT_VOCABULARY and defaults["template"] == BARE and defaults["k"] == 5


def test_describe_several_models_and_a_stored_file(world: dict[str, Any], server: Server) -> None:
    stored = world["files"]["tone2"]
    reply = post_file(server.port, "/api/describe", "x.wav", stored.read_bytes(), model="socialfx-eq,socialfx-eq",
                      k="3", clips="2")
    assert reply.status == 200
    first, second = reply.json()
    assert first == second and first["file"] == "x.wav"
    # a stored file's own clip is never among its similar clips
    from timbredb.audio import decode

    sha = decode(stored).sha256
    assert sha not in {c["clip_sha256"] for c in first["similar_clips"]} and len(first["similar_clips"]) == 2
    # and its descriptors are those of the stored vector: the same as the stored clip's descriptors
    stored_reply = request(server.port, "GET", f"/api/clips/{sha}/descriptors?model=socialfx-eq&k=3")
    assert stored_reply.status == 200
    assert stored_reply.json()[0]["descriptors"] == first["descriptors"]


def test_describe_warnings_go_to_a_header_not_the_body(world: dict[str, Any], server: Server) -> None:
    f = world["files"]["low"]
    reply = post_file(server.port, "/api/describe", "low.wav", f.read_bytes(), model="socialfx-eq", vocabulary="ccmusic")
    assert reply.status == 200
    assert "outside its vocabulary" in reply.headers.get("x-timbredb-warning", "")
    assert all(set(d) == {"file", "model", "descriptors", "calibration"} for d in reply.json())
    # a warning quoting characters a header cannot carry is escaped, not a 500
    odd = post_file(server.port, "/api/describe", "low.wav", f.read_bytes(), model="socialfx-eq", vocabulary="ccmusic",
                    prompt="ein {} Klang \u2014 \u00fc")
    assert odd.status == 200 and "\\u2014" in odd.headers["x-timbredb-warning"]


def test_concurrent_describes_are_all_answered_identically(world: dict[str, Any], server: Server) -> None:
    f = _upload(world, "conc.wav", lowpassed(noise(1.0, seed=9), 2000))
    data = f.read_bytes()
    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(lambda _: post_file(server.port, "/api/describe", f.name, data, model="socialfx-eq",
                                                     k="5", clips="3"), range(16)))
    assert {r.status for r in replies} == {200}
    assert len({r.body for r in replies}) == 1


# ---------------------------------------------------------------- bad uploads
def _wav_bytes(x: np.ndarray, sr: int = SR, subtype: str = "PCM_16") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, sr, format="WAV", subtype=subtype)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("name", "payload", "status", "words"),
    [
        ("notes.wav", b"this is a text file, not audio\n" * 40, 415, "unreadable audio"),
        ("song.mp3", bytes(range(256)) * 16, 415, "unreadable audio"),
        ("fake.flac", b"fLaC" + b"\x00" * 3000, 415, "unreadable audio"),
        ("empty.wav", b"", 422, "empty (0 bytes)"),
        ("zero.wav", _wav_bytes(np.zeros((0,), dtype=np.float32)), 422, "empty (0 samples)"),
        ("silent.wav", _wav_bytes(np.zeros(SR // 2, dtype=np.float32)), 422, "silent"),
        ("nan.wav", _wav_bytes(np.full(SR // 2, np.nan, dtype=np.float32), subtype="FLOAT"), 422, "non-finite"),
        ("short.wav", _wav_bytes(noise(0.005)), 422, "too short"),
        ("long.wav", _wav_bytes(noise(4.0, sr=8000), sr=8000), 413, "the limit is 3 s"),
    ],
)
def test_bad_audio_is_a_4xx_with_one_json_line(server: Server, name: str, payload: bytes, status: int, words: str) -> None:
    reply = post_file(server.port, "/api/describe", name, payload, model="socialfx-eq")
    assert reply.status == status, reply.body
    message = reply.error()
    assert message.startswith(f"{name}: ") and words in message
    # the temporary file's name never leaks
    assert "timbredb-serve-" not in message and "/tmp" not in message
    # the map endpoint refuses it the same way
    assert post_file(server.port, "/api/map", name, payload, model="socialfx-eq").status == status


def test_a_truncated_wav_is_refused_when_decoding(server: Server) -> None:
    data = _wav_bytes(noise(1.0))
    reply = post_file(server.port, "/api/describe", "cut.wav", data[: len(data) // 3], model="socialfx-eq")
    # libsndfile reads what is there; either it is refused or it is described from what was sent
    assert reply.status in (200, 415, 422)
    if reply.status != 200:
        assert reply.error().startswith("cut.wav: ")


def test_a_client_file_name_is_never_a_path(world: dict[str, Any], server: Server) -> None:
    f = world["files"]["low"]
    reply = post_file(server.port, "/api/describe", "../../etc/evil\x07.wav", f.read_bytes(), model="socialfx-eq")
    assert reply.status == 200 and reply.json()[0]["file"] == "evil.wav"
    assert not (world["root"].parent / "etc").exists()


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"model": "no-such-model"}, "unknown model 'no-such-model'"),
        ({"model": "mfcc"}, "no text encoder"),
        ({"model": "socialfx-eq", "vocabulary": "no-such-words"}, "unknown vocabulary"),
        ({"model": "socialfx-eq", "k": "0"}, "k: "),
        ({"model": "socialfx-eq", "k": "abc"}, "k: "),
        ({"model": "socialfx-eq", "k": "100000"}, "k must be between 1 and"),
        ({"model": "socialfx-eq", "clips": "-1"}, "clips: "),
        ({"model": "socialfx-eq", "prompt": "no placeholder"}, "must contain exactly one '{}'"),
    ],
)
def test_bad_parameters_are_400_with_one_json_line(world: dict[str, Any], server: Server, fields: dict[str, str],
                                                   words: str) -> None:
    reply = post_file(server.port, "/api/describe", "low.wav", world["files"]["low"].read_bytes(), **fields)
    assert reply.status == 400, reply.body
    assert words in reply.error()


def test_a_vocabulary_file_path_is_never_read(world: dict[str, Any], server: Server) -> None:
    words = world["uploads"] / "words.txt"
    words.write_text("bright\nwarm\n")
    reply = post_file(server.port, "/api/describe", "low.wav", world["files"]["low"].read_bytes(), model="socialfx-eq",
                      vocabulary=str(words))
    assert reply.status == 400 and "unknown vocabulary" in reply.error()
    # ...while the CLI, run by the user on their own machine, does read it
    _, out = cli_json(world["db"], world["data"], "describe", str(world["files"]["low"]), "--model", "socialfx-eq",
                      "--vocabulary", str(words), "--format", "json")
    assert {d["descriptor"] for d in out[0]["descriptors"]} == {"bright", "warm"}


def test_malformed_requests_are_400_405_404(server: Server) -> None:
    no_file = request(server.port, "POST", "/api/describe", b'{"model": "mfcc"}', {"Content-Type": "application/json"})
    assert no_file.status == 400 and "file" in no_file.error()
    garbage = request(server.port, "POST", "/api/describe", b"--x\r\nnonsense",
                      {"Content-Type": "multipart/form-data; boundary=x"})
    assert garbage.status == 400 and garbage.error()
    wrong_method = request(server.port, "GET", "/api/describe")
    assert wrong_method.status == 405 and wrong_method.error()
    nowhere = request(server.port, "GET", "/api/nowhere")
    assert nowhere.status == 404 and nowhere.error()


# ---------------------------------------------------------------- limits on the wire
def test_an_oversized_upload_is_413_before_it_is_read(world: dict[str, Any], server: Server) -> None:
    big = _wav_bytes(noise(2.9, sr=48000), sr=48000)  # under 3 s but over 0.25 MiB
    assert len(big) > MAX_UPLOAD_BYTES
    reply = post_file(server.port, "/api/describe", "big.wav", big, model="socialfx-eq")
    assert reply.status == 413 and "limit" in reply.error()
    # a Content-Length far above the limit is refused at once, without sending the body
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(b"POST /api/describe HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                  b"Content-Length: 10000000000\r\n\r\n")
        head = _read_response(s)
    assert head.startswith(b"HTTP/1.1 413") and b'"error"' in head


def test_a_chunked_upload_is_cut_off_at_the_limit(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(b"POST /api/describe HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n")
        chunk = b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n\r\n" + b"\x00" * 65536
        sent = 0
        try:
            while sent < 4 * MAX_UPLOAD_BYTES + 2**20:
                s.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed while we were still sending
        head = _read_response(s)
    assert head.startswith(b"HTTP/1.1 413"), head[:200]


def _read_response(s: socket.socket, timeout_s: float = 15.0) -> bytes:
    s.settimeout(timeout_s)
    data = b""
    try:
        while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    return data


def test_a_slow_loris_upload_is_cut_off_with_408(world: dict[str, Any], server: Server) -> None:
    data = world["files"]["low"].read_bytes()
    from tests.serve_helpers import multipart

    body, ctype = multipart({"model": "socialfx-eq"}, {"file": ("slow.wav", data)})
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
        start = time.monotonic()
        s.sendall(f"POST /api/describe HTTP/1.1\r\nHost: x\r\nContent-Type: {ctype}\r\n"
                  f"Content-Length: {len(body)}\r\n\r\n".encode())
        # a few bytes every 0.3 s: each arrives well within any per-read timeout, the whole never does
        for i in range(0, 40):
            try:
                s.sendall(body[i * 8 : (i + 1) * 8])
            except (BrokenPipeError, ConnectionResetError):
                break
            s.settimeout(0.3)
            try:
                if s.recv(1, socket.MSG_PEEK):
                    break
            except TimeoutError:
                pass
        head = _read_response(s)
        elapsed = time.monotonic() - start
        assert head.startswith(b"HTTP/1.1 408"), head[:200]
        assert json.loads(head.split(b"\r\n\r\n", 1)[1])["error"].startswith("the request body did not arrive")
        assert UPLOAD_TIMEOUT_S - 0.2 <= elapsed <= UPLOAD_TIMEOUT_S + 3
        # and the connection is closed
        s.settimeout(5)
        assert s.recv(1) == b""


def test_slow_headers_are_cut_off_and_the_server_keeps_serving(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
        s.sendall(b"GET /api/healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        start = time.monotonic()
        # meanwhile, others are served at once
        assert request(server.port, "GET", "/api/healthz", timeout_s=5).status == 200
        head = _read_response(s)
        assert head.startswith(b"HTTP/1.1 408"), head[:200]
        assert time.monotonic() - start <= UPLOAD_TIMEOUT_S + 3


# ---------------------------------------------------------------- stored clips
def test_spaces_and_healthz_match_the_store(world: dict[str, Any], server: Server) -> None:
    spaces = request(server.port, "GET", "/api/spaces").json()
    counts = dict(db_rows(world["db"], "SELECT model, count(*) FROM audio_vectors GROUP BY ALL"))
    assert {s["model"]: s["n_audio"] for s in spaces} == counts == {"mfcc": 9, "socialfx-eq": 9}
    by = {s["model"]: s for s in spaces}
    assert by["mfcc"]["modalities"] == ["audio"] and by["socialfx-eq"]["modalities"] == ["audio", "text"]
    assert by["mfcc"]["dim"] == 40 and by["socialfx-eq"]["usable"] is True
    for s in spaces:
        assert set(s) >= {"model", "model_id", "checkpoint", "dim", "modalities", "n_audio", "n_text"}
    health = request(server.port, "GET", "/api/healthz").json()
    assert health["status"] == "ok" and health["read_only"] is True and health["spaces"] == 2
    assert health["audio_vectors"] == 18
    vocabularies = {v["name"]: v for v in request(server.port, "GET", "/api/vocabularies").json()}
    assert {"study", "ccmusic", "socialfx-eq"} <= set(vocabularies)


def _vectors(db: Path, model: str) -> dict[str, np.ndarray]:
    rows = db_rows(db, f"SELECT clip_sha256, embedding FROM audio_vectors WHERE model = '{model}'")
    return {h: np.asarray(v, dtype=np.float64) for h, v in rows}


@pytest.mark.parametrize("model", ["mfcc", "socialfx-eq"])
def test_similar_clips_equal_a_brute_force_search(world: dict[str, Any], server: Server, model: str) -> None:
    vectors = _vectors(world["db"], model)
    unit = {h: v / np.linalg.norm(v) for h, v in vectors.items()}
    for sha in sorted(unit)[:3]:
        reply = request(server.port, "GET", f"/api/clips/{sha}/similar?model={model}&k=4")
        assert reply.status == 200
        (answer,) = reply.json()
        got = [(c["clip_sha256"], c["score"]) for c in answer["similar_clips"]]
        expected = sorted(((h, float(unit[sha] @ u)) for h, u in unit.items() if h != sha), key=lambda t: -t[1])[:4]
        assert [h for h, _ in got] == [h for h, _ in expected]
        assert np.allclose([s for _, s in got], [s for _, s in expected], atol=1e-5)
        paths = dict(db_rows(world["db"], "SELECT clip_sha256, source_path FROM clips"))
        assert all(c["source_path"] == paths[c["clip_sha256"]] for c in answer["similar_clips"])
    # no model: every space holding the clip
    both = request(server.port, "GET", f"/api/clips/{sorted(unit)[0]}/similar?k=2").json()
    assert [a["model"] for a in both] == ["mfcc", "socialfx-eq"]


def test_stored_clip_descriptors_equal_describe_of_its_file(world: dict[str, Any], server: Server) -> None:
    f = world["files"]["high"]
    from timbredb.audio import decode

    sha = decode(f).sha256
    _, expected = cli_json(world["db"], world["data"], "describe", str(f), "--model", "socialfx-eq", "-k", "6",
                           "--vocabulary", "audealize-eq", "--format", "json")
    reply = request(server.port, "GET", f"/api/clips/{sha}/descriptors?model=socialfx-eq&k=6&vocabulary=audealize-eq")
    assert reply.status == 200
    (answer,) = reply.json()
    assert answer == {"clip_sha256": sha, **expected[0]}
    # default: every text-capable space holding the clip
    assert [a["model"] for a in request(server.port, "GET", f"/api/clips/{sha}/descriptors").json()] == ["socialfx-eq"]
    assert request(server.port, "GET", f"/api/clips/{sha}/descriptors?model=mfcc").status == 400


def test_clip_errors(world: dict[str, Any], server: Server) -> None:
    unknown = "0" * 64
    for path in (f"/api/clips/{unknown}", f"/api/clips/{unknown}/similar", f"/api/clips/{unknown}/descriptors",
                 f"/api/clips/{unknown}/audio"):
        reply = request(server.port, "GET", path)
        assert reply.status == 404 and "not in the store" in reply.error()
    sha = _hashes(world["db"], "mfcc")[0]
    for path, words in [
        ("/api/clips/ABC/similar", "clip_sha256"),
        (f"/api/clips/{sha.upper()}", "clip_sha256"),
        (f"/api/clips/{sha}/similar?k=0", "k"),
        (f"/api/clips/{sha}/similar?model=nope", "no stored space matches"),
        (f"/api/clips/{sha}/descriptors?vocabulary=/etc/passwd", "unknown vocabulary"),
    ]:
        reply = request(server.port, "GET", path)
        assert 400 <= reply.status < 500 and words in reply.error(), (path, reply.body)


def test_audio_is_served_only_from_recorded_unchanged_files(world: dict[str, Any], server: Server) -> None:
    from timbredb.audio import decode, read_pcm

    files = world["files"]
    wav_sha = decode(files["tone0"]).sha256
    info = request(server.port, "GET", f"/api/clips/{wav_sha}").json()
    assert info["audio_url"] == f"/api/clips/{wav_sha}/audio" and info["models"] == ["mfcc", "socialfx-eq"]
    reply = request(server.port, "GET", info["audio_url"])
    assert reply.status == 200 and reply.headers["content-type"] == "audio/wav"
    assert reply.body == files["tone0"].read_bytes()
    flac = request(server.port, "GET", f"/api/clips/{decode(files['high']).sha256}/audio")
    assert flac.status == 200 and flac.headers["content-type"] == "audio/flac"
    # AIFF (which browsers do not play) comes as WAV holding the same samples
    aiff = request(server.port, "GET", f"/api/clips/{decode(files['aiff']).sha256}/audio")
    assert aiff.status == 200 and aiff.headers["content-type"] == "audio/wav"
    pcm, sr = sf.read(io.BytesIO(aiff.body), dtype="float32", always_2d=True)
    ref, ref_sr = read_pcm(files["aiff"])
    assert sr == ref_sr and np.array_equal(pcm, ref)
    # a file changed since it was recorded is not served (it may no longer be that clip)
    changed = files["tone4"]
    sha4 = decode(changed).sha256
    st = changed.stat()
    import os

    os.utime(changed, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    try:
        assert request(server.port, "GET", f"/api/clips/{sha4}").json()["audio_url"] is None
        reply = request(server.port, "GET", f"/api/clips/{sha4}/audio")
        assert reply.status == 404 and "unchanged" in reply.error()
        similar = request(server.port, "GET", f"/api/clips/{wav_sha}/similar?model=mfcc&k=8").json()[0]
        urls = {c["clip_sha256"]: c["audio_url"] for c in similar["similar_clips"]}
        assert urls[sha4] is None and all(u for h, u in urls.items() if h != sha4)
    finally:
        os.utime(changed, ns=(st.st_atime_ns, st.st_mtime_ns))


@pytest.mark.parametrize(
    "raw_path",
    [
        "/api/clips/..%2F..%2F..%2F..%2Fetc%2Fpasswd/audio",
        "/api/clips/../../../../etc/passwd",
        "/api/clips/%2e%2e%2f%2e%2e%2fetc%2fpasswd/audio",
        "/api/clips/" + "a" * 60 + "%2F..%2F/audio",
        "/api/clips/%2Fetc%2Fpasswd/audio",
        "/static/../../../../etc/passwd",
        "/static/..%2F..%2F..%2F..%2Fetc%2Fpasswd",
        "/static/%2e%2e/service.py",
        "/static/..%2fservice.py",
        "/static//etc/passwd",
    ],
)
def test_path_traversal_reaches_no_file(server: Server, raw_path: str) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(f"GET {raw_path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = _read_response(s)
    status = int(data.split(b" ", 2)[1])
    assert 400 <= status < 500, data[:300]
    body = data.split(b"\r\n\r\n", 1)[1]
    assert b"root:" not in body and b"import" not in body and b"def " not in body
    assert set(json.loads(body)) == {"error"}


# ---------------------------------------------------------------- the map
def test_map_of_a_space_with_an_upload_placed_on_it(world: dict[str, Any], server: Server) -> None:
    plain = request(server.port, "GET", "/api/map?model=socialfx-eq&vocabulary=audealize-eq")
    assert plain.status == 200
    m = plain.json()
    assert m["n_clips_total"] == 9 and len(m["clips"]) == 9
    from tests.synthetic_data import EQ_WORDS
    from timbredb.vocabularies import AUDEALIZE_EQ

    assert [w["descriptor"] for w in m["words"]] == [w for w in AUDEALIZE_EQ if w in EQ_WORDS]
    assert len(m["explained_variance_ratio"]) == 2 and 0 < sum(m["explained_variance_ratio"]) <= 1 + 1e-9
    # a stored file lands exactly on its clip; a new one lands somewhere on the map
    stored = world["files"]["low"]
    from timbredb.audio import decode

    sha = decode(stored).sha256
    placed = post_file(server.port, "/api/map", "mine.wav", stored.read_bytes(), model="socialfx-eq",
                       vocabulary="audealize-eq").json()
    point = next(c for c in placed["clips"] if c["clip_sha256"] == sha)
    assert placed["upload"]["file"] == "mine.wav"
    assert abs(placed["upload"]["x"] - point["x"]) < 1e-9 and abs(placed["upload"]["y"] - point["y"]) < 1e-9
    assert placed["clips"] == m["clips"] and placed["words"] == m["words"]
    # an audio-only space maps its clips alone
    mfcc = request(server.port, "GET", "/api/map?model=mfcc").json()
    assert len(mfcc["clips"]) == 9 and mfcc["words"] == []
    assert request(server.port, "GET", "/api/map?model=nope").status == 400


def test_map_coordinates_equal_an_independent_pca(world: dict[str, Any], server: Server) -> None:
    m = request(server.port, "GET", "/api/map?model=socialfx-eq&vocabulary=audealize-eq").json()
    vectors = _vectors(world["db"], "socialfx-eq")
    audio = np.stack([vectors[c["clip_sha256"]] for c in m["clips"]])
    from timbredb.models import load

    model = load("socialfx-eq", data_dir=world["data"])
    text = model.embed_texts([w["descriptor"] for w in m["words"]]).astype(np.float64)
    a = audio / np.linalg.norm(audio, axis=1, keepdims=True)
    t = text / np.linalg.norm(text, axis=1, keepdims=True)
    a_c, t_c = a - a.mean(0), t - t.mean(0)
    cov = 0.5 * np.cov(a_c.T, bias=True) + 0.5 * np.cov(t_c.T, bias=True)
    values, vecs = np.linalg.eigh(cov)
    top = vecs[:, np.argsort(values)[::-1][:2]].T
    for i in range(2):
        if top[i, np.argmax(np.abs(top[i]))] < 0:
            top[i] = -top[i]
    got = np.array([[c["x"], c["y"]] for c in m["clips"]])
    assert np.allclose(got, a_c @ top.T, atol=1e-6)
    assert np.allclose(np.array([[w["x"], w["y"]] for w in m["words"]]), t_c @ top.T, atol=1e-6)
    ratios = np.sort(values)[::-1][:2] / values.sum()
    assert np.allclose(m["explained_variance_ratio"], ratios, atol=1e-9)


# ---------------------------------------------------------------- documentation
def test_openapi_is_served_and_every_route_is_in_the_readme(server: Server) -> None:
    schema = request(server.port, "GET", "/openapi.json").json()
    paths = set(schema["paths"])
    assert {"/api/spaces", "/api/describe", "/api/clips/{clip_sha256}/similar", "/api/clips/{clip_sha256}/descriptors",
            "/api/healthz", "/api/map"} <= paths
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    for p in paths:
        assert p in readme, f"{p} is not documented in README.md"
    describe = schema["paths"]["/api/describe"]["post"]
    assert "multipart/form-data" in describe["requestBody"]["content"]
    page = request(server.port, "GET", "/")
    assert page.status == 200 and b"<script src=\"/static/app.js\">" in page.body
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert request(server.port, "GET", "/docs").status == 404  # the CDN-backed docs page is off


# ---------------------------------------------------------------- read-only, clean, no tracebacks (keep these last)
def test_the_server_wrote_nothing_and_left_no_temporary_file(world: dict[str, Any], server: Server) -> None:
    assert server.proc.poll() is None, server.stderr()
    assert list(world["server_tmp"].iterdir()) == []
    assert hashlib.sha256(world["db"].read_bytes()).hexdigest() == world["digest"]
    db = world["db"]
    assert not db.with_name(db.name + ".faiss").exists()
    assert not db.with_name(db.name + ".wal").exists()
    assert "Traceback" not in server.stderr() and "Exception" not in server.stderr(), server.stderr()


def test_ingest_can_take_the_store_while_the_server_is_idle(world: dict[str, Any], server: Server) -> None:
    """The server holds no lock on the store once idle: a writer gets in, and the server then sees its work."""
    before = request(server.port, "GET", "/api/healthz").json()["audio_vectors"]
    new = write(world["root"] / "later" / "later.wav", harmonic_tone(150.0, 0.6, rolloff=0.9))
    from timbredb.errors import StoreError
    from timbredb.ingest import IngestOptions, run_ingest

    def ingest_ok() -> bool:
        try:
            run_ingest(world["db"], world["data"], [str(new.parent)], IngestOptions(models=["mfcc"]))
        except StoreError as exc:
            assert "in use by another process" in str(exc)
            return False  # the server was still holding the store: it lets go once idle
        return True

    assert wait_until(ingest_ok, timeout_s=20, step_s=0.5)
    after = request(server.port, "GET", "/api/healthz").json()["audio_vectors"]
    assert after == before + 1
    # a writer holding the store: requests get 503 with one line, never a hang or a traceback
    import duckdb

    writer: list[duckdb.DuckDBPyConnection] = []

    def take() -> bool:
        try:
            writer.append(duckdb.connect(str(world["db"])))
        except duckdb.IOException:
            return False  # the server's connections are still open (until it has been idle a while)
        return True

    assert wait_until(take, timeout_s=20, step_s=0.3)
    try:
        reply = request(server.port, "GET", "/api/spaces")
    finally:
        writer[0].close()
    assert reply.status == 503 and "in use by another process" in reply.error()
    assert request(server.port, "GET", "/api/spaces").status == 200


def test_the_server_stops_cleanly(world: dict[str, Any], server: Server) -> None:
    assert server.stop() == 0, server.stderr()
    assert "Traceback" not in server.stderr(), server.stderr()


# ---------------------------------------------------------------- refusing to start
def test_serve_refuses_a_missing_old_or_foreign_store_and_a_taken_port(tmp_path: Path, synth_data_dir: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    def run(db: Path, *args: str) -> Any:
        # in process: each of these refuses before it would listen
        result = cli(db, synth_data_dir, "serve", *args)
        result.returncode = result.exit_code
        return result

    missing = tmp_path / "missing.duckdb"
    out = run(missing, "--port", "0")
    assert out.returncode == 1 and "no timbredb store here" in out.stderr and not missing.exists()
    assert len(out.stderr.strip().splitlines()) == 1
    import duckdb

    foreign = tmp_path / "foreign.duckdb"
    con = duckdb.connect(str(foreign))
    con.execute("CREATE TABLE t (x INT)")
    con.close()
    digest = hashlib.sha256(foreign.read_bytes()).hexdigest()
    out = run(foreign, "--port", "0")
    assert out.returncode == 1 and "not a timbredb store" in out.stderr
    assert hashlib.sha256(foreign.read_bytes()).hexdigest() == digest
    from timbredb import schema
    from timbredb.store import Store

    all_migrations = schema.available_migrations()
    old = tmp_path / "old.duckdb"
    monkeypatch.setattr(schema, "available_migrations", lambda: all_migrations[:1])
    Store(old).close()
    monkeypatch.setattr(schema, "available_migrations", lambda: all_migrations)
    digest = hashlib.sha256(old.read_bytes()).hexdigest()
    out = run(old, "--port", "0")
    assert out.returncode == 1 and f"at migration 1 of {len(all_migrations)}" in out.stderr and "check" in out.stderr
    assert hashlib.sha256(old.read_bytes()).hexdigest() == digest  # never migrated
    good = tmp_path / "good.duckdb"
    Store(good).close()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        out = run(good, "--port", str(taken.getsockname()[1]))
    assert out.returncode == 1 and "cannot listen on 127.0.0.1" in out.stderr and "Traceback" not in out.stderr


def test_reply_error_helper_rejects_a_multiline_body() -> None:
    with pytest.raises(AssertionError):
        Reply(400, {}, json.dumps({"error": "two\nlines"}).encode()).error()
