"""The command line: parse, make one library call, format the result.

Errors from the library (TimbreDBError) become one line on stderr and the exit
status the error names (see timbredb.errors). `--format json` prints exactly one
JSON document on stdout; progress and warnings go to stderr.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import click

from timbredb.config import resolve_data_dir, resolve_db_path
from timbredb.errors import PartialFailure, TimbreDBError, first_line
from timbredb.vocabularies import DEFAULT_VOCABULARY

FORMATS_QUERY = click.Choice(["table", "json", "csv"])
FORMATS_LIST = click.Choice(["table", "json"])


@dataclass
class Ctx:
    db: Path
    #: --data-dir as given (None: $TIMBREDB_DATA_DIR, else the per-user cache)
    data_dir_option: Path | None = None

    @cached_property
    def data_dir(self) -> Path:
        """Resolved on first use: commands that read no data (sql, query) skip platformdirs."""
        return resolve_data_dir(self.data_dir_option)


def _warn(message: str) -> None:
    click.echo(message, err=True)


def _progress(desc: str, total: int | None = None) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="clip", file=sys.stderr, leave=False, dynamic_ncols=True, disable=None)


def _emit(result: Any, fmt: str) -> None:
    from timbredb.formatting import render

    click.echo(render(result, fmt))


class TimbreGroup(click.Group):
    """Turns library errors into one line on stderr and a documented exit status."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except TimbreDBError as exc:
            click.echo(f"timbredb: error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("timbredb: interrupted; everything stored before the interrupt is kept", err=True)
            ctx.exit(130)
        except RuntimeError as exc:
            # DuckDB reports a statement stopped by Ctrl-C as RuntimeError("Query interrupted")
            if "interrupt" not in str(exc).lower():
                raise
            click.echo("timbredb: interrupted; everything stored before the interrupt is kept", err=True)
            ctx.exit(130)
        except Exception as exc:
            # DuckDB failures after the store is open (disk full, a second writer): one line, not a traceback
            if type(exc).__module__.split(".")[0] not in ("duckdb", "_duckdb"):
                raise
            click.echo(f"timbredb: error: database error: {first_line(exc)}", err=True)
            ctx.exit(1)


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    """`--version`, as click's version option prints it; the version is read only when asked for."""
    if not value or ctx.resilient_parsing:
        return
    from timbredb import __version__

    click.echo(f"timbredb, version {__version__}")
    ctx.exit()


@click.group(cls=TimbreGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_print_version,
              help="Show the version and exit.")
@click.option("--db", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Store file (default ./timbredb.duckdb, or $TIMBREDB_DB).")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Root holding ccmusic/, audealize/, timbremetrics/ (default $TIMBREDB_DATA_DIR, else a per-user cache).")
@click.pass_context
def cli(ctx: click.Context, db: Path | None, data_dir: Path | None) -> None:
    """timbredb: do language-audio embeddings encode what listeners mean by timbre words?

    Ingest audio and datasets, embed them with every model, and query the
    experiments (exp1 ratings, exp2 effects, exp3 dissimilarity) or any SQL.
    """
    ctx.obj = Ctx(db=resolve_db_path(db), data_dir_option=data_dir)


# ---------------------------------------------------------------- models
@cli.group()
def models() -> None:
    """List, fetch and inspect embedding models."""


@models.command("list")
@click.option("--format", "fmt", type=FORMATS_LIST, default="table", show_default=True, help="Output format.")
@click.pass_obj
def models_list(obj: Ctx, fmt: str) -> None:
    """Show every registered model and whether it is usable here (imports no torch)."""
    from timbredb.models.catalog import model_table

    table = model_table(obj.data_dir)
    if fmt == "json":
        _emit(table, "json")
        return
    from timbredb.formatting import to_table

    # licences and fixes are printed whole: a truncated fix is no fix
    click.echo(to_table(table.select("id", "family", "checkpoint", "dim", "sample_rate", "modalities", "usable")))
    click.echo("\nlicences:")
    for row in table.iter_rows(named=True):
        click.echo(f"  {row['id']}: {row['license']}")
    unusable = table.filter(~table["usable"])
    if unusable.height:
        click.echo("\nnot usable here:")
        for row in unusable.iter_rows(named=True):
            click.echo(f"  {row['id']}: {row['reason']}")


ALLOW_UNPINNED_HELP = "Use weights files whose sha256 is not the pinned one (reported and recorded, not refused)."


@models.command("fetch")
@click.argument("names", nargs=-1, required=True)
@click.option("--weights", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Use this local checkpoint file instead of downloading.")
@click.option("--allow-unpinned", is_flag=True, help=ALLOW_UNPINNED_HELP)
@click.pass_obj
def models_fetch(obj: Ctx, names: tuple[str, ...], weights: Path | None, allow_unpinned: bool) -> None:
    """Download model weights into the Hugging Face cache at their pinned revisions and check their sha256."""
    from timbredb.models.fetch import fetch

    for name in names:
        path = fetch(name, weights=weights, allow_unpinned=allow_unpinned)
        click.echo(f"{name}: {path}")


# ---- models verify (issue 16)
@models.command("verify")
@click.argument("names", nargs=-1)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda", "mps"]), default="auto", show_default=True,
              help="Where neural models run.")
@click.option("--dtype", type=click.Choice(["float32", "float16", "bfloat16"]), default="float32", show_default=True,
              help="Model precision (half precision only on a GPU).")
@click.option("--allow-unpinned", is_flag=True, help=ALLOW_UNPINNED_HELP)
@click.option("--format", "fmt", type=FORMATS_LIST, default="table", show_default=True, help="Output format.")
@click.pass_obj
def models_verify(obj: Ctx, names: tuple[str, ...], device: str, dtype: str, allow_unpinned: bool, fmt: str) -> None:
    """Check cached weights against their pins and run each model once on a 1 s test tone.

    NAMES default to every registered model (those not usable here are skipped).
    Prints device, dtype, load time and the vector norms; exits 1 if any named
    or usable model fails.
    """
    from timbredb.errors import ModelUnavailableError
    from timbredb.models.verify import verify

    results = verify(list(names), device=device, dtype=dtype, data_dir=obj.data_dir, allow_unpinned=allow_unpinned)
    if fmt == "json":
        _emit([r.to_dict() for r in results], "json")
    else:
        import polars as pl

        from timbredb.formatting import to_table

        rows = [{"model": r.model, "status": r.status, "device": r.device or "", "dtype": r.dtype or "",
                 "load_s": r.load_s, "audio_norm": r.audio_norm, "text_norm": r.text_norm,
                 "pair_distance": r.pair_distance} for r in results]
        click.echo(to_table(pl.DataFrame(rows, schema_overrides={"load_s": pl.Float64, "audio_norm": pl.Float64,
                                                                  "text_norm": pl.Float64, "pair_distance": pl.Float64})))
        for r in results:
            for f in r.files:
                click.echo(f"  {r.model}: {f.describe()}")
            if r.reason:
                click.echo(f"  {r.model}: {r.reason}")
    failed = [r.model for r in results if r.status == "failed"]
    if failed:
        raise ModelUnavailableError(f"verification failed for {', '.join(failed)}")


@models.command("vocabulary")
@click.argument("name")
@click.pass_obj
def models_vocabulary(obj: Ctx, name: str) -> None:
    """Print the words a closed-vocabulary model (socialfx-eq) can embed, one per line."""
    from timbredb.models.catalog import vocabulary

    click.echo("\n".join(vocabulary(name, obj.data_dir)))


# ---------------------------------------------------------------- ingest
def _split_models(value: str | None) -> list[str] | None:
    """The one convention for model lists: comma-separated, the option repeatable (values joined)."""
    if value is None:
        return None
    names = list(dict.fromkeys(v.strip() for v in value.split(",") if v.strip()))
    if not names:
        raise click.BadParameter("give at least one model id", param_hint="--models")
    return names


@cli.command()
@click.argument("targets", nargs=-1)
@click.option("--models", "--model", "model_names", multiple=True, metavar="M1,M2",
              help="Models to embed with, comma-separated or repeated (default: every model usable here).")
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True,
              help="Clips per transaction and windows per forward pass.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda", "mps"]), default="auto", show_default=True,
              help="Where neural models run.")
