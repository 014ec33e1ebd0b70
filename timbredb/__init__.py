"""timbredb: an embedding store and analysis database for timbre semantics.

The public library API, imported lazily (so ``import timbredb`` imports neither
torch nor DuckDB, nor importlib.metadata until ``__version__`` is read; torch and the
model packages load only when a model does):

    from timbredb import Store, run_ingest, IngestOptions, run_experiment, describe_files, build_report

    with Store("timbredb.duckdb", read_only=True) as store:
        frames = run_experiment("exp1", store, model="laion-clap")   # dict[str, polars.DataFrame]
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

#: public name -> "module:attribute", resolved on first access
_LAZY = {
    "Store": "timbredb.store:Store",
    "SpaceRecord": "timbredb.spaces:SpaceRecord",
    "run_ingest": "timbredb.ingest:run_ingest",
    "IngestOptions": "timbredb.ingest:IngestOptions",
    "Ingestor": "timbredb.ingest:Ingestor",
    "EXPERIMENTS": "timbredb.analysis.registry:EXPERIMENTS",
    "run_experiment": "timbredb.analysis.registry:run",
    "run_exp1": "timbredb.analysis.exp1:run_exp1",
    "run_exp2": "timbredb.analysis.exp2:run_exp2",
    "run_exp3": "timbredb.analysis.exp3:run_exp3",
    "describe_files": "timbredb.describe:describe",
    "build_report": "timbredb.report:build_report",
    "load_model": "timbredb.models:load",
    "TimbreDBError": "timbredb.errors:TimbreDBError",
}

__all__ = [
    "EXPERIMENTS", "IngestOptions", "Ingestor", "SpaceRecord", "Store", "TimbreDBError", "__version__",
    "build_report", "describe_files", "load_model", "run_exp1", "run_exp2", "run_exp3", "run_experiment", "run_ingest",
]

if TYPE_CHECKING:
    __version__: str

    from timbredb.analysis.exp1 import run_exp1
    from timbredb.analysis.exp2 import run_exp2
    from timbredb.analysis.exp3 import run_exp3
    from timbredb.analysis.registry import EXPERIMENTS
    from timbredb.analysis.registry import run as run_experiment
    from timbredb.describe import describe as describe_files
    from timbredb.errors import TimbreDBError
    from timbredb.ingest import IngestOptions, Ingestor, run_ingest
    from timbredb.models import load as load_model
    from timbredb.report import build_report
    from timbredb.spaces import SpaceRecord
    from timbredb.store import Store


def _version() -> str:
    # importlib.metadata costs tens of milliseconds to import: read it only when the version is asked for
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("timbredb")
    except PackageNotFoundError:  # running from a checkout that was not installed
        return "0.0.0+local"


def __getattr__(name: str) -> Any:
    if name == "__version__":
        globals()[name] = value = _version()
        return value
    ref = _LAZY.get(name)
    if ref is None:
        raise AttributeError(f"module 'timbredb' has no attribute {name!r}")
    module, _, attr = ref.partition(":")
    value = getattr(import_module(module), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
