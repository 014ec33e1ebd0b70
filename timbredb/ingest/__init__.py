"""Ingest: audio files and datasets -> clips -> vectors in every selected space, resumably.

``run_ingest`` is `timbredb ingest` as one call; ``Ingestor`` is the resumable
engine that dataset readers drive (store clips, embed what is missing, record
errors); ``IngestOptions`` are its typed options.
"""

from timbredb.ingest.ingestor import FileClip, Ingestor, IngestSummary
from timbredb.ingest.options import IngestOptions
from timbredb.ingest.run import ingest_dataset, run_ingest

__all__ = ["FileClip", "IngestOptions", "IngestSummary", "Ingestor", "ingest_dataset", "run_ingest"]