@click.option("--dtype", type=click.Choice(["float32", "float16", "bfloat16"]), default="float32", show_default=True,
              help="Model precision (half precision only on a GPU).")
@click.option("--weights", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Local checkpoint file for the (single) model in --models.")
@click.option("--allow-unpinned", is_flag=True, help=ALLOW_UNPINNED_HELP)
@click.option("--prompt", "prompts", multiple=True, metavar="TEMPLATE",
              help="Prompt template with '{}' for the word (repeatable); each is a separate set of text embeddings.")
@click.option("--words", default=None, metavar="W1,W2|FILE",
              help="audealize, socialfx-comp, safedb: descriptor words to render, optionally EFFECT:WORD "
                   "(default: the study's 20 EQ and 20 reverb words; the effect datasets' well-attested words).")
@click.option("--strengths", default=None, metavar="S1,S2",
              help="audealize, socialfx-comp, safedb: effect strengths (default 0.2,0.4,0.6,0.8,1.0).")
@click.option("--source", "sources", multiple=True, type=click.Path(exists=True, path_type=Path),
              help="audealize: extra source audio to render effects on (repeatable).")
@click.option("--length-s", type=click.FloatRange(min=0, min_open=True), default=None,
              help="audealize: trim rendered variants to this many seconds (default: keep the whole tail).")
# ---- issue 12: more timbremetrics folders, more effect datasets
@click.option("--timbremetrics-dir", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="timbremetrics: read the collection from this folder (sounds/ + true_dissim/, or a clone of "
                   "tiianhk/timbremetrics) instead of DATA_DIR/timbremetrics.")
@click.option("--min-contributions", type=click.IntRange(min=1), default=None,
              help="socialfx-comp, safedb: render the words at least this many contributions describe "
                   "(default 20 and 5).")
@click.option("--strict", is_flag=True, help="Exit with status 4 if any input failed.")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="Where audio files are decoded and embedded: in this process, or on Ray (pip install 'timbredb[ray]').")
@click.option("--ray-address", default=None, metavar="ADDR",
              help="--engine ray: join this running Ray cluster (default: start a local one).")
