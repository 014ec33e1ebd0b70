"""Short-time frames of a signal that arrives in blocks (the baselines' streaming path).

``frames_of`` yields exactly the frames the baselines cut from a whole signal:
with ``center`` the signal is first reflect-padded by n_fft // 2 on both sides
(as torch.stft / torchaudio's MFCC do, and ``mfcc.power_spectrogram``), then
frames of n_fft start every hop samples while they fit. Memory: the current
block plus one frame of overlap.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
from numpy.typing import NDArray


def frames_of(
    blocks: Iterable[NDArray[np.floating]], n_fft: int, hop: int, center: bool, batch: int = 4096
) -> Iterator[NDArray[np.float64]]:
    """(m, n_fft) float64 frame batches, in order."""
    pad = n_fft // 2 if center else 0
    buf = np.zeros(0, dtype=np.float64)
    started = False
    start = 0  # next frame's start, relative to buf[0]
    for block in blocks:
        x = np.asarray(block, dtype=np.float64)
        if not started:
            if x.shape[0] <= pad:
                raise ValueError("the first block must be longer than half a frame")
            # reflect padding of the start: x[pad], ..., x[1]
            buf = np.concatenate([x[pad:0:-1], x]) if pad else x
            started = True
        else:
            buf = np.concatenate([buf, x])
        yield from _cut(buf, start, n_fft, hop, batch)
        n_frames = (buf.shape[0] - start - n_fft) // hop + 1 if buf.shape[0] - start >= n_fft else 0
        start += n_frames * hop
        buf, start = buf[start:], 0
    if not started:
        return
    if pad:
        # reflect padding of the end: x[n-2], ..., x[n-1-pad]; buf always keeps more than pad samples
        buf = np.concatenate([buf, buf[-2 : -pad - 2 : -1]])
    yield from _cut(buf, start, n_fft, hop, batch)


def _cut(buf: NDArray[np.float64], start: int, n_fft: int, hop: int, batch: int) -> Iterator[NDArray[np.float64]]:
    if buf.shape[0] - start < n_fft:
        return
    frames = np.lib.stride_tricks.sliding_window_view(buf[start:], n_fft)[::hop]
    for i in range(0, frames.shape[0], batch):
        yield frames[i : i + batch]
