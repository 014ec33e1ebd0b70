"""The experiment registry: one plain table of specs. Importing it imports no analysis.

An experiment is one entry here plus one file per layer: its analysis
(``timbredb/analysis/<name>.py``, a ``run`` function returning named polars
frames), its report section (``timbredb/report/<name>.py``), its SQL
(``queries/<name>_*.sql``) and its documentation (``docs/<name>.md``). The CLI
builds `timbredb query <name>` from the entry's options; the report builds its
sections in registry order; the published numbers it is compared with live in
``timbredb/data/published.json`` under the entry's keys.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from timbredb.errors import AnalysisError

if TYPE_CHECKING:
    import polars as pl

    from timbredb.store import Store


@dataclass(frozen=True)
class Option:
    """One option of an analysis, described without click.

    Attributes:
        name: the run function's keyword argument.
        flag: the command-line flag (``--bootstrap``).
        kind: "int", "float", "str" or "flag" (a boolean switch).
        default: the default value (also the run function's).
        help: one line for ``--help``.
        minimum: smallest accepted value (ints and floats).
        metavar: how the value is shown in help.
    """

    name: str
    flag: str
    kind: str
    default: Any
    help: str
    minimum: float | None = None
    metavar: str | None = None


@dataclass(frozen=True)
class ExperimentSpec:
    """Cheap metadata of an experiment.

    Attributes:
        name: `timbredb query NAME`.
        title: one line (the command's help summary and the report section's title).
        description: the rest of the command's help.
        datasets: the datasets it reads (names in the dataset registry).
        run: "module:function(store, **options) -> dict[str, polars.DataFrame]".
        options: the run function's options besides the store.
        report: "module:function(ctx) -> Section", or None for no report section.
        published: keys of ``published.json`` whose numbers it is compared with.
        doc: its documentation file.
    """

    name: str
    title: str
    description: str
    datasets: tuple[str, ...]
    run: str
    options: tuple[Option, ...]
    report: str | None
    published: tuple[str, ...]
    doc: str


def _model(help_text: str) -> Option:
    return Option("model", "--model", "str", None, help_text)


def _seed(what: str) -> Option:
    return Option("seed", "--seed", "int", 0, f"Seed of the {what}.")


EXPERIMENTS: tuple[ExperimentSpec, ...] = (
    ExperimentSpec(
        name="exp1",
        title="Experiment 1: audio-descriptor similarity vs human timbre ratings (CCMusic).",
        description="",
        datasets=("ccmusic",),
        run="timbredb.analysis.exp1:run_exp1",
        options=(
            _model("Only this model (id or label); default every model with results."),
            Option("template", "--prompt", "str", "{}", "Prompt template whose text embeddings to use."),
            Option("n_bootstrap", "--bootstrap", "int", 1000, "Bootstrap resamples for CIs.", minimum=0),
            Option("n_permutations", "--permutations", "int", 1000, "Permutations for p-values.", minimum=0),
            _seed("bootstrap and permutations"),
        ),
        report="timbredb.report.exp1:section",
        published=("exp1_descriptors", "exp1_splits"),
        doc="docs/exp1.md",
    ),
    ExperimentSpec(
        name="exp2",
        title="Experiment 2: does stronger EQ/reverb (or compression, distortion) move audio toward the effect's descriptor?",
        description="",
        datasets=("audealize", "socialfx-comp", "safedb"),
        run="timbredb.analysis.exp2:run_exp2",
        options=(
            _model("Only this model (id or label); default every model with results."),
            Option("detail", "--detail", "flag", False, "Also list every trajectory."),
            Option("template", "--prompt", "str", "a {} sound", "Prompt template of the target texts."),
            Option("renderer", "--renderer", "str", None,
                   "Renderer version of the variants (default: the one the latest ingest used)."),
            Option("tables", "--study-tables", "flag", False, "Print the study's Table 1/Table 2 layouts instead."),
            Option("effect", "--effect", "str", None,
                   "Effects to analyse: labels (eq, reverb, socialfx-compression, safe-eq, safe-compression, "
                   "safe-distortion), kinds (compression, distortion), datasets (audealize, socialfx, safedb) or "
                   "'every', comma-separated (default: eq,reverb, the study's).", metavar="E1,E2"),
            Option("compare_eq", "--compare-eq", "flag", False,
                   "Also compare Audealize's and SAFE-DB's EQ for the words both crowds describe."),
        ),
        report="timbredb.report.exp2:section",
        published=("exp2",),
        doc="docs/exp2.md",
    ),
    ExperimentSpec(
        name="exp3",
        title="Experiment 3: embedding distances vs human timbre dissimilarity (timbremetrics).",
        description="",
        datasets=("timbremetrics",),
        run="timbredb.analysis.exp3:run_exp3",
        options=(
            _model("Only this model (id or label); default every audio model with results."),
            Option("n_bootstrap", "--bootstrap", "int", 1000, "Bootstrap resamples over anchors.", minimum=0),
            _seed("bootstrap"),
        ),
        report="timbredb.report.exp3:section",
        published=("exp3",),
        doc="docs/exp3.md",
    ),
)


def experiments() -> dict[str, ExperimentSpec]:
    return {e.name: e for e in EXPERIMENTS}


def get(name: str) -> ExperimentSpec:
    table = experiments()
    if name not in table:
        raise AnalysisError(f"unknown experiment {name!r}; known: {', '.join(table)}")
    return table[name]


def _resolve(ref: str) -> Any:
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


def run_function(spec: ExperimentSpec) -> Callable[..., dict[str, pl.DataFrame]]:
    """The experiment's analysis function (imports its module)."""
    fn: Callable[..., dict[str, pl.DataFrame]] = _resolve(spec.run)
    return fn


def run(name: str, store: Store, **options: Any) -> dict[str, pl.DataFrame]:
    """Run an experiment's analysis with its defaults overridden by ``options``.

    Raises:
        AnalysisError: unknown experiment or option.
    """
    spec = get(name)
    known = {o.name for o in spec.options}
    unknown = set(options) - known
    if unknown:
        raise AnalysisError(f"{name}: unknown option(s) {', '.join(sorted(unknown))}")
    values = {o.name: o.default for o in spec.options}
    values.update(options)
    return run_function(spec)(store, **values)
