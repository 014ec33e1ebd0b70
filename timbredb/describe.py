"""Nearest descriptors (and optionally nearest stored clips) for any audio file.

The file need not be ingested: it is decoded and embedded on the fly (a stored
vector of the same content in the same space is reused). The vocabulary's text
vectors come from the store when it holds them and are computed otherwise.

Read paths never write: without ``save`` the store is opened read-only (or not
at all when there is none) and nothing is stored; indexes are searched from
their fresh files or built in memory. With ``save`` the vocabulary, its prompts
and their text vectors are stored, so later runs and SQL can use them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from timbredb.audio import decode, from_array, read_pcm
from timbredb.errors import (
    AudioError,
    ModelUnavailableError,
    TimbreDBError,
    VocabularyError,
)
from timbredb.index import VectorIndex, audio_index, memory_index
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


def vocabulary_index(
    store: Store | None,
    model: EmbeddingModel,
    words: Sequence[str],
    vocabulary: str,
    template: str = BARE,
    *,
    save: bool = False,
    warn: WarnFn = ignore,
) -> tuple[VectorIndex, dict[str, str]]:
    """The text index of a vocabulary in a space, and prompt -> word.

    Stored text vectors are reused; the others are computed (and stored with ``save``).
    Words outside a closed vocabulary are skipped with one warning.

    Raises:
        TimbreDBError: none of the words can be embedded.
    """
    prompts = [render_prompt(template, w) for w in words]
    descriptor_of = dict(zip(prompts, words))
    keys: list[str] = []
    matrix = np.zeros((0, model.dim), dtype=np.float32)
    if store is not None:
        keys, matrix = store.text_matrix(model.space_id, prompts)
        matrix = matrix.reshape(len(keys), model.dim) if keys else np.zeros((0, model.dim), dtype=np.float32)
    have = set(keys)
    todo, refused = [], []
    for p in dict.fromkeys(prompts):
        if p in have:
            continue
        try:
            model.check_text(p)
        except VocabularyError:
            refused.append(p)
            continue
        todo.append(p)
    if refused:
        shown = ", ".join(refused[:8]) + (", ..." if len(refused) > 8 else "")
        warn(f"{model.label}: {len(refused)} prompt(s) outside its vocabulary skipped ({shown})")
    if todo:
        vectors = model.embed_texts(todo, batch_size=64)
        if save and store is not None:
            _save_texts(store, model, words, vocabulary, template, todo, vectors)
        keys = keys + todo
        matrix = np.concatenate([matrix, vectors], axis=0)
    elif save and store is not None:
        _save_texts(store, model, words, vocabulary, template, [], matrix[:0])
    # keep the vocabulary's order, as a stored index would
    order = {p: i for i, p in enumerate(dict.fromkeys(prompts))}
    ranked = sorted(range(len(keys)), key=lambda i: order[keys[i]])
    keys = [keys[i] for i in ranked]
    matrix = matrix[ranked] if keys else matrix
    if not keys:
        raise TimbreDBError(f"{model.label}: none of the {len(words)} words of {vocabulary!r} can be embedded")
    return memory_index(f"text-{model.space_id}", keys, matrix, model.dim), descriptor_of


def _save_texts(
    store: Store, model: EmbeddingModel, words: Sequence[str], vocabulary: str, template: str,
    prompts: list[str], vectors: Any,
) -> None:
    from timbredb.ingest import Ingestor

    ingestor = Ingestor(store, [model], command="describe --save")
    store.add_vocabulary(vocabulary, words)
    with store.transaction():
        store.add_prompts([(w, template, render_prompt(template, w)) for w in words])
    if prompts:
        ingestor.store_texts(model, prompts, vectors)
    ingestor.finish()


def describe(
    store: Store | None,
    files: Sequence[str | Path],
    model: EmbeddingModel,
    words: Sequence[str],
    vocabulary: str,
    *,
    k: int = 5,
    template: str = BARE,
    n_clips: int = 0,
    save: bool = False,
    warn: WarnFn = ignore,
) -> tuple[list[Description], list[str]]:
    """Describe each file by its k nearest descriptors.

    Args:
        store: the store to read stored vectors (and similar clips) from; None when there is none.
        save: store the vocabulary and its text vectors (``store`` must be writable).

    Returns:
        (descriptions, errors): one description per readable file, and one
        "path: problem" line per file that could not be described.
    """
    if k < 1:
        raise TimbreDBError(f"-k must be at least 1, got {k}")
    if not model.spec.has_text and n_clips == 0:
        raise ModelUnavailableError(
            f"{model.label} has no text encoder: describe needs a text-capable model for descriptors, or "
            "--clips N for the nearest stored clips in an audio-only space"
        )
    if n_clips > 0 and store is None:
        raise TimbreDBError("--clips needs a store to search: pass --db with a store that holds clips")
    index, descriptor_of = (
        vocabulary_index(store, model, words, vocabulary, template, save=save, warn=warn)
        if model.spec.has_text else (None, {})
    )
    if model.pairwise and store is not None:  # (a pairwise space has no text: n_clips > 0 and a store)
        return _describe_pairwise(store, files, model, n_clips)
    clip_index = audio_index(store, model.space_id) if store is not None and n_clips > 0 else None

    results: list[Description] = []
    errors: list[str] = []
    for f in files:
        try:
            audio = decode(f)
            stored: tuple[list[str], Any] = store.audio_matrix(model.space_id, [audio.sha256]) if store else ([], None)
            vector = stored[1] if stored[0] else model.embed_audio([audio])
        except AudioError as exc:
            errors.append(str(exc))
            continue
        hits = index.search(vector, k)[0] if index is not None else []
        desc = Description(
            file=str(f),
            model=model.label,
            descriptors=[{"descriptor": descriptor_of.get(p, p), "score": s} for p, s in hits],
        )
        if clip_index is not None and store is not None:
            neighbours = clip_index.search(vector, n_clips + 1)[0]
            desc.clips = [
                {"clip_sha256": h, "source_path": store.clip_path(h), "score": s}
                for h, s in neighbours
                if h != audio.sha256
            ][:n_clips]
        results.append(desc)
    return results, errors


def _describe_pairwise(
    store: Store, files: Sequence[str | Path], model: EmbeddingModel, n_clips: int
) -> tuple[list[Description], list[str]]:
    """Nearest stored clips in a pairwise space: each file is compared with every clip the space has
    paired (decoded again from its file), padded pair by pair as the space defines; score = 1 - cosine distance."""
    stored: dict[str, Any] = {}
    errors: list[str] = []
    for h in store.pair_clips(model.space_id):
        path = store.clip_path(h)
        try:
            raw, sr = read_pcm(path or "")
            stored[h] = model.prepare_pcm(raw, sr, str(path))  # type: ignore[attr-defined]
        except AudioError as exc:
            errors.append(f"stored clip {h[:12]}: {exc}")
    if not stored:
        raise TimbreDBError(
            f"{model.label}: no stored clip has a pair distance in this space; run `timbredb ingest timbremetrics "
            f"--models {model.label}` first"
        )
    results: list[Description] = []
    for f in files:
        try:
            raw, sr = read_pcm(f)
            sha = from_array(raw, sr, str(f)).sha256
            query = model.prepare_pcm(raw, sr, str(f))  # type: ignore[attr-defined]
        except AudioError as exc:
            errors.append(str(exc))
            continue
        others = [h for h in stored if h != sha]
        clips = {**{h: stored[h] for h in others}, "": query}
        res = model.pair_distances(clips, [("", h) for h in others])  # type: ignore[attr-defined]
        scored = [(h, 1.0 - r[0]) for h, r in zip(others, res) if not isinstance(r, AudioError)]
        skipped = [r for r in res if isinstance(r, AudioError)]
        if skipped:
            errors.append(f"{f}: {len(skipped)} stored clip(s) cannot be compared ({skipped[0].problem})")
        scored.sort(key=lambda t: (-t[1], t[0]))
        desc = Description(file=str(f), model=model.label, descriptors=[])
        desc.clips = [{"clip_sha256": h, "source_path": store.clip_path(h), "score": sc} for h, sc in scored[:n_clips]]
        results.append(desc)
    return results, errors
