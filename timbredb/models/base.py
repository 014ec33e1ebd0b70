"""The one model interface every embedding model implements.

A model declares its spec (id, checkpoint, sample rate, dim, similarity, ...)
and implements at most three things: ``_load`` (heavy imports and weights),
``_embed_windows`` (a batch of mono float32 windows at the model's sample rate
-> an (n, dim) array) and, for text-capable models, ``_embed_texts``. The base
class does the rest: explicit resampling, deterministic windowing and pooling,
batching, and shape/dtype/finiteness checks.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import platform
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from timbredb import __version__
from timbredb.audio import (
    LIBROSA_RESAMPLER,
    RESAMPLER,
    Audio,
    StreamedAudio,
    resample,
    resample_like_librosa,
    resampled_blocks,
)
from timbredb.errors import (
    AudioError,
    ModelUnavailableError,
    TimbreDBError,
    VocabularyError,
)
from timbredb.parallel import ordered_map
from timbredb.spaces import SpaceRecord


@dataclass(frozen=True)
class Availability:
    usable: bool
    reason: str  # why not, and the exact fix; "" when usable


@dataclass(frozen=True)
class Pin:
    """The published identity of one weights file: hub commit and content digest.

    Attributes:
        repo_id: hub repository, e.g. "lukewys/laion_clap".
        filename: the file in it.
        revision: the hub commit (40 hex) `models fetch` downloads; None if no public source gives it.
        sha256: the file's sha256 (the LFS oid); None if no public source gives it ("unpinned").
        size_bytes: the file's size, where published.
        source: where the values were published (cited in docs/models.md).
    """

    repo_id: str
    filename: str
    revision: str | None = None
    sha256: str | None = None
    size_bytes: int | None = None
    source: str = ""

    @property
    def key(self) -> str:
        return f"{self.repo_id}/{self.filename}"


@dataclass(frozen=True)
class ModelSpec:
    """Cheap metadata of a registered model. Building one imports nothing heavy.

    Attributes:
        id: what --model/--models accept.
        family: model family (e.g. "CLAP", "baseline").
        checkpoint: default checkpoint name.
        checkpoints: every checkpoint name selectable as ``id@name``.
        dim: embedding dimension.
        sample_rate: Hz the model consumes.
        modalities: ("audio",) or ("audio", "text").
        license: licence of the weights (or of the data the baseline is built from).
        description: one line for `models list`.
        loader: "module:Class" implementing EmbeddingModel, imported on demand.
        requires: import names that must be installed (checked without importing).
        extra: the pip extra that installs them.
        availability: optional "module:function(spec, data_dir, checkpoint) -> Availability"
            for checks beyond installed packages (weights present, data present).
        similarity: how vectors compare ("cosine").
        dims: per-checkpoint dimension overrides.
        sample_rates: per-checkpoint sample-rate overrides.
        pins: published revision and sha256 of weights files, keyed by "repo_id/filename"
            (see ``Pin``; checked after `models fetch` and on first load).
        scope: the datasets the model embeds when it is selected by default (`timbredb ingest`
            without --models); None = everything. Named in --models, it embeds everything.
    """

    id: str
    family: str
    checkpoint: str
    dim: int
    sample_rate: int
    modalities: tuple[str, ...]
    license: str
    description: str
    loader: str
    checkpoints: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()
    extra: str | None = None
    availability: str | None = None
    similarity: str = "cosine"
    dims: dict[str, int] = field(default_factory=dict)
    sample_rates: dict[str, int] = field(default_factory=dict)
    pins: dict[str, Pin] = field(default_factory=dict)
    scope: tuple[str, ...] | None = None

    @property
    def has_text(self) -> bool:
        return "text" in self.modalities

    def dim_for(self, checkpoint: str) -> int:
        return self.dims.get(checkpoint, self.dim)

    def sample_rate_for(self, checkpoint: str) -> int:
        return self.sample_rates.get(checkpoint, self.sample_rate)


@dataclass(frozen=True)
class WindowPolicy:
    """How a clip of any length becomes one vector, deterministically.

    kinds:
        whole: the whole clip in one window (baselines).
        consecutive: windows of ``window_s`` every ``hop_s`` from the start; when
            the clip does not end on a window boundary, one last window is aligned
            to the clip's end, so every sample is covered by real audio. Clips
            shorter than one window are padded (``pad``: "repeat" tiles the clip,
            "repeatpad" repeats whole copies then appends silence, as LAION-CLAP
            trained, "zero" appends silence). Window vectors are pooled by ``pooling``
            ("mean": mean of the raw vectors; "mean-l2": that mean, L2-normalised).
        first: only the first window (padded if short), for paper-compatible runs.
    """

    kind: str = "whole"
    window_s: float | None = None
    hop_s: float | None = None
    pad: str = "zero"
    pooling: str = "mean"
    name: str = "default"

    def windows(self, samples: NDArray[np.float32], sample_rate: int) -> list[NDArray[np.float32]]:
        if self.kind == "whole" or self.window_s is None:
            return [samples]
        win = int(round(self.window_s * sample_rate))
        n = samples.shape[0]
        if n <= win:
            return [self._pad(samples, win)]
        if self.kind == "first":
            return [samples[:win]]
        hop = int(round((self.hop_s or self.window_s) * sample_rate))
        starts = list(range(0, n - win + 1, hop))
        if starts[-1] + win < n:
            starts.append(n - win)
        return [samples[s : s + win] for s in starts]

    def _pad(self, samples: NDArray[np.float32], win: int) -> NDArray[np.float32]:
        n = samples.shape[0]
        if n == win:
            return samples
        if self.pad == "repeat":
            reps = int(math.ceil(win / n))
            return np.tile(samples, reps)[:win]
        out = np.zeros(win, dtype=np.float32)
        if self.pad == "repeatpad":
            reps = win // n
            out[: reps * n] = np.tile(samples, reps)
            return out
        out[:n] = samples
        return out

    def pool(self, vectors: NDArray[np.float32]) -> NDArray[np.float32]:
        v = vectors.astype(np.float64).mean(axis=0)
        return self._finish(v)

    def pool_sum(self, total: NDArray[np.float64], count: int) -> NDArray[np.float32]:
        """``pool`` from a running float64 sum of ``count`` window vectors (streamed clips)."""
        return self._finish(total / count)

    def _finish(self, v: NDArray[np.float64]) -> NDArray[np.float32]:
        if self.pooling == "mean-l2":
            norm = np.linalg.norm(v)
            if norm > 0:
                v = v / norm
        return v.astype(np.float32)

    def stream_windows(
        self, blocks: Iterable[NDArray[np.float32]], sample_rate: int
    ) -> Iterator[NDArray[np.float32]]:
        """``windows`` of a clip that arrives in blocks, in the same order, holding at most a window and a block.

        The last window is aligned to the clip's end as in ``windows``; a clip no longer
        than one window gives one padded window.
        """
        if self.kind == "whole" or self.window_s is None:
            raise ValueError("a whole-clip policy has no windows to stream")
        win = int(round(self.window_s * sample_rate))
        hop = win if self.kind == "first" else int(round((self.hop_s or self.window_s) * sample_rate))
        buf = np.zeros(0, dtype=np.float32)
        offset = 0  # absolute index of buf[0]
        start = 0  # next window's start
        last_end = 0  # end of the last window given
        for block in blocks:
            buf = np.concatenate([buf, np.asarray(block, dtype=np.float32)])
            while start + win <= offset + buf.shape[0] and not (self.kind == "first" and last_end):
                yield buf[start - offset : start - offset + win].copy()
                last_end = start + win
                start += hop
            # keep what a later window needs: from the next start, and the last `win` samples for the end window
            keep_from = max(0, min(start, offset + buf.shape[0] - win) - offset)
            buf, offset = buf[keep_from:], offset + keep_from
        n = offset + buf.shape[0]
        if last_end == 0:
            yield self._pad(buf, win)
        elif self.kind != "first" and last_end < n:
            yield buf[buf.shape[0] - win :].copy()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


ProgressFn = Callable[[int], None]


def package_versions(names: Sequence[str]) -> dict[str, str]:
    return dict(_package_versions(tuple(names)))


@functools.cache
def _package_versions(names: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    # cached: provenance is written with every batch, and each lookup scans site-packages
    out = []
    for name in names:
        try:
            out.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            out.append((name, "not installed"))
    return tuple(out)


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def check_length(audio: Audio | StreamedAudio, model_id: str, sample_rate: int, min_samples: int) -> None:
    """Raise AudioError if the clip has fewer than ``min_samples`` samples at ``sample_rate`` (the model's)."""
    n_at_model_rate = int(audio.n_frames * sample_rate // audio.sample_rate)
    if n_at_model_rate < min_samples:
        raise AudioError(
            audio.source,
            f"too short for {model_id}: {audio.duration_s:.4f} s, needs at least {min_samples / sample_rate:.4f} s",
        )


@dataclass(frozen=True)
class HostPrep:
    """``EmbeddingModel.prepare`` without the model: check the length, resample, cut windows.

    Picklable and torch-free, so an ingest worker process runs it; the model's own
    ``prepare`` runs exactly these steps (same functions, same order), so the windows
    are the same bits.

    Attributes:
        model_id: named in the too-short message.
        sample_rate: the model's rate in Hz.
        min_samples: the shortest input at the model rate.
        librosa_resampling: resample as librosa.load (the paper policies) instead of soxr VHQ.
        policy: the window policy.
    """

    model_id: str
    sample_rate: int
    min_samples: int
    librosa_resampling: bool
    policy: WindowPolicy

    @property
    def rate_key(self) -> tuple[int, bool]:
        """Models with the same key share one resampled signal per clip."""
        return (self.sample_rate, self.librosa_resampling)

    def check(self, audio: Audio | StreamedAudio) -> None:
        check_length(audio, self.model_id, self.sample_rate, self.min_samples)

    def resample(self, samples: NDArray[np.float32], from_rate: int) -> NDArray[np.float32]:
        if self.librosa_resampling:
            return resample_like_librosa(samples, from_rate, self.sample_rate)
        return resample(samples, from_rate, self.sample_rate)

    def windows(self, resampled: NDArray[np.float32]) -> list[NDArray[np.float32]]:
        return self.policy.windows(resampled, self.sample_rate)


class EmbeddingModel(ABC):
    """Base class: resampling, windowing, batching and checks around three hooks.

    Args:
        spec: the registered metadata.
        checkpoint: a name from ``spec.checkpoints`` (default ``spec.checkpoint``).
        device: "auto", "cpu", "cuda" or "mps" (ignored by CPU-only baselines).
        dtype: "float32", "float16" or "bfloat16" (half precision only on a GPU).
        data_dir: the timbredb data root, for models built from data files.
        weights: a local weights file that replaces the hub download.
        policy: a window policy other than the model's default, or the name of
            one of ``named_policies()`` (e.g. "paper").
        allow_unpinned: use weights whose sha256 differs from the pinned one (reported, not refused).
    """

    #: packages whose versions go into every batch's provenance
    provenance_packages: tuple[str, ...] = ("numpy",)
    #: the shortest input (in samples at the model rate) the model accepts
    min_samples: int = 1
    #: True for spaces compared pair by pair (no vector per clip; see timbredb.models.pairwise)
    pairwise: bool = False

    def __init__(
        self,
        spec: ModelSpec,
        *,
        checkpoint: str | None = None,
        device: str = "auto",
        dtype: str = "float32",
        data_dir: Path | None = None,
        weights: str | Path | None = None,
        policy: WindowPolicy | str | None = None,
        allow_unpinned: bool = False,
    ) -> None:
        self.spec = spec
        self.allow_unpinned = allow_unpinned
        self.checkpoint = checkpoint or spec.checkpoint
        known = spec.checkpoints or (spec.checkpoint,)
        if self.checkpoint not in known:
            raise TimbreDBError(
                f"{spec.id}: unknown checkpoint {self.checkpoint!r}; choose one of: {', '.join(known)}"
            )
        self.requested_device = device
        self.dtype = dtype
        self.data_dir = data_dir
        self.weights = Path(weights) if weights else None
        self.sample_rate = spec.sample_rate_for(self.checkpoint)
        if isinstance(policy, str):
            named = self.named_policies()
            if policy not in named:
                raise TimbreDBError(f"{spec.id}: unknown policy {policy!r}; choose one of: {', '.join(named)}")
            policy = named[policy]
        self.policy = policy or self.default_policy()
        self.dim = spec.dim_for(self.checkpoint)
        self._loaded = False

    # ------------------------------------------------------------ hooks
    def default_policy(self) -> WindowPolicy:
        return WindowPolicy()

    def named_policies(self) -> dict[str, WindowPolicy]:
        """Policies selectable by name (``--model id/name``), the default first."""
        return {"default": self.default_policy()}

    def _load(self) -> None:
        """Import heavy packages and load weights. Called once, on first use."""

    @abstractmethod
    def _embed_windows(self, windows: list[NDArray[np.float32]]) -> NDArray[np.float32]:
        """Embed mono float32 windows at ``self.sample_rate``; returns (len(windows), dim)."""

    def _embed_texts(self, texts: list[str]) -> NDArray[np.float32]:
        raise ModelUnavailableError(f"{self.spec.id} has no text encoder (audio only)")

    def check_text(self, text: str) -> None:
        """Raise VocabularyError if this model cannot embed ``text`` (closed vocabularies)."""

    @property
    def device(self) -> str:
        """The device actually used (after ``auto`` is resolved)."""
        return "cpu"

    @property
    def checkpoint_sha256(self) -> str | None:
        return None

    def extra_provenance(self) -> dict[str, Any]:
        return {}

    @property
    def needs_channels(self) -> bool:
        """Whether ``prepare`` reads the source channels (``Audio.channel_samples``), not the mono mix."""
        return False

    @property
    def librosa_resampling(self) -> bool:
        """Resample as ``librosa.load`` does (the study's loader) instead of timbredb's VHQ."""
        return False

    def channel_rule(self) -> str:
        """How the source channels become the model's one channel (part of the space)."""
        return "mean of channels"

    def resampler(self) -> str:
        """The resampler's name (part of the space)."""
        return LIBROSA_RESAMPLER if self.librosa_resampling else RESAMPLER

    def resample(self, samples: NDArray[np.float32], from_rate: int) -> NDArray[np.float32]:
        """Mono samples at ``from_rate`` -> the model's rate, with ``resampler()``."""
        if self.librosa_resampling:
            return resample_like_librosa(samples, from_rate, self.sample_rate)
        return resample(samples, from_rate, self.sample_rate)

    # ------------------------------------------------------------ identity
    @property
    def label(self) -> str:
        """The name users pass to --model: the id for the default checkpoint and policy."""
        label = self.spec.id
        if self.checkpoint != self.spec.checkpoint:
            label += f"@{self.checkpoint}"
        if self.policy != self.default_policy():
            label += f"/{self.policy.name}"
        return label

    def policy_dict(self) -> dict[str, Any]:
        return {
            "sample_rate": self.sample_rate,
            "resampler": self.resampler(),
            "mono": self.channel_rule(),
            "window": self.policy.to_dict(),
            **self.extra_policy(),
        }

    def extra_policy(self) -> dict[str, Any]:
        """Model-specific preprocessing facts that change vectors (e.g. int16 quantisation)."""
        return {}

    def identity(self) -> dict[str, Any]:
        """What the space id hashes: everything that decides the vectors."""
        return {"model_id": self.spec.id, "checkpoint": self.checkpoint, "policy": self.policy_dict()}

    @property
    def space_id(self) -> str:
        key = json.dumps(self.identity(), sort_keys=True)
        return hashlib.sha256(key.encode()).hexdigest()[:16]

    def space_record(self) -> SpaceRecord:
        return SpaceRecord(
            space_id=self.space_id,
            label=self.label,
            model_id=self.spec.id,
            family=self.spec.family,
            checkpoint=self.checkpoint,
            checkpoint_sha256=self.checkpoint_sha256 if self._loaded else None,
            policy=self.policy_dict(),
            dim=self.dim,
            sample_rate=self.sample_rate,
            similarity=self.spec.similarity,
            modalities=self.spec.modalities,
            comparison="pairwise" if self.pairwise else "vector",
        )

    def provenance(self) -> dict[str, Any]:
        self.ensure_loaded()
        return {
            "timbredb": __version__,
            "python": platform.python_version(),
            "platform": platform.platform(),
            "packages": package_versions(self.provenance_packages),
            "checkpoint": self.checkpoint,
            "checkpoint_sha256": self.checkpoint_sha256,
            "device": self.device,
            "dtype": self.dtype,
            **self.extra_provenance(),
        }

    # ------------------------------------------------------------ the work
    def ensure_loaded(self) -> None:
        if not self._loaded:
            self._load()
            self._loaded = True

    def check_audio(self, audio: Audio | StreamedAudio) -> None:
        """Raise AudioError if the clip is too short for this model (no resampling needed)."""
        check_length(audio, self.spec.id, self.sample_rate, self.min_samples)

    def prepare(self, audio: Audio) -> list[NDArray[np.float32]]:
        """Resample to the model rate and cut into windows; raises AudioError if too short."""
        self.check_audio(audio)
        x = self.resample(audio.samples, audio.sample_rate)
        return self.policy.windows(x, self.sample_rate)

    # ------------------------------------------------------------ the pipelined ingest (timbredb.ingest.pipeline)
    #: the model is cheap, NumPy-only and rebuilt from its name (``load(label, data_dir=...)``), so ingest
    #: worker processes compute its vectors themselves (the baselines); otherwise workers prepare windows
    worker_embeds: bool = False

    def host_prep(self) -> HostPrep | None:
        """What ``prepare`` does, as a picklable recipe a worker process runs without this object (or torch).

        None when a subclass changes ``check_audio``, ``resample`` or ``prepare`` (then the
        pipeline prepares its clips with the model itself, in the process that holds it).
        """
        cls = type(self)
        if (cls.prepare is not EmbeddingModel.prepare or cls.resample is not EmbeddingModel.resample
                or cls.check_audio is not EmbeddingModel.check_audio):
            return None
        return self._host_prep()

    def _host_prep(self) -> HostPrep:
        return HostPrep(self.spec.id, self.sample_rate, self.min_samples, self.librosa_resampling, self.policy)

    def embed_audio(
        self, clips: Sequence[Audio], batch_size: int = 16, progress: ProgressFn | None = None
    ) -> NDArray[np.float32]:
        """One pooled vector per clip, (len(clips), dim) float32.

        Windows of all clips are embedded ``batch_size`` at a time, so the result
        of a clip does not depend on which other clips share its call beyond
        floating-point batching effects.
        """
        self.ensure_loaded()
        return self.embed_prepared(ordered_map(self.prepare, clips), batch_size, progress)

    def embed_prepared(
        self, per_clip: Sequence[list[NDArray[np.float32]]], batch_size: int = 16, progress: ProgressFn | None = None
    ) -> NDArray[np.float32]:
        """``embed_audio`` for clips already through ``prepare`` (resampled and windowed elsewhere,
        e.g. in the Ray engine's CPU stage): the same batching and pooling, so the same bits."""
        self.ensure_loaded()
        flat = [w for ws in per_clip for w in ws]
        vecs = self._run_batches(flat, batch_size, self._embed_windows, "audio")
        out = np.empty((len(per_clip), self.dim), dtype=np.float32)
        i = 0
        for k, ws in enumerate(per_clip):
            out[k] = self.policy.pool(vecs[i : i + len(ws)])
            i += len(ws)
            if progress:
                progress(1)
        return out

    def embed_streamed(self, audio: StreamedAudio, batch_size: int = 16) -> NDArray[np.float32]:
        """The (1, dim) vector of a long file, embedded block by block.

        Memory stays at a block of audio plus a batch of windows (and, for whole-clip
        baselines, their running features) whatever the file's length. Windowed models
        give the vector ``embed_audio`` would give up to float rounding (the running
        mean adds the windows in order).
        """
        self.check_audio(audio)
        if self.librosa_resampling or self.needs_channels:
            # the replication policies resample (and join channels) as the study's loader did, on whole files
            raise AudioError(
                audio.source,
                f"too long for the {self.policy.name!r} policy of {self.spec.id} ({audio.duration_s:.0f} s; it "
                "replicates the study's whole-file loader): use the default policy for long files",
            )
        self.ensure_loaded()
        blocks = resampled_blocks(audio.mono_blocks(), audio.sample_rate, self.sample_rate)
        if self.policy.kind == "whole" or self.policy.window_s is None:
            return self._embed_whole_stream(blocks, audio)[None, :].astype(np.float32)
        total = np.zeros(self.dim, dtype=np.float64)
        count = 0
        batch: list[NDArray[np.float32]] = []
        for window in self.policy.stream_windows(blocks, self.sample_rate):
            batch.append(window)
            if len(batch) == batch_size:
                total += self._run_batches(batch, batch_size, self._embed_windows, "audio").astype(np.float64).sum(axis=0)
                count += len(batch)
                batch = []
        if batch:
            total += self._run_batches(batch, batch_size, self._embed_windows, "audio").astype(np.float64).sum(axis=0)
            count += len(batch)
        return self.policy.pool_sum(total, count)[None, :]

    def _embed_whole_stream(self, blocks: Iterable[NDArray[np.float32]], audio: StreamedAudio) -> NDArray[np.float64]:
        """A whole-clip model's vector from the clip's blocks at the model rate (baselines override this)."""
        raise AudioError(
            audio.source,
            f"too long for {self.spec.id} ({audio.duration_s:.0f} s): it embeds whole clips and cannot stream them",
        )

    def embed_texts(self, texts: Sequence[str], batch_size: int = 64) -> NDArray[np.float32]:
        """One vector per text, (len(texts), dim) float32."""
        if not self.spec.has_text:
            raise ModelUnavailableError(f"{self.spec.id} has no text encoder (audio only)")
        if isinstance(texts, str):
            # a bare str is a Sequence[str] of characters (msclap embeds it letter by letter)
            raise TimbreDBError(f"{self.spec.id}: embed_texts takes a list of texts, not one str ({texts[:40]!r})")
        for t in texts:
            if not isinstance(t, str) or not t.strip():
                raise VocabularyError(f"{self.spec.id}: cannot embed an empty text")
            self.check_text(t)
        self.ensure_loaded()
        return self._run_batches(list(texts), batch_size, self._embed_texts, "text")

    def _run_batches(self, items: list[Any], batch_size: int, fn: Callable[[list[Any]], Any], what: str) -> NDArray[np.float32]:
        if batch_size < 1:
            raise TimbreDBError(f"batch size must be at least 1, got {batch_size}")
        chunks = []
        for start in range(0, len(items), batch_size):
            batch = items[start : start + batch_size]
            vec = np.asarray(fn(batch))
            if vec.shape != (len(batch), self.dim):
                raise TimbreDBError(
                    f"{self.spec.id}: {what} encoder returned shape {vec.shape}, expected {(len(batch), self.dim)}"
                )
            if not np.issubdtype(vec.dtype, np.floating):
                raise TimbreDBError(f"{self.spec.id}: {what} encoder returned dtype {vec.dtype}")
            vec = vec.astype(np.float32, copy=False)
            if not np.isfinite(vec).all():
                hint = (
                    "; float16 overflowed: use --dtype bfloat16 (float32's range) or float32"
                    if self.dtype == "float16"
                    else ""
                )
                raise TimbreDBError(f"{self.spec.id}: {what} encoder returned non-finite values{hint}")
            chunks.append(vec)
        if not chunks:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.concatenate(chunks, axis=0)
