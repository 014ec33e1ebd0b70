"""What the rated-dataset analyses share: a dataset's ratings, listeners, SDs and vectors as arrays.

Experiment 1 and the analyses beyond the study (ceiling, axes, probe, prompts,
compare) read a rated dataset (CCMusic or one of `timbredb ingest ratings`)
through these loaders, which run the documented queries (``queries/rated_*.sql``)
and raise an AnalysisError that says what to run when the store lacks something.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
from numpy.typing import NDArray

from timbredb import queries
from timbredb.errors import AnalysisError
from timbredb.spaces import SpaceRecord
from timbredb.store import Store
from timbredb.vocabularies import check_query_template

#: the fewest stimuli any analysis over stimuli accepts
MIN_STIMULI = 3


@dataclass(frozen=True)
class Ratings:
    """The mean ratings of a rated dataset.

    Attributes:
        dataset: its name.
        stimuli: stimulus names, ordered by (group, name).
        groups: each stimulus's group ('' when the dataset has none).
        descriptors: the rated descriptors, sorted.
        matrix: (stimuli x descriptors) mean ratings, NaN where a stimulus lacks one.
    """

    dataset: str
    stimuli: list[str]
    groups: NDArray[np.object_]
    descriptors: list[str]
    matrix: NDArray[np.float64]

    def index(self) -> dict[str, int]:
        return {s: i for i, s in enumerate(self.stimuli)}

    def group_names(self) -> list[str]:
        """The dataset's non-empty groups, sorted."""
        return sorted({str(g) for g in self.groups if g})


def known_datasets(store: Store) -> list[str]:
    return store.rated_dataset_names()


def unknown_dataset(store: Store, dataset: str) -> AnalysisError:
    known = ", ".join(known_datasets(store)) or "none"
    hint = "`timbredb ingest ccmusic`" if dataset == "ccmusic" else "`timbredb ingest ratings FILE.csv --name " + dataset + "`"
    return AnalysisError(f"no rated dataset {dataset!r} in the store (stored: {known}); run {hint} first")


def load_ratings(store: Store, dataset: str, *, min_stimuli: int = MIN_STIMULI) -> Ratings:
    """The dataset's stored mean ratings (stimuli with a recording).

    Raises:
        AnalysisError: no such dataset, or fewer than ``min_stimuli`` stimuli.
    """
    df = queries.run(store, "rated_ratings", dataset=dataset)
    if df.is_empty():
        if dataset in known_datasets(store):
            raise AnalysisError(
                f"rated dataset {dataset!r} has no stored recordings with mean ratings (only listener data); "
                "this analysis needs the stimuli's recordings and means"
            )
        raise unknown_dataset(store, dataset)
    stim = df.select("instrument", "split").unique().sort("split", "instrument")
    stimuli = stim["instrument"].to_list()
    if len(stimuli) < min_stimuli:
        raise AnalysisError(f"rated dataset {dataset!r} has {len(stimuli)} stimuli; this analysis needs at least {min_stimuli}")
    descriptors = sorted(set(df["descriptor"].to_list()))
    row = {s: i for i, s in enumerate(stimuli)}
    col = {d: j for j, d in enumerate(descriptors)}
    matrix = np.full((len(stimuli), len(descriptors)), np.nan)
    for inst, d, r in df.select("instrument", "descriptor", "rating").iter_rows():
        matrix[row[inst], col[d]] = r
    return Ratings(dataset, stimuli, np.asarray(stim["split"].to_list(), dtype=object), descriptors, matrix)


def check_dataset(store: Store, dataset: str) -> None:
    """AnalysisError unless the store holds the rated dataset."""
    if dataset not in known_datasets(store):
        raise unknown_dataset(store, dataset)


