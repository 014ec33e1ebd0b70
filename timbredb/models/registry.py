"""The model registry: a plain table of specs. Importing it imports no torch.

Real-model adapters add their specs here; the loader strings name the classes
that are imported only when a model is loaded.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

from timbredb.errors import ModelUnavailableError, UnknownModelError
from timbredb.models.base import Availability, EmbeddingModel, ModelSpec, WindowPolicy

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
)


def specs() -> dict[str, ModelSpec]:
    return {s.id: s for s in SPECS}


def parse_name(name: str) -> tuple[ModelSpec, str | None]:
    """Split ``id[@checkpoint]`` and look the id up.

    Raises:
        UnknownModelError: no such model id.
    """
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
    policy: WindowPolicy | None = None,
    check: bool = True,
) -> EmbeddingModel:
    """Build a model object (weights load lazily, on first embed).

    Args:
        name: ``id`` or ``id@checkpoint``.
        check: raise ModelUnavailableError now if the model cannot run here.
    """
    spec, checkpoint = parse_name(name)
    if check and weights is None:
        avail = availability(spec, data_dir, checkpoint)
        if not avail.usable:
            raise ModelUnavailableError(f"{name}: unavailable: {avail.reason}")
    cls = _resolve(spec.loader)
    return cls(spec, checkpoint=checkpoint, device=device, dtype=dtype, data_dir=data_dir, weights=weights, policy=policy)  # type: ignore[operator]


def usable_models(data_dir: Path | None) -> list[str]:
    """Ids of the models that can run here, in registry order."""
    return [s.id for s in SPECS if availability(s, data_dir).usable]
