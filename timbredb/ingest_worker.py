"""The worker-process side of the pipelined ingest (timbredb.ingest.pipeline): one file in, its clip out.

A worker reads a file, decodes it, hashes it, down-mixes it and, for every model
the file needs, either computes the vector itself (models with ``worker_embeds``:
the NumPy baselines, rebuilt here from their names) or resamples and cuts the
model's windows (``HostPrep``: the steps of ``EmbeddingModel.prepare``, the same
functions, so the same bits). A clip is resampled once per (rate, resampler) and
shared by the models that need that rate. Windows and samples travel back in one
POSIX shared-memory segment per file (the pipe carries only their offsets), so the
process that runs the model does not copy megabytes through a pipe.

This module imports NumPy, soundfile and soxr (through timbredb.audio), never torch
and never the store: a worker stays small and starts fast. Long files (more than
``audio.STREAM_SAMPLES``) are never decoded whole here: they are hashed block by
block, and the baselines embed them block by block; a neural model's long file is
streamed by the process that holds the model.
"""

from __future__ import annotations

import ctypes
import itertools
import os
import select
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from multiprocessing import shared_memory
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from timbredb import audio as audio_mod
from timbredb.audio import Audio, StreamedAudio, decode, open_audio
from timbredb.errors import AudioError, TimbreDBError
from timbredb.models.base import HostPrep
from timbredb.parallel import limit_threads

#: what a worker does for one model: compute the vector, cut the windows, or send the decoded clip
#: (the model's own ``prepare`` then runs where the model is: ms-clap/paper resamples with torchaudio)
VECTOR, WINDOWS, AUDIO = "vector", "windows", "audio"
#: outputs that are not arrays: the model's long file is streamed by the main process; a per-model problem
STREAM, ERROR = "stream", "error"


@dataclass(frozen=True)
class ModelPlan:
    """How a worker serves one model of the run.

    Attributes:
        kind: VECTOR, WINDOWS or AUDIO.
        label: the model's name, as ``timbredb.models.load`` takes it (VECTOR models are rebuilt from it).
        space_id: checked against the rebuilt model's (the same name and data dir give the same space).
        prep: the model's ``host_prep()`` (VECTOR and WINDOWS).
        data_dir: the data root VECTOR models are built from (socialfx-eq reads its curves there).
    """

    kind: str
    label: str
    space_id: str
    prep: HostPrep | None = None
    data_dir: str | None = None


@dataclass(frozen=True)
class WorkerConfig:
    """Everything a worker process needs, sent once when it starts."""

    plans: tuple[ModelPlan, ...]
    batch_size: int
    stream_samples: int
    block_frames: int
    threads: int
    shm_prefix: str
    parent_pid: int
    nice: int = 0


@dataclass(frozen=True)
class ClipInfo:
    """What the store records of a clip (the fields of ``Audio`` without its samples)."""

    sha256: str
    source: str
    sample_rate: int
    channels: int
    n_frames: int

    @property
    def duration_s(self) -> float:
        return self.n_frames / float(self.sample_rate)


#: an array in a result's segment: (byte offset, shape)
Ref = tuple[int, tuple[int, ...]]


@dataclass
class FileResult:
    """One file, prepared.

    Attributes:
        error: the decode problem (one line, ``PATH: problem``); then nothing else is set.
        clip: the clip's record (a ``StreamedAudio`` for a long file).
        outputs: model index -> (kind, payload): (VECTOR, (1, dim) array), (WINDOWS, [Ref...]),
            (AUDIO, (mono Ref, channels Ref or None)), (STREAM, None), (ERROR, message).
        shm: the shared-memory segment holding the Refs' arrays (None when there are none).
    """

    error: str | None = None
    clip: ClipInfo | StreamedAudio | None = None
    outputs: dict[int, tuple[str, Any]] = field(default_factory=dict)
    shm: str | None = None


# ---------------------------------------------------------------- worker process state
_CONFIG: WorkerConfig | None = None
_MODELS: dict[int, Any] = {}
_COUNTER = itertools.count()