def listener_matrices(store: Store, dataset: str) -> dict[str, tuple[list[str], NDArray[np.float64]]]:
    """descriptor -> (stimuli, stimuli x listeners ratings with NaN where a listener gave none)."""
    df = queries.run(store, "rated_listener_ratings", dataset=dataset)
    out: dict[str, tuple[list[str], NDArray[np.float64]]] = {}
    for (descriptor,), g in df.group_by("descriptor", maintain_order=True):
        stimuli = sorted(set(g["instrument"].to_list()))
        listeners = sorted(set(g["listener"].to_list()))
        m = np.full((len(stimuli), len(listeners)), np.nan)
        si = {s: i for i, s in enumerate(stimuli)}
        li = {v: j for j, v in enumerate(listeners)}
        for inst, listener, r in g.select("instrument", "listener", "rating").iter_rows():
            m[si[inst], li[listener]] = r
        out[str(descriptor)] = (stimuli, m)
    return out


def sd_table(store: Store, dataset: str) -> dict[str, dict[str, tuple[float, int]]]:
    """descriptor -> stimulus -> (listener SD, n_listeners), as stored."""
    df = queries.run(store, "rated_sds", dataset=dataset)
    out: dict[str, dict[str, tuple[float, int]]] = {}
    for inst, d, sd, n in df.select("instrument", "descriptor", "sd", "n_listeners").iter_rows():
        out.setdefault(str(d), {})[str(inst)] = (float(sd), int(n))
    return out


def resolve_spaces(store: Store, model: str | None, *, need_text: bool = False) -> list[SpaceRecord]:
    """The spaces ``--model`` names (every space when None); text-capable ones only with ``need_text``.

    Raises:
        AnalysisError: an unknown model, or one without text embeddings where they are needed.
    """
    spaces = store.spaces(model)
    if model is not None and not spaces:
        known = ", ".join(sorted({s.label for s in store.spaces()})) or "none"
        raise AnalysisError(f"no model {model!r} in the store (stored: {known})")
    if need_text:
        text = [s for s in spaces if s.has_text]
        if model is not None and not text:
            raise AnalysisError(f"model {model!r} embeds no text (audio only); this analysis needs a text-capable model")
        spaces = text
    return spaces


def audio_vectors(store: Store, dataset: str, space_ids: list[str] | None) -> dict[str, dict[str, NDArray[np.float64]]]:
    """space_id -> stimulus -> audio vector (float64) of the dataset's stimuli."""
    df = queries.run(store, "rated_audio_vectors", dataset=dataset, space_ids=space_ids)
    out: dict[str, dict[str, NDArray[np.float64]]] = {}
    for sid, inst, emb in df.select("space_id", "instrument", "embedding").iter_rows():
        out.setdefault(str(sid), {})[str(inst)] = np.asarray(emb, dtype=np.float64)
    return out


def text_vectors(store: Store, template: str, space_ids: list[str] | None) -> dict[str, dict[str, NDArray[np.float64]]]:
    """space_id -> descriptor -> text vector for one template ('ensemble' included)."""
    check_query_template(template)
    df = queries.run(store, "rated_text_vectors", template=template, space_ids=space_ids)
    out: dict[str, dict[str, NDArray[np.float64]]] = {}
    for sid, d, emb in df.select("space_id", "descriptor", "embedding").iter_rows():
        out.setdefault(str(sid), {})[str(d)] = np.asarray(emb, dtype=np.float64)
    return out


def unit_rows(x: NDArray[np.float64]) -> NDArray[np.float64]:
    """Rows scaled to unit L2 norm; zero rows stay zero (their cosines are NaN downstream)."""
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def cosines(audio: NDArray[np.float64], text: NDArray[np.float64]) -> NDArray[np.float64]:
    """cos(audio_i, text) for each row of ``audio``; NaN where either vector is zero."""
    na = np.linalg.norm(audio, axis=1)
    nt = float(np.linalg.norm(text))
    with np.errstate(invalid="ignore", divide="ignore"):
        c = audio @ text / (na * nt)
    return np.where((na > 0) & (nt > 0), c, np.nan)


def coverage(store: Store, dataset: str) -> pl.DataFrame:
    return queries.run(store, "rated_coverage", dataset=dataset)