@click.option("--ray-actors", type=click.IntRange(min=1), default=None,
              help="--engine ray: embedding actors (default: one per GPU of the cluster, else one).")
@click.option("--format", "fmt", type=FORMATS_LIST, default="table", show_default=True, help="Summary format.")
# ---- issue 11: rated datasets and prompt sets
@click.option("--prompt-set", "prompt_set", default=None, metavar="NAME",
              help="Also embed a named template set ('default': the study's two templates and six more).")
@click.option("--audio", "rating_audio", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="ingest ratings: folder of the stimuli's recordings (<stimulus>.wav; default <folder>/audio).")
@click.option("--name", "rating_name", default=None,
              help="ingest ratings: the dataset name (default: the folder's name or the file's stem).")
# ---- end issue 11
# ---- issue 17: the pipelined ingest
@click.option("--workers", type=click.IntRange(min=0), default=None, metavar="N",
              help="Worker processes that decode, hash, resample and window files (and compute the baselines) "
                   "while the model runs; 0 = none, all in this process [default: cores - 1; every core when "
                   "only baselines run].")
# ---- end issue 17
@click.pass_obj
def ingest(obj: Ctx, targets: tuple[str, ...], model_names: tuple[str, ...], batch_size: int, device: str, dtype: str,
           weights: Path | None, allow_unpinned: bool, prompts: tuple[str, ...], words: str | None, strengths: str | None,
           sources: tuple[Path, ...], length_s: float | None, timbremetrics_dir: Path | None,
           min_contributions: int | None, strict: bool, engine: str, ray_address: str | None,
           ray_actors: int | None, fmt: str, prompt_set: str | None,
           rating_audio: Path | None, rating_name: str | None, workers: int | None) -> None:
    """Store audio and datasets and compute every missing embedding.

    TARGETS are dataset names (ccmusic, audealize, timbremetrics, and the extra
    effect datasets socialfx-comp and safedb) or audio files/folders; none means
    every default dataset (ccmusic, audealize, timbremetrics). `ingest ratings
    PATH` stores a rated dataset of your own (a ratings CSV or a folder with
    ratings.csv and audio/). Re-running computes only what is missing; a killed
    run resumes without duplicates.
    """
    from timbredb.ingest import IngestOptions, run_ingest

    options = IngestOptions(
        models=_split_models(",".join(model_names)) if model_names else None, batch_size=batch_size, device=device,
        dtype=dtype, weights=weights, allow_unpinned=allow_unpinned, prompts=list(prompts), words=words,
        strengths=strengths, sources=list(sources), length_s=length_s, prompt_set=prompt_set,
        rating_audio=rating_audio, rating_name=rating_name, timbremetrics_dir=timbremetrics_dir,
        min_contributions=min_contributions, engine=engine, ray_address=ray_address, ray_actors=ray_actors,
        workers=workers,
    )
    summary = run_ingest(obj.db, obj.data_dir, list(targets), options, progress=_progress, warn=_warn)
    if fmt == "json":
        _emit(summary.to_dict(), "json")
    else:
        s = summary
        click.echo(
            f"clips added: {s.clips_added}, clips skipped: {s.clips_skipped}, embeddings added: {s.embeddings_added}, "
            f"text embeddings added: {s.text_embeddings_added}, errors: {len(s.errors)}"
        )
    if strict and summary.errors:
        raise PartialFailure(f"{len(summary.errors)} input(s) failed")


