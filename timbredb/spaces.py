"""Embedding spaces: the stored record of one, and the one rule that resolves ``--model``.

An embedding space is (model id, checkpoint, preprocessing policy). Every vector
row names its space by ``space_id``; users name spaces by ``label`` (the model id
for a model's default checkpoint and policy, else ``id@checkpoint[/policy]``).

``match`` is the only place that decides which spaces a ``--model`` value means.
Python callers use it through ``Store.spaces``; SQL files never match model names
themselves, they take the resolved ``$space_ids`` (or ``$models`` labels).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

#: what separates a base space's label from the hash in a fine-tuned space's label
#: (``laion-clap+ft-1a2b3c4d``; `timbredb finetune`, timbredb/finetune/)
TUNED_MARK = "+ft-"


def is_tuned(name: str) -> bool:
    """Whether a --model value names a fine-tuned space (its label has ``TUNED_MARK``)."""
    return TUNED_MARK in name


@dataclass(frozen=True)
class SpaceRecord:
    """One embedding space as stored in the ``spaces`` table."""

    space_id: str
    label: str
    model_id: str
    family: str
    checkpoint: str
    checkpoint_sha256: str | None
    policy: dict[str, Any]
    dim: int
    sample_rate: int
    similarity: str
    modalities: tuple[str, ...]
    #: "vector" (one vector per clip, in audio_embeddings) or "pairwise" (one row per
    #: pair of clips, in pair_distances: frame-level features compared pair by pair)
    comparison: str = "vector"

    @property
    def pairwise(self) -> bool:
        return self.comparison == "pairwise"

    @property
    def has_text(self) -> bool:
        return "text" in self.modalities

    @property
    def has_audio(self) -> bool:
        return "audio" in self.modalities

    @property
    def policy_name(self) -> str:
        """The name of the window policy ("default", "paper", ...)."""
        window = self.policy.get("window") if isinstance(self.policy, dict) else None
        name = window.get("name") if isinstance(window, dict) else None
        return str(name) if name else "default"


def match(spaces: Sequence[SpaceRecord], model: str | None) -> list[SpaceRecord]:
    """The spaces a ``--model`` value names, sorted by label.

    Rule: None means every space. Otherwise the spaces whose label or space id
    equals ``model``; if there are none, every space of that model id (so a bare
    id also reaches a model's non-default checkpoints and policies when its
    default space is not stored). With ``ms-clap`` and ``ms-clap@2022`` both
    stored, ``ms-clap`` is the default space only.
    """
    ordered = sorted(spaces, key=lambda s: (s.label, s.space_id))
    if model is None:
        return ordered
    exact = [s for s in ordered if model in (s.label, s.space_id)]
    if exact:
        return exact
    return [s for s in ordered if s.model_id == model]
