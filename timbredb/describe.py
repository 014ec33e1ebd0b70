"""Nearest descriptors (and optionally nearest stored clips) for any audio file.

The file need not be ingested: it is decoded and embedded on the fly (a stored
vector of the same content in the same space is reused). The vocabulary's text
vectors come from the store when it holds them and are computed otherwise.

Ranking. Raw cosines have hubs: some word vectors are near every sound, so the
same generic words top every file. By default words are ranked by a calibrated
score: the word's cosine standardised against a reference distribution of
sounds, z = (cos(a, t_w) - mean_ref(w)) / sd_ref(w), so a word ranks high when
this sound is nearer to it than sounds usually are. The reference is the
store's clips in the model's space when it holds at least ``MIN_REFERENCE`` of
them (up to ``MAX_REFERENCE``, a fixed sample), otherwise the 48 synthesized
sounds of ``timbredb.reference``; each description says which. ``rank="cosine"``
ranks by the raw cosine; both numbers are always reported.

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
from numpy.typing import NDArray

from timbredb.audio import Audio, StreamedAudio, decode, from_array, open_audio, read_pcm
from timbredb.errors import (
    AudioError,
    ModelUnavailableError,
    NotFoundError,
    TimbreDBError,
    VocabularyError,
)
from timbredb.index import VectorIndex, audio_index, memory_index
from timbredb.models import EmbeddingModel, availability, specs
from timbredb.progress import WarnFn, ignore
from timbredb.reference import MAX_REFERENCE, MIN_REFERENCE
from timbredb.store import Store
from timbredb.vocabularies import BARE, render_prompt

RANKINGS = ("calibrated", "cosine")


@dataclass
class Description:
    """The descriptors of one file in one space.

    Attributes:
        descriptors: best first: {"descriptor", "score" (what was ranked by), "cosine", "calibrated"}.
        reference: what calibrated the scores: {"kind": "store" | "synthetic", "n_clips", "ranked_by"}.
    """

    file: str
    model: str
    descriptors: list[dict[str, Any]]
    clips: list[dict[str, Any]] = field(default_factory=list)
    reference: dict[str, Any] = field(default_factory=dict)

    def to_dict(self, with_clips: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {"file": self.file, "model": self.model, "descriptors": self.descriptors,
                               "calibration": self.reference}
        if with_clips:
            out["similar_clips"] = self.clips
        return out


@dataclass(frozen=True)
class Calibration:
    """Per-word mean and SD of the cosine over a reference set of sounds (aligned with the index keys)."""

    mean: NDArray[np.float64]
    sd: NDArray[np.float64]
    kind: str  # store | synthetic
    n_clips: int

    def z(self, cosines: NDArray[np.float64]) -> NDArray[np.float64]:
        """Standardised scores; a word whose reference cosines do not vary scores 0."""
        with np.errstate(invalid="ignore", divide="ignore"):
            z = (cosines - self.mean) / self.sd
        return np.where(self.sd > 0, z, 0.0)


def _unit(x: NDArray[np.floating]) -> NDArray[np.float64]:
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def calibration(store: Store | None, model: EmbeddingModel, text: NDArray[np.floating]) -> Calibration:
    """Reference statistics for the text vectors ``text`` (rows) in ``model``'s space.

    The store's clips of the space when there are at least MIN_REFERENCE, else the
    synthesized reference set (embedded now, nothing stored).
    """
    reference: NDArray[np.float32] | None = None
    kind = "synthetic"
    if store is not None and store.count_audio(model.space_id) >= MIN_REFERENCE:
        keys, matrix = store.audio_matrix(model.space_id)
        if len(keys) > MAX_REFERENCE:  # keys are hash-ordered: the first ones are a fixed pseudo-random sample
            matrix = matrix[:MAX_REFERENCE]
        reference, kind = matrix, "store"
    if reference is None:
        from timbredb.reference import reference_clips

        clips = [c for c in reference_clips() if _fits(model, c)]
        reference = model.embed_audio(clips)
    cos = _unit(reference) @ _unit(text).T
    return Calibration(cos.mean(axis=0), cos.std(axis=0), kind, int(reference.shape[0]))


def _fits(model: EmbeddingModel, clip: Any) -> bool:
    try:
        model.check_audio(clip)
    except AudioError:
        return False
    return True


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
) -> tuple[VectorIndex, dict[str, str], NDArray[np.float32]]:
    """The text index of a vocabulary in a space, prompt -> word, and the text vectors (index order).

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
    return memory_index(f"text-{model.space_id}", keys, matrix, model.dim), descriptor_of, matrix


def _save_texts(
    store: Store, model: EmbeddingModel, words: Sequence[str], vocabulary: str, template: str,
    prompts: list[str], vectors: Any,
) -> None:
    from timbredb.ingest import Ingestor

    # one transaction: a failure stores nothing of the vocabulary
    with store.transaction():
        ingestor = Ingestor(store, [model], command="describe --save")
        store.add_vocabulary(vocabulary, words)
        store.add_prompts([(w, template, render_prompt(template, w)) for w in words])
        if prompts:
            ingestor.store_texts(model, prompts, vectors)
        ingestor.finish()


