"""Progress reporting hooks. The library calls these; the CLI supplies tqdm bars on stderr."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class Progress(Protocol):
    def update(self, n: int = 1) -> None: ...

    def close(self) -> None: ...


class _Silent:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


#: (description, total) -> Progress
ProgressFactory = Callable[[str, int | None], Progress]


def silent(desc: str, total: int | None = None) -> Progress:
    return _Silent()


#: (message) -> None, for one-line warnings (stderr in the CLI)
WarnFn = Callable[[str], None]


def ignore(message: str) -> None:
    pass
