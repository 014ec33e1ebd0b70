"""`laion-clap`: LAION-CLAP (Wu et al. 2023) through the `laion_clap` package.

Audio is decoded and resampled to 48 kHz by timbredb and cut into 10 s windows
here, so the package's own random crop of clips longer than 10 s never runs
(it is what makes the same file embed differently run to run). The package's
forward passes are used unchanged; around them timbredb guards its traps:

- the package loads three tokenizers at import and ``roberta-base`` in the
  constructor, from the hub: every file is checked in the cache first and the
  package is loaded with the hub forced offline (``timbredb models fetch``
  downloads them);
- ``load_ckpt()`` without a path wget-downloads into site-packages, prints
  hundreds of lines, and raises KeyError on checkpoints without
  ``text_branch.embeddings.position_ids``: timbredb reads the checkpoint from
  the hub cache itself and loads it strictly (every key must fit);
- input is quantised to int16 by the numpy API (clipping loud input, zeroing
  |x| < 1/32767): the default policy feeds float32 unchanged (DSP variants may
  exceed full scale); the "paper" policy quantises as the package does, and the
  choice is part of the space (``int16_quantise``). It also resamples as the
  file API's ``librosa.load(sr=48000)`` does (libsoxr HQ), so on files up to
  10 s its vectors are the file API's;
- autograd stays on in the API: every call runs in ``torch.inference_mode()``;
- the device defaults to CUDA when present: timbredb passes the device explicitly.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from timbredb.errors import ModelUnavailableError, TimbreDBError, VocabularyError
from timbredb.models import _compat, hub
from timbredb.models._torch import (
    UNREADABLE,
    TorchEmbeddingModel,
    checkpoint_availability,
    torch_load,
    unreadable,
)
from timbredb.models.base import Availability, ModelSpec, WindowPolicy

REPO = "lukewys/laion_clap"
#: checkpoint name -> (audio encoder config, feature fusion)
CHECKPOINTS: dict[str, tuple[str, bool]] = {
    "630k-audioset-best": ("HTSAT-tiny", False),
    "630k-best": ("HTSAT-tiny", False),
    "630k-audioset-fusion-best": ("HTSAT-tiny", True),
    "630k-fusion-best": ("HTSAT-tiny", True),
    "music_audioset_epoch_15_esc_90.14": ("HTSAT-base", False),
    "music_speech_epoch_15_esc_89.25": ("HTSAT-base", False),
    "music_speech_audioset_epoch_15_esc_89.98": ("HTSAT-base", False),
}
WINDOW_S = 10.0
CONTEXT_TOKENS = 77
_WEIGHTS = ("model.safetensors", "pytorch_model.bin")

#: what the package loads from the hub besides the checkpoint (import + constructor)
TEXT_FILES: dict[str, hub.HubFile] = {
    "roberta_config": hub.HubFile("roberta-base", ("config.json",), "text encoder config"),
    "roberta_weights": hub.HubFile("roberta-base", _WEIGHTS, "text encoder (overwritten by the checkpoint)"),
    "roberta_vocab": hub.HubFile("roberta-base", ("vocab.json",), "tokenizer"),
    "roberta_merges": hub.HubFile("roberta-base", ("merges.txt",), "tokenizer"),
    "bert_vocab": hub.HubFile("bert-base-uncased", ("vocab.txt",), "tokenizer loaded at import"),
    "bart_vocab": hub.HubFile("facebook/bart-base", ("vocab.json",), "tokenizer loaded at import"),
    "bart_merges": hub.HubFile("facebook/bart-base", ("merges.txt",), "tokenizer loaded at import"),
}


def checkpoint_file(checkpoint: str) -> hub.HubFile:
    return hub.HubFile(REPO, (f"{checkpoint}.pt",), "checkpoint")


def needed_files(checkpoint: str, with_checkpoint: bool = True) -> dict[str, hub.HubFile]:
    files = dict(TEXT_FILES)
    if with_checkpoint:
        files["checkpoint"] = checkpoint_file(checkpoint)
    return files


def availability(spec: ModelSpec, data_dir: Path | None, checkpoint: str) -> Availability:
    """Packages fit and every file is cached. Imports no torch."""
    return checkpoint_availability(spec, checkpoint, needed_files)


def read_state_dict(path: Path) -> tuple[dict[str, Any], bool]:
    """The tensors of a torch checkpoint, memory-mapped where possible.

    Returns:
        (state dict, whether it loaded with weights_only=True).
    """
    try:
        try:
            obj, safe = torch_load(path, weights_only=True), True
        except pickle.UnpicklingError:
            # the published .pt files come from the training script, which pickles more
            # than tensors; the package itself loads them with weights_only=False
            obj, safe = torch_load(path, weights_only=False), False
    except UNREADABLE as exc:
        raise unreadable("laion-clap", path, exc) from exc
    state = obj["state_dict"] if isinstance(obj, dict) and "state_dict" in obj else obj
    if not isinstance(state, dict):
        raise ModelUnavailableError(f"{path}: not a LAION-CLAP checkpoint (no state dict inside)")
    return state, safe


class LaionClapModel(TorchEmbeddingModel):
    """LAION-CLAP audio and text embeddings (512-d, unit length)."""

    provenance_packages = TorchEmbeddingModel.provenance_packages + ("laion_clap", "librosa", "torchlibrosa")
    min_samples = 1

    def __init__(self, spec: ModelSpec, **kwargs: Any) -> None:
        # an unknown name falls through to the base class, which lists the valid ones
        self.amodel, self.fusion = CHECKPOINTS.get(kwargs.get("checkpoint") or spec.checkpoint, ("HTSAT-tiny", False))
        super().__init__(spec, **kwargs)
        self.quantise_int16 = self.policy.name == "paper"
        self._module: Any = None
        self._weights_only = True

    # ------------------------------------------------------------ policy
    def default_policy(self) -> WindowPolicy:
        return WindowPolicy(kind="consecutive", window_s=WINDOW_S, hop_s=WINDOW_S, pad="repeatpad",
                            pooling="mean-l2", name="default")

    def named_policies(self) -> dict[str, WindowPolicy]:
        # "paper": the published study's call, get_audio_embedding_from_filelist, made
        # deterministic: the first 10 s instead of a random 10 s, int16 quantisation kept
        paper = WindowPolicy(kind="first", window_s=WINDOW_S, pad="repeatpad", pooling="mean", name="paper")
        return {"default": self.default_policy(), "paper": paper}

    def check_policy(self, policy: WindowPolicy) -> None:
        if policy.kind not in ("consecutive", "first") or policy.window_s != WINDOW_S:
            raise TimbreDBError(
                f"{self.spec.id}: the audio encoder takes 10 s windows; policy {policy.name!r} "
                f"({policy.kind}, window_s={policy.window_s}) would let the package crop at random"
            )

    def extra_policy(self) -> dict[str, Any]:
        return {"int16_quantise": self.quantise_int16, "audio_encoder": self.amodel, "fusion": self.fusion}

    @property
    def librosa_resampling(self) -> bool:
        # the study loaded audio with librosa.load(sr=48000, mono=True)
        return self.policy.name == "paper"

    # ------------------------------------------------------------ loading
    def hub_files(self) -> dict[str, hub.HubFile]:
        return needed_files(self.checkpoint, with_checkpoint=self.weights is None)

    def _load_module(self) -> None:
        with _compat.contained(), _compat.offline():
            _compat.ensure_torch_extras()
            import laion_clap

            module = laion_clap.CLAP_Module(
                enable_fusion=self.fusion, device=self.torch_device, amodel=self.amodel, tmodel="roberta"
            )
        state, self._weights_only = read_state_dict(self._files["checkpoint"])
        module.model.load_state_dict(self._fit_keys(state, module.model.state_dict()), strict=True)
        module.eval()
        for p in module.parameters():
            p.requires_grad_(False)
        self._module = module
        self._tokenizer = module.tokenize

    def _fit_keys(self, state: dict[str, Any], expected: dict[str, Any]) -> dict[str, Any]:
        """Strip DataParallel prefixes, drop the position_ids buffer newer transformers
        no longer store, and insist that every remaining key fits the architecture."""
        if state and all(k.startswith("module.") for k in state):
            state = {k[len("module."):]: v for k, v in state.items()}
        state = {k: v for k, v in state.items() if not (k.endswith("embeddings.position_ids") and k not in expected)}
        missing = sorted(set(expected) - set(state))
        unexpected = sorted(set(state) - set(expected))
        bad_shape = sorted(k for k in set(state) & set(expected) if tuple(state[k].shape) != tuple(expected[k].shape))
        if missing or unexpected or bad_shape:
            ckpt = self._files["checkpoint"]
            detail = "; ".join(
                f"{what} {len(keys)} (e.g. {keys[0]})"
                for what, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", bad_shape))
                if keys
            )
            raise ModelUnavailableError(
                f"{self.label}: {ckpt.name} does not fit {self.amodel}"
                f"{' with fusion' if self.fusion else ''} + RoBERTa: {detail}; pick the matching "
                f"checkpoint name (`timbredb models list`)"
            )
        return state

    def extra_provenance(self) -> dict[str, Any]:
        out = super().extra_provenance()
        out["checkpoint_weights_only"] = self._weights_only
        return out

    @property
    def torch_module(self) -> Any:
        return self._module

    # ------------------------------------------------------------ embedding
    def _embed_windows(self, windows: list[NDArray[np.float32]]) -> NDArray[np.float32]:
        win = int(round(WINDOW_S * self.sample_rate))
        if any(w.shape[0] != win for w in windows):
            raise TimbreDBError(f"{self.spec.id}: every window must be exactly {win} samples")
        if self.quantise_int16:
            # the package's own numpy quantiser, as its get_audio_embedding_* apply it
            from laion_clap.training.data import float32_to_int16, int16_to_float32

            windows = [int16_to_float32(float32_to_int16(w)) for w in windows]
        x = self.stack(windows)
        with self.inference():
            emb = self._module.get_audio_embedding_from_data(x=x, use_tensor=True)
        return self.to_numpy(emb)

    def check_text(self, text: str) -> None:
        self.ensure_loaded()
        n = len(self._tokenizer(text, truncation=False)["input_ids"])
        if n > CONTEXT_TOKENS:
            raise VocabularyError(
                f"{self.spec.id}: text of {n} tokens is longer than the {CONTEXT_TOKENS} the text encoder "
                f"reads (the package would cut it silently): {text[:60]!r}"
            )

    def _embed_texts(self, texts: list[str]) -> NDArray[np.float32]:
        with self.inference():
            emb = self._module.get_text_embedding(list(texts), use_tensor=True)
        return self.to_numpy(emb)
