"""`timbredb query finetune`: does a fine-tuned space beat its base, where it was not trained?

For every fine-tuned space (or the one ``--space`` names), base and tuned space are
compared on the same units with ``compare``'s paired statistics:

- exp2, by the split stored with the space (``timbredb.finetune.data``):
  ``exp2-held-out-source`` (trained words on held-out sources),
  ``exp2-held-out-word`` (held-out words on trained sources) and ``exp2-train``;
  per effect trained on and over all of them (effect ``all``). Unit: the
  trajectory (effect x source x word). Metrics: ``pos_slope_rate`` (value per
  trajectory: 1 if the slope of Δ on strength is > 0, else 0), ``pos_final_delta_rate``
  (1 if the final Δ is > 0) and ``mean_pearson_r`` (Pearson r of Δ vs strength).
  Trajectories with a held-out word *and* a held-out source are in neither
  held-out cell; words and sources the run never saw (not trained, not held out)
  are left out.
- exp1 (a rated dataset, CCMusic by default, never used in training): metric
  ``descriptor_pearson_r``, ``descriptor_spearman_rho`` (unit: descriptor),
  ``instrument_pearson_r`` (unit: instrument), over all stimuli.
- exp3 (timbremetrics, a check that the space kept general timbre): metrics
  ``anchor_spearman_cosine`` and ``anchor_spearman_l2`` (unit: dataset x anchor).

Columns: space, base (labels), eval, effect (null for exp1/exp3), metric,
base_value and tuned_value (the metric's mean over the units both spaces have),
diff = tuned_value - base_value, p_value (two-sided paired sign-flip test over
those units: exact for n <= 20, else ``--permutations`` seeded random patterns;
``compare.compare_pair``), p_adjusted (Holm over every row of the same space: one
family per tuned space, as the rows are read together). Reads only: no torch, nothing written.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from timbredb import queries
from timbredb.analysis import stats
from timbredb.analysis.compare import compare_pair, run_compare
from timbredb.analysis.exp2 import trajectories
from timbredb.errors import AnalysisError, TimbreDBError
from timbredb.store import Store

EVALS = ("exp2-held-out-source", "exp2-held-out-word", "exp2-train", "exp1", "exp3")
CELL_OF = {"held-out-source": "exp2-held-out-source", "held-out-word": "exp2-held-out-word", "train": "exp2-train"}
SCHEMA = {"space": pl.String, "base": pl.String, "eval": pl.String, "effect": pl.String, "metric": pl.String,
          "base_value": pl.Float64, "tuned_value": pl.Float64, "diff": pl.Float64, "p_value": pl.Float64,
          "p_adjusted": pl.Float64}
EXP2_METRICS = ("pos_slope_rate", "pos_final_delta_rate", "mean_pearson_r")
#: exp1 / exp3 rows taken from `query compare`: (level, metric) -> the metric named here
EXP1_METRICS = {("descriptor", "pearson_r"): "descriptor_pearson_r", ("descriptor", "spearman_rho"):
                "descriptor_spearman_rho", ("instrument", "pearson_r"): "instrument_pearson_r"}
EXP3_METRICS = {("anchor", "spearman_cosine"): "anchor_spearman_cosine", ("anchor", "spearman_l2"):
                "anchor_spearman_l2"}


def _cell(split: dict[str, Any], source: str, word: str) -> str | None:
    words = set(split["train_words"]) | set(split["hold_out_words"])
    sources = set(split["train_sources"]) | set(split["hold_out_sources"])
    if word not in words or source not in sources:
        return None
    w, s = word in split["hold_out_words"], source in split["hold_out_sources"]
    if w and s:
        return None
    return CELL_OF["held-out-word" if w else "held-out-source" if s else "train"]


def _unit_values(traj: pl.DataFrame) -> dict[str, dict[tuple[str, str, str], float]]:
    """metric -> (effect, source, word) -> value, for one space's trajectories."""
    out: dict[str, dict[tuple[str, str, str], float]] = {m: {} for m in EXP2_METRICS}
    for r in traj.iter_rows(named=True):
        key = (r["effect"], r["source"], r["descriptor"])
        slope, final, corr = (float("nan") if r[c] is None else float(r[c]) for c in ("slope", "final_delta", "pearson_r"))
        out["pos_slope_rate"][key] = float(slope > 0) if np.isfinite(slope) else float("nan")
        out["pos_final_delta_rate"][key] = float(final > 0) if np.isfinite(final) else float("nan")
        out["mean_pearson_r"][key] = corr
    return out


