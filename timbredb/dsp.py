"""Descriptor effects for Experiment 2: Audealize's 40-band EQ and the Rafii & Pardo reverberator.

Both effects are driven by the Audealize descriptor data (Seetharaman & Pardo;
``audealize/eqpoints.json`` and ``audealize/reverbdescriptors.json``) and a
*strength* s in [0, 1], the position of Audealize's "amount" slider. s = 0 is
the unprocessed input.

EQ (Audealize ``equalizer.js``)
    40 peaking filters in series (pedalboard ``PeakFilter``, RBJ cookbook
    peaking biquads), Q = 4.31, at the 40 Audealize centre frequencies. The
    word's curve is min-max normalised to [-1, 1] and band k gets
    ``gain_dB[k] = s * 5 * curve[k]``. Bands at or above the Nyquist frequency
    are left out (they cannot be realised; at 44.1 kHz all 40 are used).

Reverb (Rafii & Pardo 2009, "A digital reverberator controlled through
measures of the reverberation", NU EECS tech. report NWU-EECS-09-08; as
implemented by the authors' lab in Audealize ``reverb.js``, the renderer the
published study drove through a browser). Five parameters: d (comb delay, s),
g (comb gain), m (stereo delay offset, s), f (low-pass cut-off, Hz), E (effect
gain); the wet/dry mix w is the strength s. For input channels x_c
(mono input: both channels are the input) and their mean x̄:

    wet = cos((1 - w) π/2),  dry = cos(w π/2)
    comb i = 0..5:   D_i = prevprime(floor(d (15 - i)/15 · sr)) samples,
                     g_i = 0.001 ** ((D_i / sr) / T),  T = d ln(0.001) / ln(g)
                     (every comb decays 60 dB in T seconds: T is the
                     reverberation time; g_0 ≈ g)
                     comb_i(u)[n] = u[n - D_i] + g_i comb_i(u)[n - D_i]
    late   = Σ_i comb_i(wet · x̄)
    all-pass, per channel:  A_L = prevprime(floor((0.016 + m/2) sr)),
                            A_R = prevprime(floor((0.016 - m/2) sr)),  a = 0.1
                     ap(u)[n] = -a u[n] + u[n - A] + a ap(u)[n - A]
    low-pass, per channel: a second-order low-pass at f Hz, the Web Audio
                     BiquadFilterNode "lowpass" with its default Q of 1 dB
                     (linear Q = 10 ** (1/20)); identity when f ≥ sr/2
    early_c = wet · x_c delayed by 10 ms (the "clean" path)
    g1 = 1/(E + 1), gain_late = cos(g1 · 3π/8), gain_clean = cos((1 - g1) π/8),
    scale = 0.4 / (gain_late + gain_clean)
    y_c = dry · x_c + scale · (gain_late · lowpass(ap_c(late)) + gain_clean · early_c)

Combs and all-passes run on pedalboard ``Delay`` lines (a feedback delay with
mix 1 is exactly the comb above; the all-pass is ``-a u + (1 - a²) comb_A,a(u)``);
the low-pass is a scipy biquad; the sum is float64 until the float32 output.

Where the lab's two implementations differ we follow the web app, except:
prime delays are taken at the actual sample rate (``reverb.js`` hard-codes
48 kHz); comb gains use the rounded delays (as the Audealize plug-in does, so
all combs share one reverberation time); and the web app's fixed output
volume of 0.45 (applied to dry and wet alike, a player setting, not part of
the reverberator) is left out, so s = 0 reproduces the input exactly.

Tails: a variant keeps its tail. Its length is the input plus the effect's
decay time: the point after which the effect's impulse response (computed for
the same parameters, strength and sample rate) holds less than -60 dB (one
millionth) of its energy, by Schroeder backward integration; capped at 60 s.
Output is float32, never clipped.

Every output is a pure function of (input, parameters, strength, sample rate)
and ``RENDERER_VERSION``; re-rendering is bit-identical.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.signal as ss
from numpy.typing import NDArray

# the band layout lives in a module without scipy (the socialfx-eq model and the ingest path import it)
from timbredb.eq_bands import EQ_CENTRES_HZ as EQ_CENTRES_HZ
from timbredb.eq_bands import EQ_Q as EQ_Q

#: Changes whenever a change here changes rendered samples (it keys stored variants).
RENDERER_VERSION = "timbredb-dsp/1"

#: Audealize: gain_dB = strength * EQ_RANGE_DB * normalised curve.
EQ_RANGE_DB = 5.0
ALLPASS_GAIN = 0.1
MIN_DELAY_S = 0.01  # the clean path's delay; the all-passes sit 6 ms after it
ALLPASS_BASE_S = MIN_DELAY_S + 0.006
LOWPASS_Q_DB = 1.0  # Web Audio BiquadFilterNode default Q (dB for "lowpass")
TAIL_DB = -60.0
MAX_TAIL_S = 60.0
EQ_MAX_TAIL_S = 2.0

Float32Array = NDArray[np.float32]


# ---------------------------------------------------------------- helpers
def prev_prime(n: float) -> int:
    """The largest prime <= floor(n) (2 for n < 3), as Audealize picks delay lengths."""
    k = int(math.floor(n))
    if k < 3:
        return 2
    if k % 2 == 0:
        k -= 1
    while k > 2:
        if all(k % p for p in range(3, math.isqrt(k) + 1, 2)):
            return k
        k -= 2
    return 2


def _as_frames(pcm: NDArray[np.floating]) -> NDArray[np.float64]:
    """(frames,) or (frames, channels) -> float64 (frames, channels)."""
    x = np.asarray(pcm, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[1] == 0:
        raise ValueError(f"expected (frames, channels) audio, got shape {np.shape(pcm)}")
    return x


def _pad(x: NDArray[np.float64], n: int) -> NDArray[np.float64]:
    return np.pad(x, ((0, n), (0, 0))) if n > 0 else x


def _tail_length(h: NDArray[np.float64]) -> int:
    """Samples after the impulse (index 0) that hold all but 10**(TAIL_DB/10) of the response's energy.

    Schroeder's backward-integrated energy decay curve: cutting the response at
    the returned index discards less than -60 dB (one millionth) of its energy.
    """
    energy = np.square(h).sum(axis=1) if h.ndim == 2 else np.square(h)
    total = float(energy.sum())
    if total == 0.0:
        return 0
    remaining = np.cumsum(energy[::-1])[::-1]  # energy from n to the end
    below = np.nonzero(remaining <= total * 10.0 ** (TAIL_DB / 10.0))[0]
    return int(below[0]) if below.size else int(energy.shape[0])


# ---------------------------------------------------------------- EQ
def eq_gains_db(curve: NDArray[np.floating], strength: float) -> NDArray[np.float64]:
    """Band gains in dB: strength * 5 * curve (``curve`` already normalised to [-1, 1])."""
    c = np.asarray(curve, dtype=np.float64)
    if c.shape != (len(EQ_CENTRES_HZ),):
        raise ValueError(f"an EQ curve has {len(EQ_CENTRES_HZ)} bands, got shape {c.shape}")
    return float(strength) * EQ_RANGE_DB * c


def eq_board(gains_db: NDArray[np.floating], sample_rate: int) -> object:
    """A pedalboard of the 40 Audealize peaking filters (bands >= Nyquist left out)."""
    import pedalboard

    filters: list[pedalboard.Plugin] = [
        pedalboard.PeakFilter(cutoff_frequency_hz=float(f), gain_db=float(g), q=EQ_Q)
        for f, g in zip(EQ_CENTRES_HZ, np.asarray(gains_db, dtype=np.float64))
        if f < sample_rate / 2.0
    ]
    return pedalboard.Pedalboard(filters)


def apply_eq(pcm: NDArray[np.floating], sample_rate: int, gains_db: NDArray[np.floating]) -> Float32Array:
    """Run audio through the 40-band EQ; output has the input's length and channels."""
    x = _as_frames(pcm)
    if not np.any(gains_db):
        return x.astype(np.float32)
    board = eq_board(gains_db, sample_rate)
    y = board(np.ascontiguousarray(x.T, dtype=np.float32), float(sample_rate))  # type: ignore[operator]
    return np.ascontiguousarray(np.asarray(y, dtype=np.float32).T)


