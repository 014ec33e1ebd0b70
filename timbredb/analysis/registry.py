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
from dataclasses import dataclass, field
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
        narrow: frame name -> the columns a terminal table shows (`--wide` shows all;
            JSON and CSV always carry every column). Frames not named show every column.
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
    narrow: dict[str, tuple[str, ...]] = field(default_factory=dict)


def _model(help_text: str) -> Option:
    return Option("model", "--model", "str", None, help_text)


def _seed(what: str) -> Option:
    return Option("seed", "--seed", "int", 0, f"Seed of the {what}.")


def _dataset() -> Option:
    return Option("dataset", "--dataset", "str", "ccmusic",
                  "Rated dataset: ccmusic or a name given to `timbredb ingest ratings`.")


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
            Option("calibrated", "--calibrated", "flag", False,
                   "Beyond the study: S = describe's calibrated score (cosine standardised over the space's "
                   "stored clips) instead of the cosine."),
            _seed("bootstrap and permutations"),
            _dataset(),
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
            Option("distinct", "--distinct-variants", "flag", False,
                   "Count words whose variants are identical audio (same parameters) once, their deltas averaged."),
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
        narrow={
            "summary": ("model", "effect", "n_trajectories", "pos_slope_rate", "pos_final_delta_rate",
                        "mean_pearson_r", "note"),
            "trajectories": ("model", "effect", "source", "descriptor", "slope", "final_delta", "pearson_r"),
        },
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
        narrow={
            "metrics": ("model", "dataset", "distance", "n_stimuli", "spearman", "kendall", "ndcg",
                        "triplet_agreement", "mae"),
        },
    ),
    # ---- issue 11: beyond the study
    ExperimentSpec(
        name="compare",
        title="Paired model comparison: is a model's lead larger than chance? (exact sign-flip test, Holm)",
        description="Units: exp1 descriptors and instruments, exp2 trajectories, exp3 anchors. "
                    "Imported results (`timbredb import exp1|exp2`) take part by name.",
        datasets=("ccmusic", "audealize", "timbremetrics"),
        run="timbredb.analysis.compare:run_compare",
        options=(
            Option("exp", "--exp", "str", "exp1", "Experiment whose units are compared: exp1, exp2 or exp3."),
            Option("models", "--models", "str", None,
                   "Models to compare, comma-separated (A,B[,C...]: every pair, Holm-adjusted); default all.",
                   metavar="A,B"),
            _dataset(),
            Option("template", "--prompt", "str", None,
                   "Prompt template (default exp1 '{}', exp2 'a {} sound'; 'ensemble' allowed)."),
            Option("n_bootstrap", "--bootstrap", "int", 1000, "Bootstrap resamples of the interval of diff.", minimum=0),
            Option("n_permutations", "--permutations", "int", 10_000,
                   "Random sign patterns when n > 20 (exact enumeration up to 20).", minimum=1),
            _seed("bootstrap and random sign patterns"),
        ),
        report="timbredb.report.compare:section",
        published=(),
        doc="docs/compare.md",
    ),
    ExperimentSpec(
        name="ceiling",
        title="Noise ceiling per descriptor: split-half (Spearman-Brown) or listener-SD reliability.",
        description="ceiling_r = sqrt(reliability): the most any predictor can agree with the mean ratings.",
        datasets=("ccmusic",),
        run="timbredb.analysis.ceiling:run_ceiling",
        options=(
            _dataset(),
            Option("method", "--method", "str", "auto", "split-half, sd, or auto (every method the data allows)."),
            Option("n_splits", "--splits", "int", 1000, "Random listener splits of the split-half method.", minimum=1),
            _model("Also show this model's exp1 r over the same stimuli, and r / ceiling."),
            Option("template", "--prompt", "str", "{}", "Prompt template of that model's r (with --model)."),
            _seed("listener splits"),
        ),
        report="timbredb.report.ceiling:section",
        published=(),
        doc="docs/ceiling.md",
    ),
    ExperimentSpec(
        name="axes",
        title="Antonym axes: cos(a, t_x) - cos(a, t_y) vs R[x] - R[y], text geometry, angle to PC1.",
        description="Default CCMusic pairs: bright:dim, thick:thin, plump:slim, clear:turbid, pure:coarse, soft:sharp.",
        datasets=("ccmusic",),
        run="timbredb.analysis.axes:run_axes",
        options=(
            _dataset(),
            _model("Only this model (id or label); default every text-capable model."),
            Option("template", "--prompt", "str", "{}", "Prompt template of the text embeddings ('ensemble' allowed)."),
            Option("pairs", "--pairs", "str", None, "Antonym pairs x:y,x:y (default: the CCMusic pairs).",
                   metavar="X:Y,..."),
            Option("seed", "--seed", "int", 0, "Accepted for a uniform interface; this analysis draws no random numbers."),
        ),
        report="timbredb.report.axes:section",
        published=(),
        doc="docs/axes.md",
    ),
    ExperimentSpec(
        name="probe",
        title="Linear probes of the audio embeddings: nested-LOO ridge (RidgeCV alphas) or top principal components.",
        description="Needs only audio embeddings, so audio-only models (mfcc) work too.",
        datasets=("ccmusic",),
        run="timbredb.analysis.probe:run_probe",
        options=(
            _dataset(),
            _model("Only this model (id or label); default every model with audio embeddings."),
            Option("method", "--method", "str", "ridge", "ridge (nested leave-one-out) or pca."),
            Option("template", "--prompt", "str", "{}", "Prompt template of the zero-shot r beside the probe."),
            Option("n_permutations", "--permutations", "int", 200,
                   "Ridge: permutations of the ratings (the whole nested procedure each).", minimum=0),
            Option("n_components", "--components", "int", 5, "PCA: number of components.", minimum=1),
            Option("train_group", "--train-group", "str", None, "Ridge: fit on this group only (with --test-group)."),
            Option("test_group", "--test-group", "str", None, "Ridge: evaluate on this group (transfer)."),
            _seed("permutations"),
        ),
        report="timbredb.report.probe:section",
        published=(),
        doc="docs/probe.md",
    ),
    ExperimentSpec(
        name="prompts",
        title="Prompt sensitivity: every stored template's exp1/exp2 numbers, their spread, and the ensemble.",
        description="Embed more templates with `timbredb ingest --prompt-set default`.",
        datasets=("ccmusic", "audealize"),
        run="timbredb.analysis.prompts:run_prompts",
        options=(
            Option("exp", "--exp", "str", "exp1", "exp1 (descriptor-level r) or exp2 (positive-slope rate, mean r)."),
            _dataset(),
            _model("Only this model (id or label); default every text-capable model."),
            Option("seed", "--seed", "int", 0, "Accepted for a uniform interface; this analysis draws no random numbers."),
        ),
        report="timbredb.report.prompts:section",
        published=(),
        doc="docs/prompts.md",
    ),
    # ---- end issue 11
    # ---- issue 15: fine-tuned spaces
    ExperimentSpec(
        name="finetune",
        title="Fine-tuned space vs its base: exp2 held-out sources / held-out words / train, exp1, exp3 (paired).",
        description="Spaces made by `timbredb finetune`. diff = tuned - base; p: two-sided paired sign-flip test "
                    "over the units both have (trajectories, descriptors, instruments, anchors).",
        datasets=("audealize", "ccmusic", "timbremetrics"),
        run="timbredb.analysis.finetune:run_finetune_eval",
        options=(
            Option("space", "--space", "str", None,
                   "The fine-tuned space (label, e.g. laion-clap+ft-1a2b3c4d); default every fine-tuned space."),
            Option("template", "--prompt", "str", None,
                   "exp2 prompt template (default: the one the space was trained with)."),
            _dataset(),
            Option("n_bootstrap", "--bootstrap", "int", 1000, "Bootstrap resamples (exp1/exp3 via compare).",
                   minimum=0),
            Option("n_permutations", "--permutations", "int", 10_000,
                   "Random sign patterns when n > 20 (exact enumeration up to 20).", minimum=1),
            _seed("random sign patterns"),
        ),
        report="timbredb.report.finetune:section",
        published=(),
        doc="docs/finetune.md",
    ),
    # ---- end issue 15
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
