"""LoRA on LAION-CLAP's audio encoder, trained end to end on rendered audio (needs peft).

Low-rank adapters (``peft.inject_adapter_in_model``; rank ``rank``, scale
``alpha / rank``, no dropout) are placed on every attention projection of the
HTSAT audio encoder, ``audio_branch.layers.*.blocks.*.attn.qkv`` and ``.proj``;
everything else (the spectrogram front end, the MLPs, the audio projection, the
whole text branch) stays frozen, so the tuned space's text vectors are the base
space's. The objective is the adapter's (``train.objective``), with the tuned
vectors now coming from the encoder: each training clip is cut into the base
model's windows, embedded with gradients, averaged and normalised as the model's
policy pools.

Audio is not stored, only its hash, so the clips are recovered before training
and re-embedding (``recover``): a file recorded for the clip (decoded, its hash
checked), or an Audealize EQ / reverb variant (and original) re-rendered from its
stored parameters on its source (the file, or the mixture rebuilt from the three
dataset clips), hash checked. A clip that cannot be recovered (a moved file, a
SocialFX / SAFE-DB variant) is reported and left out of the tuned space; a
training clip that cannot be recovered stops the run before anything is written.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from timbredb.audio import Audio, StreamedAudio, from_array, open_audio, read_pcm
from timbredb.errors import AudioError, ModelUnavailableError, TimbreDBError
from timbredb.finetune.data import Corpus, Trajectory
from timbredb.progress import WarnFn
from timbredb.spaces import SpaceRecord, is_tuned
from timbredb.store import Store

#: the modules LoRA adapts (a regular expression over LAION-CLAP's module names)
TARGET_MODULES = r"audio_branch\.layers\.\d+\.blocks\.\d+\.attn\.(qkv|proj)"
#: clips recovered and re-embedded at a time (bounds the audio held in memory)
CHUNK = 16


def check_base(base: SpaceRecord) -> None:
    """LoRA needs the LAION-CLAP model itself (not a tuned space, not other weights).

    Raises:
        TimbreDBError: another model, a tuned space, a space of a local weights file, or no peft.
    """
    if base.model_id != "laion-clap" or is_tuned(base.label) or "+weights-" in base.label:
        raise TimbreDBError(
            f"--method lora: {base.label} is not a LAION-CLAP space of a registered checkpoint; LoRA adapts the "
            "HTSAT audio encoder of laion-clap (use --method adapter for any other space)"
        )
    import importlib.util

    if importlib.util.find_spec("peft") is None:
        raise ModelUnavailableError("--method lora needs peft: pip install 'torch==2.13.0' 'timbredb[finetune]'")


# ---------------------------------------------------------------- recovering audio
@dataclass
class Recovery:
    """How each clip's audio is found again: a recorded file, or a re-rendered variant."""

    files: dict[str, list[str]] = field(default_factory=dict)
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)
    sources: dict[str, dict[str, Any]] = field(default_factory=dict)
    _pcm: dict[str, tuple[NDArray[np.float32], int]] = field(default_factory=dict)

    def _source_pcm(self, sha: str) -> tuple[NDArray[np.float32], int]:
        if sha in self._pcm:
            return self._pcm[sha]
        from timbredb.datasets.audealize_render import DATASET_SOURCES, _source, make_mixture

        src = self.sources.get(sha)
        if src is None:
            raise AudioError(sha, "its exp2 source is not stored")
        if src["kind"] == "mixture":
            parts = []
            by_label = {s["label"]: s for s in self.sources.values() if s["kind"] == "dataset"}
            for label in DATASET_SOURCES:
                if label not in by_label:
                    raise AudioError(src["origin"], f"the mixture's part {label!r} is not stored")
                pcm, sr = self._source_pcm(by_label[label]["source_sha256"])
                parts.append(_source(label, "dataset", by_label[label]["origin"], pcm, sr))
            mix = make_mixture(parts)
            pcm, sr = mix.pcm, mix.sample_rate
        else:
            pcm, sr = read_pcm(src["origin"])
        if from_array(pcm, sr, src["origin"]).sha256 != sha:
            raise AudioError(src["origin"], "the source's audio is no longer the audio its variants were rendered from")
        self._pcm[sha] = (pcm, sr)
        return pcm, sr

    def audio(self, clip: str) -> Audio | StreamedAudio:
        """The clip's audio, its hash checked.

        Raises:
            AudioError: it cannot be recovered (one line saying why).
        """
        problems = []
        for path in self.files.get(clip, []):
            try:
                audio = open_audio(path)
            except AudioError as exc:
                problems.append(exc.problem)
                continue
            if audio.sha256 == clip:
                return audio
            problems.append(f"{path} changed since it was ingested")
        row = self.variants.get(clip)
        if row is not None and row["dataset"] == "audealize":
            return self._render(clip, row)
        why = "; ".join(problems) or ("a variant of " + row["dataset"] if row else "no file recorded")
        raise AudioError(clip[:12], f"cannot recover its audio ({why})")

    def _render(self, clip: str, row: dict[str, Any]) -> Audio:
        from timbredb.datasets.audealize_render import Job, render, renderer_version

        pcm, sr = self._source_pcm(row["source_sha256"])
        version = str(row["renderer_version"])
        policy = version.rsplit("/", 1)[-1]
        length_s = None if policy == "full" else float(policy.rstrip("s"))
        if renderer_version(length_s) != version:
            raise AudioError(clip[:12], f"rendered by {version}, this timbredb renders {renderer_version(length_s)}")
        length = None if length_s is None else int(round(length_s * sr))
        params = json.loads(row["params"])
        effect, strength = str(row["effect"]), float(row["strength"])
        if effect == "eq":
            job = Job("eq", row["descriptor"], strength, tuple(float(v) for v in params["curve"]))
        elif effect == "reverb":
            job = Job("reverb", row["descriptor"], strength, tuple(float(params[k]) for k in ("d", "g", "m", "f", "E")))
        else:
            job = Job("original", "", 0.0, ())
        out, _ = render(job, pcm if length is None else pcm[:length], sr, length)
        audio = from_array(out, sr, f"render://audealize/{row['descriptor'] or 'original'}?{version}")
        if audio.sha256 != clip:
            raise AudioError(clip[:12], "re-rendering gives other audio than was stored")
        return audio


