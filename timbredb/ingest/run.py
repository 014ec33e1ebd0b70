"""`timbredb ingest` as one library call: resolve models and targets, run, summarise."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from timbredb.datasets.registry import datasets, default_datasets, ingest_function
from timbredb.download import ensure_dataset
from timbredb.errors import DatasetError, DatasetUnavailable, ModelUnavailableError, TimbreDBError
from timbredb.ingest.ingestor import Ingestor, IngestSummary
from timbredb.ingest.options import IngestOptions
from timbredb.models import SPECS, EmbeddingModel, load, usable_models
from timbredb.progress import ProgressFactory, WarnFn, ignore, silent
from timbredb.store import Store
from timbredb.vocabularies import BARE, BUILTIN, DEFAULT_VOCABULARY, check_template, prompt_set

if TYPE_CHECKING:
    from timbredb.datasets.rated import RatedData

#: `timbredb ingest ratings PATH`: a rated dataset a user brings (timbredb.datasets.rated)
RATINGS = "ratings"
#: (the PATH given, (its validated data, stimulus -> recording))
Prepared = tuple[str, "tuple[RatedData, dict[str, Path]]"]


def _is_dataset(target: str) -> bool:
    """A target names a dataset unless a file or folder of that name exists here."""
    return target in datasets() and not Path(target).exists()


def ingest_dataset(
    ingestor: Ingestor, name: str, data_dir: Path, options: IngestOptions, *, requested: bool = True,
    download_problem: str | None = None,
) -> None:
    """Run one dataset's ingest; a missing or malformed dataset is recorded, not raised.

    Args:
        requested: the user named the dataset. A dataset that is not on this machine
            (DatasetUnavailable) is then an error; as part of "every dataset" it is
            skipped with one warning.
        download_problem: why fetching the missing dataset failed, said instead of "not found".
    """
    spec = datasets()[name]
    try:
        result = ingest_function(spec)(ingestor, data_dir, options)
    except DatasetUnavailable as exc:
        reason = download_problem or str(exc)
        if exc.partial is not None:
            ingestor.summary.datasets[name] = exc.partial
        if requested:
            ingestor.error(name, reason, "dataset")
        else:
            ingestor.warn(f"{name}: skipped: {reason}")
            ingestor.summary.skipped_datasets[name] = reason
        return
    except DatasetError as exc:
        ingestor.error(name, str(exc), "dataset")
        return
    ingestor.summary.datasets[name] = result or {}


def model_names(options: IngestOptions, data_dir: Path, warn: WarnFn = ignore) -> list[str]:
    """The run's model names: --models as given, else every model usable here.

    Raises:
        ModelUnavailableError: no model usable here.
        TimbreDBError: --weights with several models.
    """
    if options.models:
        names = list(options.models)
    else:
        names = usable_models(data_dir)
        skipped = len(SPECS) - len(names)
        if skipped:
            warn(f"models: {', '.join(names) or 'none'} ({skipped} unavailable here; see `timbredb models list`)")
        if not names:
            raise ModelUnavailableError("no model is usable here; see `timbredb models list`")
    if options.weights is not None and len(names) != 1:
        raise TimbreDBError("--weights needs exactly one model in --models")
    return names


def load_models(options: IngestOptions, data_dir: Path, warn: WarnFn = ignore,
                names: list[str] | None = None, db: Path | None = None) -> list[EmbeddingModel]:
    """The run's models (``names``, default ``model_names()``), loaded: every one before any store
    is opened, so a model that cannot load (missing tokenizer, unreadable or tampered checkpoint)
    fails the run before anything is written or a new store is created. ``db``: the store a
    fine-tuned space's weights are read from.

    Raises:
        ModelUnavailableError: no model usable here, or one that cannot load.
        TimbreDBError: --weights with several models.
    """
    if names is None:
        names = model_names(options, data_dir, warn)
    models = [
        load(n, device=options.device, dtype=options.dtype, data_dir=data_dir, weights=options.weights,
             allow_unpinned=options.allow_unpinned, store_path=db)  # db: where a fine-tuned space lives
        for n in names
    ]
    for model in models:
        model.ensure_loaded()
    return models


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
        targets: dataset names and/or audio files and folders; empty = every default dataset
            (``default_datasets()``: ccmusic, audealize, timbremetrics).
        options: the typed ingest options.
        progress, warn: progress bars and one-line warnings (stderr in the CLI).
    """
    if options.prompt_set is not None:
        options = replace(options, prompts=list(dict.fromkeys([*options.prompts, *prompt_set(options.prompt_set)])))
    for t in options.prompts:
        check_template(t)
    rated = _prepare_ratings(targets, options)
    if rated is not None:
        return _run_ratings(db, data_dir, rated, options, progress, warn)
    requested = bool(targets)
    targets = targets or default_datasets()
    download_problems: dict[str, str] = {}
    for target in targets:
        # a missing dataset is downloaded first, so models built from its data (socialfx-eq) are usable
        if _is_dataset(target):
            try:
                if ensure_dataset(target, data_dir):
                    warn(f"{target}: downloaded into {data_dir / target}")
            except DatasetError as exc:
                download_problems[target] = str(exc)
    names = model_names(options, data_dir, warn)
    models = load_models(options, data_dir, names=names, db=db)
    engine = _file_engine(options, names, data_dir)
    with Store(db) as store, _closing(engine):
        ingestor = Ingestor(store, models, batch_size=options.batch_size, progress=progress, warn=warn,
                            command="ingest " + " ".join(targets) + _engine_suffix(options),
                            scoped=not options.models, file_engine=engine)
        paths = []
        for target in targets:
            if _is_dataset(target):
                with ingestor.for_dataset(target):
                    ingest_dataset(ingestor, target, data_dir, options, requested=requested,
                                   download_problem=download_problems.get(target))
            elif Path(target).exists():
                paths.append(target)
            else:
                ingestor.error(
                    target,
                    f"{target}: no such file or folder, and not a dataset name ({', '.join(datasets())})",
                    "decode",
                )
        if paths:
            with ingestor.for_dataset("files"):
                ingestor.add_paths(paths)
                ingestor.add_descriptors(BUILTIN[DEFAULT_VOCABULARY], options.prompts or [BARE],
                                         vocabulary=DEFAULT_VOCABULARY)
        return ingestor.finish()


