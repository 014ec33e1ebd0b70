"""`muq-mulan`: MuQ-MuLan (Zhu et al. 2025) through the `muq` package.

A MuQ music encoder and an XLM-RoBERTa text encoder projected to a shared
512-d space; audio at 24 kHz in 10 s clips. The weights are CC-BY-NC 4.0:
non-commercial use only.

The package's traps and their guards:

- ``from_pretrained`` can leave the model in train mode (dropout on): timbredb
  calls ``eval()`` and checks that no submodule is still training;
- a text's embedding depends on the other texts in its batch (the text tower
  pads to the longest text and averages the padding in): texts are embedded in
  groups of equal token length, so no text is ever padded;
- the mean over a long recording's clips is not re-normalised: the default
  policy L2-normalises the mean of the window vectors;
- audio under 513 samples (or empty) crashes the spectrogram, numpy input is
  rejected: timbredb checks the length and passes tensors;
- the package breaks on transformers >= 5: reported as unavailable;
- ``from_pretrained`` loads weights with ``strict=False``: timbredb compares the
  checkpoint's keys with the model's;
- float16 gives NaN (the authors' warning): refused; bfloat16 is allowed on GPUs.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from timbredb.errors import ModelUnavailableError, TimbreDBError, VocabularyError
from timbredb.models import _compat, hub
from timbredb.models._torch import (
    UNREADABLE,
    TorchEmbeddingModel,
    torch_load,
    transformers_below_5,
    unreadable,
    weights_availability,
)
from timbredb.models.base import Availability, ModelSpec, WindowPolicy

REPO = "OpenMuQ/MuQ-MuLan-large"
WINDOW_S = 10.0
_WEIGHTS = ("model.safetensors", "pytorch_model.bin")
#: what the MuQ-MuLan config names, used until its config.json is in the cache
DEFAULT_COMPONENTS = ("OpenMuQ/MuQ-large-msd-iter", "xlm-roberta-base")


def components() -> tuple[str, str]:
    """(audio model repo, text model repo) named by the cached MuQ-MuLan config."""
    path = hub.locate(hub.HubFile(REPO, ("config.json",)))
    if path is None:
        return DEFAULT_COMPONENTS
    try:
        cfg = json.loads(path.read_text())
        return str(cfg["audio_model"]["name"]), str(cfg["text_model"]["name"])
    except (OSError, ValueError, KeyError, TypeError):
        return DEFAULT_COMPONENTS


def needed_files(checkpoint: str = "MuQ-MuLan-large", with_checkpoint: bool = True) -> dict[str, hub.HubFile]:
    """The MuQ-MuLan repo plus the audio and text models its constructor loads."""
    audio, text = components()
    files = {
        "config": hub.HubFile(REPO, ("config.json",), "model config"),
        "audio_config": hub.HubFile(audio, ("config.json",), "audio encoder config"),
        "audio_weights": hub.HubFile(audio, _WEIGHTS, "audio encoder (overwritten by the checkpoint)"),
        "text_config": hub.HubFile(text, ("config.json",), "text encoder config"),
        "text_weights": hub.HubFile(text, _WEIGHTS, "text encoder (overwritten by the checkpoint)"),
        "text_tokenizer": hub.HubFile(text, ("tokenizer.json", "sentencepiece.bpe.model"), "tokenizer"),
    }
    if with_checkpoint:
        files["checkpoint"] = hub.HubFile(REPO, _WEIGHTS, "checkpoint")
    return files


def availability(spec: ModelSpec, data_dir: Path | None, checkpoint: str) -> Availability:
    """Packages fit and every file is cached. Imports no torch."""
    tf = transformers_below_5()
    if not tf.usable:
        return Availability(False, f"muq {tf.reason}")
    return weights_availability(spec.id, list(needed_files(checkpoint).values()))


def checkpoint_keys(path: Path, label: str = "muq-mulan") -> set[str]:
    """Tensor names in a .safetensors or torch checkpoint, without reading the tensors.

    Raises:
        ModelUnavailableError: the file is not a readable checkpoint.
    """
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                return set(f.keys())
        except (SafetensorError, OSError) as exc:
            raise unreadable(label, path, exc) from exc
    try:
        return set(_read_torch(path))
    except UNREADABLE as exc:
        raise unreadable(label, path, exc) from exc


def _read_torch(path: Path) -> dict[str, Any]:
    obj = torch_load(path)
    return obj.get("state_dict", obj) if isinstance(obj, dict) else {}


class MuQMuLanModel(TorchEmbeddingModel):
    """MuQ-MuLan audio and text embeddings (512-d)."""

    provenance_packages = TorchEmbeddingModel.provenance_packages + ("muq", "safetensors")
    # the package's last clip repeats the recording's start; under 513 samples its
    # spectrogram padding fails
    min_samples = 513
    refused_dtypes = {"float16": "MuQ gives NaN in float16 (upstream warning); use bfloat16 or float32"}

    def __init__(self, spec: ModelSpec, **kwargs: Any) -> None:
        super().__init__(spec, **kwargs)
        self._module: Any = None

    # ------------------------------------------------------------ policy
    def default_policy(self) -> WindowPolicy:
        return WindowPolicy(kind="consecutive", window_s=WINDOW_S, hop_s=WINDOW_S, pad="repeat",
                            pooling="mean-l2", name="default")

    def named_policies(self) -> dict[str, WindowPolicy]:
        # "paper": the whole recording through the package's own forward (its
        # deterministic 10 s clips, mean of the clip vectors, not re-normalised)
        paper = WindowPolicy(kind="whole", pooling="mean", name="paper")
        return {"default": self.default_policy(), "paper": paper}

    def check_policy(self, policy: WindowPolicy) -> None:
        if policy.kind != "whole" and not policy.window_s:
            raise TimbreDBError(f"{self.spec.id}: policy {policy.name!r} needs window_s")

    # ------------------------------------------------------------ loading
    def hub_files(self) -> dict[str, hub.HubFile]:
        return needed_files(self.checkpoint, with_checkpoint=self.weights is None)

    def _load_module(self) -> None:
        ckpt = self._files["checkpoint"]
        with _compat.contained(), _compat.offline():
            _compat.ensure_torch_extras()
            from muq import MuQMuLan

            if self.weights is None:
                model = MuQMuLan.from_pretrained(REPO)
            else:
                # a local weights file for the cached architecture
                model = MuQMuLan(json.loads(self._files["config"].read_text()))
            # the text tower loads its tokenizer from the hub on first use: load it here, offline
            tokenizer = model.mulan_module.text.tokenizer
        expected = model.state_dict()
        missing = sorted(set(expected) - checkpoint_keys(ckpt, self.label))
        if missing:
            raise ModelUnavailableError(
                f"{self.label}: {ckpt.name} lacks {len(missing)} of the model's {len(expected)} weights "
                f"(e.g. {missing[0]}); the package would have loaded it silently"
            )
        if self.weights is not None:
            try:
                model.load_state_dict(self._read_weights(ckpt), strict=True)
            except RuntimeError as exc:
                raise ModelUnavailableError(f"{self.label}: {ckpt} does not fit MuQ-MuLan ({str(exc)[:200]})") from exc
        model.to(self.torch_device)
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        still = [n for n, m in model.named_modules() if m.training]
        if still:
            raise TimbreDBError(f"{self.spec.id}: modules still in train mode after eval(): {still[:3]}")
        self._module = model
        text = model.mulan_module.text
        self._tokenizer = tokenizer
        self.max_tokens = int(text.model.config.max_position_embeddings) - 2

    @staticmethod
    def _read_weights(path: Path) -> dict[str, Any]:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        return _read_torch(path)

    @property
    def torch_module(self) -> Any:
        return self._module

    # ------------------------------------------------------------ embedding
    def _embed_windows(self, windows: list[NDArray[np.float32]]) -> NDArray[np.float32]:
        import torch

        with self.inference():
            if self.policy.kind == "whole":
                # the package's own clip splitting and averaging, one recording at a time
                out = [self._module(wavs=torch.from_numpy(w).to(self.torch_device)[None]) for w in windows]
                emb = torch.cat(out, dim=0)
            else:
                emb = self._module.mulan_module.get_audio_latents(self.stack(windows))
        return self.to_numpy(emb)

    def _n_tokens(self, text: str) -> int:
        return len(self._tokenizer(text)["input_ids"])

    def check_text(self, text: str) -> None:
        self.ensure_loaded()
        n = self._n_tokens(text)
        if n > self.max_tokens:
            raise VocabularyError(
                f"{self.spec.id}: text of {n} tokens is longer than the {self.max_tokens} the text encoder takes: "
                f"{text[:60]!r}"
            )

    def _embed_texts(self, texts: list[str]) -> NDArray[np.float32]:
        groups: dict[int, list[int]] = defaultdict(list)
        for i, t in enumerate(texts):
            groups[self._n_tokens(t)].append(i)
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        with self.inference():
            for idx in groups.values():
                # equal token counts: the tokenizer adds no padding to average in
                out[idx] = self.to_numpy(self._module(texts=[texts[i] for i in idx]))
        return out
