"""`mss`: the multi-scale spectrogram of timbremetrics' ``examples/evaluate_mss.py`` (audio only).

The published feature (github.com/tiianhk/timbremetrics @212c267e,
``examples/evaluate_mss.py``, after DDSP's multi-scale spectral loss) calls
``torch.stft(audio, n_fft=n, return_complex=True)`` for n in 4096, 2048, 1024,
512, 256, 128 and passes nothing else, so torch's defaults decide the rest:

- ``hop_length = n // 4`` (1024, 512, 256, 128, 64, 32);
- ``win_length = n`` and ``window=None``: a **rectangular** window of ones
  (not Hann; torch warns about it, the script does not set one);
- ``center=True`` with ``pad_mode="reflect"``: n // 2 samples reflected onto
  each end, so there are ``1 + N // hop`` frames and the input needs more than
  n // 2 = 2048 samples;
- ``normalized=False``, ``onesided=True`` (real input): n // 2 + 1 bins.

From each STFT it keeps the magnitude ``|X|`` (not the power) and
``log(max(|X|, 1e-5))`` (the natural log of the magnitude, floored by
replacement at 1e-5). Time-averaged (``time_average=True``, the published
``time-avg_mss`` row): each is averaged over frames (the mean of the log, not
the log of the mean; the reflect-padded edge frames count), and the blocks are
concatenated as ``[lin_4096, ..., lin_128, log_4096, ..., log_128]``: 2049 +
1025 + 513 + 257 + 129 + 65 = 4038 bins, twice: 8076 dimensions. Frame-level
(``time_average=False``, the published ``mss`` row) keeps every frame; that
feature's length depends on the clip's, so it is compared pair by pair
(``timbredb.models.pairwise``).

Computed in NumPy (float64) so it needs no torch; tests compare it with
``torch.stft`` on the local timbremetrics stimuli.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from numpy.typing import NDArray

from timbredb.models.base import EmbeddingModel

FFT_SIZES: tuple[int, ...] = (4096, 2048, 1024, 512, 256, 128)
LOG_FLOOR = 1e-5
#: 4038 bins over the six sizes, linear then log
DIM = 2 * sum(n // 2 + 1 for n in FFT_SIZES)


def stft_magnitude(x: NDArray[np.floating], n_fft: int) -> NDArray[np.float64]:
    """``|torch.stft(x, n_fft, return_complex=True)|`` with torch's defaults: (..., n_fft//2+1, frames).

    Rectangular window of n_fft, hop n_fft // 4, centred frames with reflect
    padding of n_fft // 2 at each end, one-sided, not normalised.

    Args:
        x: (samples,) or (channels, samples).

    Raises:
        ValueError: fewer than n_fft // 2 + 1 samples (reflect padding needs them, as in torch).
    """
    a = np.asarray(x, dtype=np.float64)
    hop = n_fft // 4
    pad = n_fft // 2
    if a.shape[-1] <= pad:
        raise ValueError(f"the STFT with n_fft={n_fft} needs more than {pad} samples, got {a.shape[-1]}")
    widths = [(0, 0)] * (a.ndim - 1) + [(pad, pad)]
    padded = np.pad(a, widths, mode="reflect")
    n_frames = 1 + a.shape[-1] // hop
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft, axis=-1)[..., ::hop, :][..., :n_frames, :]
    return np.swapaxes(np.abs(np.fft.rfft(frames, axis=-1)), -1, -2)


def mss_blocks(x: NDArray[np.floating], time_average: bool) -> Iterator[NDArray[np.float64]]:
    """The feature's blocks in published order: the six linear magnitudes, then the six logs.

    Time-averaged blocks are (..., bins); frame-level ones (..., bins, frames).
    """
    mags = [stft_magnitude(x, n) for n in FFT_SIZES]
    for m in mags:
        yield m.mean(axis=-1) if time_average else m
    for m in mags:
        lg = np.log(np.maximum(m, LOG_FLOOR))
        yield lg.mean(axis=-1) if time_average else lg


def mss_vector(x: NDArray[np.floating]) -> NDArray[np.float64]:
    """The time-averaged MSS of mono audio: the 8076-d published ``time-avg_mss`` feature."""
    return np.concatenate(list(mss_blocks(x, time_average=True)), axis=-1)


class MSSModel(EmbeddingModel):
    """Time-averaged multi-scale spectrogram; one 8076-d vector per clip, the whole clip in one window."""

    # NumPy only and cheap to build: ingest workers compute its vectors (timbredb.ingest.pipeline)
    worker_embeds = True

    # reflect padding of the largest STFT (4096) needs more than 2048 samples
    min_samples = FFT_SIZES[0] // 2 + 1

    def _embed_windows(self, windows: list[NDArray[np.float32]]) -> NDArray[np.float32]:
        return np.stack([mss_vector(w) for w in windows]).astype(np.float32)