def recovery(store: Store, clips: Sequence[str]) -> Recovery:
    """What ``Recovery`` needs from the store for these clips."""
    rec = Recovery()
    for h in clips:
        paths = [p for p, _, _ in store.clip_files(h)]
        if paths:
            rec.files[h] = paths
    rec.variants = store.variant_rows(list(clips))
    rec.sources = {s["source_sha256"]: s for s in store.exp2_sources()}
    return rec


@dataclass
class Prepared:
    """What LoRA training reads before the store is closed."""

    base: SpaceRecord
    recovery: Recovery
    clips: list[str]  # every clip of the base space (re-embedded after training)
    training_audio: dict[str, Audio] = field(default_factory=dict)


def prepare(
    store: Store, corpus: Corpus, train: Sequence[Trajectory], base_clips: Sequence[str], data_dir: Path | None,
    warn: WarnFn,
) -> Prepared:
    """Recover the training clips' audio now (an error if one cannot be), and how to find the rest.

    Raises:
        TimbreDBError: a training clip's audio cannot be recovered.
    """
    needed = sorted({h for t in train for h in (t.original, *t.clips)})
    rec = recovery(store, sorted(set(base_clips) | set(needed)))
    out = Prepared(corpus.base, rec, list(base_clips))
    for h in needed:
        try:
            audio = rec.audio(h)
        except AudioError as exc:
            raise TimbreDBError(f"--method lora: the training clip {exc}") from exc
        if isinstance(audio, StreamedAudio):
            raise TimbreDBError(f"--method lora: the training clip {h[:12]} is too long to train on whole")
        out.training_audio[h] = audio
    return out


# ---------------------------------------------------------------- the adapters
def inject(model: Any, hp: dict[str, Any], params: dict[str, NDArray[np.floating]] | None) -> list[Any]:
    """Put LoRA adapters into a loaded LAION-CLAP model's audio encoder.

    Args:
        params: trained LoRA tensors to load (names as ``export`` gives); None = a fresh init
            (A from torch's seeded RNG, B zero: the base model).

    Returns:
        the LoRA parameters (trainable when ``params`` is None, frozen otherwise).

    Raises:
        ModelUnavailableError: stored tensors that do not fit the encoder.
    """
    import torch

    from timbredb.models import _compat

    _compat.ensure_torch_extras()
    with _compat.contained():
        from peft import LoraConfig, inject_adapter_in_model

        cfg = LoraConfig(r=int(hp["rank"]), lora_alpha=int(hp["alpha"]), lora_dropout=0.0,
                         target_modules=TARGET_MODULES, bias="none")
        inject_adapter_in_model(cfg, model.torch_module.model)
    named = [(n, p) for n, p in model.torch_module.model.named_parameters() if "lora_" in n]
    if not named:
        raise ModelUnavailableError(f"{model.label}: LoRA found no attention layer matching {TARGET_MODULES}")
    if params is not None:
        missing = [n for n, _ in named if n not in params]
        if missing or len(named) != len(params):
            raise ModelUnavailableError(f"{model.label}: the stored LoRA weights do not fit the audio encoder "
                                        f"({len(params)} stored, {len(named)} expected)")
        with torch.no_grad():
            for n, p in named:
                p.copy_(torch.from_numpy(np.asarray(params[n], dtype=np.float32)))
    for _, p in named:
        p.requires_grad_(params is None)
    return [p for _, p in named]


