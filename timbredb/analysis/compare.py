"""Paired comparison of models on the same units: is a model's lead larger than chance?

Units, per experiment (each model's value on a unit comes from the experiment's own analysis):

* exp1 (any rated dataset, ``--dataset``): level ``descriptor`` (unit = descriptor,
  per split: all, then each group) and level ``instrument`` (unit = instrument, per
  split: all instruments, then each group); metrics ``pearson_r`` and
  ``spearman_rho``. Results imported with `timbredb import exp1` take part by name.
* exp2: level ``trajectory`` (unit = effect x source x descriptor; split = effect,
  and ``all``); metrics ``slope``, ``final_delta``, ``pearson_r``. Imported exp2
  results take part by name.
* exp3: level ``anchor`` (unit = dataset x anchor stimulus; split = dataset, and
  ``all``); metrics ``spearman_cosine`` and ``spearman_l2`` (the per-anchor Spearman
  rho between model and human dissimilarities with that distance).

For two models A and B, per level, split and metric, over the n units where both
have a finite value: mean_a, mean_b, diff = mean_a - mean_b; ci_low, ci_high: the
seeded percentile-bootstrap 95% interval of diff (units resampled in pairs,
``--bootstrap`` times); p_value: the two-sided paired sign-flip permutation test
of mean(a - b) = 0, exact over all 2^n sign patterns when n <= 20, else
``--permutations`` seeded random patterns (``test`` says which). With more than
two models every pair is compared and p_adjusted is Holm's adjustment over the
pairs of one (level, split, metric) family; with two it equals p_value.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations
from typing import Any

import numpy as np
import polars as pl

from timbredb import queries
from timbredb.analysis import rated, stats
from timbredb.errors import AnalysisError
from timbredb.store import Store
from timbredb.vocabularies import BARE, check_query_template

EXPS = ("exp1", "exp2", "exp3")
DEFAULT_TEMPLATES = {"exp1": BARE, "exp2": "a {} sound"}
SCHEMA = {
    "exp": pl.String, "level": pl.String, "split": pl.String, "metric": pl.String, "model_a": pl.String,
    "model_b": pl.String, "n": pl.Int64, "mean_a": pl.Float64, "mean_b": pl.Float64, "diff": pl.Float64,
    "ci_low": pl.Float64, "ci_high": pl.Float64, "p_value": pl.Float64, "p_adjusted": pl.Float64, "test": pl.String,
}
#: (level, split, metric) -> unit -> value, per model
Series = dict[tuple[str, str, str], dict[Any, float]]


def _put(out: Series, key: tuple[str, str, str], unit: Any, value: Any) -> None:
    out.setdefault(key, {})[unit] = float("nan") if value is None else float(value)


# ---------------------------------------------------------------- exp1
def _exp1_local(store: Store, space_id: str, dataset: str, template: str) -> Series:
    from timbredb.analysis.exp1 import analyse_pairs

    ratings = rated.load_ratings(store, dataset)
    pairs = queries.run(store, "rated_pairs", dataset=dataset, template=template, space_ids=[space_id])
    if pairs.is_empty():
        return {}
    res = analyse_pairs(pairs, ratings.descriptors, n_bootstrap=0, n_permutations=0)
    out: Series = {}
    for r in res["descriptors"].iter_rows(named=True):
        for metric in ("pearson_r", "spearman_rho"):
            _put(out, ("descriptor", r["split"], metric), r["descriptor"], r[metric])
    for r in res["instruments"].iter_rows(named=True):
        for metric in ("pearson_r", "spearman_rho"):
            _put(out, ("instrument", "all", metric), r["instrument"], r[metric])
            if r["split"]:
                _put(out, ("instrument", r["split"], metric), r["instrument"], r[metric])
    return out


def _exp1_imported(rows: pl.DataFrame) -> Series:
    out: Series = {}
    for r in rows.iter_rows(named=True):
        for metric, col in (("pearson_r", "pearson_r"), ("spearman_rho", "spearman_rho")):
            _put(out, (r["level"], r["split"], metric), r["unit"], r[col])
            if r["level"] == "instrument" and r["split"] != "all":
                _put(out, ("instrument", "all", metric), r["unit"], r[col])
    return out


def _exp1_series(store: Store, names: list[str] | None, dataset: str, template: str) -> dict[str, Series]:
    imported = queries.run(store, "exp1_imported", dataset=dataset)
    imported_names = sorted(set(imported["model"].to_list()))
    text_spaces = [s for s in store.spaces() if s.has_text]
    if names is None:
        cov = rated.coverage(store, dataset).filter(pl.col("template") == template) \
            if dataset in rated.known_datasets(store) else pl.DataFrame({"space_id": []})
        with_pairs = set(cov["space_id"].to_list())
        labels = [s.label for s in text_spaces if s.space_id in with_pairs]
        names = [*labels, *[n for n in imported_names if n not in labels]]
    out: dict[str, Series] = {}
    for name in names:
        spaces = [s for s in store.spaces(name) if s.has_text]
        if spaces and name in imported_names:
            raise AnalysisError(
                f"{name!r} names both a model computed in this store and imported exp1 results; re-import "
                "them under another name (`timbredb import exp1 PATH --suffix -release`)"
            )
        if name in imported_names:
            out[name] = _exp1_imported(imported.filter(pl.col("model") == name))
        elif spaces:
            out[name] = _exp1_local(store, _one_space(name, spaces), dataset, template)
        else:
            known = sorted({s.label for s in text_spaces} | set(imported_names))
            raise AnalysisError(f"no model {name!r} with exp1 results (known: {', '.join(known) or 'none'})")
    return out


def _one_space(name: str, spaces: Sequence[Any]) -> str:
    if len(spaces) > 1:
        raise AnalysisError(
            f"{name!r} names {len(spaces)} spaces ({', '.join(s.label for s in spaces)}); give one label"
        )
    return str(spaces[0].space_id)


# ---------------------------------------------------------------- exp2
def _exp2_series(store: Store, names: list[str] | None, template: str) -> dict[str, Series]:
    from timbredb.analysis.exp2 import trajectories

    imported = set(store.imported_exp2_models())
    mapping: dict[str, str] | None = None  # label in the results -> the name asked for
    if names is not None:
        mapping = {}
        for name in names:
            spaces = [s for s in store.spaces(name) if s.has_text]
            if name in imported and spaces:
                raise AnalysisError(f"{name!r} names both a model computed in this store and imported exp2 results")
            if name in imported:
                mapping[name] = name
            elif spaces:
                _one_space(name, spaces)
                mapping[spaces[0].label] = name
            else:
                known = sorted({s.label for s in store.spaces() if s.has_text} | imported)
                raise AnalysisError(f"no model {name!r} with exp2 results (known: {', '.join(known) or 'none'})")
    points = queries.run(store, "exp2_trajectories", models=list(mapping) if mapping else None, template=template)
    out: dict[str, Series] = {}
    for r in trajectories(points).iter_rows(named=True):
        series = out.setdefault(r["model"], {})
        for metric in ("slope", "final_delta", "pearson_r"):
            _put(series, ("trajectory", r["effect"], metric), (r["source"], r["descriptor"]), r[metric])
            _put(series, ("trajectory", "all", metric), (r["effect"], r["source"], r["descriptor"]), r[metric])
    if mapping is not None:
        return {name: out.get(label, {}) for label, name in mapping.items()}
    return out


# ---------------------------------------------------------------- exp3
def _exp3_series(store: Store, names: list[str] | None) -> dict[str, Series]:
    from timbredb.analysis.exp3 import DISTANCES, distance_scores, load_studies, pair_matrices, study_scores

    studies = load_studies(store)
    if not studies:
        raise AnalysisError("no timbre-dissimilarity studies are stored; run `timbredb ingest timbremetrics` first")
    if names is None:
        spaces = [s for s in store.spaces() if s.has_audio]
        chosen = [(s.label, s) for s in spaces]
    else:
        chosen = []
        for name in names:
            spaces = [s for s in store.spaces(name) if s.has_audio]
            if not spaces:
                known = ", ".join(sorted(s.label for s in store.spaces() if s.has_audio)) or "none"
                raise AnalysisError(f"no audio model {name!r} in the store (known: {known})")
            _one_space(name, spaces)
            chosen.append((name, spaces[0]))
    coverage = queries.run(store, "exp3_coverage", space_ids=[s.space_id for _, s in chosen]).filter(pl.col("complete"))
    out: dict[str, Series] = {}
    for name, space in chosen:
        series: Series = {}
        for study in coverage.filter(pl.col("space_id") == space.space_id)["dataset"].to_list():
            s = studies[study]
            if space.pairwise:  # frame-level spaces hold pair distances, not vectors
                mats = pair_matrices(store, space.space_id, s.clip_sha256)
                per_distance = {d: distance_scores(mats[d], s.human) for d in DISTANCES}
            else:
                _, x = store.audio_matrix(space.space_id, s.clip_sha256)
                per_distance = {d: study_scores(x, s.human, d) for d in DISTANCES}
            for distance in DISTANCES:
                scores = per_distance[distance]
                for k, v in enumerate(scores.spearman):
                    _put(series, ("anchor", study, f"spearman_{distance}"), k, v)
                    _put(series, ("anchor", "all", f"spearman_{distance}"), (study, k), v)
        if series or names is not None:
            out[name] = series
    return out


# ---------------------------------------------------------------- the comparison
def compare_pair(
    a: dict[Any, float], b: dict[Any, float], n_bootstrap: int, n_flips: int, seed: int, key: str
) -> dict[str, Any]:
    """The statistics of one model pair on one (level, split, metric) (see the module doc)."""
    units = sorted((u for u in a if u in b and np.isfinite(a[u]) and np.isfinite(b[u])), key=str)
    va = np.array([a[u] for u in units], dtype=np.float64)
    vb = np.array([b[u] for u in units], dtype=np.float64)
    n = len(units)
    if n == 0:
        nan = float("nan")
        return {"n": 0, "mean_a": nan, "mean_b": nan, "diff": nan, "ci_low": nan, "ci_high": nan,
                "p_value": nan, "test": "exact"}
    lo, hi = stats.paired_bootstrap_ci(va, vb, n_bootstrap, stats.rng(seed, stats.stable_key(key), 0))
    p, test = stats.sign_flip_p(va - vb, stats.rng(seed, stats.stable_key(key), 1), n_flips)
    return {"n": n, "mean_a": float(va.mean()), "mean_b": float(vb.mean()), "diff": float((va - vb).mean()),
            "ci_low": lo, "ci_high": hi, "p_value": p, "test": test}


def _level_order(key: tuple[str, str, str]) -> tuple[int, int, str, str]:
    level, split, metric = key
    return ({"descriptor": 0, "instrument": 1}.get(level, 2), 0 if split == "all" else 1, split, metric)


def compare_series(
    exp: str, series: dict[str, Series], n_bootstrap: int = 1000, n_flips: int = stats.MONTE_CARLO_FLIPS, seed: int = 0
) -> pl.DataFrame:
    """Every model pair (in the order given) on every (level, split, metric) both have, Holm-adjusted per family."""
    names = list(series)
    keys = sorted({k for s in series.values() for k in s}, key=_level_order)
    rows: list[dict[str, Any]] = []
    for key in keys:
        block = []
        for a, b in combinations(names, 2):
            if key not in series[a] or key not in series[b]:
                continue
            tag = "\x1f".join([exp, *key, a, b])
            block.append({"exp": exp, "level": key[0], "split": key[1], "metric": key[2], "model_a": a, "model_b": b,
                          **compare_pair(series[a][key], series[b][key], n_bootstrap, n_flips, seed, tag)})
        adjusted = stats.holm(np.array([r["p_value"] for r in block], dtype=np.float64))
        for r, q in zip(block, adjusted):
            r["p_adjusted"] = float(q)
        rows.extend(block)
    return pl.DataFrame(rows, schema=SCHEMA, orient="row").select(list(SCHEMA)) if rows else pl.DataFrame(schema=SCHEMA)


def parse_models(value: str | None) -> list[str] | None:
    if value is None:
        return None
    names = list(dict.fromkeys(v.strip() for v in value.split(",") if v.strip()))
    if len(names) < 2:
        raise AnalysisError(f"--models {value!r}: give at least two models, comma-separated (A,B)")
    return names


def run_compare(
    store: Store,
    exp: str = "exp1",
    models: str | None = None,
    dataset: str = "ccmusic",
    template: str | None = None,
    n_bootstrap: int = 1000,
    n_permutations: int = stats.MONTE_CARLO_FLIPS,
    seed: int = 0,
) -> dict[str, pl.DataFrame]:
    """Paired model comparisons (`timbredb query compare`).

    Args:
        exp: "exp1", "exp2" or "exp3".
        models: comma-separated names (space labels, model ids, imported names); None = every model with results.
        dataset: the rated dataset (exp1).
        template: prompt template (exp1 default '{}', exp2 'a {} sound'; 'ensemble' allowed; unused by exp3).
        n_bootstrap: bootstrap resamples of the interval of diff.
        n_permutations: random sign patterns when n > 20.
        seed: seeds the bootstrap and the random patterns.

    Returns:
        {"comparisons": rows exp, level, split, metric, model_a, model_b, n, mean_a, mean_b, diff,
        ci_low, ci_high, p_value, p_adjusted, test}.

    Raises:
        AnalysisError: unknown exp or model, fewer than two models with results.
    """
    if exp not in EXPS:
        raise AnalysisError(f"--exp {exp!r}: choose one of {', '.join(EXPS)}")
    if n_bootstrap < 0 or n_permutations < 1:
        raise AnalysisError("--bootstrap must be >= 0 and --permutations >= 1")
    names = parse_models(models)
    tpl = template if template is not None else DEFAULT_TEMPLATES.get(exp, BARE)
    check_query_template(tpl)
    if exp == "exp1":
        series = _exp1_series(store, names, dataset, tpl)
    elif exp == "exp2":
        series = _exp2_series(store, names, tpl)
    else:
        series = _exp3_series(store, names)
    empty = [n for n, s in series.items() if not s]
    if names is not None and empty:
        raise AnalysisError(f"{exp}: no results for {', '.join(repr(n) for n in empty)} (template {tpl!r})")
    series = {n: s for n, s in series.items() if s}
    if len(series) < 2:
        have = ", ".join(series) or "none"
        raise AnalysisError(f"{exp}: a comparison needs two models with results; the store has {have}")
    return {"comparisons": compare_series(exp, series, n_bootstrap, n_permutations, seed)}
