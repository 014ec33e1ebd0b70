"""Descriptor -> effect-setting datasets beyond Audealize (SocialFX compression, SAFE-DB), shared parts.

Both datasets hold one *contribution* per row: the words a person gave and
the effect setting they described with them. timbredb turns them into one
setting per word and renders it at the exp2 strengths:

- **Words.** A row's description is split at commas, semicolons, slashes,
  ``&``, ``+`` and the word "and"; each part, lower-cased and stripped, is a
  word if it is a single word of letters (a hyphen inside is allowed:
  "no-change"). Longer phrases are not words. Placeholders (``test``) are
  dropped. A description with more than ``MAX_WORDS_PER_ROW`` parts is a
  sentence someone typed (SocialFX has such rows); its parts are not used.
- **Aggregation.** The setting of a word is the **median of each parameter**
  over the rows that name it (a documented choice: robust to a few extreme
  contributions; the combination of medians need not be any one person's
  setting). Its ``contributions`` count is kept with every variant.
- **Selection.** By default a word is rendered when at least
  ``min_contributions`` rows name it (each dataset sets its default);
  ``--words`` names words explicitly (then one row is enough), optionally
  prefixed with the effect (``safe-eq:warm``, or its kind, ``eq:warm``).
- **Bad rows** (wrong number of columns, a parameter that is not a finite
  number or lies outside the plug-in's range, no description) are reported as
  one line each (``FILE: line N: problem``), recorded, and skipped; the rest
  is used.

Rendering goes through ``audealize_render.render_variants`` on the same
sources as Audealize's (guitar, piano, drums, their mixture, ``--source``),
keyed by dataset, effect, word, strength and ``dsp_plugins.RENDERER_VERSION``.
"""

from __future__ import annotations

import csv
import json
import re
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from timbredb import dsp_plugins
from timbredb.datasets.audealize_render import (
    DEFAULT_TEMPLATE,
    Job,
    load_sources,
    parse_strengths,
    render_variants,
)
from timbredb.effects import effects
from timbredb.errors import DatasetError, VocabularyError
from timbredb.ingest import IngestOptions, Ingestor
from timbredb.vocabularies import check_template, read_word_file

MAX_WORDS_PER_ROW = 6
PLACEHOLDERS = frozenset({"test"})
_SPLIT = re.compile(r"[,;/&+]|\band\b")
_WORD = re.compile(r"[a-z]+(?:-[a-z]+)?")


def words_of(description: str) -> list[str]:
    """The descriptor words of one row's description (see module doc); [] for a sentence."""
    parts = [p.strip().lower() for p in _SPLIT.split(description)]
    parts = [p for p in parts if p]
    if len(parts) > MAX_WORDS_PER_ROW:
        return []
    return list(dict.fromkeys(p for p in parts if _WORD.fullmatch(p) and p not in PLACEHOLDERS))


@dataclass(frozen=True)
class Param:
    """One parameter column: its name (with unit) and the plug-in's range (inclusive)."""

    name: str
    low: float
    high: float


@dataclass
class Contributions:
    """Rows of one effect: parameter vectors per word, and the rows that were bad."""

    effect: str
    file: Path
    params: tuple[Param, ...]
    by_word: dict[str, list[tuple[float, ...]]] = field(default_factory=dict)
    rows: int = 0
    #: (line, problem) of every row that was skipped
    bad: list[tuple[int, str]] = field(default_factory=list)

    def add(self, words: Sequence[str], values: tuple[float, ...]) -> None:
        self.rows += 1
        for w in words:
            self.by_word.setdefault(w, []).append(values)

    def median(self, word: str) -> tuple[float, ...]:
        """The word's setting: the median of each parameter over its rows."""
        rows = self.by_word[word]
        return tuple(float(statistics.median(col)) for col in zip(*rows))

    def counts(self) -> dict[str, int]:
        return {w: len(v) for w, v in self.by_word.items()}


def parse_values(raw: Sequence[str], params: Sequence[Param]) -> tuple[float, ...]:
    """Parameter cells -> floats, checked against the plug-in's ranges.

    Raises:
        ValueError: the problem, in words (it becomes the bad row's line).
    """
    if len(raw) != len(params):
        raise ValueError(f"{len(raw)} parameter values, expected {len(params)}")
    out = []
    for cell, p in zip(raw, params):
        text = cell.strip()
        try:
            v = float(text)
        except ValueError:
            raise ValueError(f"{p.name} {text!r} is not a number") from None
        if not np.isfinite(v):
            raise ValueError(f"{p.name} {text!r} is not a finite number")
        # the plug-ins store float32 values: allow their rounding at the range's ends
        tol = 1e-5 * max(1.0, abs(p.low), abs(p.high))
        if not p.low - tol <= v <= p.high + tol:
            raise ValueError(f"{p.name} {v:g} is outside the plug-in's range [{p.low:g}, {p.high:g}]")
        out.append(v)
    return tuple(out)


