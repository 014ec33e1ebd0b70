"""`mfcc`: the classic time-averaged MFCC baseline (audio only).

Numerically the same as
``torchaudio.transforms.MFCC(sample_rate=44100, n_mfcc=40,
melkwargs={"n_fft": 2048, "hop_length": 512})`` with its defaults, averaged over
frames, but in NumPy so that it needs no torch:

- STFT: periodic Hann window of 2048, hop 512, centred frames with reflect
  padding, one-sided power spectrum (|X|^2, not normalised);
- 128 triangular mel filters on the HTK scale from 0 Hz to Nyquist, unnormalised;
- dB: 10*log10(max(x, 1e-10)), then clamped to (max - 80 dB) over the whole
  spectrogram (AmplitudeToDB("power", top_db=80));
- orthonormal DCT-II, first 40 coefficients;
- mean over frames.

The timbremetrics reference results use this baseline.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

import numpy as np
from numpy.typing import NDArray

from timbredb.audio import StreamedAudio
from timbredb.models._frames import frames_of
from timbredb.models.base import EmbeddingModel
from timbredb.parallel import one_blas_thread

N_FFT = 2048
HOP = 512
N_MELS = 128
N_MFCC = 40
TOP_DB = 80.0
AMIN = 1e-10


def _hz_to_mel(f: NDArray[np.float64] | float) -> NDArray[np.float64]:
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def _mel_to_hz(m: NDArray[np.float64]) -> NDArray[np.float64]:
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


@functools.lru_cache(maxsize=8)
def mel_filterbank(sample_rate: int, n_fft: int = N_FFT, n_mels: int = N_MELS) -> NDArray[np.float64]:
    """(n_fft//2+1, n_mels) triangular HTK filters, as torchaudio.functional.melscale_fbanks (cached, read-only)."""
    n_freqs = n_fft // 2 + 1
    all_freqs = np.linspace(0, sample_rate // 2, n_freqs)
    m_pts = np.linspace(_hz_to_mel(0.0), _hz_to_mel(sample_rate / 2.0), n_mels + 2)
    f_pts = _mel_to_hz(m_pts)
    f_diff = f_pts[1:] - f_pts[:-1]
    slopes = f_pts[None, :] - all_freqs[:, None]
    down = -slopes[:, :-2] / f_diff[:-1]
    up = slopes[:, 2:] / f_diff[1:]
    fb = np.maximum(0.0, np.minimum(down, up))
    fb.flags.writeable = False
    return fb


@functools.lru_cache(maxsize=8)
def dct_ortho(n_mfcc: int = N_MFCC, n_mels: int = N_MELS) -> NDArray[np.float64]:
    """(n_mels, n_mfcc) orthonormal DCT-II matrix, as torchaudio.functional.create_dct (cached, read-only)."""
    n = np.arange(n_mels, dtype=np.float64)
    k = np.arange(n_mfcc, dtype=np.float64)[:, None]
    dct = np.cos(np.pi / n_mels * (n + 0.5) * k)
    dct[0] *= 1.0 / np.sqrt(2.0)
    dct *= np.sqrt(2.0 / n_mels)
    out = dct.T
    out.flags.writeable = False
    return out


def power_spectrogram(x: NDArray[np.float32], n_fft: int = N_FFT, hop: int = HOP) -> NDArray[np.float64]:
    """(n_fft//2+1, frames) power spectrogram with centred, reflect-padded frames."""
    pad = n_fft // 2
    padded = np.pad(x.astype(np.float64), pad, mode="reflect")
    n_frames = 1 + (padded.shape[0] - n_fft) // hop
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)  # periodic Hann
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop][:n_frames]
    spec = np.fft.rfft(frames * window, axis=1)
    return (spec.real**2 + spec.imag**2).T


def mfcc_frames(x: NDArray[np.float32], sample_rate: int = 44100) -> NDArray[np.float64]:
    """(n_mfcc, frames) MFCC matrix equal to torchaudio's MFCC transform."""
    with one_blas_thread():  # the same bits on any number of cores (timbredb.parallel)
        mel = mel_filterbank(sample_rate).T @ power_spectrogram(x)
        db = 10.0 * np.log10(np.maximum(mel, AMIN))
        db = np.maximum(db, db.max() - TOP_DB)
        return (db.T @ dct_ortho()).T


def mfcc_mean_stream(blocks: Iterable[NDArray[np.float32]], sample_rate: int = 44100) -> NDArray[np.float64]:
    """``mfcc_frames(x).mean(axis=1)`` of a signal given in blocks, without holding its spectrogram.

    The dB mel frames are kept (128 values per hop, an eighth of the signal's size in
    float64) because the 80 dB floor is relative to the whole clip's maximum; the DCT
    is linear, so it is applied once to the mean of the floored frames.
    """
    with one_blas_thread():
        return _mfcc_mean_stream(blocks, sample_rate)


def _mfcc_mean_stream(blocks: Iterable[NDArray[np.float32]], sample_rate: int) -> NDArray[np.float64]:
    fb_t = mel_filterbank(sample_rate).T
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(N_FFT) / N_FFT)
    db_blocks = []
    top = -np.inf
    for frames in frames_of(blocks, N_FFT, HOP, center=True):
        spec = np.fft.rfft(frames * window, axis=1)
        mel = fb_t @ (spec.real**2 + spec.imag**2).T
        db = 10.0 * np.log10(np.maximum(mel, AMIN))
        top = max(top, float(db.max()))
        db_blocks.append(db)
    total = np.zeros(N_MELS)
    count = 0
    for db in db_blocks:
        total += np.maximum(db, top - TOP_DB).sum(axis=1)
        count += db.shape[1]
    return (total / count) @ dct_ortho()


def mfcc_frames_multichannel(x: NDArray[np.floating], sample_rate: int = 44100) -> NDArray[np.float64]:
    """(channels, n_mfcc, frames) MFCC of (channels, samples) audio, as torchaudio's MFCC on that tensor.

    Each channel gets its own spectrogram; the 80 dB floor is taken below the
    maximum over *all* channels (torchaudio's ``amplitude_to_DB`` reduces over
    the last three dimensions of a (channels, mels, frames) input). For one
    channel this is ``mfcc_frames``.
    """
    a = np.atleast_2d(np.asarray(x, dtype=np.float32))
    fb = mel_filterbank(sample_rate).T
    with one_blas_thread():
        mel = np.stack([fb @ power_spectrogram(c) for c in a])
    db = 10.0 * np.log10(np.maximum(mel, AMIN))
    db = np.maximum(db, db.max() - TOP_DB)
    return np.einsum("cmt,mk->ckt", db, dct_ortho())


class MFCCModel(EmbeddingModel):
    """Time-averaged MFCC; one 40-d vector per clip, the whole clip in one window."""

    # NumPy only and cheap to build: ingest workers compute its vectors (timbredb.ingest.pipeline)
    worker_embeds = True

    # reflect padding needs more samples than half the FFT size
    min_samples = N_FFT // 2 + 1

    def _embed_windows(self, windows: list[NDArray[np.float32]]) -> NDArray[np.float32]:
        return np.stack([mfcc_frames(w, self.sample_rate).mean(axis=1) for w in windows]).astype(np.float32)

    def _embed_whole_stream(self, blocks: Iterable[NDArray[np.float32]], audio: StreamedAudio) -> NDArray[np.float64]:
        return mfcc_mean_stream(blocks, self.sample_rate)
