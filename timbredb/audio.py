"""Audio decoding, validation, content hashing and resampling.

Every clip is identified by the sha256 of its decoded PCM: the float32 samples,
interleaved as decoded (before the mono down-mix), preceded by the sample rate
and channel count. The same sound stored as WAV or FLAC therefore gets the same
hash, while a different sample rate or channel layout is a different clip.

Resampling is explicit and deterministic: libsoxr at its "VHQ" (very high
quality, linear-phase) setting, through the `soxr` package. The resampler is
part of every embedding space's preprocessing policy.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from timbredb.errors import AudioError, first_line

AUDIO_EXTENSIONS = frozenset({".wav", ".flac", ".ogg", ".oga", ".aif", ".aiff", ".aifc", ".mp3"})
RESAMPLER = "soxr-vhq"
_HASH_DOMAIN = b"timbredb-pcm-v1"


@dataclass(frozen=True)
class Audio:
    """A decoded clip: mono float32 samples plus what is known of the source.

    Attributes:
        samples: mono float32 samples (the mean of the source channels).
        sample_rate: sample rate of ``samples`` in Hz.
        channels: channel count of the source before the down-mix.
        sha256: content hash of the decoded source PCM (see module doc).
        source: where it came from (a path, or a descriptive URI for rendered audio).
        channel_samples: the source channels, (frames, channels) float32, kept only when
            asked for (``keep_channels``) and the source has more than one channel: a policy
            that does not down-mix (``ms-clap/paper`` joins the channels in time) needs them.
    """

    samples: NDArray[np.float32]
    sample_rate: int
    channels: int
    sha256: str
    source: str
    channel_samples: NDArray[np.float32] | None = None

    @property
    def n_frames(self) -> int:
        return int(self.samples.shape[0])

    @property
    def duration_s(self) -> float:
        return self.n_frames / float(self.sample_rate)


def content_sha256(pcm: NDArray[np.float32], sample_rate: int) -> str:
    """sha256 over the domain tag, sample rate, channel count and interleaved float32 PCM.

    Args:
        pcm: (frames, channels) or (frames,) array.
        sample_rate: in Hz.
    """
    pcm2 = pcm.reshape(pcm.shape[0], -1) if pcm.ndim > 1 else pcm.reshape(-1, 1)
    data = np.ascontiguousarray(pcm2, dtype="<f4")
    h = hashlib.sha256()
    h.update(_HASH_DOMAIN)
    h.update(int(sample_rate).to_bytes(4, "little"))
    h.update(int(data.shape[1]).to_bytes(2, "little"))
    h.update(data.tobytes())
    return h.hexdigest()


def _check_pcm(pcm: NDArray[np.float32], sample_rate: int, source: str) -> None:
    if pcm.ndim != 2 or pcm.shape[1] == 0:
        raise AudioError(source, "has zero channels")
    if pcm.shape[0] == 0:
        raise AudioError(source, "is empty (0 samples)")
    if sample_rate <= 0:
        raise AudioError(source, f"has an invalid sample rate ({sample_rate} Hz)")
    finite = np.isfinite(pcm)
    if not finite.all():
        bad = int((~finite).sum())
        raise AudioError(source, f"has {bad} non-finite samples (NaN or infinity)")
    if not np.any(pcm):
        raise AudioError(source, "is silent (every sample is zero)")


def _downmix(pcm: NDArray[np.float32]) -> NDArray[np.float32]:
    """Mean of the channels, accumulated in float64 one channel at a time.

    Column-wise accumulation is several times faster than ``mean(axis=1)`` on
    interleaved frames; for two channels the result is bit-identical to it (a sum
    of two float32 values is exact in float64).
    """
    if pcm.shape[1] == 1:
        return pcm[:, 0].copy()
    acc = pcm[:, 0].astype(np.float64)
    for c in range(1, pcm.shape[1]):
        acc += pcm[:, c]
    acc /= pcm.shape[1]
    return acc.astype(np.float32)


def from_array(pcm: NDArray[np.floating], sample_rate: int, source: str, keep_channels: bool = False) -> Audio:
    """Build an Audio from samples in memory (rendered variants, tests).

    Args:
        pcm: (frames,) mono or (frames, channels) samples.
        sample_rate: in Hz.
        source: a description recorded as the clip's source.
        keep_channels: also keep the channels of a multi-channel source (``channel_samples``).
    """
    arr = np.asarray(pcm, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise AudioError(source, f"expected (frames, channels) samples, got shape {arr.shape}")
    _check_pcm(arr, sample_rate, source)
    mono = _downmix(arr)
    return Audio(
        samples=mono,
        sample_rate=int(sample_rate),
        channels=int(arr.shape[1]),
        sha256=content_sha256(arr, sample_rate),
        source=source,
        # only on request: the channels of a long stereo file triple a clip's memory
        channel_samples=arr if keep_channels and arr.shape[1] > 1 else None,
    )


def read_pcm(path: str | os.PathLike[str]) -> tuple[NDArray[np.float32], int]:
    """Decode a file to float32 (frames, channels) PCM at its own sample rate, channels as stored.

    The one decoder of timbredb: files, effect sources and hub recordings all come
    through here (or ``read_pcm_bytes``). libsndfile first; formats it does not know
    (some MP3/AIFF variants) go to pedalboard.

    Raises:
        AudioError: missing, a folder, or unreadable (truncated, corrupt, unknown format).
    """
    import soundfile as sf

    p = str(path)
    if not os.path.exists(p):
        raise AudioError(p, "does not exist")
    if os.path.isdir(p):
        raise AudioError(p, "is a directory, not an audio file")
    try:
        pcm, sample_rate = sf.read(p, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        message = str(exc).lower()
        if "channel count is zero" in message:
            raise AudioError(p, "has zero channels") from exc
        if "not recognised" not in message and "unsupported" not in message:
            # a container libsndfile knows but cannot decode (truncated, corrupt): report it
            raise AudioError(p, f"unreadable audio ({_reason(exc)})") from exc
        pcm, sample_rate = _decode_with_pedalboard(p, exc)
    return np.ascontiguousarray(pcm, dtype=np.float32), int(sample_rate)


def read_pcm_bytes(data: bytes, source: str) -> tuple[NDArray[np.float32], int]:
    """``read_pcm`` for an encoded file held in memory (hub rows, uploads)."""
    import io

    import soundfile as sf

    try:
        pcm, sample_rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise AudioError(source, f"unreadable audio ({_reason(exc)})") from exc
    return np.ascontiguousarray(pcm, dtype=np.float32), int(sample_rate)


def decode(path: str | os.PathLike[str], keep_channels: bool = False) -> Audio:
    """Decode an audio file to mono float32 at its own sample rate.

    Args:
        keep_channels: also keep the source channels (see ``Audio.channel_samples``).

    Raises:
        AudioError: unreadable, empty, zero channels, non-finite or all-zero samples.
    """
    pcm, sample_rate = read_pcm(path)
    return from_array(pcm, sample_rate, str(path), keep_channels)


def decode_bytes(data: bytes, source: str, keep_channels: bool = False) -> Audio:
    """``decode`` for an encoded file held in memory."""
    pcm, sample_rate = read_pcm_bytes(data, source)
    return from_array(pcm, sample_rate, source, keep_channels)


def _decode_with_pedalboard(path: str, first_error: Exception) -> tuple[NDArray[np.float32], int]:
    """Second decoder for files libsndfile rejects (pedalboard reads some MP3/AIFF variants)."""
    import pedalboard.io

    try:
        with pedalboard.io.AudioFile(path) as f:
            data = f.read(f.frames)
            sample_rate = int(round(f.samplerate))
    except (RuntimeError, ValueError, OSError, EOFError):
        raise AudioError(path, f"unreadable audio ({_reason(first_error)})") from first_error
    return np.ascontiguousarray(data.T, dtype=np.float32), sample_rate


def _reason(exc: BaseException) -> str:
    # libsndfile separates its parts with " : "
    return first_line(exc).replace(" : ", ": ")


def resample(samples: NDArray[np.float32], from_rate: int, to_rate: int) -> NDArray[np.float32]:
    """Resample mono audio with libsoxr VHQ. Identity when the rates match."""
    if from_rate == to_rate:
        return np.ascontiguousarray(samples, dtype=np.float32)
    import soxr

    out = soxr.resample(np.asarray(samples, dtype=np.float32), from_rate, to_rate, quality="VHQ")
    return np.ascontiguousarray(out, dtype=np.float32)


#: what ``resample_like_librosa`` is called in the preprocessing policies
LIBROSA_RESAMPLER = "soxr-hq, length ceil(n * ratio) (librosa.load's default)"


def resample_like_librosa(samples: NDArray[np.float32], from_rate: int, to_rate: int) -> NDArray[np.float32]:
    """Resample mono audio exactly as ``librosa.load(path, sr=to_rate)`` does (librosa 0.10).

    librosa's default ``res_type="soxr_hq"`` runs libsoxr at its HQ setting (timbredb's own
    resampler uses VHQ) and then fixes the length to ``ceil(n * to_rate / from_rate)``
    (trimming, or padding with zeros). The study loaded every file this way, so the
    ``paper`` policies that replicate it use this; the defaults keep VHQ.
    """
    if from_rate == to_rate:
        return np.ascontiguousarray(samples, dtype=np.float32)
    import soxr

    out = soxr.resample(np.asarray(samples, dtype=np.float32), from_rate, to_rate, quality="soxr_hq")
    # librosa's own arithmetic, float rounding included (1.3 s at 44.1 -> 48 kHz gives 62401)
    ratio = float(to_rate) / from_rate
    n = int(np.ceil(samples.shape[0] * ratio))
    if out.shape[0] >= n:
        out = out[:n]
    else:
        out = np.concatenate([out, np.zeros(n - out.shape[0], dtype=out.dtype)])
    return np.ascontiguousarray(out, dtype=np.float32)


def find_audio_files(target: str | os.PathLike[str]) -> list[Path]:
    """Audio files under a path (recursive for folders), sorted for a stable order."""
    p = Path(target)
    if p.is_dir():
        return sorted(
            f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in AUDIO_EXTENSIONS
        )
    return [p]
