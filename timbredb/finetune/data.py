"""What a fine-tuning run learns from, and the split it never crosses.

The unit is the exp2 **trajectory**: one source x effect x word, its original
(strength 0) and its rendered variants in strength order. Splits are by word and
by source, never by variant: a trajectory is trained on only when its word is
not held out and its source is not held out, so no (source, word) pair of a
held-out cell ever reaches training. Cells:

- train: word and source both trained on;
- held-out-word: a held-out word on a trained source;
- held-out-source: a trained word on a held-out source;
- held-out-both: both held out (never trained on, in neither exp2 evaluation cell).

Words whose variants are the same audio (Audealize's reverb words with identical
parameters: hall = church = big ...) cannot be split apart: holding one out while
training on another would train on the held-out word's very clips. Such words are
held out together (``Split.added_words`` names the ones added).

A mixture source (Audealize's sum of its dataset clips: guitar + piano + drums) holds
the audio of its parts. It is held out with its parts when all of them are
(``Split.added_sources``), left out of training *and* evaluation when only some are
(``Split.excluded_sources``: trained on, it would carry a held-out part into training;
evaluated, it would test on trained audio), and cannot be held out itself while a part
is trained on.

Everything here is NumPy and the Store: no torch.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from timbredb.errors import TimbreDBError
from timbredb.spaces import SpaceRecord
from timbredb.store import Store

CELLS = ("train", "held-out-word", "held-out-source", "held-out-both")


@dataclass(frozen=True)
class Trajectory:
    """One source x effect x word: the original and the variants in strength order (clip hashes)."""

    source: str
    effect: str
    word: str
    prompt: str
    original: str
    clips: tuple[str, ...]
    strengths: tuple[float, ...]

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.effect, self.source, self.word)

    def to_json(self) -> dict[str, object]:
        return {"source": self.source, "effect": self.effect, "word": self.word, "prompt": self.prompt,
                "original": self.original, "clips": list(self.clips), "strengths": list(self.strengths)}


@dataclass
class Corpus:
    """The trajectories of the base space, with the base vectors they need.

    Attributes:
        trajectories: every trajectory with audio vectors and a text vector, sorted.
        audio: clip hash -> row of ``audio_matrix`` (variants and originals).
        text: prompt -> row of ``text_matrix``.
        words_without_text: words whose prompt has no text vector in the base space (skipped).
        renderer_versions: the renderer versions of the variants used.
        source_kinds: source label -> kind (``dataset``, ``mixture``: the sum of the dataset
            sources, ``user``).
    """

    base: SpaceRecord
    trajectories: list[Trajectory]
    audio: dict[str, int]
    audio_matrix: NDArray[np.float32]
    text: dict[str, int]
    text_matrix: NDArray[np.float32]
    words_without_text: list[str] = field(default_factory=list)
    renderer_versions: list[str] = field(default_factory=list)
    source_kinds: dict[str, str] = field(default_factory=dict)

    @property
    def words(self) -> list[str]:
        return sorted({t.word for t in self.trajectories})

    @property
    def sources(self) -> list[str]:
        return sorted({t.source for t in self.trajectories})


def load_corpus(
    store: Store, base: SpaceRecord, effects: Sequence[str], template: str, renderer: str | None = None,
    words: Sequence[str] = (),
) -> Corpus:
    """The base space's trajectories of ``effects`` (only ``words`` when given) and their vectors.

    Raises:
        TimbreDBError: no variant of those effects has vectors in the space, or a word of
            ``words`` has no variants.
    """
    points = store.finetune_points(base.space_id, effects, template, renderer)
    if points.height == 0:
        raise TimbreDBError(
            f"{base.label}: no rendered variants of {', '.join(effects)} with vectors in this space; run "
            f"`timbredb ingest audealize --models {base.label}` (or the dataset of those effects) first"
        )
    if words:
        have = set(points["descriptor"].to_list())
        missing = [w for w in words if w not in have]
        if missing:
            raise TimbreDBError(f"--words: no stored variants of {', '.join(missing)} for {', '.join(effects)} in "
                                f"{base.label} (words with variants: {', '.join(sorted(have))})")
        points = points.filter(points["descriptor"].is_in(list(words)))
    without_text = sorted(set(points.filter(~points["has_text"])["descriptor"].to_list()))
    usable = points.filter(points["has_text"])
    trajectories = []
    for key, group in usable.group_by(["source", "effect", "descriptor"], maintain_order=True):
        g = group.sort("strength")
        trajectories.append(Trajectory(
            source=str(key[0]), effect=str(key[1]), word=str(key[2]), prompt=str(g["prompt"][0]),
            original=str(g["original_sha256"][0]), clips=tuple(g["clip_sha256"].to_list()),
            strengths=tuple(float(s) for s in g["strength"].to_list()),
        ))
    trajectories.sort(key=lambda t: (t.source, t.effect, t.word))
    clips = sorted({h for t in trajectories for h in (t.original, *t.clips)})
    keys, matrix = store.audio_matrix(base.space_id, clips)
    prompts = sorted({t.prompt for t in trajectories})
    tkeys, tmatrix = store.text_matrix(base.space_id, prompts)
    return Corpus(
        base=base, trajectories=trajectories, audio={k: i for i, k in enumerate(keys)}, audio_matrix=matrix,
        text={k: i for i, k in enumerate(tkeys)}, text_matrix=tmatrix, words_without_text=without_text,
        renderer_versions=sorted(set(usable["renderer_version"].to_list())),
        source_kinds=dict(zip(usable["source"].to_list(), usable["source_kind"].to_list())),
    )


# ---------------------------------------------------------------- the split
@dataclass(frozen=True)
class Split:
    """Words and sources trained on and held out.

    Attributes:
        hold_out_words, hold_out_sources: held out (as asked, plus ``added_words``).
        added_words: words held out because their variants are the same clips as a held-out word's.
        added_sources: mixtures held out because every part of them is.
        excluded_sources: mixtures of held-out and trained parts: neither trained on nor evaluated.
    """

    hold_out_words: tuple[str, ...]
    hold_out_sources: tuple[str, ...]
    added_words: tuple[str, ...] = ()
    added_sources: tuple[str, ...] = ()
    excluded_sources: tuple[str, ...] = ()

    def cell(self, source: str, word: str) -> str:
        """The cell of a (source, word) pair; ``excluded`` for an excluded source (in no cell)."""
        if source in self.excluded_sources:
            return "excluded"
        w, s = word in self.hold_out_words, source in self.hold_out_sources
        return "held-out-both" if w and s else "held-out-word" if w else "held-out-source" if s else "train"

    def cells(self, trajectories: Sequence[Trajectory]) -> dict[str, list[Trajectory]]:
        out: dict[str, list[Trajectory]] = {c: [] for c in CELLS}
        for t in trajectories:
            cell = self.cell(t.source, t.word)
            if cell in out:
                out[cell].append(t)
        return out

    def to_json(self) -> dict[str, object]:
        return {"hold_out_words": list(self.hold_out_words), "hold_out_sources": list(self.hold_out_sources),
                "added_words": list(self.added_words), "added_sources": list(self.added_sources),
                "excluded_sources": list(self.excluded_sources)}


def identical_word_groups(trajectories: Sequence[Trajectory]) -> list[set[str]]:
    """Groups of words connected by sharing a variant clip (same audio) on some source."""
    parent: dict[str, str] = {}

    def find(w: str) -> str:
        while parent.setdefault(w, w) != w:
            parent[w] = parent[parent[w]]
            w = parent[w]
        return w

    owner: dict[str, str] = {}
    for t in trajectories:
        find(t.word)
        for h in t.clips:
            if h in owner:
                parent[find(t.word)] = find(owner[h])
            else:
                owner[h] = t.word
    groups: dict[str, set[str]] = {}
    for w in parent:
        groups.setdefault(find(w), set()).add(w)
    return [g for g in groups.values() if len(g) > 1]


def make_split(corpus: Corpus, hold_out_words: Sequence[str], hold_out_sources: Sequence[str]) -> Split:
    """The split of ``corpus``, validated.

    Raises:
        TimbreDBError: a held-out word or source without data, fewer than 2 words or no
            source left to train on.
    """
    words, sources = corpus.words, corpus.sources
    bad = [w for w in hold_out_words if w not in words]
    if bad:
        raise TimbreDBError(f"--hold-out-words: {', '.join(bad)} not in the training data of {corpus.base.label} "
                            f"(words with variants and text vectors: {', '.join(words)})")
    bad = [s for s in hold_out_sources if s not in sources]
    if bad:
        raise TimbreDBError(f"--hold-out-sources: {', '.join(bad)} not among the sources with variants in "
                            f"{corpus.base.label} ({', '.join(sources)})")
    held = set(hold_out_words)
    added: list[str] = []
    for group in identical_word_groups(corpus.trajectories):
        if group & held:
            added.extend(sorted(group - held))
    held |= set(added)
    held_sources, added_sources, excluded = _mixture_rule(corpus, set(hold_out_sources))
    train_words = [w for w in words if w not in held]
    train_sources = [s for s in sources if s not in held_sources and s not in excluded]
    if len(train_words) < 2:
        raise TimbreDBError(
            f"{corpus.base.label}: {len(train_words)} word(s) left to train on ({', '.join(train_words) or 'none'}); "
            "the contrastive loss needs at least 2 (hold out fewer words, or ingest more)"
        )
    if not train_sources:
        raise TimbreDBError(f"--hold-out-sources holds out every source ({', '.join(sources)}); keep one to train on")
    return Split(tuple(w for w in words if w in held), tuple(s for s in sources if s in held_sources),
                 tuple(sorted(added)), tuple(sorted(added_sources)), tuple(sorted(excluded)))


def _mixture_rule(corpus: Corpus, held: set[str]) -> tuple[set[str], list[str], list[str]]:
    """Held-out sources after the mixtures (module docstring): (held out, mixtures added, mixtures excluded).

    Raises:
        TimbreDBError: a mixture held out while one of its parts is trained on.
    """
    kinds = corpus.source_kinds
    parts = {s for s in corpus.sources if kinds.get(s) == "dataset"}
    added: list[str] = []
    excluded: list[str] = []
    for mix in (s for s in corpus.sources if kinds.get(s) == "mixture"):
        if not parts:
            continue
        trained_parts = sorted(parts - held)
        if mix in held:
            if trained_parts:
                raise TimbreDBError(
                    f"--hold-out-sources: {mix} is the sum of {', '.join(sorted(parts))}; holding it out while "
                    f"training on {', '.join(trained_parts)} would evaluate on trained audio (hold out its parts "
                    "too, or not the mixture)"
                )
        elif parts & held:
            (excluded if trained_parts else added).append(mix)
    return held | set(added), added, excluded


def data_sha256(corpus: Corpus, trajectories: Sequence[Trajectory]) -> str:
    """Digest of the training rows (source, effect, word, prompt, clips, strengths) and the base vectors
    they read (audio and text, float32 bytes in a fixed order)."""
    h = hashlib.sha256()
    h.update(corpus.base.space_id.encode())
    h.update(json.dumps([t.to_json() for t in trajectories], sort_keys=True).encode())
    for clip in sorted({c for t in trajectories for c in (t.original, *t.clips)}):
        h.update(np.ascontiguousarray(corpus.audio_matrix[corpus.audio[clip]], dtype="<f4").tobytes())
    for prompt in sorted({t.prompt for t in trajectories}):
        h.update(np.ascontiguousarray(corpus.text_matrix[corpus.text[prompt]], dtype="<f4").tobytes())
    return h.hexdigest()
