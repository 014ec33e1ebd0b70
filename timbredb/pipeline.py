"""`timbredb ingest` as one library call: resolve models and targets, run, summarise."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from timbredb.download import ensure_dataset
from timbredb.errors import DatasetError, ModelUnavailableError, TimbreDBError
from timbredb.ingest import DATASETS, IngestSummary, Ingestor, ingest_dataset
from timbredb.models import SPECS, load, usable_models
from timbredb.progress import ProgressFactory, WarnFn, ignore, silent
from timbredb.store import Store
from timbredb.vocabularies import BARE, BUILTIN, DEFAULT_VOCABULARY, check_template


@dataclass
class IngestOptions:
    """Options of `timbredb ingest`; dataset readers see them as a dict."""

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


def run_ingest(
    db: Path,
    data_dir: Path,
    targets: list[str],
    options: IngestOptions,
    progress: ProgressFactory = silent,
    warn: WarnFn = ignore,
) -> IngestSummary:
    """Ingest datasets and audio paths with the chosen models.

    Args:
        targets: dataset names and/or audio files and folders; empty = every dataset.
    """
    for t in options.prompts:
        check_template(t)
    targets = targets or list(DATASETS)
    for target in targets:
        # a missing dataset is downloaded first, so models built from its data (socialfx-eq) are usable
        if target in DATASETS and not Path(target).exists():
            try:
                if ensure_dataset(target, data_dir):
                    warn(f"{target}: downloaded into {data_dir / target}")
            except DatasetError as exc:
                warn(f"error: {exc}")
    if options.models:
        names = options.models
    else:
        names = usable_models(data_dir)
        skipped = len(SPECS) - len(names)
        if skipped:
            warn(f"models: {', '.join(names) or 'none'} ({skipped} unavailable here; see `timbredb models list`)")
        if not names:
            raise ModelUnavailableError("no model is usable here; see `timbredb models list`")
    if options.weights is not None and len(names) != 1:
        raise TimbreDBError("--weights needs exactly one model in --models")
    models = [
        load(n, device=options.device, dtype=options.dtype, data_dir=data_dir, weights=options.weights) for n in names
    ]
    dataset_options: dict[str, Any] = asdict(options)
    with Store(db) as store:
        ingestor = Ingestor(store, models, batch_size=options.batch_size, progress=progress, warn=warn,
                            command="ingest " + " ".join(targets))
        paths = []
        for target in targets:
            if target in DATASETS and not Path(target).exists():
                ingest_dataset(ingestor, target, data_dir, dataset_options)
            elif Path(target).exists():
                paths.append(target)
            else:
                ingestor.error(
                    target,
                    f"{target}: no such file or folder, and not a dataset name ({', '.join(DATASETS)})",
                    "decode",
                )
        if paths:
            ingestor.add_paths(paths)
            ingestor.add_descriptors(BUILTIN[DEFAULT_VOCABULARY], options.prompts or [BARE], vocabulary=DEFAULT_VOCABULARY)
        return ingestor.finish()
