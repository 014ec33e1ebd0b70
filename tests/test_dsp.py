"""Physics of the Experiment 2 effects (timbredb.dsp): EQ band gains, reverberator structure."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.synth import SR, noise
from timbredb import dsp
from timbredb.dsp import EQ_CENTRES_HZ


def _sine(freq_hz: float, seconds: float = 1.0, sr: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.25 * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


def _rms_db(x: np.ndarray) -> float:
    return 20 * math.log10(float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))))


# ---------------------------------------------------------------- EQ
@pytest.mark.parametrize("band", [3, 14, 24, 33])
@pytest.mark.parametrize("gain_db", [5.0, -5.0])
def test_single_band_boost_measures_its_gain_at_the_centre(band: int, gain_db: float) -> None:
    gains = np.zeros(len(EQ_CENTRES_HZ))
    gains[band] = gain_db
    f0 = EQ_CENTRES_HZ[band]
    x = _sine(f0, 2.0)
    y = dsp.apply_eq(x, SR, gains)[:, 0]
    steady = slice(SR, 2 * SR)  # after the filter's transient
    measured = _rms_db(y[steady]) - _rms_db(x[steady])
    assert measured == pytest.approx(gain_db, abs=0.5)
    # an octave away the band does (almost) nothing: it is a narrow peaking filter
    far = _sine(f0 * 2 if f0 < 10000 else f0 / 2, 2.0)
    far_gain = _rms_db(dsp.apply_eq(far, SR, gains)[steady, 0]) - _rms_db(far[steady])
    assert abs(far_gain) < 1.0


def test_eq_strength_scales_the_word_curve() -> None:
    curve = np.linspace(-1.0, 1.0, len(EQ_CENTRES_HZ))  # a "bright" tilt
    assert np.allclose(dsp.eq_gains_db(curve, 0.6), 3.0 * curve)
    x = noise(2.0, seed=1)
    low, high = _sine(100.0, 2.0), _sine(8000.0, 2.0)
    g_low = [_rms_db(dsp.render_eq(low, SR, curve, s)[SR : 2 * SR, 0]) - _rms_db(low[SR:]) for s in (0.5, 1.0)]
    g_high = [_rms_db(dsp.render_eq(high, SR, curve, s)[SR : 2 * SR, 0]) - _rms_db(high[SR:]) for s in (0.5, 1.0)]
    assert g_high[1] > g_high[0] > 0 > g_low[0] > g_low[1]
    # strength 0 is the input, sample for sample
    assert np.array_equal(dsp.render_eq(x, SR, curve, 0.0)[: x.shape[0], 0], x)


def test_eq_keeps_the_ring_out_and_the_channel_layout() -> None:
    curve = np.zeros(len(EQ_CENTRES_HZ))
    curve[0] = 1.0  # the 20 Hz band rings longest
    stereo = np.stack([noise(0.5, seed=2), noise(0.5, seed=3)], axis=1)
    y = dsp.render_eq(stereo, SR, curve, 1.0)
    assert y.shape[1] == 2 and y.dtype == np.float32
    assert y.shape[0] > stereo.shape[0]
    assert y.shape[0] - stereo.shape[0] == dsp.eq_tail_samples(dsp.eq_gains_db(curve, 1.0), SR)


# ---------------------------------------------------------------- reverb
HALL = dsp.ReverbParams(d=0.0721, g=0.898, m=0.0012, f=1752.0, E=0.19)  # Audealize "hall"


def test_prev_prime() -> None:
    assert [dsp.prev_prime(n) for n in (2, 3, 4, 10, 441.9, 4410, 97)] == [2, 3, 3, 7, 439, 4409, 97]


def test_reverb_design_follows_the_published_structure() -> None:
    design = dsp.reverb_design(HALL, SR, 1.0)
    t60 = HALL.d * math.log(0.001) / math.log(HALL.g)
    assert HALL.reverberation_time_s == pytest.approx(t60)
    assert len(design.comb_delays) == 6
    for i, (n, g) in enumerate(zip(design.comb_delays, design.comb_gains)):
        assert n == dsp.prev_prime(HALL.d * (15 - i) / 15 * SR)
        assert g ** (t60 * SR / n) == pytest.approx(0.001, rel=1e-9)  # every comb: -60 dB after T
    left, right = design.allpass_delays
    assert (left - right) == pytest.approx(HALL.m * SR, abs=3)
    assert design.wet == 1.0 and design.dry == 0.0
    dry = dsp.reverb_design(HALL, SR, 0.0)
    assert dry.wet == 0.0 and dry.dry == 1.0
    half = dsp.reverb_design(HALL, SR, 0.5)
    assert half.wet == pytest.approx(math.cos(0.25 * math.pi)) == pytest.approx(half.dry)


def test_comb_line_is_exact() -> None:
    u = np.zeros(12000, dtype=np.float32)
    u[0] = 1.0
    h = dsp._feedback_comb(u, 2939, 0.5, SR)
    nz = np.nonzero(h)[0]
    assert nz.tolist() == [2939, 5878, 8817, 11756]
    assert np.allclose(h[nz], [1.0, 0.5, 0.25, 0.125])


def _late_energy_db(y: np.ndarray, start_s: float, end_s: float) -> float:
    seg = y[int(start_s * SR) : int(end_s * SR)]
    return 10 * math.log10(float(np.mean(np.square(seg, dtype=np.float64))) + 1e-30)


def test_reverb_raises_late_energy_with_wet_dry() -> None:
    burst = np.zeros(int(1.6 * SR), dtype=np.float32)
    burst[: int(0.1 * SR)] = noise(0.1, seed=4)
    late = []
    for s in (0.0, 0.2, 0.6, 1.0):
        y = dsp.apply_reverb(burst, SR, HALL, s)
        late.append(_late_energy_db(y, 0.3, 1.5))
    assert late[0] < -200  # dry only: nothing after the burst
    assert late[1] < late[2] < late[3]
    assert late[3] - late[1] > 6.0


def test_reverb_decay_matches_the_reverberation_time() -> None:
    """The late tail falls 60 dB in about T = d ln(0.001) / ln(g)."""
    params = dsp.ReverbParams(d=0.05, g=0.8, m=0.0, f=20000.0, E=1.0)
    impulse = np.zeros(int(1.5 * SR), dtype=np.float32)
    impulse[0] = 1.0
    h = dsp.apply_reverb(impulse, SR, params, 1.0)[:, 0].astype(np.float64)
    t = params.reverberation_time_s
    a = _late_energy_db(h, 0.1, 0.1 + t / 6)
    b = _late_energy_db(h, 0.1 + t / 2, 0.1 + t / 2 + t / 6)
    # energy decays 60 dB per T, so 30 dB over half of T (loose: comb echoes are sparse)
    assert a - b == pytest.approx(30.0, abs=6.0)


def test_reverb_stereo_offset_and_lowpass() -> None:
    x = noise(1.0, seed=5)
    y = dsp.apply_reverb(x, SR, HALL, 1.0)
    assert y.shape == (x.shape[0], 2)
    assert not np.allclose(y[:, 0], y[:, 1])  # the all-passes differ by m
    centred = dsp.apply_reverb(x, SR, dsp.ReverbParams(HALL.d, HALL.g, 0.0, HALL.f, HALL.E), 1.0)
    assert np.allclose(centred[:, 0], centred[:, 1])

    def band_db(sig: np.ndarray, lo: float, hi: float) -> float:
        spec = np.abs(np.fft.rfft(sig)) ** 2
        freqs = np.fft.rfftfreq(sig.shape[0], 1 / SR)
        return 10 * math.log10(spec[(freqs >= lo) & (freqs < hi)].mean())

    dark = dsp.apply_reverb(x, SR, dsp.ReverbParams(HALL.d, HALL.g, HALL.m, 500.0, 1.0), 1.0)[:, 0]
    bright = dsp.apply_reverb(x, SR, dsp.ReverbParams(HALL.d, HALL.g, HALL.m, 20000.0, 1.0), 1.0)[:, 0]
    assert band_db(bright, 4000, 8000) - band_db(dark, 4000, 8000) > 10.0


def test_reverb_keeps_the_tail() -> None:
    x = noise(0.3, seed=6)
    y = dsp.render_reverb(x, SR, HALL, 1.0)
    tail = y.shape[0] - x.shape[0]
    assert tail == dsp.reverb_tail_samples(HALL, SR, 1.0)
    assert tail > 0.5 * HALL.reverberation_time_s * SR
    assert np.abs(y[-int(0.1 * SR) :]).max() > 0  # the kept tail is not silence


def test_reverb_rejects_unstable_parameters() -> None:
    with pytest.raises(ValueError, match="comb gain"):
        dsp.ReverbParams(0.05, 1.0, 0.0, 1000.0, 0.5)


def test_rendering_is_bit_identical_on_rerun() -> None:
    x = np.stack([noise(1.0, seed=7), noise(1.0, seed=8)], axis=1)
    curve = np.sin(np.linspace(0, 3, len(EQ_CENTRES_HZ)))
    assert np.array_equal(dsp.render_eq(x, SR, curve, 0.8), dsp.render_eq(x, SR, curve, 0.8))
    assert np.array_equal(dsp.render_reverb(x, SR, HALL, 0.4), dsp.render_reverb(x, SR, HALL, 0.4))


# ---------------------------------------------------------------- every sample rate, mono and stereo
RATES = (22050, 44100, 48000)


def _stereo(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.stack([x, y], axis=1)


@pytest.mark.parametrize("sr", RATES)
@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("band", [8, 20, 30])
def test_band_boost_measures_its_gain_at_every_rate_and_channel(sr: int, channels: int, band: int) -> None:
    f0 = EQ_CENTRES_HZ[band]
    assert f0 < sr / 2
    gains = np.zeros(len(EQ_CENTRES_HZ))
    gains[band] = 5.0
    tone = _sine(f0, 2.0, sr)
    x = tone if channels == 1 else _stereo(tone, 0.5 * tone)
    y = dsp.apply_eq(x, sr, gains)
    assert y.shape == (tone.shape[0], channels) and y.dtype == np.float32
    steady = slice(sr, 2 * sr)
    for c in range(channels):
        ref = tone if c == 0 else 0.5 * tone
        assert _rms_db(y[steady, c]) - _rms_db(ref[steady]) == pytest.approx(5.0, abs=0.5), (sr, c)


@pytest.mark.parametrize("sr", RATES)
def test_bands_at_or_above_nyquist_are_left_out(sr: int) -> None:
    board = dsp.eq_board(np.ones(len(EQ_CENTRES_HZ)), sr)
    assert len(board) == sum(1 for f in EQ_CENTRES_HZ if f < sr / 2)  # type: ignore[arg-type]


@pytest.mark.parametrize("sr", RATES)
@pytest.mark.parametrize("channels", [1, 2])
def test_reverb_decay_and_wet_dry_at_every_rate_and_channel(sr: int, channels: int) -> None:
    params = dsp.ReverbParams(d=0.05, g=0.8, m=0.002, f=20000.0, E=1.0)
    impulse = np.zeros(int(1.5 * sr), dtype=np.float32)
    impulse[0] = 1.0
    x = impulse if channels == 1 else _stereo(impulse, impulse)
    h = dsp.apply_reverb(x, sr, params, 1.0)
    assert h.shape == (impulse.shape[0], 2)
    t = params.reverberation_time_s

    def energy_db(sig: np.ndarray, a: float, b: float) -> float:
        seg = sig[int(a * sr) : int(b * sr)].astype(np.float64)
        return 10 * math.log10(float(np.mean(seg**2)) + 1e-30)

    for c in range(2):
        drop = energy_db(h[:, c], 0.1, 0.1 + t / 6) - energy_db(h[:, c], 0.1 + t / 2, 0.1 + t / 2 + t / 6)
        assert drop == pytest.approx(30.0, abs=6.0), (sr, channels, c)
    # the comb delays are primes at this very rate
    design = dsp.reverb_design(params, sr, 1.0)
    assert design.comb_delays[0] == dsp.prev_prime(params.d * sr)
    # strength 0 is the input on both channels, exactly
    dry = dsp.apply_reverb(x, sr, params, 0.0)
    expected = _stereo(impulse, impulse)
    assert np.array_equal(dry, expected)


def _digest(x: np.ndarray) -> str:
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(x, dtype="<f4").tobytes()).hexdigest()[:16]


#: sha256 prefixes of renders of fixed seeded noise, per renderer version: a change of rendered
#: samples must come with a new dsp.RENDERER_VERSION (stored variants are keyed by it), and a
#: new version records its digests here.
GOLDEN: dict[str, dict[tuple[str, int, int], str]] = {
    "timbredb-dsp/1": {
        ("eq", 22050, 1): "f43fcb28ff58847d", ("reverb", 22050, 1): "6a437a486a7301e8",
        ("eq", 22050, 2): "8048f570eb98715f", ("reverb", 22050, 2): "fc72932b4728885f",
        ("eq", 44100, 1): "8f3b36b442f183f9", ("reverb", 44100, 1): "fc7a8ac00fb827a2",
        ("eq", 44100, 2): "0c318de761eaa822", ("reverb", 44100, 2): "0c03fb2f4ba5f7d5",
        ("eq", 48000, 1): "22c79f63c4b5f58e", ("reverb", 48000, 1): "1c4acdb5bb9f0bc0",
        ("eq", 48000, 2): "091d9aa42323b5fd", ("reverb", 48000, 2): "e84423f72402853d",
    },
}


@pytest.mark.parametrize("effect", ["eq", "reverb"])
@pytest.mark.parametrize("sr", RATES)
@pytest.mark.parametrize("channels", [1, 2])
def test_golden_digest_of_the_renderer_version(effect: str, sr: int, channels: int) -> None:
    assert dsp.RENDERER_VERSION in GOLDEN, (
        f"renderer {dsp.RENDERER_VERSION} has no golden digests: record them in tests/test_dsp.py"
    )
    a, b = noise(0.5, sr, seed=1), noise(0.5, sr, seed=2)
    x = a if channels == 1 else _stereo(a, b)
    curve = np.sin(np.linspace(0, 3, len(EQ_CENTRES_HZ)))
    y = dsp.render_eq(x, sr, curve, 0.8) if effect == "eq" else dsp.render_reverb(x, sr, HALL, 0.6)
    assert _digest(y) == GOLDEN[dsp.RENDERER_VERSION][(effect, sr, channels)], (
        "rendered samples changed without a new dsp.RENDERER_VERSION"
    )
