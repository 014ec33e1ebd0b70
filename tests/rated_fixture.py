"""A store with a rated dataset of chosen embeddings, ratings and listeners (the analyses beyond the study).

Stimuli have random audio vectors; the ratings of each descriptor follow the
audio vectors' projection on a hidden direction plus noise, so probes, axes and
zero-shot cosines have something to find; listeners are the mean plus
listener noise (integers 1-10, some missing). Everything is written through the
Store's own methods except the clips rows (no audio is decoded).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from timbredb.spaces import SpaceRecord
from timbredb.store import Store


@dataclass
class Fixture:
    dataset: str
    stimuli: list[str]
    groups: list[str]
    descriptors: list[str]
    ratings: NDArray[np.float64]                       # stimuli x descriptors (means)
    audio: dict[str, NDArray[np.float32]]              # label -> stimuli x dim
    text: dict[tuple[str, str], dict[str, NDArray[np.float32]]]  # (label, template) -> descriptor -> vector
    listeners: dict[str, NDArray[np.float64]]          # descriptor -> stimuli x listeners (NaN = missing)


def build(
    db: Path,
    *,
    dataset: str = "toy",
    n_stimuli: int = 14,
    dim: int = 10,
    descriptors: tuple[str, ...] = ("bright", "dim", "thick", "thin", "soft", "sharp"),
    labels: tuple[str, ...] = ("space-a", "space-b"),
    templates: tuple[str, ...] = ("{}", "a {} sound", "the sound is {}"),
    audio_only: tuple[str, ...] = (),
    n_listeners: int = 6,
    listener_words: tuple[str, ...] = ("soft", "thin"),
    missing: int = 2,
    seed: int = 0,
) -> Fixture:
    rng = np.random.default_rng(seed)
    stimuli = [f"s{i:02d}" for i in range(n_stimuli)]
    groups = ["east" if i < n_stimuli // 2 + 1 else "west" for i in range(n_stimuli)]
    hidden = rng.standard_normal(dim)
    audio: dict[str, NDArray[np.float32]] = {}
    text: dict[tuple[str, str], dict[str, NDArray[np.float32]]] = {}
    base = rng.standard_normal((n_stimuli, dim))
    proj = base @ hidden
    ratings = np.empty((n_stimuli, len(descriptors)))
    for j, _ in enumerate(descriptors):
        sign = 1.0 if j % 2 == 0 else -1.0
        z = sign * proj + rng.normal(0, 1.0 + 0.3 * j, n_stimuli)
        ratings[:, j] = np.round(1 + 9 * (z - z.min()) / (z.max() - z.min()), 3)
    hashes = [f"{i + 1:064x}" for i in range(n_stimuli)]
    listeners: dict[str, NDArray[np.float64]] = {}
    with Store(db) as store:
        for h, name in zip(hashes, stimuli):
            store.con.execute(
                "INSERT INTO clips (clip_sha256, source_path, duration_s, channels, sample_rate, n_frames) "
                "VALUES (?, ?, 1, 1, 44100, 44100)", [h, f"test://{name}"])
        for k, label in enumerate((*labels, *audio_only)):
            has_text = label in labels
            modalities = ("audio", "text") if has_text else ("audio",)
            sid = f"sid{k:013d}"
            store.ensure_space(SpaceRecord(sid, label, label, "test", "none", None, {}, dim, 44100, "cosine", modalities))
            batch = store.add_batch(sid, "audio", n_stimuli, "cpu", "float32", {}, None)
            a = (base + 0.6 * k * rng.standard_normal((n_stimuli, dim))).astype(np.float32)
            audio[label] = a
            store.insert_audio_embeddings(sid, hashes, a, batch)
            if not has_text:
                continue
            for t in templates:
                vecs = {}
                for j, d in enumerate(descriptors):
                    sign = 1.0 if j % 2 == 0 else -1.0
                    vecs[d] = (sign * hidden + rng.normal(0, 1.5 + k, dim)).astype(np.float32)
                text[(label, t)] = vecs
                prompts = [t.replace("{}", d) for d in descriptors]
                store.add_prompts([(d, t, p) for d, p in zip(descriptors, prompts)])
                store.insert_text_embeddings(sid, prompts, np.stack([vecs[d] for d in descriptors]), batch)
        raw_rows = []
        for w in (w for w in listener_words if w in descriptors):
            j = descriptors.index(w)
            m = np.clip(np.round(ratings[:, j][:, None] + rng.normal(0, 1.2, (n_stimuli, n_listeners))), 1, 10)
            for _ in range(missing):
                m[rng.integers(n_stimuli), rng.integers(n_listeners)] = np.nan
            listeners[w] = m
            for i, s in enumerate(stimuli):
                for li in range(n_listeners):
                    if np.isfinite(m[i, li]):
                        raw_rows.append((s, w, f"L{li}", float(m[i, li]), "test"))
        store.replace_rated_with_listeners(
            dataset,
            [(s, g, h, "test") for s, g, h in zip(stimuli, groups, hashes)],
            [(s, d, d, float(ratings[i, j])) for i, s in enumerate(stimuli) for j, d in enumerate(descriptors)],
            raw_rows, [], None,
        )
    return Fixture(dataset, stimuli, groups, list(descriptors), ratings, audio, text, listeners)
