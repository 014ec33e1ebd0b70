"""timbredb: an embedding store and analysis database for timbre semantics.

Importing the package is cheap: torch and the model packages load only when a
model is loaded.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("timbredb")
except PackageNotFoundError:  # running from a checkout that was not installed
    __version__ = "0.0.0+local"

__all__ = ["__version__"]