@lru_cache(maxsize=256)
def _eq_tail(gains: tuple[float, ...], sample_rate: int) -> int:
    impulse = np.zeros((int(EQ_MAX_TAIL_S * sample_rate), 1))
    impulse[0, 0] = 1.0
    return _tail_length(apply_eq(impulse, sample_rate, np.asarray(gains)).astype(np.float64))


def eq_tail_samples(gains_db: NDArray[np.floating], sample_rate: int) -> int:
    """Length of the EQ's ring-out (see the module doc on tails)."""
    return _eq_tail(tuple(float(g) for g in gains_db), int(sample_rate))


def render_eq(
    pcm: NDArray[np.floating], sample_rate: int, curve: NDArray[np.floating], strength: float, keep_tail: bool = True
) -> Float32Array:
    """Audealize EQ of a normalised curve at a strength, keeping the ring-out.

    Args:
        pcm: (frames,) or (frames, channels) samples.
        curve: the word's curve, min-max normalised to [-1, 1].
        strength: Audealize amount, 0 = unprocessed.
        keep_tail: append the filters' ring-out (see module doc).

    Returns:
        float32 (frames + tail, channels).
    """
    gains = eq_gains_db(curve, strength)
    x = _as_frames(pcm)
    if keep_tail:
        x = _pad(x, eq_tail_samples(gains, sample_rate))
    return apply_eq(x, sample_rate, gains)