def csv_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(line number, cells) of every non-empty row of a CSV file.

    Raises:
        DatasetError: the file is missing or unreadable.
    """
    if not path.is_file():
        raise DatasetError(f"{path}: not found (set --data-dir)")
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read ({exc.strerror})") from exc
    reader = csv.reader(text.splitlines())
    try:
        for cells in reader:
            if any(c.strip() for c in cells):
                yield reader.line_num, cells
    except csv.Error as exc:
        raise DatasetError(f"{path}: line {reader.line_num}: not CSV ({exc})") from exc


@dataclass(frozen=True)
class EffectPlan:
    """How one effect of a dataset is rendered.

    Attributes:
        label: the effect label (``timbredb.effects``).
        contributions: its rows, by word.
        render: (setting tuple, pcm, sample rate, strength) -> (audio, tail samples).
        setting: setting tuple -> the named setting (JSON-ready) stored with each variant.
    """

    label: str
    contributions: Contributions
    render: Callable[[tuple[float, ...], NDArray[np.float32], int, float], tuple[NDArray[np.float32], int]]
    setting: Callable[[tuple[float, ...], float], dict[str, Any]]


def plan_words(
    value: str | None, plans: Sequence[EffectPlan], min_contributions: int
) -> tuple[list[tuple[str, str]], list[str]]:
    """The (effect, word) pairs to render and the requested items nothing describes.

    ``value`` None: every word with at least ``min_contributions`` rows, per effect.
    Else a comma list or word file; an item may be prefixed by an effect label or kind.
    """
    if value is None:
        pairs = [
            (p.label, w) for p in plans
            for w, n in sorted(p.contributions.counts().items(), key=lambda kv: (-kv[1], kv[0]))
            if n >= min_contributions
        ]
        return pairs, []
    path = Path(value)
    items = read_word_file(path) if path.is_file() else [w.strip().lower() for w in value.split(",") if w.strip()]
    if not items:
        raise VocabularyError("--words: give at least one word (or a word file)")
    table = effects()
    out: list[tuple[str, str]] = []
    missing: list[str] = []
    for item in items:
        prefix, sep, word = item.partition(":")
        if sep:
            chosen = [p for p in plans if prefix in (p.label, table[p.label].kind)]
            if not chosen:
                missing.append(item)
                continue
        else:
            chosen, word = list(plans), item
        word = word.strip()
        found = [p.label for p in chosen if word in p.contributions.by_word]
        if not found:
            missing.append(item)
        out.extend((e, word) for e in found if (e, word) not in out)
    return out, missing


def ingest_effects(
    ingestor: Ingestor,
    data_dir: Path,
    options: IngestOptions,
    dataset: str,
    plans: Sequence[EffectPlan],
    min_contributions: int,
) -> dict[str, Any]:
    """Render, store and embed the words' settings of a dataset's effects (see module doc).

    Returns:
        the ingest summary of the dataset.

    Raises:
        DatasetError: no word to render, or no source audio.
    """
    started = time.perf_counter()
    for p in plans:
        for line, problem in p.contributions.bad:
            where = f"{p.contributions.file}: line {line}"
            ingestor.error(where, f"{where}: {problem}", "dataset")
    pairs, missing = plan_words(options.words, plans, min_contributions)
    if missing:
        ingestor.warn(f"{dataset}: no contributions describe {', '.join(missing)}; skipped")
    if not pairs:
        raise DatasetError(
            f"{dataset}: no word to render (none has {min_contributions} or more contributions, or --words named "
            "none of the data's words)"
        )
    strengths = parse_strengths(options.strengths)
    templates = [check_template(t) for t in (options.prompts or [DEFAULT_TEMPLATE])]
    length_s = options.length_s
    version = f"{dsp_plugins.RENDERER_VERSION}/{'full' if length_s is None else f'{float(length_s):g}s'}"
    by_label = {p.label: p for p in plans}
    settings = {(e, w): by_label[e].contributions.median(w) for e, w in pairs}

    sources = load_sources(ingestor, data_dir, [Path(s) for s in options.sources])
    if not sources:
        raise DatasetError(f"{Path(data_dir) / 'audealize' / 'audio'}: no source audio to render effects on")
    words = list(dict.fromkeys(w for _, w in pairs))
    ingestor.add_descriptors(words, templates)

    def render(job: Job, pcm: NDArray[np.float32], sample_rate: int, length: int | None) -> tuple[Any, int]:
        if job.effect == "original":
            return pcm, 0
        out, tail = by_label[job.effect].render(job.params, pcm, sample_rate, job.strength)
        return (out if length is None else out[:length]), tail

    def params_json(job: Job) -> str:
        if job.effect == "original":
            return "{}"
        plan = by_label[job.effect]
        return json.dumps({
            "word": plan.setting(job.params, 1.0), "setting": plan.setting(job.params, job.strength),
            "contributions": len(plan.contributions.by_word[job.word]),
        })

    jobs = [Job("original", "", 0.0, ())] + [Job(e, w, s, settings[(e, w)]) for e, w in pairs for s in strengths]
    stats = render_variants(ingestor, dataset, version, sources, jobs, length_s, render, params_json)
    return {
        "renderer_version": version,
        "sources": [s.label for s in sources],
        "effects_words": {p.label: sum(1 for e, _ in pairs if e == p.label) for p in plans},
        "words": {p.label: [w for e, w in pairs if e == p.label] for p in plans},
        "contributions": {p.label: p.contributions.rows for p in plans},
        "bad_rows": sum(len(p.contributions.bad) for p in plans),
        "min_contributions": min_contributions,
        "strengths": strengths,
        "templates": templates,
        "variants": stats["keys"],
        "rendered": stats["rendered"],
        "reused": stats["reused"],
        "identical_parameter_reuses": stats["identical_parameters"],
        "missing_words": missing,
        "rendered_audio_s": round(stats["rendered_audio_s"], 3),
        "render_s": round(stats["render_s"], 3),
        "seconds": round(time.perf_counter() - started, 3),
    }
