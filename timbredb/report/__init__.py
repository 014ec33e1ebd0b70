"""`timbredb report`: the study's figures and tables, regenerated from the store.

``build_report`` writes ``report.html`` into a folder, with its figures beside it
(``figures/*.png``) and every table also as CSV (``tables/*.csv``), so the folder
is self-contained and can be zipped or printed. The sections are: provenance,
one per registered experiment (``timbredb.analysis.registry``, in registry
order), and the published sources. Each is built from what the store holds: an
experiment without data says so instead of failing.

Where the published study (or the timbredb reference) reported a number for the
same model and condition, the local value is shown next to it with the
difference (local − published); see ``timbredb.report.published``.

Layout: ``html`` (sections, writer, page), ``figures`` (matplotlib figures),
``published`` (published numbers and counterparts), ``context`` (what sections
share), ``provenance``, one module per experiment, ``sources``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from timbredb.store import Store

#: Figure 4 of the study: the reverb trajectories of "haunting" and "deep".
DEFAULT_WORDS: tuple[str, ...] = ("haunting", "deep")
DEFAULT_EFFECT = "reverb"


def _section_builder(ref: str) -> Callable[[Any], Any]:
    module, _, attr = ref.partition(":")
    fn: Callable[[Any], Any] = getattr(importlib.import_module(module), attr)
    return fn


def build_report(
    store: Store,
    out_dir: str | Path,
    data_dir: Path | None = None,
    *,
    words: Sequence[str] = DEFAULT_WORDS,
    effect: str | None = DEFAULT_EFFECT,
    n_bootstrap: int = 1000,
    n_permutations: int = 1000,
    seed: int = 0,
    published: dict[str, Any] | None = None,
) -> Path:
    """Write report.html (plus figures/ and tables/) for whatever the store holds.

    Args:
        store: an open store (read-only is enough).
        out_dir: folder to write into (created; files of an earlier report are replaced).
        data_dir: the data directory, named in the provenance header.
        words: Experiment 2 words whose trajectories are plotted (Figure 4).
        effect: the effect of those trajectories ("reverb", "eq"), or None for every effect.
        n_bootstrap, n_permutations, seed: passed to the analyses (CIs and p-values).
        published: the published numbers (default: the shipped ``published.json``).

    Returns:
        The path of report.html.
    """
    from timbredb.analysis.registry import EXPERIMENTS
    from timbredb.report import provenance, sources
    from timbredb.report.context import ReportContext
    from timbredb.report.figures import colour_map
    from timbredb.report.html import Writer, page
    from timbredb.report.published import Counterparts, load_published

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for sub in ("figures", "tables"):
        for old in (out / sub).glob("*") if (out / sub).is_dir() else []:
            if old.is_file() and old.suffix in (".png", ".csv"):
                old.unlink()
    pub = published if published is not None else load_published()
    ctx = ReportContext(
        store=store,
        writer=Writer(out),
        published=pub,
        counterparts=Counterparts(store.spaces(), pub),
        # Published models first so a model keeps its colour whether or not it is in the store.
        colours=colour_map([r["model"] for k in ("exp1_descriptors", "exp2") for r in pub.get(k, [])]),
        data_dir=data_dir,
        words=tuple(words),
        effect=effect,
        n_bootstrap=n_bootstrap,
        n_permutations=n_permutations,
        seed=seed,
    )
    builders: list[Callable[[Any], Any]] = [provenance.section]
    builders += [_section_builder(e.report) for e in EXPERIMENTS if e.report]
    builders.append(sources.section)
    sections = [b(ctx) for b in builders]
    path = out / "report.html"
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(page(sections, "timbredb report"), encoding="utf-8")
    tmp.replace(path)
    return path