# ---------------------------------------------------------------- reverb
@dataclass(frozen=True)
class ReverbParams:
    """Audealize's five reverberator parameters (raw units).

    Attributes:
        d: delay of the first comb filter, s (Audealize range 0.01-0.1).
        g: gain of the first comb filter, 0 <= g < 1.
        m: delay difference between the channels' all-passes, s (-0.012-0.012).
        f: low-pass cut-off, Hz.
        E: effect gain, 0-1 (balance of late reverberation vs the clean early path).
    """

    d: float
    g: float
    m: float
    f: float
    E: float

    def __post_init__(self) -> None:
        if not all(math.isfinite(v) for v in (self.d, self.g, self.m, self.f, self.E)):
            raise ValueError(f"reverb parameters must be finite: {self}")
        if self.d <= 0:
            raise ValueError(f"reverb delay d must be > 0 s, got {self.d}")
        if not 0 <= self.g < 1:
            raise ValueError(f"reverb comb gain g must be in [0, 1), got {self.g}")
        if abs(self.m) >= ALLPASS_BASE_S * 2:
            raise ValueError(f"reverb stereo offset m must be within ±{2 * ALLPASS_BASE_S} s, got {self.m}")
        if self.E < 0:
            raise ValueError(f"reverb effect gain E must be >= 0, got {self.E}")

    def as_tuple(self) -> tuple[float, float, float, float, float]:
        return (self.d, self.g, self.m, self.f, self.E)

    @property
    def reverberation_time_s(self) -> float:
        """T = d ln(0.001) / ln(g): the combs' 60 dB decay time (0 for g = 0)."""
        return 0.0 if self.g <= 0 else self.d * math.log(0.001) / math.log(self.g)


@dataclass(frozen=True)
class ReverbDesign:
    """The reverberator's digital parameters at one sample rate and wet/dry setting."""

    comb_delays: tuple[int, ...]
    comb_gains: tuple[float, ...]
    allpass_delays: tuple[int, int]  # left, right
    early_delay: int
    lowpass_sos: NDArray[np.float64] | None  # None = identity
    mute_late: bool  # f <= 0: the low-pass removes everything
    wet: float
    dry: float
    gain_late: float
    gain_clean: float
    gain_scale: float


def lowpass_sos(cutoff_hz: float, sample_rate: int, q_db: float = LOWPASS_Q_DB) -> NDArray[np.float64] | None:
    """Web Audio "lowpass" biquad (Q in dB) as one scipy SOS row; None when f >= Nyquist."""
    if cutoff_hz >= sample_rate / 2.0:
        return None
    w0 = 2.0 * math.pi * cutoff_hz / sample_rate
    alpha = math.sin(w0) / (2.0 * 10.0 ** (q_db / 20.0))
    cw = math.cos(w0)
    b = np.array([(1 - cw) / 2, 1 - cw, (1 - cw) / 2])
    a = np.array([1 + alpha, -2 * cw, 1 - alpha])
    return np.concatenate([b / a[0], a / a[0]])[None, :]


def reverb_design(params: ReverbParams, sample_rate: int, wetdry: float) -> ReverbDesign:
    """Digital parameters (delays in samples, gains) for ``params`` at ``sample_rate``."""
    if not 0.0 <= wetdry <= 1.0:
        raise ValueError(f"reverb wet/dry (strength) must be in [0, 1], got {wetdry}")
    sr = int(sample_rate)
    t60 = params.reverberation_time_s
    delays = tuple(prev_prime(params.d * (15 - i) / 15.0 * sr) for i in range(6))
    gains = tuple(0.0 if t60 <= 0 else 0.001 ** ((n / sr) / t60) for n in delays)
    ap = (prev_prime((ALLPASS_BASE_S + params.m / 2.0) * sr), prev_prime((ALLPASS_BASE_S - params.m / 2.0) * sr))
    g1 = 1.0 / (params.E + 1.0)
    gain_clean = math.cos((1.0 - g1) * 0.125 * math.pi)
    gain_late = math.cos(g1 * 0.375 * math.pi)
    return ReverbDesign(
        comb_delays=delays,
        comb_gains=gains,
        allpass_delays=ap,
        early_delay=int(round(MIN_DELAY_S * sr)),
        lowpass_sos=lowpass_sos(params.f, sr) if params.f > 0 else None,
        mute_late=params.f <= 0,
        wet=_quarter_cos(1.0 - wetdry),
        dry=_quarter_cos(wetdry),
        gain_late=gain_late,
        gain_clean=gain_clean,
        gain_scale=0.5 * 0.8 / (gain_clean + gain_late),
    )


