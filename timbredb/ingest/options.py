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
        allow_unpinned: load weights whose sha256 is not the pinned one (recorded in provenance).
        prompts: prompt templates (``{}`` = the word); empty = each dataset's default.
        words: audealize: comma list or word file of descriptors to render (None = the study's).
        strengths: audealize: comma list of strengths in (0, 1] (None = the study's five).
        sources: audealize: extra source files or folders to render effects on.
        length_s: audealize: trim rendered variants to this many seconds (None = keep tails).
        prompt_set: a named template set (``vocabularies.PROMPT_SETS``) added to ``prompts``.
        rating_audio: `ingest ratings`: the folder of the stimuli's recordings.
        rating_name: `ingest ratings`: the dataset name (default the folder's name or file's stem).
        timbremetrics_dir: timbremetrics: read the collection (sounds/ + true_dissim/, or a
            clone of the repository) from here instead of DATA_DIR/timbremetrics.
        min_contributions: socialfx-comp, safedb: a word is rendered when at least this many
            contributions (rows) describe it (None = each dataset's default).
        engine: "local" (in-process) or "ray" (audio files embedded on Ray; timbredb.ingest.ray_engine).
        ray_address: a running Ray cluster to join (None: start a local one).
        ray_actors: embedding actors on Ray (None: one per GPU, else one).
        workers: worker processes that read, decode, hash, resample and window files (and compute the
            baselines' vectors) while the model runs: 0 = none (the sequential engine); None = cores - 1
            (every core when only the baselines run), for runs of at least two batches of files.
    """

    models: list[str] | None = None
    batch_size: int = 16
    device: str = "auto"
    dtype: str = "float32"
    weights: Path | None = None
    allow_unpinned: bool = False
    prompts: list[str] = field(default_factory=list)
    words: str | None = None
    strengths: str | None = None
    sources: list[Path] = field(default_factory=list)
    length_s: float | None = None
    prompt_set: str | None = None
    rating_audio: Path | None = None
    rating_name: str | None = None
    timbremetrics_dir: Path | None = None
    min_contributions: int | None = None
    engine: str = "local"
    ray_address: str | None = None
    ray_actors: int | None = None
    workers: int | None = None
