"""Nearest descriptors (and optionally nearest stored clips) for any audio file.

The file need not be ingested: it is decoded and embedded on the fly (a stored
vector of the same content in the same space is reused). The vocabulary's
prompts are embedded once and kept in the store; the search runs on the space's
FAISS text index.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from timbredb.audio import decode
from timbredb.errors import AudioError, ModelUnavailableError, TimbreDBError
from timbredb.index import audio_index, text_index
from timbredb.ingest import Ingestor
from timbredb.models import EmbeddingModel, availability, specs
from timbredb.progress import WarnFn, ignore
from timbredb.store import Store
from timbredb.vocabularies import BARE, render_prompt


@dataclass
class Description:
    file: str
    model: str
    descriptors: list[dict[str, Any]]
    clips: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self, with_clips: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {"file": self.file, "model": self.model, "descriptors": self.descriptors}
        if with_clips:
            out["similar_clips"] = self.clips
        return out


def default_text_model(data_dir: Path | None) -> str:
    """The first usable text-capable model, neural models before baselines."""
    table = specs()
    ordered = [s for s in table.values() if s.has_text and s.family != "baseline"] + [
        s for s in table.values() if s.has_text and s.family == "baseline"
    ]
    reasons = []
    for spec in ordered:
        avail = availability(spec, data_dir)
        if avail.usable:
            return spec.id
        reasons.append(f"{spec.id}: {avail.reason}")
    raise ModelUnavailableError("no text-capable model is usable here; " + "; ".join(reasons))


def describe(
    store: Store,
    files: Sequence[str | Path],
    model: EmbeddingModel,
    words: Sequence[str],
    vocabulary: str,
    *,
    k: int = 5,
    template: str = BARE,
    n_clips: int = 0,
    warn: WarnFn = ignore,
) -> tuple[list[Description], list[str]]:
    """Describe each file by its k nearest descriptors.

    Returns:
        (descriptions, errors): one description per readable file, and one
        "path: problem" line per file that could not be described.
    """
    if k < 1:
        raise TimbreDBError(f"-k must be at least 1, got {k}")
    if not model.spec.has_text:
        raise ModelUnavailableError(f"{model.label} has no text encoder; describe needs a text-capable model")
    ingestor = Ingestor(store, [model], warn=warn, command="describe")
    prompts = ingestor.add_descriptors(list(words), (template,), vocabulary=vocabulary)
    ingestor.finish()
    descriptor_of = {render_prompt(template, w): w for w in words}
    index = text_index(store, model.space_id, prompts)
    if not index.keys:
        raise TimbreDBError(f"{model.label}: none of the {len(words)} words of {vocabulary!r} can be embedded")
    clip_index = audio_index(store, model.space_id) if n_clips > 0 else None

    results: list[Description] = []
    errors: list[str] = []
    for f in files:
        try:
            audio = decode(f)
            keys, stored = store.audio_matrix(model.space_id, [audio.sha256])
            vector = stored if keys else model.embed_audio([audio])
        except AudioError as exc:
            errors.append(str(exc))
            continue
        hits = index.search(vector, k)[0]
        desc = Description(
            file=str(f),
            model=model.label,
            descriptors=[{"descriptor": descriptor_of.get(p, p), "score": s} for p, s in hits],
        )
        if clip_index is not None:
            neighbours = clip_index.search(vector, n_clips + 1)[0]
            desc.clips = [
                {"clip_sha256": h, "source_path": store.clip_path(h), "score": s}
                for h, s in neighbours
                if h != audio.sha256
            ][:n_clips]
        results.append(desc)
    return results, errors