def export(model: Any) -> dict[str, NDArray[np.float32]]:
    return {n: p.detach().cpu().numpy().astype(np.float32)
            for n, p in model.torch_module.model.named_parameters() if "lora_" in n}


def _chunks(items: Sequence[str], n: int) -> Iterator[Sequence[str]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


def train_and_embed(
    prepared: Prepared, corpus: Corpus, train: Sequence[Trajectory], hp: dict[str, Any], seed: int, device: str,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None, warn: WarnFn | None = None,
) -> tuple[Any, tuple[list[str], NDArray[np.float32]], dict[str, Any]]:
    """Train LoRA, then re-embed every recoverable clip of the base space with it.

    Returns:
        (train.Trained, (clip hashes, tuned vectors), provenance additions).
    """
    import torch
    import torch.nn.functional as F

    from timbredb.finetune.train import Batch, Trained, TrainingIndex, fit, seeded
    from timbredb.models.registry import load

    model: Any = load(prepared.base.label, device=device)
    model.ensure_loaded()
    if model.space_id != prepared.base.space_id:
        raise TimbreDBError(f"--method lora: the installed {prepared.base.label} is not the model that made its "
                            "space (another checkpoint or policy); nothing was trained")
    dev = torch.device(model.device)
    index = TrainingIndex(corpus, train)
    windows = {h: model.prepare(prepared.training_audio[h]) for h in index.clips}
    quantise = bool(getattr(model, "quantise_int16", False))
    if quantise:
        from laion_clap.training.data import float32_to_int16, int16_to_float32

        windows = {h: [int16_to_float32(float32_to_int16(w)) for w in ws] for h, ws in windows.items()}
    text = F.normalize(torch.tensor(index.text, dtype=torch.float32, device=dev), dim=-1)
    module = model.torch_module
    with seeded(seed):
        params = inject(model, hp, None)

        def embed(batch: Batch) -> Any:
            clips = [index.clips[int(r)] for r in batch.rows]
            flat = [w for h in clips for w in windows[h]]
            x = torch.from_numpy(np.stack(flat).astype(np.float32)).to(dev)
            emb = module.get_audio_embedding_from_data(x=x, use_tensor=True)
            out, i = [], 0
            for h in clips:
                n = len(windows[h])
                out.append(emb[i : i + n].mean(dim=0))
                i += n
            return F.normalize(torch.stack(out), dim=-1)

        def texts(batch: Batch) -> Any:
            return text[torch.as_tensor(batch.words, device=dev)]

        history, seconds = fit(index, embed, texts, params, hp, seed, dev, on_epoch)
    for p in params:
        p.requires_grad_(False)
    weights = export(model)
    keys: list[str] = []
    vectors: list[NDArray[np.float32]] = []
    skipped: list[str] = []
    for chunk in _chunks(prepared.clips, CHUNK):
        whole: list[tuple[str, Audio]] = []
        got: dict[str, NDArray[np.float32]] = {}
        for h in chunk:
            try:
                a = prepared.training_audio.get(h) or prepared.recovery.audio(h)
            except AudioError as exc:
                skipped.append(str(exc))
                continue
            if isinstance(a, StreamedAudio):
                got[h] = model.embed_streamed(a)[0]
            else:
                whole.append((h, a))
        if whole:
            for (h, _), v in zip(whole, model.embed_audio([a for _, a in whole])):
                got[h] = v
        for h in chunk:
            if h in got:
                keys.append(h)
                vectors.append(got[h][None, :])
    if skipped and warn is not None:
        warn(f"lora: {len(skipped)} clip(s) of {prepared.base.label} could not be re-embedded (e.g. {skipped[0]}); "
             "the tuned space lacks them")
    matrix = np.concatenate(vectors, axis=0) if vectors else np.zeros((0, model.dim), dtype=np.float32)
    extra = {"lora": {"target_modules": TARGET_MODULES, "rank": int(hp["rank"]), "alpha": int(hp["alpha"]),
                      "not_reembedded": len(skipped)},
             "base_provenance": {k: v for k, v in model.provenance().items() if k != "pins"}}
    return Trained(weights, history, seconds), (keys, matrix.astype(np.float32)), extra
