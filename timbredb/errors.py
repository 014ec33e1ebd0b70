"""Typed errors. Every library error derives from TimbreDBError; the CLI turns
them into one line on stderr and the exit status named by ``exit_code``.

Exit statuses (documented in the README):
    0  success
    1  a timbredb error (bad input, missing data, unusable model, ...)
    2  usage error (unknown option, bad argument; raised by click)
    3  store integrity problem found by `timbredb check`
    4  `timbredb ingest --strict` finished with per-file errors
"""

from __future__ import annotations


class TimbreDBError(Exception):
    """Base class of all timbredb errors."""

    exit_code = 1


class StoreError(TimbreDBError):
    """The DuckDB store is missing, locked, or inconsistent."""


class MigrationError(StoreError):
    """A migration file was edited after it was applied, or failed to apply."""


class IntegrityError(StoreError):
    exit_code = 3


class ReadOnlyViolation(TimbreDBError):
    """A `timbredb sql` statement tried to write or to reach outside the store."""


class AudioError(TimbreDBError):
    """An audio file cannot be used: unreadable, empty, non-finite, too short..."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


class UnknownModelError(TimbreDBError):
    """No model with that id is registered."""


class ModelUnavailableError(TimbreDBError):
    """The model is registered but cannot run here (missing package or weights)."""


class VocabularyError(TimbreDBError):
    """A word is outside a closed vocabulary, or a vocabulary cannot be found."""


class DatasetError(TimbreDBError):
    """A dataset is missing or malformed."""


class DatasetUnavailable(DatasetError):
    """A dataset is not on this machine and cannot be fetched (offline, unreachable source).

    `timbredb ingest` with no target skips such a dataset with one warning; asked
    for by name, it is an error.

    Attributes:
        partial: what of the dataset was stored anyway (a summary), e.g. CCMusic's listener
            files when its recordings are unreachable; None when nothing was.
    """

    def __init__(self, message: str, partial: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.partial = partial


class AnalysisError(TimbreDBError):
    """An analysis cannot run on what the store holds."""


class NotFoundError(TimbreDBError):
    """A clip, space or vocabulary the caller named is not in the store."""


class InterchangeError(TimbreDBError):
    """A Parquet interchange file cannot be merged (corrupt, wrong schema, conflicting row), or an export failed."""


class PartialFailure(TimbreDBError):
    """A run finished but some inputs failed (used by --strict)."""

    exit_code = 4


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name when the message is empty).

    Third-party errors (DuckDB, libsndfile, `datasets`) often span several lines;
    timbredb's messages quote only this part, so each stays one line.
    """
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
