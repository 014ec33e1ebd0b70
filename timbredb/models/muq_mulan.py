"""`muq-mulan`: MuQ-MuLan (Zhu et al. 2025) through the `muq` package.

A MuQ music encoder and an XLM-RoBERTa text encoder projected to a shared
512-d space; audio at 24 kHz in 10 s clips. The weights are CC-BY-NC 4.0:
non-commercial use only.

The package's traps and their guards:

- ``from_pretrained`` can leave the model in train mode (dropout on): timbredb
  calls ``eval()`` and checks that no submodule is still training;
- a text's embedding depends on the other texts in its batch (the text tower
  pads to the longest text and averages the padding in): texts are embedded in
  groups of equal token length, so no text is ever padded. The ``paper`` policy
  instead reproduces the study's vectors, which came from one call per study text
  list: a text of such a list is embedded in that list's call (batch-dependent by
  design, for replication only);
- the mean over a long recording's clips is not re-normalised: the default
  policy L2-normalises the mean of the window vectors;
- audio under 513 samples (or empty) crashes the spectrogram, numpy input is
  rejected: timbredb checks the length and passes tensors;
- the package breaks on transformers >= 5: reported as unavailable;
- ``from_pretrained`` loads weights with ``strict=False`` and prefers
  ``model.safetensors`` over ``pytorch_model.bin``: an old cache of
  ``OpenMuQ/MuQ-MuLan-large`` holds both, and that withdrawn safetensors file names
  the ``pos_conv_embed`` weights ``weight_g``/``weight_v`` (pre-parametrization;
  torch's weight-norm load hook renames them, but a non-strict load would hide any
  other mismatch, and a check on names alone refuses the file). timbredb builds the
  model from its config, prefers the ``.bin`` (the one file the repo publishes
  now), maps the old names when only the safetensors file is there, loads strictly,
  and records the file it used;
- float16 gives NaN (the authors' warning): refused; bfloat16 is allowed on GPUs.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from timbredb.errors import ModelUnavailableError, TimbreDBError, VocabularyError, first_line
from timbredb.models import _compat, hub, pins
from timbredb.models._torch import (
    UNREADABLE,
    TorchEmbeddingModel,
    torch_load,
    transformers_below_5,
    unreadable,
    weights_availability,
)
from timbredb.models.base import Availability, ModelSpec, WindowPolicy
from timbredb.vocabularies import STUDY_TEXT_CALLS

REPO = "OpenMuQ/MuQ-MuLan-large"
WINDOW_S = 10.0
_WEIGHTS = ("model.safetensors", "pytorch_model.bin")
#: for the MuQ-MuLan checkpoint the .bin comes first: it is what the repo publishes, while a
#: model.safetensors beside it in a cache is the withdrawn one with pre-parametrization names
CHECKPOINT_WEIGHTS = ("pytorch_model.bin", "model.safetensors")
#: torch.nn.utils.weight_norm's old tensor names -> the parametrization's (torch >= 2.1)
LEGACY_WEIGHT_NORM = {"weight_g": "parametrizations.weight.original0", "weight_v": "parametrizations.weight.original1"}
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
        files["checkpoint"] = hub.HubFile(REPO, CHECKPOINT_WEIGHTS, "checkpoint")
    return files


def availability(spec: ModelSpec, data_dir: Path | None, checkpoint: str) -> Availability:
    """Packages fit and every file is cached. Imports no torch."""
    tf = transformers_below_5()
    if not tf.usable:
        return Availability(False, f"muq {tf.reason}")
    return weights_availability(spec.id, list(pins.with_pins(spec, needed_files(checkpoint)).values()))


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


def map_legacy_names(state: dict[str, Any], expected: set[str]) -> tuple[dict[str, Any], list[str]]:
    """Rename old ``weight_norm`` tensors (``….weight_g``/``….weight_v``) to the names the model has.

    Only a key whose new name the model expects and the checkpoint lacks is renamed.

    Returns:
        (the state dict, the renamed keys).
    """
    out: dict[str, Any] = {}
    renamed: list[str] = []
    for key, value in state.items():
        stem, _, leaf = key.rpartition(".")
        new = f"{stem}.{LEGACY_WEIGHT_NORM[leaf]}" if leaf in LEGACY_WEIGHT_NORM else key
        if new != key and new in expected and new not in state:
            out[new] = value
            renamed.append(key)
        else:
            out[key] = value
    return out, renamed


def study_calls_sha256() -> str:
    """A digest of the study's text calls (part of the ``paper`` space)."""
    import hashlib

    return hashlib.sha256(json.dumps(STUDY_TEXT_CALLS, sort_keys=True).encode()).hexdigest()[:16]


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
        self._renamed: list[str] = []
        self._ignored: list[str] = []
        self._study_vectors: dict[str, NDArray[np.float32]] = {}

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

    @property
    def study_text_calls(self) -> bool:
        """The ``paper`` policy: texts of a study list get that list's one-call vectors."""
        return self.policy.name == "paper"

    @property
    def librosa_resampling(self) -> bool:
        # the study loaded audio with librosa.load(sr=24000, mono=True)
        return self.policy.name == "paper"

    def extra_policy(self) -> dict[str, Any]:
        if not self.study_text_calls:
            return {}
        return {
            "text_batching": "study calls: a text of a study list is embedded in that list's one call "
                             "(batch-dependent, replication only); other texts in groups of equal token count",
            "study_text_calls_sha256": study_calls_sha256(),
        }

    # ------------------------------------------------------------ loading
    def hub_files(self) -> dict[str, hub.HubFile]:
        return needed_files(self.checkpoint, with_checkpoint=self.weights is None)

    def _load_module(self) -> None:
        ckpt = self._files["checkpoint"]
        with _compat.contained(), _compat.offline():
            _compat.ensure_torch_extras()
            from muq import MuQMuLan

            # what from_pretrained builds (MuQMuLan(config.json)), without its weight loading:
            # it would pick model.safetensors over pytorch_model.bin and load non-strictly
            model = MuQMuLan(json.loads(self._files["config"].read_text()))
            # the text tower loads its tokenizer from the hub on first use: load it here, offline
            tokenizer = model.mulan_module.text.tokenizer
        expected = model.state_dict()
        # the key check reads names only, so a wrong file is refused before gigabytes are read
        names, _ = map_legacy_names(dict.fromkeys(checkpoint_keys(ckpt, self.label)), set(expected))
        mapped = set(names)
        missing = sorted(set(expected) - mapped)
        unexpected = sorted(mapped - set(expected))
        if missing:
            raise ModelUnavailableError(
                f"{self.label}: {ckpt.name} lacks {len(missing)} of the model's {len(expected)} weights "
                f"(e.g. {missing[0]}); the package would have loaded it silently"
            )
        if unexpected:
            raise ModelUnavailableError(
                f"{self.label}: {ckpt.name} has {len(unexpected)} weight(s) MuQ-MuLan does not "
                f"(e.g. {unexpected[0]}); the package would have ignored them silently"
            )
        state, self._renamed = map_legacy_names(self._read_weights(ckpt), set(expected))
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise ModelUnavailableError(
                f"{self.label}: {ckpt} does not fit MuQ-MuLan ({first_line(exc)[:200]})"
            ) from exc
        del state
        if self.weights is None:
            self._ignored = [n for n in CHECKPOINT_WEIGHTS
                             if n != ckpt.name and hub.locate(hub.HubFile(REPO, (n,))) is not None]
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

    def extra_provenance(self) -> dict[str, Any]:
        out = super().extra_provenance()
        # which of the repo's weights files was loaded, the others cached beside it, and
        # any old weight_norm names that were mapped
        out["checkpoint_files_ignored"] = list(self._ignored)
        out["checkpoint_keys_renamed"] = list(self._renamed)
        return out

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
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        rest: list[int] = []
        for i, t in enumerate(texts):
            study = self._study_vector(t) if self.study_text_calls else None
            if study is not None:
                out[i] = study
            else:
                rest.append(i)
        groups: dict[int, list[int]] = defaultdict(list)
        for i in rest:
            groups[self._n_tokens(texts[i])].append(i)
        with self.inference():
            for idx in groups.values():
                # equal token counts: the tokenizer adds no padding to average in
                out[idx] = self.to_numpy(self._module(texts=[texts[i] for i in idx]))
        return out

    def _study_vector(self, text: str) -> NDArray[np.float32] | None:
        """The text's vector from the one call the study made with its list, or None.

        Each list is embedded once, whole and in the study's order, as
        ``model(texts=list)``; the vectors are kept for the model's lifetime.
        """
        if text in self._study_vectors:
            return self._study_vectors[text]
        for texts in STUDY_TEXT_CALLS.values():
            if text in texts:
                with self.inference():
                    vectors = self.to_numpy(self._module(texts=list(texts)))
                self._study_vectors.update(zip(texts, vectors, strict=True))
                return self._study_vectors[text]
        return None