def _quarter_cos(x: float) -> float:
    """cos(x π/2), exactly 0 at x = 1 (so s = 0 and s = 1 are exactly dry and wet)."""
    return 0.0 if x == 1.0 else math.cos(x * 0.5 * math.pi)


def _feedback_comb(u: NDArray[np.float32], delay: int, gain: float, sample_rate: int) -> NDArray[np.float64]:
    """y[n] = u[n - delay] + gain * y[n - delay], on a pedalboard Delay line."""
    import pedalboard

    # pedalboard truncates delay_seconds * sample_rate; the half sample makes it exact
    line = pedalboard.Delay(delay_seconds=(delay + 0.5) / sample_rate, feedback=float(gain), mix=1.0)
    return np.asarray(line(u[None, :], float(sample_rate)), dtype=np.float64)[0]


def apply_reverb(pcm: NDArray[np.floating], sample_rate: int, params: ReverbParams, wetdry: float) -> Float32Array:
    """The reverberator (see module doc) over the input's length; stereo output.

    Args:
        pcm: (frames,) or (frames, channels) with 1 or 2 channels.
        wetdry: the strength; 0 = dry only, 1 = wet only.

    Returns:
        float32 (frames, 2).
    """
    x = _as_frames(pcm)
    if x.shape[1] > 2:
        raise ValueError(f"the reverberator takes mono or stereo input, got {x.shape[1]} channels")
    sr = int(sample_rate)
    dsg = reverb_design(params, sr, wetdry)
    chans = [x[:, 0], x[:, 0]] if x.shape[1] == 1 else [x[:, 0], x[:, 1]]
    out = np.stack([dsg.dry * c for c in chans], axis=1)
    if dsg.wet == 0.0:
        return out.astype(np.float32)
    n = x.shape[0]
    u = (dsg.wet * 0.5 * (chans[0] + chans[1])).astype(np.float32)
    late = np.zeros(n)
    if not dsg.mute_late:
        for delay, gain in zip(dsg.comb_delays, dsg.comb_gains):
            late += _feedback_comb(u, delay, gain, sr)
    late32 = late.astype(np.float32)
    a = ALLPASS_GAIN
    for ch, (c, ap_delay) in enumerate(zip(chans, dsg.allpass_delays)):
        if dsg.mute_late:
            diffuse = np.zeros(n)
        else:
            # Schroeder all-pass (-a + z^-A) / (1 - a z^-A) = -a + (1 - a^2) z^-A / (1 - a z^-A)
            diffuse = -a * late + (1.0 - a * a) * _feedback_comb(late32, ap_delay, a, sr)
            if dsg.lowpass_sos is not None:
                diffuse = ss.sosfilt(dsg.lowpass_sos, diffuse)
        early = np.zeros(n)
        k = dsg.early_delay
        if k < n:
            early[k:] = dsg.wet * c[: n - k]
        out[:, ch] += dsg.gain_scale * (dsg.gain_late * diffuse + dsg.gain_clean * early)
    return out.astype(np.float32)


@lru_cache(maxsize=256)
def _reverb_tail(params: tuple[float, ...], sample_rate: int, wetdry: float) -> int:
    p = ReverbParams(*params)
    n = int(min(p.reverberation_time_s + 1.0, MAX_TAIL_S + 1.0) * sample_rate)
    impulse = np.zeros((n, 1))
    impulse[0, 0] = 1.0
    h = apply_reverb(impulse, sample_rate, p, wetdry).astype(np.float64)
    return min(_tail_length(h), int(MAX_TAIL_S * sample_rate))


def reverb_tail_samples(params: ReverbParams, sample_rate: int, wetdry: float) -> int:
    """Length of the reverberation tail (see the module doc on tails)."""
    return _reverb_tail(params.as_tuple(), int(sample_rate), float(wetdry))


def render_reverb(
    pcm: NDArray[np.floating], sample_rate: int, params: ReverbParams, strength: float, keep_tail: bool = True
) -> Float32Array:
    """The reverberator at a strength (its wet/dry), keeping the tail.

    Returns:
        float32 (frames + tail, 2).
    """
    x = _as_frames(pcm)
    if keep_tail:
        x = _pad(x, reverb_tail_samples(params, sample_rate, strength))
    return apply_reverb(x, sample_rate, params, strength)
