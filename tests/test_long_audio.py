"""Long files are hashed, checked and embedded block by block, and give the in-memory answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.synth import harmonic_tone, noise, write
from timbredb import audio as audio_mod
from timbredb.audio import decode, scan
from timbredb.errors import AudioError
from timbredb.models import load
from timbredb.models._frames import frames_of
from timbredb.models.base import WindowPolicy
from timbredb.models.mfcc import mfcc_frames, mfcc_mean_stream


@pytest.fixture(scope="session")
def data_dir(synth_data_dir: Path) -> Path:
    return synth_data_dir


def _blocks(x: np.ndarray, size: int) -> list[np.ndarray]:
    return [x[i : i + size] for i in range(0, x.shape[0], size)]


@pytest.mark.parametrize("center", [True, False])
@pytest.mark.parametrize("block", [1500, 4096, 100000])
def test_streamed_frames_equal_whole_signal_frames(center: bool, block: int) -> None:
    x = noise(1.3, seed=3).astype(np.float64)
    n_fft, hop = 2048, 512
    padded = np.pad(x, n_fft // 2, mode="reflect") if center else x
    whole = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop]
    streamed = np.concatenate(list(frames_of(_blocks(x, block), n_fft, hop, center)))
    assert streamed.shape == whole.shape
    assert np.array_equal(streamed, whole)


@pytest.mark.parametrize(("kind", "hop_s"), [("consecutive", None), ("consecutive", 0.5), ("first", None)])
@pytest.mark.parametrize("seconds", [0.7, 3.0, 3.25, 10.1])
def test_streamed_windows_equal_the_policy_windows(kind: str, hop_s: float | None, seconds: float) -> None:
    sr = 1000
    x = np.arange(int(seconds * sr), dtype=np.float32)
    policy = WindowPolicy(kind=kind, window_s=1.0, hop_s=hop_s, pad="repeatpad")
    whole = policy.windows(x, sr)
    for block in (137, 1000, 5000):
        streamed = list(policy.stream_windows(_blocks(x, block), sr))
        assert len(streamed) == len(whole), (seconds, block)
        for a, b in zip(streamed, whole):
            assert np.array_equal(a, b)


def test_streamed_mfcc_equals_the_whole_clip_mfcc() -> None:
    x = harmonic_tone(220.0, 4.0, rolloff=1.2) + 0.01 * noise(4.0, seed=1)
    whole = mfcc_frames(x).mean(axis=1)
    streamed = mfcc_mean_stream(_blocks(x, 30000))
    np.testing.assert_allclose(streamed, whole, rtol=1e-10, atol=1e-9)


def test_a_long_file_is_the_same_clip_with_the_same_vectors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           data_dir: Path) -> None:
    x = np.stack([harmonic_tone(330.0, 6.0), 0.5 * noise(6.0, seed=2)], axis=1)
    path = write(tmp_path / "long.wav", x, subtype="FLOAT")
    in_memory = decode(path)
    monkeypatch.setattr(audio_mod, "BLOCK_FRAMES", 40000)  # several blocks
    streamed = scan(path)
    assert (streamed.sha256, streamed.n_frames, streamed.channels) == (in_memory.sha256, in_memory.n_frames, 2)
    for name in ("mfcc", "socialfx-eq"):
        model = load(name, data_dir=data_dir)
        np.testing.assert_allclose(model.embed_streamed(streamed), model.embed_audio([in_memory]), rtol=1e-6, atol=1e-6)


def test_a_header_that_promises_more_frames_than_the_file_holds_is_one_clear_error(tmp_path: Path) -> None:
    """A WAV header claiming 10^9 frames: streamed (never allocated whole) and reported as truncated."""
    path = write(tmp_path / "short.wav", noise(0.5, seed=4))
    data = bytearray(path.read_bytes())
    i = data.index(b"data")
    data[i + 4 : i + 8] = (10**9 * 2).to_bytes(4, "little")  # 16-bit mono: 10^9 frames
    data[4:8] = (len(data) - 8 + 10**9 * 2).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    info = audio_mod.probe(path)
    with pytest.raises(AudioError, match="truncated") as err:
        audio_mod.open_audio(path)
    assert info.n_frames >= 10**8 or "truncated" in str(err.value)
    assert "\n" not in str(err.value) and str(path) in str(err.value)
