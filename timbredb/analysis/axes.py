"""Antonym axes: does a model encode bright-dim as a direction rather than two isolated words?

For a descriptor pair (x, y) of a rated dataset and a text-capable space, with
a_i the audio embedding of stimulus i and t_x, t_y the text embeddings of x and
y (one prompt template; 'ensemble' allowed):

* axis score of stimulus i: cos(a_i, t_x) - cos(a_i, t_y);
* ``pearson_r``, ``spearman_rho``: its correlation over stimuli with the rating
  difference R[i, x] - R[i, y] (stimuli where both are finite; ``n``);
* ``r_x``, ``r_y``: the single-word Pearson r of cos(a_i, t_x) with R[i, x] (and
  of y), over the same stimuli: the exp1 descriptor-level r, for comparison;
* ``text_cosine``: cos(t_x, t_y), how far apart the model puts the two words;
* ``pc1_angle_deg``: the angle between the axis t_x/|t_x| - t_y/|t_y| and the
  first principal component of the stimuli's L2-normalised, centred audio
  embeddings, in [0, 90] degrees (a component has no sign): 0 means the words'
  contrast points along the direction in which the stimuli vary most.

Default pairs (CCMusic): bright:dim, thick:thin, plump:slim, clear:turbid,
pure:coarse, soft:sharp; ``--pairs x:y,...`` for any vocabulary. A pair whose
word the model cannot embed has n = 0 and NaN statistics.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl
from numpy.typing import NDArray

from timbredb.analysis import rated, stats
from timbredb.errors import AnalysisError
from timbredb.store import Store
from timbredb.vocabularies import BARE, check_query_template

DEFAULT_PAIRS: tuple[tuple[str, str], ...] = (
    ("bright", "dim"), ("thick", "thin"), ("plump", "slim"), ("clear", "turbid"), ("pure", "coarse"), ("soft", "sharp"),
)
SCHEMA = {
    "dataset": pl.String, "model": pl.String, "template": pl.String, "x": pl.String, "y": pl.String, "n": pl.Int64,
    "pearson_r": pl.Float64, "spearman_rho": pl.Float64, "r_x": pl.Float64, "r_y": pl.Float64,
    "text_cosine": pl.Float64, "pc1_angle_deg": pl.Float64,
}


def parse_pairs(value: str | None, descriptors: list[str]) -> list[tuple[str, str]]:
    """``x:y,x:y`` (or the defaults among the rated descriptors); AnalysisError naming an unknown word."""
    if value is None:
        pairs = [p for p in DEFAULT_PAIRS if p[0] in descriptors and p[1] in descriptors]
        if not pairs:
            raise AnalysisError("none of the default antonym pairs is rated in this dataset; give --pairs x:y,...")
        return pairs
    pairs = []
    for item in value.split(","):
        if not item.strip():
            continue
        parts = [p.strip().lower() for p in item.split(":")]
        if len(parts) != 2 or not all(parts) or parts[0] == parts[1]:
            raise AnalysisError(f"--pairs: {item.strip()!r} is not a pair of two different words x:y")
        for w in parts:
            if w not in descriptors:
                raise AnalysisError(
                    f"--pairs: {w!r} (in {item.strip()!r}) is not a rated descriptor of this dataset "
                    f"(rated: {', '.join(descriptors)})"
                )
        pairs.append((parts[0], parts[1]))
    if not pairs:
        raise AnalysisError("--pairs: give at least one pair x:y")
    return list(dict.fromkeys(pairs))


def first_component(x: NDArray[np.float64]) -> NDArray[np.float64]:
    """The first principal component (unit vector) of the rows of x, centred."""
    xc = x - x.mean(axis=0, keepdims=True)
    _, _, vt = np.linalg.svd(xc, full_matrices=False)
    return np.asarray(vt[0], dtype=np.float64)


def angle_deg(u: NDArray[np.float64], v: NDArray[np.float64]) -> float:
    """The angle between two lines (directions without sign), in [0, 90] degrees; NaN for a zero vector."""
    nu, nv = float(np.linalg.norm(u)), float(np.linalg.norm(v))
    if nu == 0 or nv == 0:
        return float("nan")
    c = min(1.0, abs(float(u @ v)) / (nu * nv))
    return math.degrees(math.acos(c))


def axis_row(
    audio: NDArray[np.float64], tx: NDArray[np.float64] | None, ty: NDArray[np.float64] | None,
    rx: NDArray[np.float64], ry: NDArray[np.float64], pc1: NDArray[np.float64] | None,
) -> dict[str, float | int]:
    """The statistics of one pair in one space (see the module doc)."""
    nan = float("nan")
    if tx is None or ty is None:
        return {"n": 0, "pearson_r": nan, "spearman_rho": nan, "r_x": nan, "r_y": nan, "text_cosine": nan,
                "pc1_angle_deg": nan}
    sx, sy = rated.cosines(audio, tx), rated.cosines(audio, ty)
    score, target = sx - sy, rx - ry
    ok = np.isfinite(score) & np.isfinite(target)
    nx, ny = float(np.linalg.norm(tx)), float(np.linalg.norm(ty))
    text_cos = float(tx @ ty / (nx * ny)) if nx > 0 and ny > 0 else nan
    axis = (tx / nx - ty / ny) if nx > 0 and ny > 0 else np.zeros_like(tx)
    return {
        "n": int(ok.sum()),
        "pearson_r": stats.pearson(score[ok], target[ok]),
        "spearman_rho": stats.spearman(score[ok], target[ok]),
        "r_x": stats.pearson(sx[ok], rx[ok]),
        "r_y": stats.pearson(sy[ok], ry[ok]),
        "text_cosine": text_cos,
        "pc1_angle_deg": angle_deg(axis, pc1) if pc1 is not None else nan,
    }


def run_axes(
    store: Store, dataset: str = "ccmusic", model: str | None = None, template: str = BARE, pairs: str | None = None,
    seed: int = 0,
) -> dict[str, pl.DataFrame]:
    """Antonym-axis statistics (`timbredb query axes`). Deterministic: ``seed`` is accepted and unused.

    Returns:
        {"axes": rows dataset, model, template, x, y, n, pearson_r, spearman_rho, r_x, r_y,
        text_cosine, pc1_angle_deg}.

    Raises:
        AnalysisError: unknown dataset or model, a pair with an unrated word, fewer than 3
        stimuli, or no text-capable model with embeddings of the stimuli.
    """
    check_query_template(template)
    ratings = rated.load_ratings(store, dataset)
    chosen = parse_pairs(pairs, ratings.descriptors)
    spaces = rated.resolve_spaces(store, model, need_text=True)
    ids = [s.space_id for s in spaces]
    audio = rated.audio_vectors(store, dataset, ids)
    text = rated.text_vectors(store, template, ids)
    col = {d: j for j, d in enumerate(ratings.descriptors)}
    rows: list[dict[str, object]] = []
    for space in spaces:
        vecs = audio.get(space.space_id, {})
        names = [s for s in ratings.stimuli if s in vecs]
        if len(names) < rated.MIN_STIMULI:
            continue
        idx = ratings.index()
        x = np.stack([vecs[s] for s in names])
        r = ratings.matrix[[idx[s] for s in names]]
        pc1 = first_component(rated.unit_rows(x))
        tv = text.get(space.space_id, {})
        for wx, wy in chosen:
            rows.append({
                "dataset": dataset, "model": space.label, "template": template, "x": wx, "y": wy,
                **axis_row(x, tv.get(wx), tv.get(wy), r[:, col[wx]], r[:, col[wy]], pc1),
            })
    if not rows:
        raise AnalysisError(
            f"no text-capable model has audio embeddings of {dataset!r}'s stimuli"
            + (f" (model {model!r})" if model else "")
        )
    if all(r["n"] == 0 for r in rows):
        stored = sorted(set(rated.coverage(store, dataset)["template"].to_list()))
        raise AnalysisError(
            f"no text embeddings of these words with template {template!r}; stored templates: "
            + (", ".join(repr(t) for t in stored) or "none")
        )
    return {"axes": pl.DataFrame(rows, schema=SCHEMA, orient="row")}