# ---------------------------------------------------------------- query
@cli.group()
def query() -> None:
    """Run an experiment's analysis on what the store holds."""


def _click_option(opt: Any) -> Any:
    """A click option from a registry Option (the registry itself knows nothing of click)."""
    if opt.kind == "flag":
        return click.option(opt.flag, opt.name, is_flag=True, default=bool(opt.default), help=opt.help)
    types = {"int": int, "float": float, "str": str}
    kind: Any = types[opt.kind]
    if opt.minimum is not None and opt.kind == "int":
        kind = click.IntRange(min=int(opt.minimum))
    elif opt.minimum is not None and opt.kind == "float":
        kind = click.FloatRange(min=float(opt.minimum))
    return click.option(opt.flag, opt.name, type=kind, default=opt.default, show_default=opt.default is not None,
                        metavar=opt.metavar, help=opt.help)


def _query_command(spec: Any) -> click.Command:
    def callback(obj: Ctx, fmt: str, wide: bool, **options: Any) -> None:
        from timbredb.analysis.registry import run
        from timbredb.store import Store

        with Store(obj.db, read_only=True) as store:
            result = run(spec.name, store, **options)
        if fmt == "table" and not wide:
            # a terminal table keeps to ~100 columns; JSON and CSV carry everything
            result = {name: df.select([c for c in spec.narrow[name] if c in df.columns]) if name in spec.narrow else df
                      for name, df in result.items()}
        click.echo(render_result(result, fmt))

    command: Any = click.pass_obj(callback)
    command = click.option("--wide", is_flag=True, help="Table format: show every column (default: the main ones).")(
        command)
    command = click.option("--format", "fmt", type=FORMATS_QUERY, default="table", show_default=True,
                           help="Output format.")(command)
    for opt in reversed(spec.options):
        command = _click_option(opt)(command)
    help_text = spec.title + (f"\n\n{spec.description}" if spec.description else "")
    return click.command(spec.name, help=help_text)(command)


def render_result(result: Any, fmt: str) -> str:
    from timbredb.formatting import render

    return render(result, fmt, collapse=True)


def _register_queries() -> None:
    from timbredb.analysis.registry import EXPERIMENTS

    for spec in EXPERIMENTS:
        query.add_command(_query_command(spec))


_register_queries()


# ---------------------------------------------------------------- describe
@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--models", "--model", "model_names", multiple=True, metavar="M1,M2",
              help="Models, comma-separated or repeated (default: the first usable text model, neural first); an "
                   "audio-only model (mfcc, mss, mfcc-frames, mss-frames) with --clips lists the nearest stored clips only.")
@click.option("-k", "k", type=click.IntRange(min=1), default=5, show_default=True, help="Descriptors per file.")
@click.option("--vocabulary", default=DEFAULT_VOCABULARY, show_default=True, metavar="NAME|FILE",
              help="study (the 48 timbre words of the study and CCMusic), ccmusic, audealize-eq, audealize-reverb, "
                   "socialfx-eq, a stored vocabulary, or a word file.")
@click.option("--prompt", "template", default="{}", show_default=True, help="Prompt template for the words.")
@click.option("--rank", type=click.Choice(["calibrated", "cosine"]), default="calibrated", show_default=True,
              help="Rank by the cosine standardised against a reference set of sounds, or by the raw cosine.")
@click.option("--clips", "n_clips", type=click.IntRange(min=0), default=0, show_default=True,
              help="Also list this many nearest stored clips.")
@click.option("--save", is_flag=True, help="Store the vocabulary and its text vectors (otherwise nothing is written).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda", "mps"]), default="auto", show_default=True,
              help="Where neural models run.")
