"""`timbredb ingest` as one library call: resolve models and targets, run, summarise."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from timbredb.datasets.registry import datasets, ingest_function
from timbredb.download import ensure_dataset
from timbredb.errors import DatasetError, ModelUnavailableError, TimbreDBError
from timbredb.ingest.ingestor import Ingestor, IngestSummary
from timbredb.ingest.options import IngestOptions
from timbredb.models import SPECS, load, usable_models
from timbredb.progress import ProgressFactory, WarnFn, ignore, silent
from timbredb.store import Store
from timbredb.vocabularies import BARE, BUILTIN, DEFAULT_VOCABULARY, check_template


def _is_dataset(target: str) -> bool:
    """A target names a dataset unless a file or folder of that name exists here."""
    return target in datasets() and not Path(target).exists()


def ingest_dataset(ingestor: Ingestor, name: str, data_dir: Path, options: IngestOptions) -> None:
    """Run one dataset's ingest; a missing or malformed dataset is recorded, not raised."""
    spec = datasets()[name]
    try:
        result = ingest_function(spec)(ingestor, data_dir, options)
    except DatasetError as exc:
        ingestor.error(name, str(exc), "dataset")
        return
    ingestor.summary.datasets[name] = result or {}


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
        db: the store file (created if missing).
        data_dir: the root holding the datasets.
        targets: dataset names and/or audio files and folders; empty = every dataset.
        options: the typed ingest options.
        progress, warn: progress bars and one-line warnings (stderr in the CLI).
    """
    for t in options.prompts:
        check_template(t)
    targets = targets or list(datasets())
    for target in targets:
        # a missing dataset is downloaded first, so models built from its data (socialfx-eq) are usable
        if _is_dataset(target):
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
    engine = _file_engine(options, names, data_dir)
    with Store(db) as store, _closing(engine):
        ingestor = Ingestor(store, models, batch_size=options.batch_size, progress=progress, warn=warn,
                            command="ingest " + " ".join(targets) + _engine_suffix(options), file_engine=engine)
        paths = []
        for target in targets:
            if _is_dataset(target):
                ingest_dataset(ingestor, target, data_dir, options)
            elif Path(target).exists():
                paths.append(target)
            else:
                ingestor.error(
                    target,
                    f"{target}: no such file or folder, and not a dataset name ({', '.join(datasets())})",
                    "decode",
                )
        if paths:
            ingestor.add_paths(paths)
            ingestor.add_descriptors(BUILTIN[DEFAULT_VOCABULARY], options.prompts or [BARE], vocabulary=DEFAULT_VOCABULARY)
        return ingestor.finish()


# ---------------------------------------------------------------- engines (--engine)
def _file_engine(options: IngestOptions, names: list[str], data_dir: Path) -> Any:
    """The engine audio files go through: None for the in-process default, else a RayEngine."""
    if options.engine == "local":
        return None
    if options.engine != "ray":
        raise TimbreDBError(f"--engine: unknown engine {options.engine!r}; choose local or ray")
    from timbredb.ingest.ray_engine import ModelSet, RayEngine, RaySettings

    models = ModelSet(tuple(names), options.device, options.dtype, str(data_dir),
                      str(options.weights) if options.weights else None)
    return RayEngine(RaySettings(address=options.ray_address, actors=options.ray_actors), models)


def _engine_suffix(options: IngestOptions) -> str:
    return "" if options.engine == "local" else f" --engine {options.engine}"


@contextmanager
def _closing(engine: Any) -> Iterator[None]:
    try:
        yield
    finally:
        if engine is not None:
            engine.close()
