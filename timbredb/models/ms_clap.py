"""`ms-clap`: Microsoft CLAP (Elizalde et al. 2023) through the `msclap` package.

2023 (default): HTSAT audio + GPT-2 text, 7 s at 44.1 kHz. 2022: CNN14 + BERT,
5 s. Both give 1024-d vectors that the package does not normalise.

timbredb decodes, down-mixes and resamples the audio itself and cuts it into
windows of exactly the model's duration, then calls the package's tensor
forward pass. The package's traps and their guards:

- its file API decodes with torchaudio.load (which needs torchcodec and fails)
  and concatenates stereo channels in time, then crops long files at a random
  offset: never used; windows come from timbredb. The ``paper`` policy replicates
  that path deterministically (channels joined end to end, torchaudio's resampler,
  the first 7 s), because the study's vectors came from it;
- a plain ``str`` is embedded character by character: ``embed_texts`` refuses a str;
- GPT-2 text: the pad token is ``!`` (token id 0) and the package takes the
  last token before the first id 0, so a text containing ``!`` is read from
  the wrong token; timbredb takes the last real token from the attention mask
  instead (identical for texts without ``!``);
- text over 77 tokens (100 for 2022) makes a batch crash: refused per text with
  VocabularyError, so one long prompt does not sink the others;
- weights load with ``strict=False``, so an empty or mismatched checkpoint
  loads silently: timbredb compares the checkpoint's keys with the model's, both
  ways, leaving out only buffers the model derives from its config (see
  ``DERIVED_BUFFERS``) and non-persistent buffers old checkpoints still carry
  (GPT-2's ``attn.bias``/``attn.masked_bias``);
- ``import msclap`` sets a process-wide ``warnings.filterwarnings("ignore")``
  and lowers transformers' log level: both are restored after loading.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from timbredb.audio import Audio
from timbredb.errors import (
    ModelUnavailableError,
    TimbreDBError,
    VocabularyError,
    first_line,
)
from timbredb.models import _compat, hub
from timbredb.models._torch import (
    UNREADABLE,
    TorchEmbeddingModel,
    checkpoint_availability,
    torch_load,
)
from timbredb.models.base import Availability, HostPrep, ModelSpec, WindowPolicy

REPO = "microsoft/msclap"
#: version -> (window seconds, text model, max text tokens) as in the package's config files
VERSIONS: dict[str, tuple[float, str, int]] = {
    "2023": (7.0, "gpt2", 77),
    "2022": (5.0, "bert-base-uncased", 100),
}
_WEIGHTS = ("model.safetensors", "pytorch_model.bin")
#: buffers the constructor computes from the config (HTSAT's Swin relative position index and
#: shifted-window attention masks) or that carry no weights (batch-norm step counters): a
#: checkpoint without them loads the same model, since msclap's strict=False keeps the computed ones
DERIVED_BUFFERS = ("relative_position_index", "attn_mask", "num_batches_tracked")


def needed_files(version: str, with_checkpoint: bool = True) -> dict[str, hub.HubFile]:
    _, text_model, _ = VERSIONS[version]
    files = {
        "text_config": hub.HubFile(text_model, ("config.json",), "text encoder config"),
        "text_weights": hub.HubFile(text_model, _WEIGHTS, "text encoder (overwritten by the checkpoint)"),
    }
    if text_model == "gpt2":
        files["vocab"] = hub.HubFile(text_model, ("vocab.json",), "tokenizer")
        files["merges"] = hub.HubFile(text_model, ("merges.txt",), "tokenizer")
    else:
        files["vocab"] = hub.HubFile(text_model, ("vocab.txt",), "tokenizer")
    if with_checkpoint:
        files["checkpoint"] = hub.HubFile(REPO, (f"CLAP_weights_{version}.pth",), "checkpoint")
    return files


def availability(spec: ModelSpec, data_dir: Path | None, checkpoint: str) -> Availability:
    """Packages fit and every file is cached. Imports no torch."""
    return checkpoint_availability(spec, checkpoint, needed_files)


class MSClapModel(TorchEmbeddingModel):
    """MS-CLAP audio and text embeddings (1024-d, as the model outputs them)."""

    provenance_packages = TorchEmbeddingModel.provenance_packages + ("msclap", "torchlibrosa")

    def __init__(self, spec: ModelSpec, **kwargs: Any) -> None:
        version = kwargs.get("checkpoint") or spec.checkpoint
        self.window_s, self.text_model, self.max_tokens = VERSIONS.get(version, VERSIONS["2023"])
        super().__init__(spec, **kwargs)
        self._wrapper: Any = None

    # ------------------------------------------------------------ policy
    def default_policy(self) -> WindowPolicy:
        # the package fills short clips by tiling them ("repeat"); vectors are not unit
        # length, so the mean of the window vectors is L2-normalised
        return WindowPolicy(kind="consecutive", window_s=self.window_s, hop_s=self.window_s, pad="repeat",
                            pooling="mean-l2", name="default")

    def named_policies(self) -> dict[str, WindowPolicy]:
        # "paper": the study's get_audio_embeddings call, made deterministic (the first
        # window instead of a random one) and kept unnormalised as the package returns it
        paper = WindowPolicy(kind="first", window_s=self.window_s, pad="repeat", pooling="mean", name="paper")
        return {"default": self.default_policy(), "paper": paper}

    @property
    def file_api(self) -> bool:
        """The ``paper`` policy: the input the package's file API builds (see ``prepare``)."""
        return self.policy.name == "paper"

    @property
    def needs_channels(self) -> bool:
        return self.file_api

    def channel_rule(self) -> str:
        if self.file_api:
            return "channels joined end to end in time (msclap file API: reshape(-1))"
        return super().channel_rule()

    def resampler(self) -> str:
        if self.file_api:
            return "torchaudio.transforms.Resample defaults (msclap file API)"
        return super().resampler()

    def prepare(self, audio: Audio) -> list[NDArray[np.float32]]:
        """Windows of the clip; under ``paper``, of the signal msclap's file API builds.

        ``get_audio_embeddings`` loads a file as (channels, frames), resamples it with
        ``torchaudio.transforms.Resample`` and flattens it with ``reshape(-1)``: a
        stereo file becomes its left channel followed by its right one, twice as long.
        That signal is then tiled to 7 s or (longer) cropped at a random offset, which
        ``paper`` replaces by the first 7 s.
        """
        if not self.file_api:
            return super().prepare(audio)
        self.check_audio(audio)
        if audio.channels > 1 and audio.channel_samples is None:
            raise TimbreDBError(
                f"{self.label}: {audio.source} was decoded without its channels (decode(..., keep_channels=True))"
            )
        pcm = audio.channel_samples if audio.channel_samples is not None else audio.samples[:, None]
        channels = np.ascontiguousarray(pcm.T, dtype=np.float32)
        if audio.sample_rate != self.sample_rate:
            import torch

            from timbredb.models._compat import import_torchaudio

            transforms = import_torchaudio().transforms
            with torch.inference_mode():
                resampled = transforms.Resample(audio.sample_rate, self.sample_rate)(torch.from_numpy(channels))
            channels = resampled.numpy()
        joined = np.ascontiguousarray(channels.reshape(-1), dtype=np.float32)
        return self.policy.windows(joined, self.sample_rate)

    def host_prep(self) -> HostPrep | None:
        # the default policy is the base class's prepare; ``paper`` resamples with torchaudio, in this process
        return None if self.file_api else self._host_prep()

    def check_policy(self, policy: WindowPolicy) -> None:
        if policy.kind not in ("consecutive", "first") or policy.window_s != self.window_s:
            raise TimbreDBError(
                f"{self.spec.id}@{self.checkpoint}: the audio encoder takes {self.window_s:g} s windows; "
                f"policy {policy.name!r} ({policy.kind}, window_s={policy.window_s}) does not give them"
            )

    # ------------------------------------------------------------ loading
    def hub_files(self) -> dict[str, hub.HubFile]:
        return needed_files(self.checkpoint, with_checkpoint=self.weights is None)

    def _load_module(self) -> None:
        ckpt = self._files["checkpoint"]
        # catch_warnings inside contained() undoes msclap's filterwarnings("ignore")
        with _compat.contained(), _compat.offline():
            _compat.ensure_torch_extras()
            from msclap import CLAP

            try:
                wrapper = CLAP(model_fp=str(ckpt), version=self.checkpoint, use_cuda=False)
            except (*UNREADABLE, KeyError, TypeError, IndexError) as exc:
                raise ModelUnavailableError(
                    f"{self.label}: {ckpt.name} is not an ms-clap {self.checkpoint} checkpoint "
                    f"({first_line(exc)[:200]})"
                ) from exc
        self._check_keys(ckpt, wrapper.clap)
        wrapper.clap.to(self.torch_device)
        wrapper.clap.eval()
        for p in wrapper.clap.parameters():
            p.requires_grad_(False)
        self._wrapper = wrapper

    def _check_keys(self, ckpt: Path, module: Any) -> None:
        """The package loads with strict=False; insist the checkpoint and the model match key for key.

        Left out: buffers the model derives from its config (``DERIVED_BUFFERS``), when the
        checkpoint lacks them, and keys naming buffers the model has but does not save
        (non-persistent, e.g. GPT-2's ``attn.bias``/``attn.masked_bias``, which older
        transformers saved), when the checkpoint has them.
        """
        obj = torch_load(ckpt)  # readable: the package has just loaded it
        state = obj.get("model", obj) if isinstance(obj, dict) else {}
        expected = module.state_dict()
        buffers = dict(module.named_buffers())
        derived = {k for k in buffers if k in expected and k.rsplit(".", 1)[-1] in DERIVED_BUFFERS}
        unsaved = {k for k in buffers if k not in expected}
        missing = sorted(k for k in expected if k not in state and k not in derived)
        unexpected = sorted(k for k in state if k not in expected and k not in unsaved)
        if missing:
            raise ModelUnavailableError(
                f"{self.label}: {ckpt.name} lacks {len(missing)} of the model's {len(expected)} weights "
                f"(e.g. {missing[0]}); msclap would have loaded it silently with random weights"
            )
        if unexpected:
            raise ModelUnavailableError(
                f"{self.label}: {ckpt.name} has {len(unexpected)} weight(s) the {self.checkpoint} model does not "
                f"(e.g. {unexpected[0]}); msclap would have ignored them silently: pick the matching version"
            )

    @property
    def torch_module(self) -> Any:
        return self._wrapper.clap if self._wrapper is not None else None

    # ------------------------------------------------------------ embedding
    def _embed_windows(self, windows: list[NDArray[np.float32]]) -> NDArray[np.float32]:
        win = int(round(self.window_s * self.sample_rate))
        if any(w.shape[0] != win for w in windows):
            raise TimbreDBError(f"{self.spec.id}: every window must be exactly {win} samples")
        x = self.stack(windows)
        with self.inference():
            # the package's tensor entry point: (batch, 1, samples) -> projected embeddings
            emb = self._wrapper._get_audio_embeddings(x[:, None, :])
        return self.to_numpy(emb)

    def _prepare_text(self, text: str) -> str:
        # as msclap's preprocess_text: GPT-2 reads the embedding at the end-of-text token
        return text + " <|endoftext|>" if self.text_model == "gpt2" else text

    def check_text(self, text: str) -> None:
        self.ensure_loaded()
        n = len(self._wrapper.tokenizer(self._prepare_text(text))["input_ids"])
        if n > self.max_tokens:
            raise VocabularyError(
                f"{self.spec.id}@{self.checkpoint}: text of {n} tokens is longer than the "
                f"{self.max_tokens} the text encoder takes: {text[:60]!r}"
            )

    def _embed_texts(self, texts: list[str]) -> NDArray[np.float32]:
        import torch

        tok = self._wrapper.tokenizer(
            [self._prepare_text(t) for t in texts],
            max_length=self.max_tokens, padding="max_length", truncation=False, return_tensors="pt",
        )
        tok = {k: tok[k].to(self.torch_device) for k in self._wrapper.token_keys}
        encoder = self._wrapper.clap.caption_encoder
        with self.inference():
            if self.text_model == "gpt2":
                hidden = encoder.base(**tok)[0]
                # last real token from the attention mask: the package counts tokens != 0,
                # and 0 is "!" (its pad token), so "!" in a text would move the index
                last = tok["attention_mask"].sum(dim=-1) - 1
                emb = encoder.projection(hidden[torch.arange(hidden.shape[0], device=hidden.device), last])
            else:
                emb = encoder(tok)
        return self.to_numpy(emb)
