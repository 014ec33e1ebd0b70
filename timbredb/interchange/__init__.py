"""Parquet interchange: a store's content as Parquet datasets, and their idempotent merge.

``export_store`` is `timbredb export DIR`; ``import_embeddings`` is `timbredb import
embeddings DIR`; ``import_directory`` merges any interchange folder into an open
store (the Ray engine merges its batch folders with it). The format is described
in ``tables`` and docs/scale.md.
"""

from timbredb.interchange.export import export_store, parse_what
from timbredb.interchange.importer import ImportSummary, import_directory, import_embeddings
from timbredb.interchange.tables import FORMAT, PARTS, TABLES

__all__ = ["FORMAT", "PARTS", "TABLES", "ImportSummary", "export_store", "import_directory", "import_embeddings", "parse_what"]
