"""What `timbredb models list` and `models vocabulary` show. Imports no torch."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from timbredb.errors import VocabularyError
from timbredb.models.registry import SPECS, availability, load


def model_table(data_dir: Path | None) -> pl.DataFrame:
    """One row per registered model: metadata and whether it can run here."""
    rows = []
    for spec in SPECS:
        avail = availability(spec, data_dir)
        rows.append(
            {
                "id": spec.id,
                "family": spec.family,
                "checkpoint": spec.checkpoint,
                "checkpoints": list(spec.checkpoints or (spec.checkpoint,)),
                "dim": spec.dim,
                "sample_rate": spec.sample_rate,
                "modalities": list(spec.modalities),
                "similarity": spec.similarity,
                "license": spec.license,
                "usable": avail.usable,
                "reason": avail.reason,
                "description": spec.description,
            }
        )
    return pl.DataFrame(rows)


def vocabulary(name: str, data_dir: Path | None) -> list[str]:
    """The closed vocabulary of a model; open-vocabulary models raise VocabularyError."""
    model = load(name, data_dir=data_dir)
    words = getattr(model, "vocabulary", None)
    if words is None:
        raise VocabularyError(f"{name} has an open vocabulary (any text), or no text encoder")
    return list(words())