def init_worker(config: WorkerConfig) -> None:
    """Process initializer: thread budget, signals, and the parent's settings."""
    global _CONFIG
    _CONFIG = config
    # Ctrl-C reaches the whole process group: the main process stops the pipeline, workers must not die mid-file
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent()
    threading.Thread(target=_exit_with, args=(config.parent_pid,), name="timbredb-watch", daemon=True).start()
    limit_threads(config.threads)
    if config.nice:
        # below the process running the model's forward on the same cores: its threads wait for
        # the slowest of them, so a worker taking a core from one stalls them all; the worker then
        # runs on what the forward leaves (its queue is filled ahead, it needs ~1/8 of a core)
        os.nice(config.nice)
    # the parent's long-file settings (tests lower them), so a worker streams what the parent would
    audio_mod.STREAM_SAMPLES = config.stream_samples
    audio_mod.BLOCK_FRAMES = config.block_frames


def _exit_with(pid: int) -> None:
    """Exit when the ingest process ``pid`` does (it may be killed with -9: nothing else would tell us).

    A worker's parent is the forkserver, which lives as long as any worker holds its pipe,
    and a worker waits on a queue whose other end it holds itself: without this, the
    workers of a killed ingest would wait forever.
    """
    try:
        fd = os.pidfd_open(pid)  # Linux 5.3+: readable once the process has exited
    except (AttributeError, OSError):
        fd = None
    if fd is not None:
        select.select([fd], [], [])
        os._exit(1)
    while True:
        time.sleep(0.5)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            os._exit(1)
        except PermissionError:
            continue


