"""Prompt sensitivity: how much does every number move with the prompt template, and does an ensemble help?

For each model and each template stored for it (``timbredb ingest --prompt``
or ``--prompt-set default``), and the derived template ``ensemble`` (the mean
of the word's L2-normalised template vectors; listed when a model has at
least two templates):

* exp1 (``--dataset``, default CCMusic): metric ``pearson_r`` per descriptor, the
  descriptor-level Pearson r over all stimuli; descriptor ``all`` carries
  ``mean_pearson_r``, the mean r over the descriptors that every stored template
  of the model has a finite r for (so the templates are compared on the same words).
* exp2: per descriptor, over its trajectories (every effect and source):
  ``pos_slope_rate`` (fraction with slope > 0) and ``mean_pearson_r`` (mean r of
  Δ vs strength); descriptor ``all`` over the trajectories of the descriptors
  every stored template has.

Summary rows (template ``mean``, ``sd``, ``min``, ``max``): per model,
descriptor and metric, the mean, sample SD (ddof = 1; NaN with one template),
minimum and maximum over the stored templates (finite values; ``ensemble``
excluded, it is derived from them).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from timbredb import queries
from timbredb.analysis import rated, stats
from timbredb.errors import AnalysisError
from timbredb.store import Store
from timbredb.vocabularies import ENSEMBLE

SCHEMA = {"exp": pl.String, "model": pl.String, "descriptor": pl.String, "template": pl.String, "metric": pl.String,
          "value": pl.Float64}
SUMMARIES = ("mean", "sd", "min", "max")
ALL = "all"


def _templates(store: Store, exp: str, model: str | None) -> dict[str, tuple[str | None, list[str]]]:
    """model label -> (space_id or None when imported, its stored templates)."""
    df = queries.run(store, "prompt_templates")
    if exp == "exp1":
        df = df.filter(pl.col("origin") == "local")
    if model is not None:
        labels = {s.label for s in store.spaces(model)} | {model}
        df = df.filter(pl.col("model").is_in(sorted(labels)))
        if df.is_empty():
            known = ", ".join(sorted(set(queries.run(store, "prompt_templates")["model"].to_list()))) or "none"
            raise AnalysisError(f"no model {model!r} with text embeddings in the store (known: {known})")
    out: dict[str, tuple[str | None, list[str]]] = {}
    for (label,), g in df.group_by("model", maintain_order=True):
        sid = g["space_id"][0]
        out[str(label)] = (None if sid is None else str(sid), sorted(set(g["template"].to_list())))
    return out


def _exp1_values(store: Store, dataset: str, space_id: str, template: str, descriptors: list[str]
                 ) -> list[tuple[str, str, float]]:
    from timbredb.analysis.exp1 import analyse_pairs

    pairs = queries.run(store, "rated_pairs", dataset=dataset, template=template, space_ids=[space_id])
    if pairs.is_empty():
        return []
    d = analyse_pairs(pairs, descriptors, n_bootstrap=0, n_permutations=0)["descriptors"].filter(pl.col("split") == ALL)
    return [(str(r["descriptor"]), "pearson_r", float(r["pearson_r"])) for r in d.iter_rows(named=True)]


def _exp2_trajectories(store: Store, label: str, template: str) -> pl.DataFrame:
    from timbredb.analysis.exp2 import trajectories

    points = queries.run(store, "exp2_trajectories", models=[label], template=template)
    return trajectories(points) if points.height else pl.DataFrame()


def _exp2_values(traj: pl.DataFrame, name: str) -> list[tuple[str, str, float]]:
    slope = traj["slope"].to_numpy().astype(np.float64)
    finite = slope[np.isfinite(slope)]
    return [(name, "pos_slope_rate", float(np.mean(finite > 0)) if finite.size else float("nan")),
            (name, "mean_pearson_r", stats.nanmean(traj["pearson_r"].to_numpy()))]


def _common(per_template: dict[str, set[str]]) -> set[str]:
    """The descriptors every stored template (the ensemble aside) has a result for."""
    sets = [v for t, v in per_template.items() if t != ENSEMBLE]
    return set.intersection(*sets) if sets else set()


def summarise(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    """mean/sd/min/max rows over the stored templates (ensemble excluded) per model, descriptor, metric."""
    groups: dict[tuple[str, str, str, str], list[float]] = {}
    for r in rows:
        if r["template"] == ENSEMBLE:
            continue
        key = (str(r["exp"]), str(r["model"]), str(r["descriptor"]), str(r["metric"]))
        groups.setdefault(key, []).append(float(r["value"]))  # type: ignore[arg-type]
    out: list[dict[str, object]] = []
    for (exp, model, desc, metric), values in groups.items():
        v = np.asarray(values, dtype=np.float64)
        v = v[np.isfinite(v)]
        summary = {
            "mean": float(v.mean()) if v.size else float("nan"),
            "sd": float(np.std(v, ddof=1)) if v.size >= 2 else float("nan"),
            "min": float(v.min()) if v.size else float("nan"),
            "max": float(v.max()) if v.size else float("nan"),
        }
        for name in SUMMARIES:
            out.append({"exp": exp, "model": model, "descriptor": desc, "template": name, "metric": metric,
                        "value": summary[name]})
    return out


def run_prompts(
    store: Store, exp: str = "exp1", dataset: str = "ccmusic", model: str | None = None, seed: int = 0
) -> dict[str, pl.DataFrame]:
    """Every template's numbers and their spread (`timbredb query prompts`). Deterministic: ``seed`` is unused.

    Returns:
        {"prompts": rows exp, model, descriptor, template, metric, value; per template, then the
        summary rows (template mean | sd | min | max)}.

    Raises:
        AnalysisError: unknown exp, dataset or model, or nothing to analyse.
    """
    if exp not in ("exp1", "exp2"):
        raise AnalysisError(f"--exp {exp!r}: choose exp1 or exp2")
    descriptors: list[str] = []
    if exp == "exp1":
        descriptors = rated.load_ratings(store, dataset).descriptors
    rows: list[dict[str, object]] = []
    for label, (space_id, templates) in _templates(store, exp, model).items():
        tried = [*templates, ENSEMBLE] if space_id is not None and len(templates) >= 2 else templates
        found: dict[str, list[tuple[str, str, float]]] = {}
        if exp == "exp1":
            assert space_id is not None
            for t in tried:
                values = _exp1_values(store, dataset, space_id, t, descriptors)
                if values:
                    found[t] = values
            common = _common({t: {d for d, _, v in vals if np.isfinite(v)} for t, vals in found.items()})
            for vals in found.values():
                # "all" over the descriptors every template has, so templates are compared on the same words
                vals.append((ALL, "mean_pearson_r", stats.nanmean(np.array([v for d, _, v in vals if d in common]))))
        else:
            trajs = {t: tr for t in tried if not (tr := _exp2_trajectories(store, label, t)).is_empty()}
            common = _common({t: set(tr["descriptor"].to_list()) for t, tr in trajs.items()})
            for t, tr in trajs.items():
                vals = [v for (word,), g in tr.group_by("descriptor", maintain_order=True)
                        for v in _exp2_values(g, str(word))]
                vals.extend(_exp2_values(tr.filter(pl.col("descriptor").is_in(sorted(common))), ALL))
                found[t] = vals
        for t, vals in found.items():
            rows.extend({"exp": exp, "model": label, "descriptor": d, "template": t, "metric": m, "value": v}
                        for d, m, v in vals)
    if not rows:
        where = f"dataset {dataset!r}" if exp == "exp1" else "Experiment 2"
        raise AnalysisError(f"no {exp} results for any template" + (f" of model {model!r}" if model else "")
                            + f" on {where}")
    rows.extend(summarise(rows))
    return {"prompts": pl.DataFrame(rows, schema=SCHEMA, orient="row")}
