"""The options of `timbredb ingest`, typed, as every dataset reader sees them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class IngestOptions:
    """What to embed and how; dataset readers read the fields that concern them.

    Attributes:
        models: model names (``id[@checkpoint][/policy]``); None = every model usable here.
        batch_size: clips per transaction and windows per forward pass.
        device, dtype: where and in what precision neural models run.
        weights: a local checkpoint file for the single model in ``models``.
        prompts: prompt templates (``{}`` = the word); empty = each dataset's default.
        words: audealize: comma list or word file of descriptors to render (None = the study's).
        strengths: audealize: comma list of strengths in (0, 1] (None = the study's five).
        sources: audealize: extra source files or folders to render effects on.
        length_s: audealize: trim rendered variants to this many seconds (None = keep tails).
        engine: "local" (in-process) or "ray" (audio files embedded on Ray; timbredb.ingest.ray_engine).
        ray_address: a running Ray cluster to join (None: start a local one).
        ray_actors: embedding actors on Ray (None: one per GPU, else one).
    """

    models: list[str] | None = None
    batch_size: int = 16
    device: str = "auto"
    dtype: str = "float32"
    weights: Path | None = None
    prompts: list[str] = field(default_factory=list)
    words: str | None = None
    strengths: str | None = None
    sources: list[Path] = field(default_factory=list)
    length_s: float | None = None
    engine: str = "local"
    ray_address: str | None = None
    ray_actors: int | None = None