@click.option("--allow-unpinned", is_flag=True, help=ALLOW_UNPINNED_HELP)
@click.option("--format", "fmt", type=FORMATS_LIST, default="table", show_default=True, help="Output format.")
@click.pass_obj
def describe(obj: Ctx, files: tuple[Path, ...], model_names: tuple[str, ...], k: int, vocabulary: str, template: str,
             rank: str, n_clips: int, save: bool, device: str, allow_unpinned: bool, fmt: str) -> None:
    """Nearest descriptors for audio files or folders (they need not be ingested; nothing is written without --save)."""
    from timbredb.audio import find_audio_files
    from timbredb.describe import default_text_model
    from timbredb.describe import describe as run_describe
    from timbredb.models import load
    from timbredb.store import Store
    from timbredb.vocabularies import check_template, resolve

    check_template(template)
    names = _split_models(",".join(model_names)) if model_names else [default_text_model(obj.data_dir)]
    # store_path: a fine-tuned space's weights live in its store (issue 15)
    loaded = [load(n, device=device, data_dir=obj.data_dir, allow_unpinned=allow_unpinned, store_path=obj.db)
              for n in names or []]
    paths: list[str] = []
    for f in files:
        found = find_audio_files(f) if f.is_dir() else [f]
        if f.is_dir() and not found:
            _warn(f"{f}: no audio files (wav, flac, ogg, aiff, mp3) found")
        paths.extend(map(str, found))
    if save:
        for m in loaded:
            m.ensure_loaded()  # before the store is created or written
        store: Store | None = Store(obj.db)
    else:
        store = Store(obj.db, read_only=True) if obj.db.exists() else None
    results: list[Any] = []
    errors: list[str] = []
    try:
        vocab_name, words = resolve(vocabulary, obj.data_dir, store.vocabularies() if store else {})
        for m in loaded:
            got, failed = run_describe(store, paths, m, words, vocab_name, k=k, template=template, n_clips=n_clips,
                                       rank=rank, save=save, warn=_warn)
            results.extend(got)
            errors.extend(e for e in failed if e not in errors)
    finally:
        if store is not None:
            store.close()
    for line in errors:
        click.echo(f"timbredb: error: {line}", err=True)
    if fmt == "json":
        _emit([r.to_dict(with_clips=n_clips > 0) for r in results], "json")
    else:
        import polars as pl

        from timbredb.formatting import to_table

        for r in results:
            rows = [{"rank": i + 1, "descriptor": d["descriptor"], "score": d["score"], "cosine": d["cosine"]}
                    for i, d in enumerate(r.descriptors)]
            if rows:
                ref = r.reference
                title = f"{r.file} ({r.model}; score: {ref['ranked_by']}" + (
                    f", against {ref['n_clips']} {'stored' if ref['kind'] == 'store' else 'synthesized'} sounds)"
                    if ref["ranked_by"] == "calibrated" else ")")
                click.echo(to_table(pl.DataFrame(rows), title=title))
            if r.clips:
                title = "similar stored clips" if rows else f"{r.file} ({r.model}): similar stored clips"
                click.echo(to_table(pl.DataFrame(r.clips), title=title))
    if errors:
        sys.exit(1)


# ---------------------------------------------------------------- sql
@cli.command()
@click.argument("statement")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json", "parquet"]), default="table", show_default=True,
              help="Output format (parquet needs --output or a non-terminal stdout).")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Write here instead of stdout.")
@click.option("--timeout", type=click.FloatRange(min=0), default=60.0, show_default=True, metavar="SECONDS",
              help="Stop the statement after this many seconds (0: no limit).")
@click.pass_obj
def sql(obj: Ctx, statement: str, fmt: str, output: Path | None, timeout: float) -> None:
    """Run one read-only SQL statement on the store (no writes, no file access, a time limit)."""
    from timbredb.formatting import render
    from timbredb.sql import run_readonly

    if fmt == "parquet":
        if output is None and sys.stdout.isatty():
            raise TimbreDBError("--format parquet writes binary; give --output FILE or redirect stdout")
        import pyarrow.parquet as pq

        table = run_readonly(obj.db, statement, timeout_s=timeout, parquet=True).arrow
        pq.write_table(table, str(output) if output is not None else sys.stdout.buffer)
        return
    df = run_readonly(obj.db, statement, timeout_s=timeout, fmt=fmt).frame
    assert df is not None
    text = render(df, fmt)
    if output is not None:
        output.write_text(text + "\n", encoding="utf-8")
    else:
        click.echo(text)


# ---------------------------------------------------------------- import
@cli.group("import")
def import_() -> None:
    """Load results computed elsewhere, to analyse them beside local ones."""


@import_.command("exp2")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--model", "model_name", required=True, help="Name to file the imported results under.")
@click.option("--format", "fmt", type=FORMATS_LIST, default="table", show_default=True, help="Summary format.")
@click.pass_obj
def import_exp2(obj: Ctx, file: Path, model_name: str, fmt: str) -> None:
    """Import per-condition exp2 similarities (the study's CSV format or timbredb's export)."""
    from timbredb.importers.exp2 import import_results
    from timbredb.store import Store

    with Store(obj.db) as store:
        summary = import_results(store, file, model_name, progress=_progress)
    if fmt == "json":
        _emit(summary, "json")
    else:
        click.echo(", ".join(f"{k}: {v}" for k, v in summary.items()))


# ---- issue 11: Experiment 1 results in the study release's format
@import_.command("exp1")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--model", "model_name", default=None,
              help="Name to file the results under (needed for one file; default: the release's names).")
