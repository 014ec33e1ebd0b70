"""Module-level names for heavy modules, imported on first use.

A command imports only what it runs (`timbredb sql "select 1"` needs DuckDB, not
NumPy, polars or pyarrow). Modules whose functions use ``np``/``pl``/``pa``
throughout write, instead of ``import numpy as np``::

    if TYPE_CHECKING:
        import numpy as np
    else:
        np = lazy("numpy", globals(), "np")

The stand-in imports the module on its first attribute access and then puts the
real module in its place in the namespace, so later uses cost nothing.
``sys.modules`` only ever holds real modules (tests check what a command
imported by looking there).
"""

from __future__ import annotations

import importlib
from typing import Any


class _LazyModule:
    __slots__ = ("_alias", "_name", "_namespace")

    def __init__(self, name: str, namespace: dict[str, Any], alias: str) -> None:
        self._name = name
        self._namespace = namespace
        self._alias = alias

    def __getattr__(self, attr: str) -> Any:
        module = importlib.import_module(self._name)  # thread-safe: the import system holds the module's lock
        self._namespace[self._alias] = module
        return getattr(module, attr)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}>"


def lazy(name: str, namespace: dict[str, Any], alias: str) -> Any:
    """A stand-in for module ``name``, bound to ``alias`` in ``namespace`` (a module's ``globals()``)."""
    return _LazyModule(name, namespace, alias)
