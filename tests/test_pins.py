"""Checkpoint pins, the digest check, pinned-revision lookup, and the study loaders' preprocessing.

Runs in the fast lane: no model weights, no torch (except the librosa comparison).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pytest

from tests.synth import harmonic_tone, noise, write
from timbredb.audio import decode, from_array, resample, resample_like_librosa
from timbredb.models import hub, pins, registry
from timbredb.models.base import ModelSpec, Pin

DOCS = (Path(__file__).resolve().parent.parent / "docs" / "models.md").read_text(encoding="utf-8")


def test_the_registry_pins_are_well_formed_and_documented() -> None:
    seen = 0
    for spec in registry.SPECS:
        for key, pin in spec.pins.items():
            seen += 1
            assert key == pin.key and pin.source
            assert pin.revision is None or re.fullmatch(r"[0-9a-f]{40}", pin.revision), key
            assert pin.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", pin.sha256), key
            for value in (pin.revision, pin.sha256):
                if value:
                    assert value in DOCS, f"{key}: {value} is not cited in docs/models.md"
    assert seen >= 2
    specs = registry.specs()
    # the two checkpoints public sources give digests for; the others stay unpinned
    assert specs["laion-clap"].pins["lukewys/laion_clap/630k-audioset-best.pt"].sha256
    assert specs["ms-clap"].pins["microsoft/msclap/CLAP_weights_2023.pth"].sha256
    assert not specs["muq-mulan"].pins and not specs["openflam"].pins


@pytest.fixture
def spec_with_pin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[ModelSpec, Path, str]:
    monkeypatch.setenv("TIMBREDB_CACHE_DIR", str(tmp_path / "cache"))
    good = tmp_path / "w.pt"
    good.write_bytes(b"published weights")
    digest = hashlib.sha256(b"published weights").hexdigest()
    spec = ModelSpec(id="m", family="t", checkpoint="c", dim=1, sample_rate=1, modalities=("audio",), license="",
                     description="", loader="x:y",
                     pins={"org/m/w.pt": Pin("org/m", "w.pt", revision="a" * 40, sha256=digest, source="test")})
    return spec, good, digest


def test_a_file_is_ok_mismatched_or_unpinned(spec_with_pin: tuple[ModelSpec, Path, str], tmp_path: Path) -> None:
    spec, good, digest = spec_with_pin
    f = hub.HubFile("org/m", ("w.pt",), "checkpoint")
    ok = pins.check_file(spec, f, good)
    assert (ok.status, ok.sha256, ok.expected_sha256, ok.pinned_revision) == ("ok", digest, digest, "a" * 40)
    bad = tmp_path / "other" / "w.pt"
    bad.parent.mkdir()
    bad.write_bytes(b"published weights!")
    check = pins.check_file(spec, f, bad)
    assert check.status == "mismatch" and check.sha256 == hashlib.sha256(b"published weights!").hexdigest()
    with pytest.raises(pins.ChecksumMismatch) as err:
        pins.enforce("m", [ok, check], allow_unpinned=False, fix="fetch it again")
    message = str(err.value)
    assert "\n" not in message and str(bad) in message
    assert f"expected sha256 {digest}, actual {check.sha256}" in message and "--allow-unpinned" in message
    pins.enforce("m", [check], allow_unpinned=True, fix="")  # reported, not refused
    tokenizer = pins.check_file(spec, hub.HubFile("org/m", ("vocab.json",), "tokenizer"), good.with_name("vocab.json"))
    assert tokenizer.status == "unpinned" and tokenizer.sha256 is None  # nothing to compare, nothing hashed
    unpinned_ckpt = pins.check_file(spec, hub.HubFile("org/x", ("w.pt",), "checkpoint"), good)
    assert unpinned_ckpt.status == "unpinned" and unpinned_ckpt.sha256 == digest  # hashed for provenance


def test_the_pinned_revision_is_looked_up_before_main(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants as hf_constants

    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path))
    repo = tmp_path / "models--org--m"
    pinned, main = "b" * 40, "c" * 40
    for commit, body in ((pinned, b"pinned"), (main, b"main")):
        (repo / "snapshots" / commit).mkdir(parents=True)
        (repo / "snapshots" / commit / "w.pt").write_bytes(body)
    plain = hub.HubFile("org/m", ("w.pt",))
    assert hub.locate(plain) is None  # fetched at a commit: no ref names it
    assert hub.locate(hub.HubFile("org/m", ("w.pt",), revision=pinned)).read_bytes() == b"pinned"
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(main)
    assert hub.locate(plain).read_bytes() == b"main"
    assert hub.locate(hub.HubFile("org/m", ("w.pt",), revision=pinned)).read_bytes() == b"pinned"
    assert hub.locate(hub.HubFile("org/m", ("w.pt",), revision="d" * 40)).read_bytes() == b"main"


def test_with_pins_carries_the_revision_to_fetch_and_lookup() -> None:
    from timbredb.models.fetch import files_for

    files = {f.label: f for f in files_for("laion-clap")}
    ckpt = files["lukewys/laion_clap/630k-audioset-best.pt"]
    assert ckpt.revision == registry.specs()["laion-clap"].pins[
        "lukewys/laion_clap/630k-audioset-best.pt"].revision
    assert files["roberta-base/vocab.json"].revision is None  # not pinned: main
    assert all(f.revision is None for f in files_for("laion-clap@630k-best"))  # no published revision


# ---------------------------------------------------------------- the study's preprocessing
def test_resampling_like_librosa_load_is_librosa_load(tmp_path: Path) -> None:
    librosa = pytest.importorskip("librosa")
    left, right = harmonic_tone(220, 1.3, sr=44100), noise(1.3, sr=44100, seed=5, level=0.3)
    path = write(tmp_path / "s.wav", np.stack([left, right], axis=1), sr=44100, subtype="PCM_16")
    for rate in (48000, 24000):
        theirs, _ = librosa.load(str(path), sr=rate, mono=True)
        audio = decode(path)
        ours = resample_like_librosa(audio.samples, audio.sample_rate, rate)
        np.testing.assert_array_equal(ours, theirs)  # the same down-mix, resampler and length
        vhq = resample(audio.samples, audio.sample_rate, rate)
        assert not np.array_equal(vhq[: len(ours)], ours)  # timbredb's own resampler is another


def test_channels_are_kept_only_on_request(tmp_path: Path) -> None:
    pcm = np.stack([harmonic_tone(220, 0.5), noise(0.5, seed=2)], axis=1)
    path = write(tmp_path / "s.wav", pcm, subtype="FLOAT")
    assert decode(path).channel_samples is None
    kept = decode(path, keep_channels=True)
    np.testing.assert_array_equal(kept.channel_samples, pcm.astype(np.float32))
    assert kept.sha256 == decode(path).sha256  # the same clip either way
    assert from_array(pcm[:, 0], 44100, "mono", keep_channels=True).channel_samples is None