def _exp2_rows(store: Store, record: dict[str, Any], tuned: str, base: str, template: str,
               n_bootstrap: int, n_flips: int, seed: int) -> list[dict[str, Any]]:
    config, split = record["config"], record["split"]
    versions = config.get("renderer_versions") or []
    renderer = config.get("renderer") or (versions[0] if len(versions) == 1 else None)
    points = queries.run(store, "exp2_trajectories", models=[base, tuned], template=template, renderer=renderer,
                         effects=list(config["effects"])).drop("dataset")
    traj = trajectories(points)
    values = {m: _unit_values(traj.filter(pl.col("model") == m)) for m in (tuned, base)}
    rows = []
    for cell in EVALS[:3]:
        for effect in [*config["effects"], "all"]:
            for metric in EXP2_METRICS:
                keep = {k for k in values[base][metric]
                        if _cell(split, k[1], k[2]) == cell and (effect == "all" or k[0] == effect)}
                a = {k: v for k, v in values[tuned][metric].items() if k in keep}
                b = {k: v for k, v in values[base][metric].items() if k in keep}
                if not a or not b:
                    continue
                tag = "\x1f".join(["finetune", tuned, base, cell, effect, metric])
                res = compare_pair(a, b, n_bootstrap, n_flips, seed, tag)
                if res["n"] == 0:
                    continue
                rows.append({"space": tuned, "base": base, "eval": cell, "effect": effect, "metric": metric,
                             "base_value": res["mean_b"], "tuned_value": res["mean_a"], "diff": res["diff"],
                             "p_value": res["p_value"]})
    return rows


def _compare_rows(store: Store, exp: str, tuned: str, base: str, dataset: str, n_bootstrap: int, n_flips: int,
                  seed: int) -> list[dict[str, Any]]:
    """exp1 / exp3 rows from `query compare` of the pair (tuned first, so diff = tuned - base)."""
    try:
        df = run_compare(store, exp=exp, models=f"{tuned},{base}", dataset=dataset, n_bootstrap=n_bootstrap,
                         n_permutations=n_flips, seed=seed)["comparisons"]
    except AnalysisError:
        return []  # the store holds no exp1 ratings / exp3 studies with both spaces: nothing to compare
    names = EXP1_METRICS if exp == "exp1" else EXP3_METRICS
    rows = []
    for r in df.filter(pl.col("split") == "all").iter_rows(named=True):
        metric = names.get((r["level"], r["metric"]))
        if metric is None or not r["n"]:
            continue
        rows.append({"space": tuned, "base": base, "eval": exp, "effect": None, "metric": metric,
                     "base_value": r["mean_b"], "tuned_value": r["mean_a"], "diff": r["diff"], "p_value": r["p_value"]})
    return rows


def run_finetune_eval(
    store: Store,
    space: str | None = None,
    template: str | None = None,
    dataset: str = "ccmusic",
    n_bootstrap: int = 1000,
    n_permutations: int = stats.MONTE_CARLO_FLIPS,
    seed: int = 0,
) -> dict[str, pl.DataFrame]:
    """Base vs tuned on held-out sources, held-out words, training data, exp1 and exp3 (module doc).

    Args:
        space: a fine-tuned space's label or id; None = every fine-tuned space.
        template: exp2 prompt template (None: the one the space was trained with); exp1 uses '{}'.
        dataset: the rated dataset of exp1.
        n_bootstrap, n_permutations, seed: as in `query compare`.

    Returns:
        {"finetune": rows space, base, eval, effect, metric, base_value, tuned_value, diff, p_value, p_adjusted}.

    Raises:
        AnalysisError: no fine-tuned space, an unknown one, or its base space is gone.
    """
    if n_bootstrap < 0 or n_permutations < 1:
        raise AnalysisError("--bootstrap must be >= 0 and --permutations >= 1")
    if dataset != "ccmusic" and dataset not in store.rated_dataset_names():
        # a dataset asked for by name must exist (the default may be absent: then there is no exp1 row)
        from timbredb.analysis.rated import unknown_dataset

        raise unknown_dataset(store, dataset)
    if space is None:
        records = [store.finetune(r["space_id"]) for r in store.finetunes()]
        if not records:
            raise AnalysisError("no fine-tuned spaces in the store; run `timbredb finetune --model M` first")
    else:
        named = [s for s in store.spaces(space) if store.finetune(s.space_id) is not None]
        if len(named) != 1:
            known = ", ".join(r["label"] for r in store.finetunes()) or "none"
            raise AnalysisError(f"--space {space!r}: not one fine-tuned space of this store (fine-tuned: {known})")
        records = [store.finetune(named[0].space_id)]
    labels = {s.space_id: s.label for s in store.spaces()}
    rows: list[dict[str, Any]] = []
    for record in records:
        first = len(rows)
        assert record is not None
        tuned = labels.get(record["space_id"])
        base = labels.get(record["base_space_id"])
        if tuned is None or base is None:
            raise AnalysisError(f"{record['label']}: its space or its base space {record['base_label']} is no longer "
                                "stored (run `timbredb check`)")
        tpl = template if template is not None else str(record["config"]["template"])
        try:
            rows += _exp2_rows(store, record, tuned, base, tpl, n_bootstrap, n_permutations, seed)
        except TimbreDBError as exc:
            raise AnalysisError(f"{tuned}: {exc}") from exc
        for exp in ("exp1", "exp3"):
            rows += _compare_rows(store, exp, tuned, base, dataset, n_bootstrap, n_permutations, seed)
        family = rows[first:]
        adjusted = stats.holm(np.array([np.nan if r["p_value"] is None else r["p_value"] for r in family], float))
        for r, p in zip(family, adjusted):
            r["p_adjusted"] = None if np.isnan(p) else float(p)
    if not rows:
        raise AnalysisError("no trajectories of the fine-tuned space(s) for that prompt template")
    return {"finetune": pl.DataFrame(rows, schema=SCHEMA, orient="row")}
