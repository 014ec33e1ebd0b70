"""Embedding models: a cheap registry of specs and lazily loaded implementations."""

from timbredb.models.base import Availability, EmbeddingModel, ModelSpec, Pin, WindowPolicy
from timbredb.models.registry import (
    SPECS,
    availability,
    load,
    parse_name,
    specs,
    usable_models,
)

__all__ = [
    "SPECS",
    "Availability",
    "EmbeddingModel",
    "ModelSpec",
    "Pin",
    "WindowPolicy",
    "availability",
    "load",
    "parse_name",
    "specs",
    "usable_models",
]
