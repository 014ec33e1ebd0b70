"""A synthesized reference set of sounds, for calibrating descriptor scores.

Zero-shot retrieval has hubs: some word vectors are near every sound (with the
SocialFX EQ baseline "loud" and "harsh" top most real notes). ``describe``
therefore ranks words by a calibrated score, each word's cosine standardised
against a reference distribution of sounds (``timbredb.describe``). The
reference is the store's own clips in the model's space when it holds enough
of them; otherwise it is this set: 48 deterministic two-second sounds spanning
pitch (55 Hz to 1.76 kHz), spectral tilt, tonal vs noisy, steady vs percussive
and narrow vs broad spectra. They are generated on the fly (no audio ships
with timbredb) and are the same on every machine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from timbredb.audio import Audio

SAMPLE_RATE = 44100
DURATION_S = 2.0
#: a version of the set: a change to these sounds changes calibrated scores
REFERENCE_VERSION = "timbredb-reference/1"
#: the fewest stored clips of a space used as the calibration reference (describe: fewer = this set)
MIN_REFERENCE = 32
#: the most stored clips used (a fixed, hash-ordered sample beyond that)
MAX_REFERENCE = 4096


def _harmonic(f0_hz: float, rolloff: float, n: int, t: NDArray[np.float64], odd_only: bool = False) -> NDArray[np.float64]:
    x = np.zeros_like(t)
    for k in range(1, n + 1):
        if k * f0_hz >= SAMPLE_RATE / 2 or (odd_only and k % 2 == 0):
            continue
        x += np.sin(2 * np.pi * k * f0_hz * t + 0.3 * k) / k**rolloff
    return x


def _coloured_noise(rng: np.random.Generator, n: int, exponent: float) -> NDArray[np.float64]:
    """Noise with power spectrum ~ 1/f**exponent (0 white, 1 pink, 2 brown)."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE)
    freqs[0] = freqs[1]
    return np.fft.irfft(spectrum / freqs ** (exponent / 2.0), n)


def _band(rng: np.random.Generator, n: int, lo_hz: float, hi_hz: float) -> NDArray[np.float64]:
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE)
    spectrum[(freqs < lo_hz) | (freqs > hi_hz)] = 0
    return np.fft.irfft(spectrum, n)


def reference_signals() -> list[tuple[str, NDArray[np.float32]]]:
    """(name, mono float32 samples at 44.1 kHz) of the 48 reference sounds, in a fixed order."""
    n = int(SAMPLE_RATE * DURATION_S)
    t = np.arange(n) / SAMPLE_RATE
    rng = np.random.default_rng(20251014)
    attack = np.minimum(1.0, t / 0.02)
    decay = np.exp(-t / 0.35)
    out: list[tuple[str, NDArray[np.float64]]] = []
    for f0 in np.geomspace(55.0, 1760.0, 8):
        for rolloff in (0.6, 1.4, 2.6):
            out.append((f"tone-{f0:.0f}Hz-rolloff{rolloff:g}", attack * _harmonic(f0, rolloff, 40, t)))
    for f0 in (110.0, 440.0):
        out.append((f"clarinet-like-{f0:.0f}Hz", attack * _harmonic(f0, 1.0, 30, t, odd_only=True)))
        out.append((f"plucked-{f0:.0f}Hz", decay * _harmonic(f0, 1.2, 30, t)))
        vibrato = np.sin(2 * np.pi * (f0 * t + 0.004 * f0 * np.sin(2 * np.pi * 5.5 * t) / (2 * np.pi * 5.5)))
        out.append((f"vibrato-{f0:.0f}Hz", attack * vibrato))
    for name, exponent in (("blue", -1.0), ("white", 0.0), ("pink", 1.0), ("brown", 2.0)):
        out.append((f"noise-{name}", _coloured_noise(rng, n, exponent)))
    for lo, hi in ((40, 400), (300, 1200), (1000, 3000), (2500, 6000), (6000, 16000)):
        out.append((f"band-{lo}-{hi}Hz", _band(rng, n, lo, hi)))
    for period_s in (0.05, 0.25):
        clicks = np.zeros(n)
        clicks[:: int(period_s * SAMPLE_RATE)] = 1.0
        out.append((f"clicks-{period_s:g}s", np.convolve(clicks, np.exp(-np.arange(200) / 30.0))[:n]))
    for name, lo, hi in (("kick", 40, 150), ("snare", 200, 8000), ("hat", 6000, 18000)):
        burst = _band(rng, n, lo, hi) * np.exp(-(t % 0.5) / (0.12 if name == "kick" else 0.05))
        out.append((f"drum-{name}", burst))
    for f0s, name in (((220.0, 277.2, 329.6), "major"), ((220.0, 261.6, 329.6), "minor")):
        out.append((f"chord-{name}", attack * sum(_harmonic(f, 1.2, 20, t) for f in f0s)))
    out.append(("tone-sine-1kHz", attack * np.sin(2 * np.pi * 1000.0 * t)))
    out.append(("tone-square-880Hz", attack * _harmonic(880.0, 1.0, 20, t, odd_only=True)))
    signals = []
    for name, x in out:
        peak = float(np.max(np.abs(x)))
        signals.append((name, (0.5 * x / peak).astype(np.float32)))
    return signals


def reference_clips() -> list[Audio]:
    """The reference sounds as clips (mono, 44.1 kHz, sources ``reference://<name>``)."""
    from timbredb.audio import from_array

    return [from_array(x, SAMPLE_RATE, f"reference://{REFERENCE_VERSION}/{name}") for name, x in reference_signals()]
