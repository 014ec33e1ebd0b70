"""Published numbers and which local space each one may be compared with.

The numbers ship in ``timbredb/data/published.json``: rows per experiment key
(``exp1_descriptors``, ``exp2``, ...), each naming its ``source``; every source
names its repository, path and commit, and the preprocessing ``policy`` the
published figures were computed under ("paper" for the study's own pipeline,
"default" for timbremetrics' whole-clip features).

A local space is the published model's counterpart when the model id and the
checkpoint match. When its preprocessing policy differs from the published
one the comparison is still shown, and its caption says which spaces differ
(``Counterparts.policy_caption``), so no difference is read as a model effect
when it is a preprocessing one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from importlib import resources
from typing import Any

import polars as pl

from timbredb.spaces import SpaceRecord

#: the keys of published.json whose rows name a model
ROW_KEYS = ("exp1_descriptors", "exp1_splits", "exp2", "exp3")


def load_published() -> dict[str, Any]:
    """The published numbers shipped with the package (``timbredb/data/published.json``)."""
    text = resources.files("timbredb").joinpath("data").joinpath("published.json").read_text(encoding="utf-8")
    return json.loads(text)


def published_frame(published: dict[str, Any], key: str) -> pl.DataFrame:
    """The rows under one key as a frame (every key any row has becomes a column)."""
    rows = published.get(key, [])
    if not rows:
        return pl.DataFrame()
    cols = list(dict.fromkeys(k for r in rows for k in r))
    return pl.DataFrame([{c: r.get(c) for c in cols} for r in rows], infer_schema_length=None)


class Counterparts:
    """Decides which published model a local model label corresponds to.

    A local label matches published model ``p`` when its space's model id is ``p``
    and, if the published entry names the checkpoint the study used (MS-CLAP
    "2023", ...), the space has that checkpoint. Results without a stored space
    (imported exp2 results) match by name.
    """

    def __init__(self, spaces: Sequence[SpaceRecord], published: dict[str, Any]) -> None:
        self.by_label = {s.label: s for s in spaces}
        self.hints: dict[str, str | None] = {}
        self.policies: dict[str, str] = {}
        sources = published.get("sources", {})
        for key in ROW_KEYS:
            for r in published.get(key, []):
                self.hints.setdefault(r["model"], r.get("checkpoint"))
                policy = (sources.get(r.get("source", "")) or {}).get("policy")
                if policy:
                    self.policies.setdefault(r["model"], str(policy))

    def of(self, label: str) -> str | None:
        space = self.by_label.get(label)
        model_id, checkpoint = (space.model_id, space.checkpoint) if space else (label, None)
        if model_id not in self.hints:
            return None
        hint = self.hints[model_id]
        if hint is None or checkpoint is None or hint == checkpoint:
            return model_id
        return None

    def policy_differs(self, label: str) -> tuple[str, str] | None:
        """(local policy, published policy) when a matched space was preprocessed differently."""
        published_model = self.of(label)
        space = self.by_label.get(label)
        if published_model is None or space is None or published_model not in self.policies:
            return None
        local, theirs = space.policy_name, self.policies[published_model]
        return None if local == theirs else (local, theirs)

    def policy_caption(self, labels: Iterable[str]) -> str:
        """A caption sentence naming the compared spaces whose preprocessing differs ("" if none)."""
        parts = []
        for label in sorted(set(labels)):
            differs = self.policy_differs(label)
            if differs:
                parts.append(f"{label} (policy {differs[0]!r}; published: {differs[1]!r})")
        if not parts:
            return ""
        return (" Preprocessing differs from the published runs for " + ", ".join(parts)
                + ": differences may come from the policy, not the model.")

    def column(self, df: pl.DataFrame, model_col: str = "model") -> pl.DataFrame:
        """``df`` with a ``counterpart`` column (published model id or null)."""
        labels = df[model_col].unique().to_list()
        mapping = {lab: self.of(lab) for lab in labels}
        return df.with_columns(
            pl.col(model_col).replace_strict(mapping, default=None, return_dtype=pl.String).alias("counterpart")
        )


def _compare_schema(keys: Sequence[str]) -> dict[str, Any]:
    cols = ["model", "published_model", *keys, "metric", "local", "published", "difference"]
    return {c: pl.String if c not in ("local", "published", "difference") else pl.Float64 for c in cols}


def compare(
    local: pl.DataFrame,
    published: pl.DataFrame,
    keys: Sequence[str],
    metrics: Sequence[str],
    counterparts: Counterparts,
) -> pl.DataFrame:
    """Long table of local vs published values where the same model and condition exist.

    Args:
        local: local results with a ``model`` column, ``keys`` and ``metrics``.
        published: published rows with ``model``, ``keys`` and (some of) ``metrics``.
        keys: the condition columns (e.g. descriptor, split) besides the model.
        metrics: value columns compared.

    Returns:
        model, published_model, *keys, metric, local, published, difference (local − published).
    """
    schema = _compare_schema(keys)
    if local.is_empty() or published.is_empty():
        return pl.DataFrame(schema=schema)
    loc = counterparts.column(local).filter(pl.col("counterpart").is_not_null())
    rows = []
    pub_index = {}
    for r in published.iter_rows(named=True):
        pub_index[(r["model"], *(str(r.get(k)) for k in keys))] = r
    for r in loc.iter_rows(named=True):
        p = pub_index.get((r["counterpart"], *(str(r.get(k)) for k in keys)))
        if p is None:
            continue
        for m in metrics:
            if m not in r or p.get(m) is None:
                continue
            lv = _float(r[m])
            pv = float(p[m])
            rows.append(
                {"model": r["model"], "published_model": r["counterpart"], **{k: str(r[k]) for k in keys},
                 "metric": m, "local": lv, "published": pv, "difference": lv - pv}
            )
    if not rows:
        return pl.DataFrame(schema=schema)
    return pl.DataFrame(rows, schema=schema)


def with_published(
    local: pl.DataFrame, published: pl.DataFrame, counterparts: Counterparts, keys: Sequence[str], metric: str
) -> pl.DataFrame:
    """``local`` plus published_<metric> and difference columns (null where nothing was published)."""
    out = counterparts.column(local)
    pub_col = f"published_{metric}"
    if published.is_empty() or metric not in published.columns:
        return out.drop("counterpart").with_columns(
            pl.lit(None, dtype=pl.Float64).alias(pub_col), pl.lit(None, dtype=pl.Float64).alias("difference"))
    pub = published.select(
        pl.col("model").alias("counterpart"), *[pl.col(k).cast(pl.String) for k in keys],
        pl.col(metric).cast(pl.Float64).alias(pub_col),
    )
    out = out.with_columns([pl.col(k).cast(pl.String) for k in keys]).join(
        pub, on=["counterpart", *keys], how="left")
    return out.drop("counterpart").with_columns((pl.col(metric) - pl.col(pub_col)).alias("difference"))


def no_counterpart_text(local: pl.DataFrame, published: pl.DataFrame) -> str:
    pub_models = ", ".join(sorted(published["model"].unique().to_list()))
    local_models = ", ".join(sorted(local["model"].unique().to_list()))
    return (f"No model here has a published counterpart (here: {local_models}; published: {pub_models}); "
            "the published values are listed for reference.")


def _float(value: Any) -> float:
    return float("nan") if value is None else float(value)