@click.option("--dataset", default="ccmusic", show_default=True, help="The rated dataset the results are about.")
@click.option("--suffix", default="", help="Append this to every imported name (e.g. -release), to keep them apart "
              "from local models of the same name.")
@click.option("--format", "fmt", type=FORMATS_LIST, default="table", show_default=True, help="Summary format.")
@click.pass_obj
def import_exp1(obj: Ctx, path: Path, model_name: str | None, dataset: str, suffix: str, fmt: str) -> None:
    """Import exp1 results (the study release's descriptors.csv and <model>_<split>.csv files, or one file)."""
    from timbredb.importers.exp1 import import_results
    from timbredb.store import Store

    with Store(obj.db) as store:
        summary = import_results(store, path, model_name, dataset=dataset, suffix=suffix)
    if fmt == "json":
        _emit(summary, "json")
    else:
        for name, info in summary["models"].items():
            click.echo(f"{name}: model_id {info['model_id'] or '-'}, descriptors: {info['descriptors']}, "
                       f"instruments: {info['instruments']} ({', '.join(info['splits']) or '-'}), "
                       f"replaced: {info['replaced']}")


class _DefaultGroup(click.Group):
    """A group whose first argument, when it names none of its subcommands, goes to ``default``
    (`timbredb export DIR` is `timbredb export parquet DIR`)."""

    def __init__(self, *args: Any, default: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.default = default

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = [self.default, *args]
        return super().parse_args(ctx, args)


@cli.group("export", cls=_DefaultGroup, default="parquet")
def export() -> None:
    """Write the store's content: as Parquet (`export [parquet] DIR`), or exp1 results in the study
    release's format (`export exp1 DIR`). A folder literally named exp1: `export parquet exp1`."""


@export.command("exp1")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--model", default=None, help="Only this model (id or label); default every model with results.")
@click.option("--dataset", default="ccmusic", show_default=True, help="The rated dataset.")
@click.option("--prompt", "template", default="{}", show_default=True, help="Prompt template of the similarities.")
@click.pass_obj
def export_exp1(obj: Ctx, out_dir: Path, model: str | None, dataset: str, template: str) -> None:
    """Write this store's exp1 results as the study release does (descriptors.csv, <model>_<split>.csv)."""
    from timbredb.analysis.exp1 import run_exp1
    from timbredb.importers.exp1 import export_results
    from timbredb.store import Store

    with Store(obj.db, read_only=True) as store:
        result = run_exp1(store, model=model, template=template, n_bootstrap=0, n_permutations=0, dataset=dataset)
    summary = export_results(result, out_dir)
    click.echo(f"{summary['folder']}: {', '.join(summary['files'])}")
# ---- end issue 11


# ---- issue 15: fine-tuning (docs/finetune.md)
@cli.command()
@click.option("--model", "model", required=True, metavar="M",
              help="The base space (a label naming exactly one stored space with audio and text vectors).")
@click.option("--method", type=click.Choice(["adapter", "lora"]), default="adapter", show_default=True,
              help="adapter: a residual head trained on the stored vectors (any model); lora: low-rank adapters "
                   "on LAION-CLAP's audio attention, trained end to end on re-rendered audio (needs peft).")
@click.option("--train", default="audealize", show_default=True, metavar="DATASET[:E1,E2]",
              help="The exp2 variants to learn from: audealize[:eq,reverb], socialfx-comp, safedb[:eq,...].")
@click.option("--words", default=None, metavar="W1,W2", help="Only these words (default: every word with data).")
@click.option("--hold-out-words", default=None, metavar="W1,W2",
              help="Words never trained on (evaluated as exp2-held-out-word).")
@click.option("--hold-out-sources", default=None, metavar="S1,S2",
              help="Sources (guitar, piano, drums, mixture, a --source stem) never trained on (exp2-held-out-source).")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Epochs (default: adapter 200, lora 2).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seeds the initialisation and the batch order (same seed and data: the same bits on the CPU).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda", "mps"]), default="auto", show_default=True,
              help="Where training runs.")
@click.option("--prompt", "template", default="a {} sound", show_default=True,
              help="Prompt template of the target texts.")
@click.option("--renderer", default=None, help="Renderer version of the variants (default: the latest each dataset used).")
@click.option("--text-head", is_flag=True, help="adapter: also train a residual head on the text vectors.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Learning rate (default: adapter 1e-3, lora 5e-4).")
@click.option("--batch-size", "batch_trajectories", type=click.IntRange(min=1), default=None,
              help="Trajectories per step (default: adapter 32, lora 4).")
@click.option("--anchor-weight", type=click.FloatRange(min=0), default=None,
              help="Weight of the term that keeps the tuned vectors near the base ones (default 0.1).")
