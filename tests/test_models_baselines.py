"""The two offline baselines: exact MFCC, and the physics of socialfx-eq."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pedalboard
import pytest

from tests.synth import SR, harmonic_tone, lowpassed, noise
from timbredb.audio import from_array
from timbredb.datasets.audealize import normalise_curve
from timbredb.dsp import EQ_CENTRES_HZ, EQ_Q
from timbredb.errors import AudioError, ModelUnavailableError
from timbredb.models import WindowPolicy, availability, load, specs
from timbredb.models.mfcc import mfcc_frames


def _torchaudio():
    try:
        from timbredb.models._compat import import_torchaudio
    except ImportError:
        pytest.skip("the torchaudio compatibility shim is not available")
    try:
        return import_torchaudio()
    except ImportError as exc:
        pytest.skip(f"torchaudio not importable: {exc}")


@pytest.mark.parametrize("n_samples", [1025, 4096, 2 * SR + 17])
def test_mfcc_equals_torchaudio(n_samples: int) -> None:
    torchaudio = _torchaudio()
    import torch

    x = noise(n_samples / SR, seed=n_samples)[:n_samples]
    x[: n_samples // 3] *= 0.01  # quiet start exercises the top_db clamp
    ref = torchaudio.transforms.MFCC(sample_rate=44100, n_mfcc=40, melkwargs={"n_fft": 2048, "hop_length": 512})(torch.from_numpy(x)).numpy()
    mine = mfcc_frames(x)
    assert mine.shape == ref.shape
    np.testing.assert_allclose(mine, ref, atol=2e-3, rtol=1e-4)


def test_mfcc_model_resamples_and_averages_frames() -> None:
    model = load("mfcc")
    x48 = harmonic_tone(220, 1.0, sr=48000)
    v = model.embed_audio([from_array(x48, 48000, "t")])
    assert v.shape == (1, 40) and v.dtype == np.float32
    from timbredb.audio import resample

    np.testing.assert_allclose(v[0], mfcc_frames(resample(x48, 48000, 44100)).mean(axis=1), rtol=1e-5, atol=1e-4)


def test_mfcc_is_deterministic_and_batch_equals_single() -> None:
    model = load("mfcc")
    clips = [from_array(noise(0.5, seed=i), SR, str(i)) for i in range(5)]
    batch = model.embed_audio(clips, batch_size=5)
    single = np.concatenate([model.embed_audio([c], batch_size=1) for c in clips])
    np.testing.assert_array_equal(batch, single)
    np.testing.assert_array_equal(batch, model.embed_audio(clips, batch_size=2))


def test_mfcc_has_no_text_encoder() -> None:
    with pytest.raises(ModelUnavailableError, match="no text encoder"):
        load("mfcc").embed_texts(["bright"])


def test_too_short_is_an_audio_error() -> None:
    with pytest.raises(AudioError, match="too short for mfcc"):
        load("mfcc").embed_audio([from_array(np.ones(100, dtype=np.float32) * 0.1, SR, "short")])


def test_socialfx_pink_noise_profile_is_flat(data_dir: Path) -> None:
    model = load("socialfx-eq", data_dir=data_dir)
    rng = np.random.default_rng(0)
    spectrum = np.fft.rfft(rng.standard_normal(SR * 8))
    f = np.fft.rfftfreq(SR * 8, 1 / SR)
    spectrum[1:] /= np.sqrt(f[1:])
    spectrum[0] = 0
    pink = np.fft.irfft(spectrum).astype(np.float32)
    model.ensure_loaded()
    profile = model.profile_db(pink / np.abs(pink).max())
    # the 20 Hz band spans about one FFT bin, so it is noisy; the rest is flat within a few dB
    assert np.ptp(profile[1:] - profile[1:].mean()) < 4.0


@pytest.mark.parametrize("word", ["bright", "warm", "tinny", "dark", "heavy"])
def test_socialfx_audio_eqd_toward_a_word_moves_toward_it(word: str, data_dir: Path) -> None:
    model = load("socialfx-eq", data_dir=data_dir)
    x = noise(2.0, seed=7)
    model.ensure_loaded()
    curve = normalise_curve(model._curves[word])
    board = pedalboard.Pedalboard(
        [pedalboard.PeakFilter(cutoff_frequency_hz=f, gain_db=5.0 * g, q=EQ_Q) for f, g in zip(EQ_CENTRES_HZ, curve)]
    )
    y = board(x[None, :], SR)[0]
    text = model.embed_texts([f"a {word} sound"])[0]
    cos = lambda v: float(v @ text / np.linalg.norm(v) / np.linalg.norm(text))  # noqa: E731
    before = cos(model.embed_audio([from_array(x, SR, "x")])[0])
    after = cos(model.embed_audio([from_array(y, SR, "y")])[0])
    assert after > before + 0.1


def test_socialfx_low_passed_is_warmer_than_bright(data_dir: Path) -> None:
    model = load("socialfx-eq", data_dir=data_dir)
    t = model.embed_texts(["warm", "bright"])
    a = model.embed_audio([from_array(lowpassed(noise(1.0), 500), SR, "low")])[0]
    cos = t @ a / np.linalg.norm(t, axis=1) / np.linalg.norm(a)
    assert cos[0] > 0 > cos[1]


def test_socialfx_unavailable_without_data_says_how_to_fix(tmp_path: Path) -> None:
    avail = availability(specs()["socialfx-eq"], tmp_path)
    assert not avail.usable and "--data-dir" in avail.reason and "eqpoints.json" in avail.reason
    with pytest.raises(ModelUnavailableError, match="eqpoints.json"):
        load("socialfx-eq", data_dir=tmp_path)


def test_window_policy_covers_every_sample_deterministically() -> None:
    policy = WindowPolicy(kind="consecutive", window_s=1.0, hop_s=1.0, pad="repeat", pooling="mean-l2")
    x = np.arange(35, dtype=np.float32)
    wins = policy.windows(x, 10)
    assert [(int(w[0]), len(w)) for w in wins] == [(0, 10), (10, 10), (20, 10), (25, 10)]
    short = policy.windows(x[:4], 10)
    assert len(short) == 1 and list(short[0]) == [0, 1, 2, 3, 0, 1, 2, 3, 0, 1]
    zero = WindowPolicy(kind="consecutive", window_s=1.0, pad="zero").windows(x[:4], 10)
    assert list(zero[0][4:]) == [0] * 6
    pooled = policy.pool(np.array([[3.0, 0.0], [0.0, 4.0]], dtype=np.float32))
    np.testing.assert_allclose(np.linalg.norm(pooled), 1.0, rtol=1e-6)