def _die_with_parent() -> None:
    """Linux: SIGKILL this worker when its parent (the forkserver) exits."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        return
    if os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(1)


def _model(index: int) -> Any:
    """A VECTOR model, built once per worker from its name (cheap: the baselines)."""
    if index not in _MODELS:
        from timbredb.models import load

        assert _CONFIG is not None
        plan = _CONFIG.plans[index]
        model = load(plan.label, data_dir=Path(plan.data_dir) if plan.data_dir else None)
        if model.space_id != plan.space_id:
            raise TimbreDBError(f"{plan.label}: a worker built space {model.space_id}, the run uses {plan.space_id}")
        model.ensure_loaded()
        _MODELS[index] = model
    return _MODELS[index]


def worker_facts(hold_s: float = 0.0) -> dict[str, Any]:
    """What a worker looks like from inside (tests: no torch, the thread budget).

    Args:
        hold_s: stay this long, so that each of several calls lands on another worker.
    """
    from threadpoolctl import threadpool_info

    time.sleep(hold_s)

    return {"pid": os.getpid(), "torch": "torch" in sys.modules, "duckdb": "duckdb" in sys.modules,
            "nice": os.nice(0), "threads": [(i["internal_api"], i["num_threads"]) for i in threadpool_info()]}


# ---------------------------------------------------------------- one file
def prepare_file(path: str, needs: tuple[int, ...], keep_channels: bool) -> FileResult:
    """Decode one file and serve every model in ``needs`` (indexes into the config's plans)."""
    assert _CONFIG is not None, "init_worker did not run"
    try:
        # a model that reads the source channels (ms-clap/paper) gets them, decoded whole, as in the local engine
        clip = decode(path, keep_channels=True) if keep_channels else open_audio(path)
    except AudioError as exc:
        return FileResult(error=str(exc))
    packer = _Packer()
    result = FileResult()
    if isinstance(clip, StreamedAudio):
        result.clip = clip
        for i in needs:
            result.outputs[i] = _serve_streamed(i, clip)
    else:
        result.clip = ClipInfo(clip.sha256, clip.source, clip.sample_rate, clip.channels, clip.n_frames)
        resampled: dict[tuple[int, bool], NDArray[np.float32]] = {}
        for i in needs:
            result.outputs[i] = _serve(i, clip, resampled, packer)
    result.shm = packer.write(_CONFIG.shm_prefix)
    return result


def _serve_streamed(index: int, clip: StreamedAudio) -> tuple[str, Any]:
    assert _CONFIG is not None
    plan = _CONFIG.plans[index]
    if plan.kind != VECTOR:
        return (STREAM, None)
    model = _model(index)
    try:
        model.check_audio(clip)
        return (VECTOR, model.embed_streamed(clip, _CONFIG.batch_size))
    except AudioError as exc:
        return (ERROR, str(exc))


def _serve(index: int, clip: Audio, resampled: dict[tuple[int, bool], NDArray[np.float32]],
           packer: _Packer) -> tuple[str, Any]:
    assert _CONFIG is not None
    plan = _CONFIG.plans[index]
    if plan.kind == AUDIO:
        channels = None if clip.channel_samples is None else packer.add(clip.channel_samples)
        return (AUDIO, (packer.add(clip.samples), channels))
    prep = plan.prep
    assert prep is not None
    try:
        prep.check(clip)
    except AudioError as exc:
        return (ERROR, str(exc))
    key = prep.rate_key
    if key not in resampled:
        resampled[key] = prep.resample(clip.samples, clip.sample_rate)
    windows = prep.windows(resampled[key])
    if plan.kind == VECTOR:
        return (VECTOR, _model(index).embed_prepared([windows], _CONFIG.batch_size))
    return (WINDOWS, [packer.add(w) for w in windows])


class _Packer:
    """Arrays laid end to end in one shared-memory segment."""

    def __init__(self) -> None:
        self.arrays: list[NDArray[np.float32]] = []
        self.size = 0

    def add(self, a: NDArray[np.float32]) -> Ref:
        a = np.ascontiguousarray(a, dtype=np.float32)
        ref = (self.size, tuple(int(n) for n in a.shape))
        self.arrays.append(a)
        self.size += a.nbytes
        return ref

    def write(self, prefix: str) -> str | None:
        if not self.arrays:
            return None
        # registered with the resource tracker the pipeline shares: a segment a killed run never read is
        # removed when the run's processes are gone; the reader unlinks it as soon as it maps it
        shm = shared_memory.SharedMemory(create=True, size=max(1, self.size),
                                         name=f"{prefix}{os.getpid()}_{next(_COUNTER)}")
        try:
            offset = 0
            for a in self.arrays:
                view: NDArray[np.float32] = np.ndarray(a.shape, dtype=np.float32, buffer=shm.buf, offset=offset)
                view[...] = a
                offset += a.nbytes
                del view
        finally:
            shm.close()
        self.arrays = []
        return shm.name


# ---------------------------------------------------------------- the reading side (main process)
class Segment:
    """A result's shared-memory segment, mapped by the process that consumes it.

    The name is unlinked at once (nothing is left in /dev/shm whatever happens next);
    the mapping lives until ``close``.
    """

    def __init__(self, name: str) -> None:
        self._shm = shared_memory.SharedMemory(name=name)
        self._shm.unlink()

    def array(self, ref: Ref) -> NDArray[np.float32]:
        offset, shape = ref
        return np.ndarray(shape, dtype=np.float32, buffer=self._shm.buf, offset=offset)

    def close(self) -> None:
        """Unmap, or (while arrays that view it are still alive, after an exception) unmap later."""
        _STILL_MAPPED.append(self._shm)
        for shm in list(_STILL_MAPPED):
            try:
                shm.close()
            except BufferError:
                continue
            _STILL_MAPPED.remove(shm)


#: segments whose arrays were still alive when they were closed (retried at the next close)
_STILL_MAPPED: list[shared_memory.SharedMemory] = []


def discard(result: FileResult) -> None:
    """Drop a result that will not be consumed (its segment's name, if it still has one)."""
    if result.shm is None:
        return
    try:
        shm = shared_memory.SharedMemory(name=result.shm)
    except FileNotFoundError:
        return
    shm.unlink()
    shm.close()
