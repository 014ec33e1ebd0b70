"""The model registry: a plain table of specs. Importing it imports no torch.

Real-model adapters add their specs here; the loader strings name the classes
that are imported only when a model is loaded.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

from timbredb.errors import ModelUnavailableError, UnknownModelError
from timbredb.models.base import Availability, EmbeddingModel, ModelSpec, Pin, WindowPolicy
from timbredb.spaces import TUNED_MARK, is_tuned

# ---- checkpoint pins (docs/models.md "Checkpoint pins" cites each source)
# Only values found in public sources are recorded; a file without a published sha256 is
# "unpinned" (reported, never refused) and one without a published revision is fetched from main.
#: lukewys/laion_clap: the snapshot commit under which public Hugging Face caches hold these files
#: (hub-cache paths ".../models--lukewys--laion_clap/snapshots/b3708341.../<file>" in public code)
_LAION_REVISION = "b3708341862f581175dba5c356a4ebf74a9b6651"
_LAION_SEEN_AT_REVISION = (
    "630k-audioset-fusion-best", "music_audioset_epoch_15_esc_90.14", "music_speech_audioset_epoch_15_esc_89.98",
)
LAION_PINS: dict[str, Pin] = {
    # sha256 and size as pinned by several independent public reproductions (checkpoint manifests,
    # setup guides and shell configs in public GitHub code all give the same digest)
    "lukewys/laion_clap/630k-audioset-best.pt": Pin(
        "lukewys/laion_clap", "630k-audioset-best.pt", revision=_LAION_REVISION,
        sha256="8053c9775516af2f4902e1e8281e356cc1bf7a85e8b761908170767b77c3f037", size_bytes=1_863_587_645,
        source="public reproductions' checkpoint pins; hub snapshot b3708341 in public cache paths",
    ),
    **{
        f"lukewys/laion_clap/{name}.pt": Pin(
            "lukewys/laion_clap", f"{name}.pt", revision=_LAION_REVISION,
            source="hub snapshot b3708341 in public cache paths (no published sha256)",
        )
        for name in _LAION_SEEN_AT_REVISION
    },
}
MSCLAP_PINS: dict[str, Pin] = {
    # revision + LFS sha256 from a public model registry that pinned them from the Hugging Face
    # API; the same digest and size appear in independent public download receipts
    "microsoft/msclap/CLAP_weights_2023.pth": Pin(
        "microsoft/msclap", "CLAP_weights_2023.pth", revision="c47d441165daa21986ead0850660917636a81775",
        sha256="2cef4016d47d00eb28d153d522f397222057f95000e9bad6b9583c631284a1e6", size_bytes=689_950_036,
        source="public checkpoint registry (revision + LFS sha256 from the hub API) and download receipts",
    ),
}

SPECS: tuple[ModelSpec, ...] = (
    ModelSpec(
        id="mfcc",
        family="baseline",
        checkpoint="torchaudio-mfcc40",
        dim=40,
        sample_rate=44100,
        modalities=("audio",),
        license="n/a (no weights)",
        description="time-averaged 40-coefficient MFCC (torchaudio defaults, 128 HTK mels); audio only",
        loader="timbredb.models.mfcc:MFCCModel",
    ),
    # ---- timbremetrics' other weight-free rows (Tian et al. 2025, examples/evaluate_{mss,mfcc}.py)
    ModelSpec(
        id="mss",
        family="baseline",
        checkpoint="timbremetrics-mss",
        dim=8076,
        sample_rate=44100,
        modalities=("audio",),
        license="n/a (no weights)",
        description="time-averaged multi-scale spectrogram (torch.stft defaults: rectangular window; "
        "n_fft 4096..128, magnitude + log); audio only",
        loader="timbredb.models.mss:MSSModel",
        # timbremetrics' baselines: selected by default they embed only its stimuli (an 8076-d MSS of
        # every exp2 variant would cost minutes and serves no text query)
        scope=("timbremetrics",),
    ),
    ModelSpec(
        id="mfcc-frames",
        family="baseline",
        checkpoint="torchaudio-mfcc40-frames",
        dim=0,
        sample_rate=44100,
        modalities=("audio",),
        license="n/a (no weights)",
        description="frame-level MFCC compared pair by pair (shorter clip zero-padded to the longer); "
        "audio only, no per-clip vector",
        loader="timbredb.models.pairwise:MFCCFramesModel",
        # timbremetrics' baselines: selected by default they embed only its stimuli (an 8076-d MSS of
        # every exp2 variant would cost minutes and serves no text query)
        scope=("timbremetrics",),
    ),
    ModelSpec(
        id="mss-frames",
        family="baseline",
        checkpoint="timbremetrics-mss-frames",
        dim=0,
        sample_rate=44100,
        modalities=("audio",),
        license="n/a (no weights)",
        description="frame-level multi-scale spectrogram compared pair by pair (shorter clip zero-padded "
        "to the longer); audio only, no per-clip vector",
        loader="timbredb.models.pairwise:MSSFramesModel",
        # timbremetrics' baselines: selected by default they embed only its stimuli (an 8076-d MSS of
        # every exp2 variant would cost minutes and serves no text query)
        scope=("timbremetrics",),
    ),
    ModelSpec(
        id="socialfx-eq",
        family="baseline",
        checkpoint="audealize-eqpoints",
        dim=40,
        sample_rate=44100,
        modalities=("audio", "text"),
        license="Audealize/SocialFX descriptor data (no licence stated; read from the data dir)",
        description="40-band spectral tilt vs pink noise, compared with crowd-sourced descriptor EQ curves",
        loader="timbredb.models.socialfx:SocialFXEQModel",
        availability="timbredb.models.socialfx:availability",
    ),
    # ---- real joint language-audio models (weights from the Hugging Face cache;
    # `timbredb models fetch ID` downloads them, `docs/models.md` describes each)
    ModelSpec(
        id="laion-clap",
        family="CLAP",
        checkpoint="630k-audioset-best",
        checkpoints=(
            "630k-audioset-best",
            "630k-best",
            "630k-audioset-fusion-best",
            "630k-fusion-best",
            "music_audioset_epoch_15_esc_90.14",
            "music_speech_epoch_15_esc_89.25",
            "music_speech_audioset_epoch_15_esc_89.98",
        ),
        dim=512,
        sample_rate=48000,
        modalities=("audio", "text"),
        license="CC0-1.0 (weights: lukewys/laion_clap)",
        description="LAION-CLAP: HTSAT audio + RoBERTa text, 10 s windows at 48 kHz (music_* are HTSAT-base)",
        loader="timbredb.models.laion_clap:LaionClapModel",
        requires=("torch", "laion_clap", "transformers", "huggingface_hub", "librosa", "torchlibrosa"),
        extra="models",
        availability="timbredb.models.laion_clap:availability",
        pins=dict(LAION_PINS),
    ),
    ModelSpec(
        id="ms-clap",
        family="CLAP",
        checkpoint="2023",
        checkpoints=("2023", "2022"),
        dim=1024,
        sample_rate=44100,
        modalities=("audio", "text"),
        license="MIT (weights: microsoft/msclap)",
        description="Microsoft CLAP; 2023: HTSAT + GPT-2 text, 7 s windows; 2022: CNN14 + BERT, 5 s; 44.1 kHz",
        loader="timbredb.models.ms_clap:MSClapModel",
        requires=("torch", "msclap", "transformers", "huggingface_hub", "torchlibrosa"),
        extra="models",
        availability="timbredb.models.ms_clap:availability",
        pins=dict(MSCLAP_PINS),
    ),
    ModelSpec(
        id="muq-mulan",
        family="MuLan",
        checkpoint="MuQ-MuLan-large",
        dim=512,
        sample_rate=24000,
        modalities=("audio", "text"),
        license="CC-BY-NC-4.0, non-commercial use only (weights: OpenMuQ/MuQ-MuLan-large)",
        description="MuQ-MuLan: MuQ music encoder + XLM-R text; 10 s windows at 24 kHz",
        loader="timbredb.models.muq_mulan:MuQMuLanModel",
        requires=("torch", "muq", "transformers", "huggingface_hub"),
        extra="models",
        availability="timbredb.models.muq_mulan:availability",
    ),
    ModelSpec(
        id="openflam",
        family="FLAM",
        checkpoint="v1-base",
        dim=512,
        sample_rate=48000,
        modalities=("audio", "text"),
        license="Adobe Research License, non-commercial research only (weights: kechenadobe/OpenFLAM)",
        description="OpenFLAM global audio/text embeddings; 10 s windows at 48 kHz (package installed separately)",
        loader="timbredb.models.openflam:OpenFLAMModel",
        # its pins (torch<2.8, transformers==4.56.1) clash with the models extra: checked by availability
        availability="timbredb.models.openflam:availability",
    ),
)


def specs() -> dict[str, ModelSpec]:
    return {s.id: s for s in SPECS}


def parse_name(name: str) -> tuple[ModelSpec, str | None]:
    """Split ``id[@checkpoint]`` and look the id up.

    A fine-tuned space's label (``laion-clap+ft-1a2b3c4d``) names its base model.

    Raises:
        UnknownModelError: no such model id.
    """
    name = name.split(TUNED_MARK, 1)[0]
    model_id, _, checkpoint = name.partition("@")
    table = specs()
    if model_id not in table:
        raise UnknownModelError(
            f"unknown model {model_id!r}; known models: {', '.join(table)} (see `timbredb models list`)"
        )
    return table[model_id], (checkpoint or None)


def _resolve(ref: str) -> object:
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


def availability(spec: ModelSpec, data_dir: Path | None = None, checkpoint: str | None = None) -> Availability:
    """Whether the model can run here, and the exact fix if not. Imports nothing heavy."""
    missing = [mod for mod in spec.requires if importlib.util.find_spec(mod) is None]
    if missing:
        extra = spec.extra or "models"
        return Availability(
            False,
            f"missing package(s) {', '.join(missing)}: pip install 'torch==2.13.0' 'timbredb[{extra}]'",
        )
    if spec.availability:
        check = _resolve(spec.availability)
        return check(spec, data_dir, checkpoint or spec.checkpoint)  # type: ignore[operator]
    return Availability(True, "")


def load(
    name: str,
    *,
    device: str = "auto",
    dtype: str = "float32",
    data_dir: Path | None = None,
    weights: str | Path | None = None,
    policy: WindowPolicy | str | None = None,
    check: bool = True,
    allow_unpinned: bool = False,
    store_path: Path | None = None,
) -> EmbeddingModel:
    """Build a model object (weights load lazily, on first embed).

    Args:
        name: ``id``, ``id@checkpoint``, optionally followed by ``/policy`` (a named policy);
            or a fine-tuned space's label (``laion-clap+ft-1a2b3c4d``), read from ``store_path``.
        check: raise ModelUnavailableError now if the model cannot run here.
        allow_unpinned: load weights whose sha256 differs from the pinned one (recorded in provenance).
        store_path: the store a fine-tuned space lives in (its weights are stored there).
    """
    if is_tuned(name):
        from timbredb.finetune.model import load_tuned

        return load_tuned(name, store_path, device=device, dtype=dtype, data_dir=data_dir,
                          allow_unpinned=allow_unpinned)
    name, _, policy_name = name.partition("/")
    if policy_name and policy is None:
        policy = policy_name  # a named policy of the model, e.g. "laion-clap/paper"
    spec, checkpoint = parse_name(name)
    if check and weights is None:
        avail = availability(spec, data_dir, checkpoint)
        if not avail.usable:
            raise ModelUnavailableError(f"{name}: unavailable: {avail.reason}")
    cls = _resolve(spec.loader)
    return cls(spec, checkpoint=checkpoint, device=device, dtype=dtype, data_dir=data_dir,  # type: ignore[operator]
               weights=weights, policy=policy, allow_unpinned=allow_unpinned)


def usable_models(data_dir: Path | None) -> list[str]:
    """Ids of the models that can run here, in registry order."""
    return [s.id for s in SPECS if availability(s, data_dir).usable]
