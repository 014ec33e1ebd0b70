"""`timbredb ingest audealize`: render descriptor effects on source clips (Experiment 2).

For every source (the Audealize guitar, piano and drums clips, their mixture,
and any ``--source`` file), every (effect, word) of the plan and every
strength, the source is rendered through ``timbredb.dsp`` (Audealize EQ or the
Rafii & Pardo reverberator), stored as a clip and embedded with every selected
model; the unprocessed original (strength 0) is stored too. The prompts
("a {word} sound" by default) are embedded with every text-capable model.

Variants are keyed by (source hash, effect, word, strength, renderer version)
in the ``variants`` table. A re-run renders only keys that are missing or whose
clip lacks a vector in a selected model (a model added later gets only what it
lacks); words whose parameters are identical share one rendering. Rendering is
streamed in batches of ``--batch-size`` clips, so memory stays bounded.

The mixture: the three dataset clips, each trimmed to the shortest one's
length (so all three play throughout), scaled to the same RMS level (RMS as
the loudness measure), summed, and the sum scaled to a -1 dBFS peak.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from timbredb import dsp
from timbredb.audio import AUDIO_EXTENSIONS, from_array, read_pcm, resample
from timbredb.datasets.audealize import (
    REVERB_PARAMS,
    load_eq_curves,
    load_reverb_settings,
    normalise_curve,
)
from timbredb.errors import (
    AudioError,
    DatasetError,
    TimbreDBError,
    VocabularyError,
)
from timbredb.ingest import IngestOptions, Ingestor
from timbredb.vocabularies import (
    AUDEALIZE_EQ,
    AUDEALIZE_REVERB,
    check_template,
    read_word_file,
)

EFFECTS = ("eq", "reverb")
DEFAULT_STRENGTHS = (0.2, 0.4, 0.6, 0.8, 1.0)
DEFAULT_TEMPLATE = "a {} sound"
DATASET_SOURCES = ("guitar", "piano", "drums")
MIXTURE_PEAK = 10.0 ** (-1.0 / 20.0)


@dataclass(frozen=True)
class Source:
    """Audio that effects are rendered on (full length, as decoded)."""

    label: str
    kind: str  # dataset | mixture | user
    origin: str
    pcm: NDArray[np.float32]  # (frames, channels)
    sample_rate: int
    sha256: str

    @property
    def duration_s(self) -> float:
        return self.pcm.shape[0] / self.sample_rate


@dataclass(frozen=True)
class Job:
    """One variant to (maybe) render."""

    effect: str  # original | eq | reverb
    word: str
    strength: float
    params: tuple[float, ...]  # normalised EQ curve, or (d, g, m, f, E)


@dataclass
class _Batch:
    audio: list[Any] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)


#: (job, length-trimmed input, sample rate, length or None) -> (rendered audio, tail samples)
RenderFn = Callable[["Job", NDArray[np.float32], int, "int | None"], tuple[NDArray[np.float32], int]]


def renderer_version(length_s: float | None) -> str:
    """The renderer key: DSP version + length policy ('full' keeps every tail)."""
    return f"{dsp.RENDERER_VERSION}/{'full' if length_s is None else f'{float(length_s):g}s'}"


# ---------------------------------------------------------------- options
def parse_strengths(value: str | list[float] | tuple[float, ...] | None) -> list[float]:
    """'0.2,0.4' (or a list) -> sorted unique strengths in (0, 1]."""
    if value is None:
        return list(DEFAULT_STRENGTHS)
    items = value.split(",") if isinstance(value, str) else list(value)
    out: set[float] = set()
    for item in items:
        text = str(item).strip()
        if not text:
            continue
        try:
            s = float(text)
        except ValueError:
            raise TimbreDBError(f"--strengths: {text!r} is not a number") from None
        if not (math.isfinite(s) and 0.0 < s <= 1.0):
            raise TimbreDBError(f"--strengths: {text} is outside (0, 1] (the original, strength 0, is always included)")
        out.add(round(s, 6))
    if not out:
        raise TimbreDBError("--strengths: give at least one strength, e.g. 0.2,0.4,0.6,0.8,1.0")
    return sorted(out)


def plan_words(
    value: str | None, eq_curves: dict[str, Any], reverb_settings: dict[str, Any]
) -> tuple[list[tuple[str, str]], list[str]]:
    """The (effect, word) pairs to render, and the requested items that have no parameters.

    ``value``: None = the study's 20 EQ and 20 reverb words; else a comma list or a
    word file. An item may name its effect ("eq:bright", "reverb:hall"); a bare
    word is rendered with every effect that has parameters for it.
    """
    if value is None:
        return [("eq", w) for w in AUDEALIZE_EQ] + [("reverb", w) for w in AUDEALIZE_REVERB], []
    path = Path(value)
    items = read_word_file(path) if path.is_file() else [w.strip().lower() for w in value.split(",") if w.strip()]
    if not items:
        raise VocabularyError("--words: give at least one word (or a word file)")
    have = {"eq": eq_curves, "reverb": reverb_settings}
    plan: list[tuple[str, str]] = []
    missing: list[str] = []
    for item in items:
        effect, sep, word = item.partition(":")
        if sep:
            if effect not in EFFECTS:
                raise VocabularyError(f"--words: {item!r}: unknown effect {effect!r} (use eq:WORD or reverb:WORD)")
            effects = [effect]
        else:
            word, effects = item, [e for e in EFFECTS if item in have[e]]
        word = word.strip()
        found = [e for e in effects if word in have[e]]
        if not found:
            missing.append(item)
        plan.extend((e, word) for e in found if (e, word) not in plan)
    if not plan:
        raise VocabularyError(
            f"--words: none of {', '.join(items)} has Audealize EQ or reverb parameters "
            "(see audealize/eqpoints.json and reverbdescriptors.json)"
        )
    return plan, missing


# ---------------------------------------------------------------- sources
def _source(label: str, kind: str, origin: str, pcm: NDArray[np.float32], sr: int) -> Source:
    if pcm.shape[1] > 2:
        raise AudioError(origin, f"has {pcm.shape[1]} channels; effects are rendered on mono or stereo sources")
    audio = from_array(pcm, sr, origin)  # validates: non-empty, finite, not silent
    return Source(label, kind, origin, pcm, sr, audio.sha256)


def make_mixture(parts: list[Source]) -> Source:
    """Equal-RMS sum of the sources, trimmed to the shortest, peak -1 dBFS (see module doc)."""
    sr = parts[0].sample_rate
    channels = max(p.pcm.shape[1] for p in parts)
    tracks = []
    for p in parts:
        x = p.pcm.astype(np.float64)
        if p.sample_rate != sr:
            x = np.stack([resample(x[:, c].astype(np.float32), p.sample_rate, sr) for c in range(x.shape[1])], axis=1)
        if x.shape[1] < channels:
            x = np.repeat(x, channels, axis=1)
        tracks.append(x)
    n = min(t.shape[0] for t in tracks)
    mix = np.zeros((n, channels))
    for t in tracks:
        seg = t[:n]
        rms = float(np.sqrt(np.mean(seg**2)))
        if rms > 0:
            mix += seg / rms
    peak = float(np.abs(mix).max())
    if peak > 0:
        mix *= MIXTURE_PEAK / peak
    labels = ", ".join(p.label for p in parts)
    origin = (
        f"mixture of {labels}: each trimmed to {n / sr:.3f} s, scaled to equal RMS, summed, peak -1 dBFS"
    )
    return _source("mixture", "mixture", origin, mix.astype(np.float32), sr)


def load_sources(ingestor: Ingestor, data_dir: Path, extra: list[Path]) -> list[Source]:
    """The dataset clips, their mixture, and user files (unreadable ones are recorded as errors)."""
    audio_dir = Path(data_dir) / "audealize" / "audio"
    sources: list[Source] = []
    for name in DATASET_SOURCES:
        path = audio_dir / f"{name}.wav"
        if not path.is_file():
            ingestor.error(str(path), f"{path}: not found (an Audealize demo clip)", "dataset")
            continue
        try:
            pcm, sr = read_pcm(path)
            sources.append(_source(name, "dataset", str(path.resolve()), pcm, sr))
        except AudioError as exc:
            ingestor.error(str(path), str(exc), "decode")
    if len(sources) == len(DATASET_SOURCES):
        try:
            sources.append(make_mixture(list(sources)))
        except AudioError as exc:
            ingestor.error("mixture", str(exc), "render")
    # labels name trajectories, so they stay unique across runs: a stored source keeps its
    # label, and a new file whose stem is taken by other audio gets a hash suffix
    stored = ingestor.store.exp2_source_labels()
    labels = {s.label for s in sources} | set(stored.values())
    for path in extra:
        p = Path(path)
        files = sorted(f for f in p.rglob("*") if f.suffix.lower() in AUDIO_EXTENSIONS) if p.is_dir() else [p]
        for f in (f.resolve() for f in files):
            try:
                pcm, sr = read_pcm(f)
                src = _source(f.stem, "user", str(f.resolve()), pcm, sr)
            except AudioError as exc:
                ingestor.error(str(f), str(exc), "decode")
                continue
            if any(s.sha256 == src.sha256 for s in sources):
                continue
            if src.sha256 in stored:
                label = stored[src.sha256]
            else:
                label = src.label if src.label not in labels else f"{src.label}-{src.sha256[:8]}"
            labels.add(label)
            sources.append(Source(label, src.kind, src.origin, src.pcm, src.sample_rate, src.sha256))
    return sources


# ---------------------------------------------------------------- rendering
def render(job: Job, pcm: NDArray[np.float32], sample_rate: int, length: int | None) -> tuple[NDArray[np.float32], int]:
    """Render one job on (already length-trimmed) input. Returns (audio, tail samples)."""
    if job.effect == "original":
        return pcm, 0
    if job.effect == "eq":
        gains = dsp.eq_gains_db(np.asarray(job.params), job.strength)
        tail = dsp.eq_tail_samples(gains, sample_rate)
        out = dsp.render_eq(pcm, sample_rate, np.asarray(job.params), job.strength)
    else:
        params = dsp.ReverbParams(*job.params)
        tail = dsp.reverb_tail_samples(params, sample_rate, job.strength)
        out = dsp.render_reverb(pcm, sample_rate, params, job.strength)
    if length is not None:
        out = out[:length]
    return out, tail


def params_json(job: Job) -> str:
    if job.effect == "eq":
        gains = dsp.eq_gains_db(np.asarray(job.params), job.strength)
        return json.dumps({"curve": list(job.params), "gains_db": [round(float(g), 6) for g in gains]})
    if job.effect == "reverb":
        return json.dumps({**dict(zip(REVERB_PARAMS[:5], job.params)), "wetdry": job.strength})
    return "{}"


def shared_parameters(
    plan: list[tuple[str, str]], params: dict[tuple[str, str], tuple[float, ...]]
) -> dict[str, list[list[str]]]:
    """Per effect, the groups of planned words whose parameters are identical."""
    groups: dict[tuple[str, tuple[float, ...]], list[str]] = {}
    for effect, word in plan:
        groups.setdefault((effect, params[(effect, word)]), []).append(word)
    out: dict[str, list[list[str]]] = {}
    for (effect, _), words in groups.items():
        if len(words) > 1:
            out.setdefault(effect, []).append(sorted(words))
    return {e: sorted(g) for e, g in sorted(out.items())}


def ingest(ingestor: Ingestor, data_dir: Path, options: IngestOptions) -> dict[str, Any]:
    """Render, store and embed every missing Experiment 2 variant.

    Options used: words, strengths, sources, length_s, prompts (see module doc).

    Returns:
        a summary (reported under datasets["audealize"]).

    Raises:
        DatasetError: the descriptor data or every source is missing.
    """
    started = time.perf_counter()
    eq_curves = load_eq_curves(data_dir)
    reverb_settings = load_reverb_settings(data_dir)
    plan, missing_words = plan_words(options.words, eq_curves, reverb_settings)
    strengths = parse_strengths(options.strengths)
    templates = [check_template(t) for t in (options.prompts or [DEFAULT_TEMPLATE])]
    length_s = options.length_s
    version = renderer_version(length_s)
    if missing_words:
        ingestor.warn(f"audealize: no parameters for {', '.join(missing_words)}; skipped")

    params: dict[tuple[str, str], tuple[float, ...]] = {}
    for effect, word in plan:
        if effect == "eq":
            params[(effect, word)] = tuple(float(v) for v in normalise_curve(eq_curves[word]))
        else:
            params[(effect, word)] = tuple(float(v) for v in reverb_settings[word][:5])
    shared = shared_parameters(plan, params)
    for effect, groups in shared.items():
        text = "; ".join(" = ".join(g) for g in groups)
        ingestor.warn(f"audealize: {effect} words with identical parameters (identical variants): {text}")

    sources = load_sources(ingestor, data_dir, [Path(p) for p in options.sources])
    if not sources:
        raise DatasetError(f"{Path(data_dir) / 'audealize' / 'audio'}: no source audio to render effects on")

    words = list(dict.fromkeys(w for _, w in plan))
    ingestor.add_descriptors(words, templates)

    jobs = [Job("original", "", 0.0, ())] + [
        Job(effect, word, s, params[(effect, word)]) for effect, word in plan for s in strengths
    ]
    stats = render_variants(ingestor, "audealize", version, sources, jobs, length_s, render, params_json)
    return {
        "renderer_version": version,
        "sources": [s.label for s in sources],
        "effects_words": {e: sum(1 for pe, _ in plan if pe == e) for e in EFFECTS},
        "strengths": strengths,
        "templates": templates,
        "variants": stats["keys"],
        "rendered": stats["rendered"],
        "reused": stats["reused"],
        "identical_parameter_reuses": stats["identical_parameters"],
        "shared_parameters": shared,
        "missing_words": missing_words,
        "rendered_audio_s": round(stats["rendered_audio_s"], 3),
        "render_s": round(stats["render_s"], 3),
        "seconds": round(time.perf_counter() - started, 3),
    }


def render_variants(
    ingestor: Ingestor,
    dataset: str,
    version: str,
    sources: list[Source],
    jobs: list[Job],
    length_s: float | None,
    render_fn: RenderFn,
    params_fn: Callable[[Job], str],
) -> dict[str, Any]:
    """Render, store and embed every missing variant of ``jobs`` on every source.

    The engine every exp2 dataset shares (Audealize, SocialFX compression,
    SAFE-DB): a variant is keyed by (source hash, ``dataset``, effect, word,
    strength, ``version``); a stored key whose clip has every selected model's
    vector is reused, identical (effect, parameters, strength) jobs are rendered
    once, and clips are written and embedded ``--batch-size`` at a time.

    Args:
        dataset: the descriptor dataset (``variants.dataset``), also the render URI's prefix.
        jobs: the variants per source; include the original (effect "original", strength 0).
        length_s: trim every variant (and the original) to this length (None = keep tails).
        render_fn: (job, pcm, sample_rate, length) -> (audio, tail samples).
        params_fn: the job's parameters as stored JSON.

    Returns:
        counts: keys, rendered, reused, identical_parameters, rendered_audio_s, render_s, mismatched.
    """
    store = ingestor.store
    stats: dict[str, Any] = {"rendered": 0, "reused": 0, "identical_parameters": 0, "rendered_audio_s": 0.0,
                             "render_s": 0.0}
    mismatched = 0
    n_keys = 0
    for src in sources:
        length = None if length_s is None else int(round(float(length_s) * src.sample_rate))
        pcm_in = src.pcm if length is None else src.pcm[:length]
        n_keys += len(jobs)
        store.add_exp2_source(
            src.sha256, src.label, src.kind, src.origin, src.sample_rate, src.pcm.shape[1], src.duration_s, version,
            dataset,
        )
        existing = store.variants_of(src.sha256, version, dataset)
        incomplete = ingestor.missing_for(list(existing.values())) if existing else set()
        todo = []
        for job in jobs:
            h = existing.get((job.effect, job.word, job.strength))
            if h is not None and h not in incomplete:
                stats["reused"] += 1
            else:
                todo.append(job)
        if not todo:
            continue
        bar = ingestor.progress(f"{dataset} {src.label}", len(todo))
        batch = _Batch()
        done: dict[tuple[str, tuple[float, ...], float], tuple[str, float, float]] = {}
        try:
            for job in todo:
                key = (job.effect, job.params, job.strength)
                if key in done:
                    sha, duration_s, tail_s = done[key]
                    stats["identical_parameters"] += 1
                else:
                    t0 = time.perf_counter()
                    name = f"{src.label}/{job.effect}/{job.word or 'original'}/{job.strength:g}"
                    try:
                        out, tail = render_fn(job, pcm_in, src.sample_rate, length)
                        audio = from_array(out, src.sample_rate, f"render://{dataset}/{name}?{version}",
                                           keep_channels=ingestor.keep_channels)
                    except (ValueError, AudioError) as exc:
                        ingestor.error(f"{dataset}:{name}", str(exc), "render")
                        bar.update(1)
                        continue
                    stats["render_s"] += time.perf_counter() - t0
                    stats["rendered"] += 1
                    stats["rendered_audio_s"] += audio.duration_s
                    sha, duration_s, tail_s = audio.sha256, audio.duration_s, tail / src.sample_rate
                    done[key] = (sha, duration_s, tail_s)
                    batch.audio.append(audio)
                old = existing.get((job.effect, job.word, job.strength))
                if old is not None and old != sha:
                    mismatched += 1
                batch.rows.append({
                    "source_sha256": src.sha256, "dataset": dataset, "effect": job.effect, "descriptor": job.word,
                    "strength": job.strength, "renderer_version": version, "clip_sha256": sha,
                    "params": params_fn(job), "duration_s": duration_s, "tail_s": tail_s,
                    "run_id": ingestor.run_id,
                })
                bar.update(1)
                if len(batch.audio) >= ingestor.batch_size:
                    _flush(ingestor, batch)
            _flush(ingestor, batch)
        finally:
            bar.close()
    if mismatched:
        ingestor.warn(
            f"{dataset}: {mismatched} re-rendered variant(s) differ from the stored ones; the renderer changed "
            f"without a new version ({version}); the stored rows now point at the new renders"
        )
    stats["keys"] = n_keys
    stats["mismatched"] = mismatched
    return stats


def _flush(ingestor: Ingestor, batch: _Batch) -> None:
    """Store and embed the batch's clips, then record its variant rows (in that order, so a kill
    between the two only costs a re-render)."""
    if batch.audio:
        ingestor.add_audio(batch.audio)
    ingestor.store.upsert_variants(batch.rows)
    batch.audio.clear()
    batch.rows.clear()