@click.option("--format", "fmt", type=FORMATS_LIST, default="table", show_default=True, help="Output format.")
@click.pass_obj
def finetune(obj: Ctx, model: str, method: str, train: str, words: str | None, hold_out_words: str | None,
             hold_out_sources: str | None, epochs: int | None, seed: int, device: str, template: str,
             renderer: str | None, text_head: bool, lr: float | None, batch_trajectories: int | None,
             anchor_weight: float | None, fmt: str) -> None:
    """Fine-tune a space on the exp2 variants: a new space, e.g. laion-clap+ft-1a2b3c4d.

    Trains on the variants of the words and sources not held out (InfoNCE over
    the batch's words plus a ranking term that similarity to the word rises with
    strength), then stores audio and text vectors for everything the base space
    holds. Every --model accepts the new label; `timbredb query finetune --space
    LABEL` compares it with its base.
    """
    from timbredb.finetune import FinetuneOptions, run_finetune

    options = FinetuneOptions(
        model=model, method=method, train=train, words=words, hold_out_words=hold_out_words,
        hold_out_sources=hold_out_sources, epochs=epochs, seed=seed, device=device, template=template,
        renderer=renderer, text_head=text_head, hyper={"lr": lr, "batch_trajectories": batch_trajectories,
                                                                  "anchor_weight": anchor_weight},
    )
    bar: Any = None

    def progress(epoch: int, total: int, terms: dict[str, float]) -> None:
        nonlocal bar
        if bar is None:
            from tqdm import tqdm

            bar = tqdm(total=total, desc="finetune", unit="epoch", file=sys.stderr, leave=False, disable=None)
        bar.set_postfix(loss=f"{terms['loss']:.4f}")
        bar.update(1)

    try:
        result = run_finetune(obj.db, options, data_dir=obj.data_dir, warn=_warn, progress=progress)
    finally:
        if bar is not None:
            bar.close()
    if fmt == "json":
        _emit(result, "json")
    else:
        tr, ho = result["train"], result["held_out"]
        click.echo(f"space: {result['space']} (base {result['base']}, {result['method']}, seed {result['seed']}, "
                   f"{result['epochs']} epochs, {result['seconds']:.1f} s)")
        click.echo(f"train: {tr['n_trajectories']} trajectories ({tr['dataset']}: {', '.join(tr['effects'])}); "
                   f"words {', '.join(tr['words'])}; sources {', '.join(tr['sources'])}")
        click.echo(f"held out: words {', '.join(ho['words']) or '-'}; sources {', '.join(ho['sources']) or '-'} "
                   f"({ho['n_trajectories']['word']} word, {ho['n_trajectories']['source']} source trajectories)")
        click.echo(f"compare: timbredb query finetune --space {result['space']}")
# ---- end issue 15


# ---------------------------------------------------------------- Parquet interchange (export, import embeddings)
@export.command("parquet")
@click.argument("out_dir", metavar="DIR", type=click.Path(file_okay=False, path_type=Path))
@click.option("--model", default=None, help="Only the spaces this model name selects (default: every space).")
@click.option("--what", default="clips,embeddings,text,results", show_default=True, metavar="PARTS",
              help="Comma list of parts: clips (clips, files), embeddings (audio vectors, pairwise spaces' pair "
                   "distances), text (prompts, vocabularies, text vectors), results (the experiments' tables).")
@click.option("--rows-per-file", type=click.IntRange(min=1), default=100_000, show_default=True,
              help="Rows per Parquet file.")
@click.option("--format", "fmt", type=FORMATS_LIST, default="table", show_default=True, help="Summary format.")
@click.pass_obj
def export_parquet(obj: Ctx, out_dir: Path, model: str | None, what: str, rows_per_file: int, fmt: str) -> None:
    """Write the store's content as Parquet into a new folder DIR (one dataset per table; reads the store read-only)."""
    from timbredb.interchange import export_store

    manifest = export_store(obj.db, out_dir, model=model, what=what, rows_per_file=rows_per_file, progress=_progress)
    if fmt == "json":
        _emit(manifest, "json")
    else:
        counts = ", ".join(f"{name}: {t['rows']}" for name, t in manifest["tables"].items())
        click.echo(f"{out_dir}: {counts or 'nothing to export'}")


