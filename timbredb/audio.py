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
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

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


class ClipRecord(Protocol):
    """What the store records of a clip: ``Audio``, ``StreamedAudio`` and the pipeline's ClipInfo have it."""

    @property
    def sha256(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def sample_rate(self) -> int: ...
    @property
    def channels(self) -> int: ...
    @property
    def n_frames(self) -> int: ...
    @property
    def duration_s(self) -> float: ...


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
    h.update(data.data.cast("B"))  # the array's bytes, without a copy of the whole clip
    return h.hexdigest()


def _check_pcm(pcm: NDArray[np.float32], sample_rate: int, source: str) -> None:
    if pcm.ndim != 2 or pcm.shape[1] == 0:
        raise AudioError(source, "has zero channels")
    if pcm.shape[0] == 0:
        raise AudioError(source, "is empty (0 samples)")
    if sample_rate <= 0:
        raise AudioError(source, f"has an invalid sample rate ({sample_rate} Hz)")
    # a float64 sum of float32 samples is finite exactly when every sample is (it cannot overflow):
    # one pass and no mask, except to count the bad samples when there are some
    if not np.isfinite(np.sum(pcm, dtype=np.float64)):
        bad = int((~np.isfinite(pcm)).sum())
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
    check_wav_length(p)
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


@dataclass(frozen=True)
class AudioInfo:
    """What a file's header says, before anything is decoded."""

    n_frames: int
    sample_rate: int
    channels: int

    @property
    def duration_s(self) -> float:
        return self.n_frames / float(self.sample_rate) if self.sample_rate > 0 else 0.0


def probe(path: str | os.PathLike[str]) -> AudioInfo:
    """Read a file's header (length, rate, channels) without decoding its samples.

    Uses the same two decoders as ``read_pcm``, so a file that probes can be decoded
    by it (unless its data is truncated or corrupt, which only decoding finds).
    Callers that must bound the work of decoding (the server) check the duration first.

    Raises:
        AudioError: missing, a folder, or not a format either decoder recognises by content.
    """
    import soundfile as sf

    p = str(path)
    if not os.path.exists(p):
        raise AudioError(p, "does not exist")
    if os.path.isdir(p):
        raise AudioError(p, "is a directory, not an audio file")
    try:
        info = sf.info(p)
        return AudioInfo(int(info.frames), int(info.samplerate), int(info.channels))
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        if "channel count is zero" in str(exc).lower():
            raise AudioError(p, "has zero channels") from exc
        first_error: Exception = exc
    import pedalboard.io

    try:
        with pedalboard.io.AudioFile(p) as f:
            return AudioInfo(int(f.frames), int(round(f.samplerate)), int(f.num_channels))
    except (RuntimeError, ValueError, OSError, EOFError):
        raise AudioError(p, f"unreadable audio ({_reason(first_error)})") from first_error


def check_wav_length(path: str) -> None:
    """Raise AudioError for a WAV whose header promises more sample data than the file holds.

    libsndfile quietly reads what is there (so a truncated WAV would pass as a shorter
    clip, and a header claiming 10^9 frames costs nothing); a truncated file is
    reported instead, as a truncated FLAC is.
    """
    import struct

    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return
            size = os.fstat(f.fileno()).st_size
            block_align = 0
            while True:
                chunk = f.read(8)
                if len(chunk) < 8:
                    return
                cid, length = chunk[:4], struct.unpack("<I", chunk[4:])[0]
                if cid == b"fmt ":
                    body = f.read(min(length, 16))
                    if len(body) >= 14:
                        block_align = struct.unpack("<H", body[12:14])[0]
                    f.seek(length - len(body) + (length & 1), 1)
                elif cid == b"data":
                    if length == 0xFFFFFFFF:  # RF64 and streaming writers: size unknown, libsndfile decides
                        return
                    held = size - f.tell()
                    if length > held:
                        claimed = length // block_align if block_align else length
                        present = held // block_align if block_align else held
                        raise AudioError(
                            path, f"is truncated: its header says {claimed} frames, the file holds {present}"
                        )
                    return
                else:
                    f.seek(length + (length & 1), 1)
    except OSError:
        return  # decoding reports an unreadable file itself


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


# ---------------------------------------------------------------- long files, streamed
#: files with more samples than this (frames x channels, ~3 min of 44.1 kHz stereo) are never held
#: in memory whole: they are hashed, checked and embedded block by block
STREAM_SAMPLES = 2**24
#: frames read per block when streaming
BLOCK_FRAMES = 2**18


@dataclass(frozen=True)
class StreamedAudio:
    """A long file, hashed and checked without holding its samples; ``mono_blocks`` re-reads it.

    Attributes are those of ``Audio`` but ``samples``: the content hash is the same
    sha256 ``Audio`` has (computed over the same interleaved float32 bytes, block by
    block), so a long file is the same clip whichever way it was read.
    """

    path: str
    sample_rate: int
    channels: int
    n_frames: int
    sha256: str
    source: str

    @property
    def duration_s(self) -> float:
        return self.n_frames / float(self.sample_rate)

    def mono_blocks(self, block_frames: int = BLOCK_FRAMES) -> Iterator[NDArray[np.float32]]:
        """The down-mixed samples in blocks (the same values ``decode`` gives, in order)."""
        for block in _pcm_blocks(self.path, block_frames):
            yield _downmix(block)


def should_stream(info: AudioInfo) -> bool:
    return info.n_frames * max(info.channels, 1) > STREAM_SAMPLES


def _pcm_blocks(path: str, block_frames: int) -> Iterator[NDArray[np.float32]]:
    """(frames, channels) float32 blocks of a file, libsndfile first, pedalboard for what it cannot read."""
    import soundfile as sf

    try:
        f = sf.SoundFile(path)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        yield from _pedalboard_blocks(path, block_frames, exc)
        return
    with f:
        while True:
            try:
                block = f.read(block_frames, dtype="float32", always_2d=True)
            except (sf.LibsndfileError, RuntimeError, ValueError) as exc:
                raise AudioError(path, f"unreadable audio ({_reason(exc)})") from exc
            if block.shape[0] == 0:
                return
            yield np.ascontiguousarray(block)


def _pedalboard_blocks(path: str, block_frames: int, first_error: Exception) -> Iterator[NDArray[np.float32]]:
    import pedalboard.io

    try:
        f = pedalboard.io.AudioFile(path)
    except (RuntimeError, ValueError, OSError, EOFError):
        raise AudioError(path, f"unreadable audio ({_reason(first_error)})") from first_error
    with f:
        while True:
            try:
                data = f.read(block_frames)
            except (RuntimeError, ValueError, OSError, EOFError) as exc:
                raise AudioError(path, f"unreadable audio ({_reason(exc)})") from exc
            if data.shape[1] == 0:
                return
            yield np.ascontiguousarray(data.T, dtype=np.float32)


def scan(path: str | os.PathLike[str], info: AudioInfo | None = None) -> StreamedAudio:
    """Hash and check a file block by block (memory: one block), for files too long to decode whole.

    Raises:
        AudioError: unreadable, truncated (fewer frames than its header says), empty,
            zero channels, non-finite or all-zero samples.
    """
    p = str(path)
    check_wav_length(p)
    info = info or probe(p)
    if info.channels <= 0:
        raise AudioError(p, "has zero channels")
    if info.sample_rate <= 0:
        raise AudioError(p, f"has an invalid sample rate ({info.sample_rate} Hz)")
    h = hashlib.sha256()
    h.update(_HASH_DOMAIN)
    h.update(int(info.sample_rate).to_bytes(4, "little"))
    h.update(int(info.channels).to_bytes(2, "little"))
    frames = 0
    bad = 0
    nonzero = False
    for block in _pcm_blocks(p, BLOCK_FRAMES):
        if block.shape[1] != info.channels:
            raise AudioError(p, f"blocks of {block.shape[1]} channels in a {info.channels}-channel file")
        if not np.isfinite(np.sum(block, dtype=np.float64)):  # as _check_pcm
            bad += int((~np.isfinite(block)).sum())
        nonzero = nonzero or bool(np.any(block))
        h.update(np.ascontiguousarray(block, dtype="<f4").data.cast("B"))
        frames += block.shape[0]
    if frames == 0:
        raise AudioError(p, "is empty (0 samples)")
    if frames < info.n_frames:
        raise AudioError(p, f"is truncated: its header says {info.n_frames} frames, the data ends after {frames}")
    if bad:
        raise AudioError(p, f"has {bad} non-finite samples (NaN or infinity)")
    if not nonzero:
        raise AudioError(p, "is silent (every sample is zero)")
    return StreamedAudio(p, info.sample_rate, info.channels, frames, h.hexdigest(), p)


def open_audio(path: str | os.PathLike[str]) -> Audio | StreamedAudio:
    """``decode`` for ordinary files, ``scan`` for files too long to hold whole (see STREAM_SAMPLES)."""
    info = probe(path)
    return scan(path, info) if should_stream(info) else decode(path)


class StreamResampler:
    """libsoxr VHQ in streaming mode: the same filter as ``resample``, fed block by block."""

    def __init__(self, from_rate: int, to_rate: int) -> None:
        self.identity = from_rate == to_rate
        if not self.identity:
            import soxr

            self._stream = soxr.ResampleStream(from_rate, to_rate, 1, dtype="float32", quality="VHQ")

    def __call__(self, block: NDArray[np.float32], last: bool = False) -> NDArray[np.float32]:
        if self.identity:
            return np.ascontiguousarray(block, dtype=np.float32)
        out = self._stream.resample_chunk(np.ascontiguousarray(block, dtype=np.float32), last=last)
        return np.ascontiguousarray(out, dtype=np.float32)


def resampled_blocks(
    blocks: Iterable[NDArray[np.float32]], from_rate: int, to_rate: int
) -> Iterator[NDArray[np.float32]]:
    """A stream of mono blocks resampled to ``to_rate`` (flushed at the end)."""
    rs = StreamResampler(from_rate, to_rate)
    for block in blocks:
        out = rs(block)
        if out.size:
            yield out
    tail = rs(np.zeros(0, dtype=np.float32), last=True)
    if tail.size:
        yield tail
