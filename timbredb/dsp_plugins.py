"""Effects of two more descriptor datasets for Experiment 2: SAFE-DB's plug-ins and SocialFX's compressor.

Each effect takes one word's setting and a *strength* s in [0, 1] that moves
every parameter from the plug-in's neutral setting (s = 0: the input,
unchanged up to filter ring-out) to the word's setting (s = 1). Sources:
docs/exp2.md cites the plug-in code each definition was read from.

SAFE equaliser (semanticaudio/SAFE ``SAFEEqualiser``)
    Five bands in series: a low shelf (band 1), three peaking filters (bands
    2-4), a high shelf (band 5); shelves have Q 0.71. Each band: the RBJ
    cookbook biquad (JUCE ``IIRCoefficients::makeLowShelf / makePeakFilter /
    makeHighShelf``), run here as pedalboard's ``LowShelfFilter``,
    ``PeakFilter`` and ``HighShelfFilter`` (the same JUCE formulas; they agree
    within 0.12 dB over 20 Hz-20 kHz on every SAFE-DB row). Strength scales the
    five gains (dB); frequencies and Qs stay the word's (with every gain 0 dB
    the chain is the identity). Bands at or above Nyquist are left out. The
    variant keeps the filters' ring-out (the -60 dB energy rule of
    ``timbredb.dsp``).

SAFE compressor (``SAFECompressor``, "loosely based on Reiss & McPherson")
    Re-implemented from the plug-in's algorithm (pedalboard's ``Compressor`` has
    a hard knee, no make-up gain and another detector): side chain = mean of
    the channels; level = RMS over the last 4096 samples (a ring buffer that
    starts empty), in dB (floored at -100 dB as JUCE's ``gainToDecibels``);
    static curve with threshold T, ratio R and a quadratic soft knee of width W
    (below T - W/2: out = in; above T + W/2: T + (in - T)/R; between: the
    plug-in's quadratic spline); gain reduction c = in - out smoothed per
    sample: c_n = a c_{n-1} + (1 - a) c with a = exp(-1/(0.001 fs t_attack))
    when c rises and exp(-1/(0.001 fs t_release)) otherwise (state starts at
    0); output = input x 10^((-c_n + make-up)/20), the same gain on every
    channel. Computed in float64 (the plug-in: float32), the level updated
    every sample (one of the plug-in's two published versions updates it every
    100 samples). Neutral: ratio 1, make-up 0 dB (every other parameter at the
    word's value); strength interpolates ratio 1 -> R and make-up 0 -> M
    linearly. No tail (a gain on the input).

SAFE distortion (``SAFEDistortion``)
    Re-implemented from the plug-in (pedalboard's ``Distortion`` is a tanh
    drive): per channel, a tone low-pass (second-order Butterworth, JUCE
    ``makeLowPass``) at 200 + (10^tone - 1)(20000 - 200)/9 Hz (left out at or
    above Nyquist); 4x oversampling (zero-stuffing with gain 4, then 8
    cascaded Butterworth biquads at 0.495 fs, the same 8 before decimation,
    which keeps every 4th sample); the input gain (dB -> linear); the
    plug-in's asymmetric soft clipper with knee k, bias b and output gain G
    (linear): above 1 - k a quadratic knee up to G at 1 + k, below
    -(1 - b)(1 - k) the mirrored knee scaled by (1 - b) down to -(1 - b) G,
    in between x G; down-sampling; a 20 Hz Butterworth high-pass (DC blocker).
    Neutral: the plug-in's defaults (input 0 dB, knee 0, bias 0, tone 1,
    output 0 dB), which leave a signal within [-1, 1] unchanged except for
    the filters; strength interpolates each parameter linearly from there.
    Tail: the ring-out of the linear filters (the -60 dB energy rule).

SocialFX compressor (Zheng, Seetharaman & Pardo 2016)
    SocialFX's contributors used a browser (Web Audio ``DynamicsCompressorNode``,
    inferred from the value ranges and the user agents; the app's code is not
    public). Rendered with pedalboard's ``Compressor`` (JUCE ``dsp::Compressor``:
    hard knee, per-channel peak ballistics) at the word's threshold (dB),
    ratio, attack and release (s -> ms), followed by a make-up gain of
    0.6 x (-T)(1 - 1/R) dB: the browser's automatic make-up rule
    ((1 / gain at 0 dBFS)^0.6, WebKit/Chromium ``DynamicsCompressorKernel``)
    evaluated on the hard-knee curve. The knee is recorded but not rendered
    (pedalboard has none), and the browser's 6 ms look-ahead and adaptive
    release are not modelled. Neutral: ratio 1 (then the make-up is 0 dB).

Every output is float32, never clipped, a pure function of (input, setting,
strength, sample rate) and ``RENDERER_VERSION``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from functools import lru_cache

import numpy as np
import scipy.signal as ss
from numpy.typing import NDArray

from timbredb.dsp import EQ_MAX_TAIL_S, Float32Array, _as_frames, _pad, _tail_length

#: Changes whenever a change here changes rendered samples (it keys stored variants).
RENDERER_VERSION = "timbredb-fx/1"

SHELF_Q = 0.71  # SAFE's Q of bands 1 and 5 (not 1/sqrt(2))
RMS_WINDOW = 4096  # SAFE compressor's RMS ring buffer, samples
MIN_DB = -100.0  # JUCE Decibels::gainToDecibels floor
OVERSAMPLING = 4
AA_CUTOFF = 0.99  # SAFE Resampler: relative cut-off (x fs/2)
AA_ORDER = 8  # cascaded identical biquads
DC_BLOCK_HZ = 20.0
TONE_LOW_HZ, TONE_HIGH_HZ = 200.0, 20000.0
MAKEUP_EXPONENT = 0.6  # Web Audio (WebKit/Chromium) automatic make-up gain exponent
MAX_TAIL_S = 2.0


def _interp(neutral: float, word: float, strength: float) -> float:
    return float(neutral + strength * (word - neutral))


def _check_strength(strength: float) -> None:
    if not (math.isfinite(strength) and 0.0 <= strength <= 1.0):
        raise ValueError(f"strength must be in [0, 1], got {strength}")


def _check_finite(obj: object) -> None:
    for f in fields(obj):  # type: ignore[arg-type]
        v = getattr(obj, f.name)
        values = v if isinstance(v, tuple) else (v,)
        if not all(math.isfinite(float(x)) for x in values):
            raise ValueError(f"{type(obj).__name__}: {f.name} must be finite, got {v}")


# ---------------------------------------------------------------- SAFE equaliser
@dataclass(frozen=True)
class SafeEQ:
    """A SAFE equaliser setting (the plug-in's units).

    Attributes:
        gains_db: gains of bands 1-5 (low shelf, 3 peaks, high shelf), dB (plug-in range -12..12).
        freqs_hz: their frequencies, Hz.
        qs: their Q factors (bands 1 and 5 are fixed at 0.71).
    """

    gains_db: tuple[float, float, float, float, float]
    freqs_hz: tuple[float, float, float, float, float]
    qs: tuple[float, float, float, float, float]

    def __post_init__(self) -> None:
        _check_finite(self)
        if any(len(v) != 5 for v in (self.gains_db, self.freqs_hz, self.qs)):
            raise ValueError("a SAFE EQ setting has 5 gains, 5 frequencies and 5 Q factors")
        if min(self.freqs_hz) <= 0 or min(self.qs) <= 0:
            raise ValueError(f"SAFE EQ frequencies and Q factors must be > 0: {self}")

    def at(self, strength: float) -> SafeEQ:
        """The setting at a strength: every gain scaled by it (0 dB is the neutral EQ)."""
        _check_strength(strength)
        g = tuple(_interp(0.0, x, strength) for x in self.gains_db)
        return replace(self, gains_db=g)  # type: ignore[arg-type]


def safe_eq_board(eq: SafeEQ, sample_rate: int) -> object:
    """The pedalboard chain of an EQ setting (bands at or above Nyquist left out)."""
    import pedalboard

    makers = (pedalboard.LowShelfFilter, pedalboard.PeakFilter, pedalboard.PeakFilter, pedalboard.PeakFilter,
              pedalboard.HighShelfFilter)
    plugins: list[pedalboard.Plugin] = [
        make(cutoff_frequency_hz=float(f), gain_db=float(g), q=float(q))
        for make, g, f, q in zip(makers, eq.gains_db, eq.freqs_hz, eq.qs)
        if f < sample_rate / 2.0
    ]
    return pedalboard.Pedalboard(plugins)


def apply_safe_eq(pcm: NDArray[np.floating], sample_rate: int, eq: SafeEQ) -> Float32Array:
    """Run audio through a SAFE EQ setting; output has the input's length and channels."""
    x = _as_frames(pcm)
    if not any(eq.gains_db):
        return x.astype(np.float32)
    board = safe_eq_board(eq, sample_rate)
    y = board(np.ascontiguousarray(x.T, dtype=np.float32), float(sample_rate))  # type: ignore[operator]
    return np.ascontiguousarray(np.asarray(y, dtype=np.float32).T)


@lru_cache(maxsize=256)
def _safe_eq_tail(eq: SafeEQ, sample_rate: int) -> int:
    impulse = np.zeros((int(EQ_MAX_TAIL_S * sample_rate), 1))
    impulse[0, 0] = 1.0
    return _tail_length(apply_safe_eq(impulse, sample_rate, eq).astype(np.float64))


def render_safe_eq(pcm: NDArray[np.floating], sample_rate: int, word: SafeEQ, strength: float) -> tuple[Float32Array, int]:
    """The word's EQ at a strength, keeping the ring-out. Returns (audio, tail samples)."""
    eq = word.at(strength)
    tail = _safe_eq_tail(eq, int(sample_rate)) if any(eq.gains_db) else 0  # all 0 dB: the identity
    return apply_safe_eq(_pad(_as_frames(pcm), tail), sample_rate, eq), tail


# ---------------------------------------------------------------- SAFE compressor
@dataclass(frozen=True)
class SafeCompressor:
    """A SAFE compressor setting (the plug-in's units and order).

    Attributes:
        threshold_db: T, dB (plug-in range -50..0).
        ratio: R, >= 1 (1..20).
        knee_db: W, width of the soft knee, dB (0..20).
        attack_ms, release_ms: ballistics time constants, ms (0.1..100, 10..2000).
        makeup_db: make-up gain, dB (0..20).
    """

    threshold_db: float
    ratio: float
    knee_db: float
    attack_ms: float
    release_ms: float
    makeup_db: float

    def __post_init__(self) -> None:
        _check_finite(self)
        if self.ratio < 1 or self.knee_db < 0 or self.attack_ms <= 0 or self.release_ms <= 0:
            raise ValueError(f"SAFE compressor: needs ratio >= 1, knee >= 0, attack and release > 0: {self}")

    def at(self, strength: float) -> SafeCompressor:
        """Ratio 1 -> R and make-up 0 -> M dB with the strength (ratio 1 with no make-up is the identity)."""
        _check_strength(strength)
        return replace(self, ratio=_interp(1.0, self.ratio, strength), makeup_db=_interp(0.0, self.makeup_db, strength))


def _to_db(x: NDArray[np.float64]) -> NDArray[np.float64]:
    with np.errstate(divide="ignore"):
        db = 20.0 * np.log10(x)
    return np.where(x > 0, np.maximum(db, MIN_DB), MIN_DB)


def safe_static_curve(level_db: NDArray[np.float64], c: SafeCompressor) -> NDArray[np.float64]:
    """The compressor's output level (dB) for input levels (dB): soft knee of width W around T."""
    x = np.asarray(level_db, dtype=np.float64)
    t, r, w = c.threshold_db, c.ratio, c.knee_db
    above = t + (x - t) / r
    if w <= 0:
        return np.where(x >= t, above, x)
    c2 = (1.0 - r) / (2.0 * w * r)
    c1 = ((r - 1.0) * t + (r + 1.0) * w / 2.0) / (w * r)
    c0 = -((r - 1.0) * (t * t - w * t + w * w / 4.0)) / (2.0 * w * r)
    knee = x * x * c2 + x * c1 + c0
    return np.where(x >= t + w / 2.0, above, np.where(x <= t - w / 2.0, x, knee))


def _smooth(target: NDArray[np.float64], a_attack: float, a_release: float) -> NDArray[np.float64]:
    """Attack/release smoothing of the gain reduction, sample by sample (the state starts at 0)."""
    out = np.empty_like(target)
    prev = 0.0
    aa, ar = a_attack, a_release
    ba, br = 1.0 - aa, 1.0 - ar
    for n, c in enumerate(target.tolist()):
        prev = aa * prev + ba * c if c > prev else ar * prev + br * c
        out[n] = prev
    return out


def safe_gain_reduction_db(side: NDArray[np.float64], sample_rate: int, c: SafeCompressor) -> NDArray[np.float64]:
    """The smoothed gain reduction c_n (dB, >= 0 means quieter) for a mono side-chain signal."""
    sq = np.concatenate([np.zeros(1), np.cumsum(np.square(side, dtype=np.float64))])
    n = np.arange(1, side.shape[0] + 1)
    # the ring buffer holds the last 4096 samples, zeros before the start
    ms = (sq[n] - sq[np.maximum(n - RMS_WINDOW, 0)]) / RMS_WINDOW
    level = _to_db(np.sqrt(np.maximum(ms, 0.0)))
    target = level - safe_static_curve(level, c)
    a_att = math.exp(-1.0 / (0.001 * sample_rate * c.attack_ms))
    a_rel = math.exp(-1.0 / (0.001 * sample_rate * c.release_ms))
    return _smooth(target, a_att, a_rel)


def apply_safe_compressor(pcm: NDArray[np.floating], sample_rate: int, c: SafeCompressor) -> Float32Array:
    """The SAFE compressor over the input; one gain (from the channels' mean) on every channel."""
    x = _as_frames(pcm)
    if c.ratio == 1.0 and c.makeup_db == 0.0:
        return x.astype(np.float32)
    reduction = safe_gain_reduction_db(x.mean(axis=1), int(sample_rate), c)
    gain = 10.0 ** ((c.makeup_db - reduction) / 20.0)
    return (x * gain[:, None]).astype(np.float32)


def render_safe_compressor(
    pcm: NDArray[np.floating], sample_rate: int, word: SafeCompressor, strength: float
) -> tuple[Float32Array, int]:
    return apply_safe_compressor(pcm, sample_rate, word.at(strength)), 0


# ---------------------------------------------------------------- SAFE distortion
@dataclass(frozen=True)
class SafeDistortion:
    """A SAFE distortion setting (the plug-in's units and order).

    Attributes:
        input_gain_db: drive before the clipper, dB (-50..50).
        knee: width of the soft knee, 0..1 (0 = hard clipping).
        bias: asymmetry, 0..1 (1 = the negative half is removed).
        tone: 0..1, the tone low-pass at 200 + (10^tone - 1)(19800)/9 Hz (1 = 20 kHz).
        output_gain_db: the clipper's output level, dB (-60..6).
    """

    input_gain_db: float
    knee: float
    bias: float
    tone: float
    output_gain_db: float

    def __post_init__(self) -> None:
        _check_finite(self)
        for name in ("knee", "bias", "tone"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"SAFE distortion: {name} must be in [0, 1], got {v}")

    def at(self, strength: float) -> SafeDistortion:
        """Each parameter moved linearly from the plug-in's default (0 dB, 0, 0, 1, 0 dB) to the word's."""
        _check_strength(strength)
        return SafeDistortion(
            _interp(0.0, self.input_gain_db, strength), _interp(0.0, self.knee, strength),
            _interp(0.0, self.bias, strength), _interp(1.0, self.tone, strength),
            _interp(0.0, self.output_gain_db, strength),
        )

    @property
    def tone_hz(self) -> float:
        return TONE_LOW_HZ + (10.0**self.tone - 1.0) * (TONE_HIGH_HZ - TONE_LOW_HZ) / 9.0


def soft_clip(x: NDArray[np.float64], knee: float, bias: float, gain: float) -> NDArray[np.float64]:
    """SAFE's asymmetric soft clipper (knee k, bias b, linear output gain G), sample-wise."""
    k, ob = knee, 1.0 - bias
    out = x * gain
    pos_knee, neg_knee = x > 1.0 - k, x < -ob * (1.0 - k)
    out = np.where(neg_knee & (x <= -ob * (1.0 + k)), -ob * gain, out)
    out = np.where(pos_knee & (x >= 1.0 + k), gain, out)
    if k > 0:
        c2 = -gain / (4.0 * k)
        c1 = gain * (1.0 + k) / (2.0 * k)
        c0 = -gain * (1.0 - k) ** 2 / (4.0 * k)
        pk = pos_knee & (x < 1.0 + k)
        out = np.where(pk, c2 * x * x + c1 * x + c0, out)
        if ob > 0:
            nk = neg_knee & (x > -ob * (1.0 + k))
            out = np.where(nk, -c2 * x * x / ob + c1 * x - c0 * ob, out)
    return out


@lru_cache(maxsize=16)
def _butter(kind: str, cutoff_hz: float, sample_rate: float) -> NDArray[np.float64]:
    # JUCE's IIRCoefficients::makeLowPass/makeHighPass: bilinear Butterworth, Q = 1/sqrt(2)
    return np.asarray(ss.butter(2, cutoff_hz / (sample_rate / 2.0), btype=kind, output="sos"), dtype=np.float64)


def _aa_sos() -> NDArray[np.float64]:
    one = _butter("lowpass", AA_CUTOFF / 2.0, float(OVERSAMPLING))
    return np.repeat(one, AA_ORDER, axis=0)


def apply_safe_distortion(pcm: NDArray[np.floating], sample_rate: int, d: SafeDistortion) -> Float32Array:
    """The SAFE distortion over the input (same length and channels)."""
    x = _as_frames(pcm)
    sr = float(sample_rate)
    tone = d.tone_hz
    aa = _aa_sos()
    dc = _butter("highpass", DC_BLOCK_HZ, sr)
    g_in, g_out = 10.0 ** (d.input_gain_db / 20.0), 10.0 ** (d.output_gain_db / 20.0)
    out = np.empty_like(x)
    for ch in range(x.shape[1]):
        y = x[:, ch]
        if tone < sr / 2.0:
            y = ss.sosfilt(_butter("lowpass", tone, sr), y)
        up = np.zeros(y.shape[0] * OVERSAMPLING)
        up[::OVERSAMPLING] = y * OVERSAMPLING
        up = ss.sosfilt(aa, up)
        up = soft_clip(up * g_in, d.knee, d.bias, g_out)
        y = ss.sosfilt(aa, up)[::OVERSAMPLING]
        out[:, ch] = ss.sosfilt(dc, y)
    return out.astype(np.float32)


@lru_cache(maxsize=256)
def _distortion_tail(tone_hz: float, sample_rate: int) -> int:
    """Ring-out of the distortion's linear filters (tone, anti-aliasing, DC blocker) at unity drive."""
    n = int(MAX_TAIL_S * sample_rate)
    h = np.zeros(n)
    h[0] = 1.0
    if tone_hz < sample_rate / 2.0:
        h = ss.sosfilt(_butter("lowpass", tone_hz, float(sample_rate)), h)
    up = np.zeros(n * OVERSAMPLING)
    up[::OVERSAMPLING] = h * OVERSAMPLING
    aa = _aa_sos()
    h = ss.sosfilt(aa, ss.sosfilt(aa, up))[::OVERSAMPLING]
    h = ss.sosfilt(_butter("highpass", DC_BLOCK_HZ, float(sample_rate)), h)
    return _tail_length(h)


def render_safe_distortion(
    pcm: NDArray[np.floating], sample_rate: int, word: SafeDistortion, strength: float
) -> tuple[Float32Array, int]:
    d = word.at(strength)
    tail = _distortion_tail(d.tone_hz, int(sample_rate))
    return apply_safe_distortion(_pad(_as_frames(pcm), tail), sample_rate, d), tail


# ---------------------------------------------------------------- SocialFX compressor
@dataclass(frozen=True)
class SocialFXCompressor:
    """A SocialFX compressor setting (``param`` column order, Web Audio DynamicsCompressorNode units).

    Attributes:
        threshold_db: dB (data: -100..-25).
        knee_db: dB (0..40); recorded, not rendered.
        ratio: >= 1 (1..20).
        attack_s, release_s: seconds (0..0.05, 0..1).
    """

    threshold_db: float
    knee_db: float
    ratio: float
    attack_s: float
    release_s: float

    def __post_init__(self) -> None:
        _check_finite(self)
        if self.ratio < 1 or self.attack_s < 0 or self.release_s < 0 or self.knee_db < 0:
            raise ValueError(f"SocialFX compressor: needs ratio >= 1, knee, attack and release >= 0: {self}")

    def at(self, strength: float) -> SocialFXCompressor:
        """Ratio 1 -> R with the strength (ratio 1 is the identity); the rest stays the word's."""
        _check_strength(strength)
        return replace(self, ratio=_interp(1.0, self.ratio, strength))

    @property
    def makeup_db(self) -> float:
        """0.6 x the hard-knee curve's reduction at 0 dBFS: the browser's automatic make-up rule."""
        return MAKEUP_EXPONENT * max(0.0, -self.threshold_db) * (1.0 - 1.0 / self.ratio)


# pedalboard's Compressor rejects attack/release of 0 ms; the data's minimum is 0.1 ms
MIN_TIME_MS = 0.01


def apply_socialfx_compressor(pcm: NDArray[np.floating], sample_rate: int, c: SocialFXCompressor) -> Float32Array:
    """pedalboard Compressor at the setting, then the make-up gain (see module doc)."""
    import pedalboard

    x = _as_frames(pcm)
    if c.ratio == 1.0:
        return x.astype(np.float32)
    board = pedalboard.Pedalboard([
        pedalboard.Compressor(threshold_db=float(c.threshold_db), ratio=float(c.ratio),
                              attack_ms=max(MIN_TIME_MS, 1000.0 * c.attack_s),
                              release_ms=max(MIN_TIME_MS, 1000.0 * c.release_s)),
        pedalboard.Gain(gain_db=float(c.makeup_db)),
    ])
    y = board(np.ascontiguousarray(x.T, dtype=np.float32), float(sample_rate))
    return np.ascontiguousarray(np.asarray(y, dtype=np.float32).T)


def render_socialfx_compressor(
    pcm: NDArray[np.floating], sample_rate: int, word: SocialFXCompressor, strength: float
) -> tuple[Float32Array, int]:
    return apply_socialfx_compressor(pcm, sample_rate, word.at(strength)), 0
