"""What every report section is built from: the store, the writer, the published numbers, colours."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from timbredb.report.html import Writer
from timbredb.report.published import Counterparts
from timbredb.store import Store


@dataclass
class ReportContext:
    """Shared state of one report run.

    Attributes:
        store: the store (opened read-only).
        writer: saves figures and tables.
        published: the published numbers (``published.json``).
        counterparts: which published model each local label stands for.
        colours: one colour per published model id or local label, stable across sections.
        data_dir: the data directory (named in the provenance header).
        words, effect: the exp2 trajectories to plot.
        n_bootstrap, n_permutations, seed: passed to the analyses.
    """

    store: Store
    writer: Writer
    published: dict[str, Any]
    counterparts: Counterparts
    colours: dict[str, str]
    data_dir: Path | None
    words: tuple[str, ...]
    effect: str | None
    n_bootstrap: int
    n_permutations: int
    seed: int

    def colour_for(self, label: str) -> str:
        """The colour of a local label: its published counterpart's, else its own (assigned once)."""
        key = self.counterparts.of(label) or label
        self.colours.setdefault(key, next_colour(self.colours))
        return self.colours[key]

    def model_colours(self, labels: Sequence[str]) -> dict[str, str]:
        return {m: self.colour_for(m) for m in labels}

    def published_frame(self, key: str) -> pl.DataFrame:
        from timbredb.report.published import published_frame

        return published_frame(self.published, key)


def next_colour(colours: dict[str, str]) -> str:
    from timbredb.report.figures import OKABE_ITO

    return OKABE_ITO[len(colours) % len(OKABE_ITO)]
