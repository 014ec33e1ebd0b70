"""A fine-tuned space as a model: its base model plus the stored weights.

``registry.load("laion-clap+ft-1a2b3c4d", store_path=...)`` returns a ``TunedModel``,
so `describe`, `ingest --models` and `serve` embed new audio (and words) in a
tuned space as in any other: the base model embeds, then the adapter maps the
pooled vector (``adapter.py``, NumPy), or the base model runs with the LoRA
weights injected into its audio encoder (``lora.py``). The weights come from the
store the space lives in (``finetunes.weights``), checked against their sha256.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from timbredb.audio import Audio, StreamedAudio
from timbredb.errors import ModelUnavailableError, UnknownModelError
from timbredb.finetune import adapter, weights
from timbredb.models.base import EmbeddingModel, HostPrep, ProgressFn, WindowPolicy
from timbredb.spaces import SpaceRecord


class TunedModel(EmbeddingModel):
    """The base model, then the tuned part; identity, label and provenance are the tuned space's.

    Args:
        base: the base space's model (not loaded yet).
        record: the ``finetunes`` row (``Store.finetune``), weights included.
        space: the tuned space's stored record.
    """

    def __init__(self, base: EmbeddingModel, record: dict[str, Any], space: SpaceRecord) -> None:
        # not EmbeddingModel.__init__: the identity is the stored space's, not a registry checkpoint's
        self.base = base
        self.record = record
        self._space = space
        self.spec = replace(base.spec, checkpoint=space.checkpoint, checkpoints=(space.checkpoint,), dims={},
                            sample_rates={}, pins={}, scope=None)
        self.checkpoint = space.checkpoint
        self.requested_device = base.requested_device
        self.dtype = base.dtype
        self.data_dir = base.data_dir
        self.weights = None
        self.allow_unpinned = base.allow_unpinned
        self.sample_rate = base.sample_rate
        self.policy = base.policy
        self.dim = space.dim
        self.min_samples = base.min_samples
        self.provenance_packages = base.provenance_packages
        self._loaded = False
        self._params: dict[str, NDArray[np.floating]] = {}

    # ------------------------------------------------------------ identity
    def default_policy(self) -> WindowPolicy:
        return self.base.policy

    @property
    def label(self) -> str:
        return self._space.label

    @property
    def space_id(self) -> str:
        return self._space.space_id

    def identity(self) -> dict[str, Any]:
        return {"finetune": self._space.space_id}

    def space_record(self) -> SpaceRecord:
        return self._space

    @property
    def method(self) -> str:
        return str(self.record["method"])

    @property
    def device(self) -> str:
        return self.base.device

    @property
    def checkpoint_sha256(self) -> str | None:
        return None

    @property
    def needs_channels(self) -> bool:
        return self.base.needs_channels

    @property
    def librosa_resampling(self) -> bool:
        return self.base.librosa_resampling

    def channel_rule(self) -> str:
        return self.base.channel_rule()

    def resampler(self) -> str:
        return self.base.resampler()

    def provenance(self) -> dict[str, Any]:
        self.ensure_loaded()
        out = dict(self.base.provenance())
        out["finetune"] = {"method": self.method, "base_space_id": self.record["base_space_id"],
                           "base_label": self.record["base_label"], "seed": int(self.record["seed"]),
                           "train_data_sha256": self.record["train_data_sha256"],
                           "weights_sha256": self.record["weights_sha256"]}
        return out

    # ------------------------------------------------------------ loading
    def _load(self) -> None:
        blob = self.record["weights"]
        if weights.sha256(blob) != self.record["weights_sha256"]:
            raise ModelUnavailableError(
                f"{self.label}: the stored weights do not match their recorded sha256 (the store was altered); "
                "run `timbredb check`"
            )
        self._params = weights.unpack(blob)
        self.base.ensure_loaded()
        if self.method == "lora":
            from timbredb.finetune import lora

            lora.inject(self.base, self.record["config"]["hyperparameters"], self._params)

    # ------------------------------------------------------------ the work
    def check_audio(self, audio: Audio | StreamedAudio) -> None:
        self.base.check_audio(audio)

    def check_text(self, text: str) -> None:
        self.base.check_text(text)

    def prepare(self, audio: Audio) -> list[NDArray[np.float32]]:
        return self.base.prepare(audio)

    def host_prep(self) -> HostPrep | None:
        # the base model's windows are this model's: the pipeline's workers prepare them
        return self.base.host_prep()

    def embed_prepared(
        self, per_clip: Sequence[list[NDArray[np.float32]]], batch_size: int = 16, progress: ProgressFn | None = None
    ) -> NDArray[np.float32]:
        self.ensure_loaded()
        return self._adapt(self.base.embed_prepared(per_clip, batch_size, progress))

    def _embed_windows(self, windows: list[NDArray[np.float32]]) -> NDArray[np.float32]:
        # windows are pooled by the base model first: the adapter maps pooled vectors
        raise NotImplementedError("TunedModel embeds whole clips (embed_audio), not windows")

    def _adapt(self, vectors: NDArray[np.float32]) -> NDArray[np.float32]:
        if self.method == "adapter" and vectors.shape[0]:
            return adapter.apply_audio(self._params, vectors)
        return vectors

    def embed_audio(
        self, clips: Sequence[Audio], batch_size: int = 16, progress: ProgressFn | None = None
    ) -> NDArray[np.float32]:
        self.ensure_loaded()
        return self._adapt(self.base.embed_audio(clips, batch_size, progress))

    def embed_streamed(self, audio: StreamedAudio, batch_size: int = 16) -> NDArray[np.float32]:
        self.ensure_loaded()
        return self._adapt(self.base.embed_streamed(audio, batch_size))

    def embed_texts(self, texts: Sequence[str], batch_size: int = 64) -> NDArray[np.float32]:
        self.ensure_loaded()
        vectors = self.base.embed_texts(texts, batch_size)
        if self.method == "adapter" and vectors.shape[0]:
            return adapter.apply_text(self._params, vectors)
        return vectors


def load_tuned(name: str, store_path: Path | None, **kwargs: Any) -> TunedModel:
    """The model of the fine-tuned space ``name`` (its label or space id) stored in ``store_path``.

    Args:
        kwargs: registry.load's options for the base model (device, dtype, data_dir, allow_unpinned).

    Raises:
        UnknownModelError: no store given, or it holds no fine-tuned space of that name.
    """
    from timbredb.models.registry import load
    from timbredb.store import Store

    if store_path is None or not Path(store_path).exists():
        raise UnknownModelError(
            f"{name}: a fine-tuned space lives in the store that trained it; pass --db with that store"
        )
    with Store(store_path, read_only=True) as store:
        record = store.finetune(name)
        spaces = [s for s in store.spaces(name) if record is not None and s.space_id == record["space_id"]]
    if record is None or not spaces:
        raise UnknownModelError(f"{name}: no fine-tuned space of that name in {store_path} (`timbredb sql "
                                "\"SELECT label FROM finetunes\"` lists them)")
    kwargs = {k: v for k, v in kwargs.items() if k in ("device", "dtype", "data_dir", "allow_unpinned")}
    base = load(record["base_label"], store_path=store_path, **kwargs)
    return TunedModel(base, record, spaces[0])