# ---------------------------------------------------------------- `ingest ratings` (issue 11)
def _prepare_ratings(targets: list[str], options: IngestOptions) -> Prepared | None:
    """The validated rated dataset of `ingest ratings PATH`, or None for any other ingest.

    Everything is read and validated here, before a model loads or the store opens, so
    a malformed file is one error line and writes nothing.
    """
    from timbredb.datasets import rated

    if not targets or targets[0] != RATINGS or Path(RATINGS).exists():
        if options.rating_audio is not None or options.rating_name is not None:
            raise TimbreDBError("--audio and --name belong to `timbredb ingest ratings PATH`")
        return None
    if len(targets) != 2:
        raise TimbreDBError("`timbredb ingest ratings` takes one FILE.csv or folder (then --audio DIR, --name NAME)")
    path = targets[1]
    return path, rated.prepare(Path(path), options.rating_audio, options.rating_name)


def _run_ratings(
    db: Path, data_dir: Path, prepared: Prepared, options: IngestOptions, progress: ProgressFactory,
    warn: WarnFn,
) -> IngestSummary:
    from timbredb.datasets import rated

    path, (data, files) = prepared
    models = load_models(options, data_dir, warn, db=db)
    with Store(db) as store:
        ingestor = Ingestor(store, models, batch_size=options.batch_size, progress=progress, warn=warn,
                            command=f"ingest ratings {path}")
        ingestor.summary.datasets[data.name] = rated.ingest(ingestor, data, files, options)
        return ingestor.finish()


# ---------------------------------------------------------------- engines (--engine)
def _file_engine(options: IngestOptions, names: list[str], data_dir: Path) -> Any:
    """The engine audio files go through: None for the in-process default, else a RayEngine."""
    if options.engine == "local":
        return None
    if options.engine != "ray":
        raise TimbreDBError(f"--engine: unknown engine {options.engine!r}; choose local or ray")
    from timbredb.spaces import is_tuned

    tuned = [n for n in names if is_tuned(n)]
    if tuned:
        # a tuned space's weights are read from the store, which the driver holds open for writing
        raise TimbreDBError(f"--engine ray: {', '.join(tuned)} is a fine-tuned space; its weights live in the store "
                            "the driver writes, so Ray workers cannot load it; use --engine local")
    from timbredb.ingest.ray_engine import ModelSet, RayEngine, RaySettings

    models = ModelSet(tuple(names), options.device, options.dtype, str(data_dir),
                      str(options.weights) if options.weights else None, options.allow_unpinned)
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