@dataclass
class _Ranker:
    """A vocabulary's index in one space, calibrated, ready to rank any vector of that space."""

    index: VectorIndex
    descriptor_of: dict[str, str]
    calib: Calibration
    rank: str

    @property
    def reference(self) -> dict[str, Any]:
        return {"kind": self.calib.kind, "n_clips": self.calib.n_clips, "ranked_by": self.rank}

    def best(self, vector: NDArray[np.floating], k: int) -> list[dict[str, Any]]:
        # every word's cosine (vocabularies are small), then the ranking
        keys = self.index.keys
        position = {p: i for i, p in enumerate(keys)}
        cos = np.zeros(len(keys))
        for p, s in self.index.search(np.asarray(vector, dtype=np.float32), len(keys))[0]:
            cos[position[p]] = s
        z = self.calib.z(cos)
        by = z if self.rank == "calibrated" else cos
        ranked = np.lexsort((np.arange(len(cos)), -by))[:k]
        return [
            {"descriptor": self.descriptor_of.get(keys[i], keys[i]), "score": float(by[i]),
             "cosine": float(cos[i]), "calibrated": float(z[i])}
            for i in ranked
        ]


def _ranker(
    store: Store | None, model: EmbeddingModel, words: Sequence[str], vocabulary: str, template: str, rank: str,
    *, save: bool = False, warn: WarnFn = ignore,
) -> _Ranker:
    if rank not in RANKINGS:
        raise TimbreDBError(f"--rank must be one of {', '.join(RANKINGS)}, got {rank!r}")
    index, descriptor_of, text = vocabulary_index(store, model, words, vocabulary, template, save=save, warn=warn)
    return _Ranker(index, descriptor_of, calibration(store, model, text), rank)


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
    rank: str = "calibrated",
    save: bool = False,
    warn: WarnFn = ignore,
) -> tuple[list[Description], list[str]]:
    """Describe each file by its k best descriptors.

    Args:
        store: the store to read stored vectors (and similar clips) from; None when there is none.
        rank: "calibrated" (default; see the module doc) or "cosine".
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
    if model.pairwise and store is not None:  # (a pairwise space has no text: n_clips > 0 and a store)
        return _describe_pairwise(store, files, model, n_clips)
    # an audio-only space has no descriptors to rank: only its nearest stored clips
    ranker = _ranker(store, model, words, vocabulary, template, rank, save=save, warn=warn) if model.spec.has_text else None
    clip_index = audio_index(store, model.space_id) if store is not None and n_clips > 0 else None

    results: list[Description] = []
    errors: list[str] = []
    for f in files:
        try:
            audio = decode(f, keep_channels=True) if model.needs_channels else open_audio(f)
            vector = audio_vector(store, model, audio)
        except AudioError as exc:
            errors.append(str(exc))
            continue
        results.append(_describe_vector(store, model, str(f), audio.sha256, vector, ranker, k, clip_index, n_clips))
    return results, errors


def audio_vector(store: Store | None, model: EmbeddingModel, audio: Audio | StreamedAudio) -> NDArray[np.float32]:
    """The (1, dim) vector of a decoded clip: the stored one for its content, else embedded now.

    Raises:
        AudioError: the clip cannot be embedded by this model (too short, ...).
    """
    stored: tuple[list[str], Any] = store.audio_matrix(model.space_id, [audio.sha256]) if store else ([], None)
    if stored[0]:
        vector: NDArray[np.float32] = stored[1]
        return vector
    if isinstance(audio, StreamedAudio):
        return model.embed_streamed(audio)
    return model.embed_audio([audio])


def _describe_vector(
    store: Store | None,
    model: EmbeddingModel,
    file: str,
    clip_sha256: str,
    vector: NDArray[np.float32],
    ranker: _Ranker | None,
    k: int,
    clip_index: VectorIndex | None,
    n_clips: int,
) -> Description:
    """One Description from a clip's vector: what ``describe`` and ``describe_clip`` share."""
    desc = Description(file=file, model=model.label, descriptors=ranker.best(vector, k) if ranker else [],
                       reference=ranker.reference if ranker else {})
    if clip_index is not None and store is not None:
        neighbours = clip_index.search(vector, n_clips + 1)[0]
        desc.clips = [
            {"clip_sha256": h, "source_path": store.clip_path(h), "score": s}
            for h, s in neighbours
            if h != clip_sha256
        ][:n_clips]
    return desc


def describe_clip(
    store: Store,
    clip_sha256: str,
    model: EmbeddingModel,
    words: Sequence[str],
    vocabulary: str,
    *,
    k: int = 5,
    template: str = BARE,
    n_clips: int = 0,
    rank: str = "calibrated",
    warn: WarnFn = ignore,
) -> Description:
    """Describe a stored clip by its stored vector in the model's space (nothing is decoded or written).

    Returns:
        the Description ``describe`` gives for a file of that content; ``file`` is
        the clip's recorded path (its hash when it has none).

    Raises:
        NotFoundError: the space holds no vector for the clip.
    """
    if k < 1:
        raise TimbreDBError(f"-k must be at least 1, got {k}")
    if not model.spec.has_text:
        raise ModelUnavailableError(f"{model.label} has no text encoder; describe needs a text-capable model")
    keys, matrix = store.audio_matrix(model.space_id, [clip_sha256])
    if not keys:
        raise NotFoundError(f"clip {clip_sha256} has no {model.label} vector in the store")
    ranker = _ranker(store, model, words, vocabulary, template, rank, warn=warn)
    clip_index = audio_index(store, model.space_id) if n_clips > 0 else None
    file = store.clip_path(clip_sha256) or clip_sha256
    return _describe_vector(store, model, file, clip_sha256, matrix, ranker, k, clip_index, n_clips)
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
