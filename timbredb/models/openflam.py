"""`openflam`: OpenFLAM (Wu et al. 2025) global embeddings through the `openflam` package.

OpenFLAM is not part of the ``models`` extra: its PyPI release (1.0.2) pins
``torch<2.8``, ``torchaudio<2.8``, ``torchvision<0.23`` and
``transformers==4.56.1``, which cannot be installed beside the other models
(torch 2.13, transformers 4.57). Its code runs on the newer versions, so it is
installed beside them without its pins::

    pip install --no-deps openflam==1.0.2 lightning lightning-utilities torchmetrics

and the model is usable when ``openflam`` and ``lightning`` import. Weights:
``kechenadobe/OpenFLAM`` (Adobe Research License: non-commercial research only)
plus ``roberta-base``, both from the Hugging Face cache.

Audio: 10 s windows at 48 kHz, fed as tensors (the package takes exactly
480000 samples); the "paper" policy truncates or zero-pads to the first 10 s
of ``librosa.load(sr=48000, mono=True)``'s output (libsoxr HQ), as the published
study did.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from timbredb.errors import ModelUnavailableError, TimbreDBError, VocabularyError
from timbredb.models import _compat, hub, pins
from timbredb.models._torch import (
    UNREADABLE,
    TorchEmbeddingModel,
    torch_load,
    unreadable,
    weights_availability,
)
from timbredb.models.base import Availability, ModelSpec, WindowPolicy

REPO = "kechenadobe/OpenFLAM"
CHECKPOINT_FILE = "open_flam_oct17.pth"
WINDOW_S = 10.0
CONTEXT_TOKENS = 77
PACKAGES = ("openflam", "lightning", "torchlibrosa", "transformers", "huggingface_hub")
INSTALL = "pip install --no-deps openflam==1.0.2 lightning lightning-utilities torchmetrics"


def needed_files(checkpoint: str = "v1-base", with_checkpoint: bool = True) -> dict[str, hub.HubFile]:
    files = {
        "roberta_config": hub.HubFile("roberta-base", ("config.json",), "text encoder config"),
        "roberta_weights": hub.HubFile("roberta-base", ("model.safetensors", "pytorch_model.bin"), "text encoder"),
        "roberta_vocab": hub.HubFile("roberta-base", ("vocab.json",), "tokenizer"),
        "roberta_merges": hub.HubFile("roberta-base", ("merges.txt",), "tokenizer"),
    }
    if with_checkpoint:
        files["checkpoint"] = hub.HubFile(REPO, (CHECKPOINT_FILE,), "checkpoint")
    return files


def availability(spec: ModelSpec, data_dir: Path | None, checkpoint: str) -> Availability:
    """Installed beside the models extra (see module doc) and weights cached. Imports no torch."""
    absent = [m for m in ("torch", *PACKAGES) if importlib.util.find_spec(m) is None]
    if absent:
        return Availability(
            False,
            f"missing package(s) {', '.join(absent)}; OpenFLAM's pins (torch<2.8, transformers==4.56.1) clash with "
            f"the models extra, so install it without them: {INSTALL}",
        )
    return weights_availability(spec.id, list(pins.with_pins(spec, needed_files(checkpoint)).values()))


class OpenFLAMModel(TorchEmbeddingModel):
    """OpenFLAM global audio and text embeddings (512-d, unit length)."""

    provenance_packages = TorchEmbeddingModel.provenance_packages + ("openflam", "lightning", "torchlibrosa")
    install_hint = INSTALL

    def __init__(self, spec: ModelSpec, **kwargs: Any) -> None:
        super().__init__(spec, **kwargs)
        self._flam: Any = None

    def default_policy(self) -> WindowPolicy:
        return WindowPolicy(kind="consecutive", window_s=WINDOW_S, hop_s=WINDOW_S, pad="zero",
                            pooling="mean-l2", name="default")

    def named_policies(self) -> dict[str, WindowPolicy]:
        paper = WindowPolicy(kind="first", window_s=WINDOW_S, pad="zero", pooling="mean", name="paper")
        return {"default": self.default_policy(), "paper": paper}

    def check_policy(self, policy: WindowPolicy) -> None:
        if policy.kind not in ("consecutive", "first") or policy.window_s != WINDOW_S:
            raise TimbreDBError(f"{self.spec.id}: the audio encoder takes exactly 10 s windows")

    @property
    def librosa_resampling(self) -> bool:
        # the study loaded audio with librosa.load(sr=48000, mono=True)
        return self.policy.name == "paper"

    def hub_files(self) -> dict[str, hub.HubFile]:
        return needed_files(self.checkpoint, with_checkpoint=self.weights is None)

    def _load_module(self) -> None:
        with _compat.contained(), _compat.offline():
            _compat.ensure_torch_extras()
            import openflam

            if self.weights is None:
                # the package downloads into default_ckpt_path: point it at the hub cache,
                # where `timbredb models fetch openflam` put the files (offline: no download)
                flam = openflam.OpenFLAM(model_name="v1-base", default_ckpt_path=str(hub.cache_dir())).model
            else:
                import lightning
                from module.model import (  # openflam's own modules
                    FLAM,
                    CLAPAudioCfg,
                    CLAPTextCfg,
                )

                flam = FLAM(
                    audio_cfg=CLAPAudioCfg(model_name="base", audio_embed_dim=1024),
                    text_cfg=CLAPTextCfg(connector_layers=12),
                    joint_embed_shape=512,
                    fabric=lightning.Fabric(),
                    cache_dir=str(hub.cache_dir()),
                )
                try:
                    state = torch_load(self.weights)
                except UNREADABLE as exc:
                    raise unreadable(self.label, self.weights, exc) from exc
                try:
                    flam.load_state_dict(state)
                except RuntimeError as exc:
                    raise ModelUnavailableError(f"{self.label}: {self.weights} does not fit OpenFLAM v1-base") from exc
        flam.to(self.torch_device)
        flam.eval()
        for p in flam.parameters():
            p.requires_grad_(False)
        self._flam = flam

    @property
    def torch_module(self) -> Any:
        return self._flam

    def _embed_windows(self, windows: list[NDArray[np.float32]]) -> NDArray[np.float32]:
        win = int(round(WINDOW_S * self.sample_rate))
        if any(w.shape[0] != win for w in windows):
            raise TimbreDBError(f"{self.spec.id}: every window must be exactly {win} samples")
        with self.inference():
            emb = self._flam.get_audio_features(self.stack(windows))
        return self.to_numpy(emb)

    def check_text(self, text: str) -> None:
        self.ensure_loaded()
        n = len(self._flam.tokenizer(text, truncation=False)["input_ids"])
        if n > CONTEXT_TOKENS:
            raise VocabularyError(
                f"{self.spec.id}: text of {n} tokens is longer than the {CONTEXT_TOKENS} the text encoder reads: "
                f"{text[:60]!r}"
            )

    def _embed_texts(self, texts: list[str]) -> NDArray[np.float32]:
        with self.inference():
            emb = self._flam.get_text_features(list(texts))
        return self.to_numpy(emb)