@import_.command("embeddings")
@click.argument("folder", metavar="DIR", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--format", "fmt", type=FORMATS_LIST, default="table", show_default=True, help="Summary format.")
@click.pass_obj
def import_embeddings_command(obj: Ctx, folder: Path, fmt: str) -> None:
    """Merge a Parquet folder (`timbredb export`) into the store: rows already stored are skipped, conflicts are errors."""
    from timbredb.interchange import import_embeddings

    summary = import_embeddings(obj.db, folder, progress=_progress, warn=_warn)
    if fmt == "json":
        _emit(summary.to_dict(), "json")
    else:
        added = sum(summary.added.values())
        skipped = sum(summary.skipped.values())
        click.echo(f"files merged: {summary.files_merged} of {summary.files}, rows added: {added}, "
                   f"rows already stored: {skipped}, files refused: {len(summary.errors)}")
    if summary.errors:
        raise TimbreDBError(f"{len(summary.errors)} file(s) of {folder} not merged (see above)")


# ---------------------------------------------------------------- report
@cli.command()
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("timbredb-report"),
              show_default=True, help="Folder for report.html and its figures.")
@click.option("--words", default="haunting,deep", show_default=True,
              help="Experiment 2 words whose trajectories are plotted (comma-separated).")
@click.option("--effect", type=click.Choice(["reverb", "eq", "socialfx-compression", "safe-eq", "safe-compression",
                                            "safe-distortion", "all"]),
              default="reverb", show_default=True, help="Effect of those trajectories ('all' = every effect).")
@click.pass_obj
def report(obj: Ctx, out_dir: Path, words: str, effect: str) -> None:
    """Write an HTML report of every experiment the store holds results for."""
    from timbredb.report import build_report
    from timbredb.store import Store

    chosen = tuple(w.strip() for w in words.split(",") if w.strip())
    with Store(obj.db, read_only=True) as store:
        path = build_report(store, out_dir, data_dir=obj.data_dir, words=chosen,
                            effect=None if effect == "all" else effect)
    click.echo(str(path))


# ---------------------------------------------------------------- check
@cli.command()
@click.option("--dry-run", is_flag=True, help="Only report: apply no migration, rebuild no index.")
@click.option("--format", "fmt", type=FORMATS_LIST, default="table", show_default=True, help="Output format.")
@click.pass_obj
def check(obj: Ctx, dry_run: bool, fmt: str) -> None:
    """List applied/pending migrations, verify integrity, rebuild stale FAISS indexes."""
    from timbredb.check import run_check
    from timbredb.errors import IntegrityError

    result, ok = run_check(obj.db, dry_run=dry_run)
    _emit(result, fmt)
    if not ok:
        raise IntegrityError(f"{obj.db}: integrity problems found (see above)")


# ---------------------------------------------------------------- serve
@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (loopback by default; anything else exposes the store).")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="Port to listen on (0: any free port, printed at start).")
@click.option("--max-upload-mb", type=click.FloatRange(min=0, min_open=True), default=50.0, show_default=True,
              help="Largest audio upload accepted, in MiB.")
@click.option("--max-duration-s", type=click.FloatRange(min=0, min_open=True), default=600.0, show_default=True,
              help="Longest audio accepted, in seconds (read from the file header before decoding).")
@click.option("--upload-timeout-s", type=click.FloatRange(min=0, min_open=True), default=30.0, show_default=True,
              help="Seconds a client has to send a request's whole body (slow uploads are cut off with 408).")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="Worker threads for decoding, embedding and search (default: $TIMBREDB_THREADS, else the CPUs).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda", "mps"]), default="auto", show_default=True,
              help="Where neural models run.")
@click.option("--preload", default=None, metavar="M1,M2", help="Load these models at start-up (others load on first use).")
@click.option("--access-log", is_flag=True, help="Log one line per request on stderr.")
@click.pass_obj
def serve(obj: Ctx, host: str, port: int, max_upload_mb: float, max_duration_s: float, upload_timeout_s: float,
          threads: int | None, device: str, preload: str | None, access_log: bool) -> None:
    """Serve the JSON API and the web page for exploring the store (read-only; never writes it).

    Needs the serve extra: pip install 'timbredb[serve]'. The API is described
    at /openapi.json; the page at / describes an uploaded sound.
    """
    from timbredb.parallel import workers
    from timbredb.server import ServeOptions
    from timbredb.server import serve as run_server

    options = ServeOptions(
        db=obj.db, data_dir=obj.data_dir, host=host, port=port, device=device,
        max_upload_bytes=int(max_upload_mb * 1024 * 1024), max_duration_s=max_duration_s,
        upload_timeout_s=upload_timeout_s, threads=threads or workers(),
        preload=tuple(_split_models(preload) or ()), access_log=access_log,
    )
    run_server(options, announce=_warn, warn=_warn)


if __name__ == "__main__":  # pragma: no cover
    cli(prog_name="timbredb")
