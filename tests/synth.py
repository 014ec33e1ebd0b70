"""Synthesized test audio: noise, tones, filtered noise. Nothing binary is committed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.signal as ss
import soundfile as sf
from numpy.typing import NDArray

SR = 44100


def noise(seconds: float = 1.0, sr: int = SR, seed: int = 0, level: float = 0.2) -> NDArray[np.float32]:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(int(seconds * sr)) * level).astype(np.float32)


def lowpassed(x: NDArray[np.float32], cutoff_hz: float, sr: int = SR) -> NDArray[np.float32]:
    sos = ss.butter(6, cutoff_hz, "low", fs=sr, output="sos")
    return ss.sosfilt(sos, x).astype(np.float32)


def highpassed(x: NDArray[np.float32], cutoff_hz: float, sr: int = SR) -> NDArray[np.float32]:
    sos = ss.butter(6, cutoff_hz, "high", fs=sr, output="sos")
    return ss.sosfilt(sos, x).astype(np.float32)


def harmonic_tone(
    f0_hz: float, seconds: float = 1.0, sr: int = SR, n_harmonics: int = 20, rolloff: float = 1.0, level: float = 0.3
) -> NDArray[np.float32]:
    """Sum of harmonics with amplitude 1/k**rolloff (small rolloff = bright, large = dark)."""
    t = np.arange(int(seconds * sr)) / sr
    x = np.zeros_like(t)
    for k in range(1, n_harmonics + 1):
        if k * f0_hz < sr / 2:
            x += np.sin(2 * np.pi * k * f0_hz * t) / k**rolloff
    return (level * x / np.max(np.abs(x))).astype(np.float32)


def write(path: Path, x: NDArray[np.floating], sr: int = SR, subtype: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), x, sr, subtype=subtype)
    return path
