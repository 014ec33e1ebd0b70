"""The command line: parse, make one library call, format the result.

Errors from the library (TimbreDBError) become one line on stderr and the exit
status the error names (see timbredb.errors). `--format json` prints exactly one
JSON document on stdout; progress and warnings go to stderr.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from timbredb import __version__
from timbredb.config import resolve_data_dir, resolve_db_path
from timbredb.errors import PartialFailure, TimbreDBError, first_line

FORMATS_QUERY = click.Choice(["table", "json", "csv"])
FORMATS_LIST = click.Choice(["table", "json"])


@dataclass
class Ctx:
    db: Path
    data_dir: Path


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
        except Exception as exc:
            # DuckDB failures after the store is open (disk full, a second writer): one line, not a traceback
            if type(exc).__module__.split(".")[0] not in ("duckdb", "_duckdb"):
                raise
            click.echo(f"timbredb: error: database error: {first_line(exc)}", err=True)
            ctx.exit(1)


@click.group(cls=TimbreGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="timbredb")
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
    ctx.obj = Ctx(db=resolve_db_path(db), data_dir=resolve_data_dir(data_dir))


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


@models.command("fetch")
@click.argument("names", nargs=-1, required=True)
@click.option("--weights", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Use this local checkpoint file instead of downloading.")
@click.pass_obj
def models_fetch(obj: Ctx, names: tuple[str, ...], weights: Path | None) -> None:
    """Download model weights into the Hugging Face cache (needs the hub to be reachable)."""
    from timbredb.models.fetch import fetch

    for name in names:
        path = fetch(name, weights=weights)
        click.echo(f"{name}: {path}")


@models.command("vocabulary")
@click.argument("name")
@click.pass_obj
def models_vocabulary(obj: Ctx, name: str) -> None:
    """Print the words a closed-vocabulary model (socialfx-eq) can embed, one per line."""
    from timbredb.models.catalog import vocabulary

    click.echo("\n".join(vocabulary(name, obj.data_dir)))


# ---------------------------------------------------------------- ingest
def _split_models(value: str | None) -> list[str] | None:
    if value is None:
        return None
    names = [v.strip() for v in value.split(",") if v.strip()]
    if not names:
        raise click.BadParameter("give at least one model id", param_hint="--models")
    return names


@cli.command()
@click.argument("targets", nargs=-1)
@click.option("--models", "model_names", default=None, metavar="M1,M2",
              help="Models to embed with (default: every model usable here; see `models list`).")
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True,
              help="Clips per transaction and windows per forward pass.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda", "mps"]), default="auto", show_default=True,
              help="Where neural models run.")
@click.option("--dtype", type=click.Choice(["float32", "float16", "bfloat16"]), default="float32", show_default=True,
              help="Model precision (half precision only on a GPU).")
@click.option("--weights", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Local checkpoint file for the (single) model in --models.")
@click.option("--prompt", "prompts", multiple=True, metavar="TEMPLATE",
              help="Prompt template with '{}' for the word (repeatable); each is a separate set of text embeddings.")
@click.option("--words", default=None, metavar="W1,W2|FILE",
              help="audealize: descriptor words to render (default: the study's 20 EQ and 20 reverb words).")
@click.option("--strengths", default=None, metavar="S1,S2",
              help="audealize: effect strengths (default 0.2,0.4,0.6,0.8,1.0).")
@click.option("--source", "sources", multiple=True, type=click.Path(exists=True, path_type=Path),
              help="audealize: extra source audio to render effects on (repeatable).")
@click.option("--length-s", type=click.FloatRange(min=0, min_open=True), default=None,
              help="audealize: trim rendered variants to this many seconds (default: keep the whole tail).")
@click.option("--strict", is_flag=True, help="Exit with status 4 if any input failed.")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="Where audio files are decoded and embedded: in this process, or on Ray (pip install 'timbredb[ray]').")
@click.option("--ray-address", default=None, metavar="ADDR",
              help="--engine ray: join this running Ray cluster (default: start a local one).")
@click.option("--ray-actors", type=click.IntRange(min=1), default=None,
              help="--engine ray: embedding actors (default: one per GPU of the cluster, else one).")
@click.option("--format", "fmt", type=FORMATS_LIST, default="table", show_default=True, help="Summary format.")
@click.pass_obj
def ingest(obj: Ctx, targets: tuple[str, ...], model_names: str | None, batch_size: int, device: str, dtype: str,
           weights: Path | None, prompts: tuple[str, ...], words: str | None, strengths: str | None,
           sources: tuple[Path, ...], length_s: float | None, strict: bool, engine: str, ray_address: str | None,
           ray_actors: int | None, fmt: str) -> None:
    """Store audio and datasets and compute every missing embedding.

    TARGETS are dataset names (ccmusic, audealize, timbremetrics) or audio
    files/folders; none means every dataset. Re-running computes only what is
    missing; a killed run resumes without duplicates.
    """
    from timbredb.ingest import IngestOptions, run_ingest

    options = IngestOptions(
        models=_split_models(model_names), batch_size=batch_size, device=device, dtype=dtype, weights=weights,
        prompts=list(prompts), words=words, strengths=strengths, sources=list(sources), length_s=length_s,
        engine=engine, ray_address=ray_address, ray_actors=ray_actors,
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
    def callback(obj: Ctx, fmt: str, **options: Any) -> None:
        from timbredb.analysis.registry import run
        from timbredb.store import Store

        with Store(obj.db, read_only=True) as store:
            result = run(spec.name, store, **options)
        click.echo(render_result(result, fmt))

    command: Any = click.pass_obj(callback)
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
@click.option("--model", default=None, help="Text-capable model (default: the first usable, neural before baselines).")
@click.option("-k", "k", type=click.IntRange(min=1), default=5, show_default=True, help="Descriptors per file.")
@click.option("--vocabulary", default="study", show_default=True, metavar="NAME|FILE",
              help="ccmusic, audealize-eq, audealize-reverb, study, socialfx-eq, a stored vocabulary, or a word file.")
@click.option("--prompt", "template", default="{}", show_default=True, help="Prompt template for the words.")
@click.option("--clips", "n_clips", type=click.IntRange(min=0), default=0, show_default=True,
              help="Also list this many nearest stored clips.")
@click.option("--save", is_flag=True, help="Store the vocabulary and its text vectors (otherwise nothing is written).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda", "mps"]), default="auto", show_default=True,
              help="Where neural models run.")
@click.option("--format", "fmt", type=FORMATS_LIST, default="table", show_default=True, help="Output format.")
@click.pass_obj
def describe(obj: Ctx, files: tuple[Path, ...], model: str | None, k: int, vocabulary: str, template: str,
             n_clips: int, save: bool, device: str, fmt: str) -> None:
    """Nearest descriptors for audio files (they need not be ingested; nothing is written without --save)."""
    from timbredb.describe import default_text_model
    from timbredb.describe import describe as run_describe
    from timbredb.models import load
    from timbredb.store import Store
    from timbredb.vocabularies import check_template, resolve

    check_template(template)
    name = model or default_text_model(obj.data_dir)
    m = load(name, device=device, data_dir=obj.data_dir)
    if save:
        store: Store | None = Store(obj.db)
    else:
        store = Store(obj.db, read_only=True) if obj.db.exists() else None
    try:
        vocab_name, words = resolve(vocabulary, obj.data_dir, store.vocabularies() if store else {})
        results, errors = run_describe(store, list(map(str, files)), m, words, vocab_name, k=k, template=template,
                                       n_clips=n_clips, save=save, warn=_warn)
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
            rows = [{"rank": i + 1, "descriptor": d["descriptor"], "score": d["score"]} for i, d in enumerate(r.descriptors)]
            click.echo(to_table(pl.DataFrame(rows), title=f"{r.file} ({r.model})"))
            if r.clips:
                click.echo(to_table(pl.DataFrame(r.clips), title="similar stored clips"))
    if errors:
        sys.exit(1)


# ---------------------------------------------------------------- sql
@cli.command()
@click.argument("statement")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json", "parquet"]), default="table", show_default=True,
              help="Output format (parquet needs --output or a non-terminal stdout).")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Write here instead of stdout.")
@click.pass_obj
def sql(obj: Ctx, statement: str, fmt: str, output: Path | None) -> None:
    """Run one read-only SQL statement on the store (no writes, no file access)."""
    from timbredb.formatting import render
    from timbredb.sql import run_readonly

    df = run_readonly(obj.db, statement)
    if fmt == "parquet":
        if output is None and sys.stdout.isatty():
            raise TimbreDBError("--format parquet writes binary; give --output FILE or redirect stdout")
        df.write_parquet(output if output is not None else sys.stdout.buffer)
        return
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
        summary = import_results(store, file, model_name)
    if fmt == "json":
        _emit(summary, "json")
    else:
        click.echo(", ".join(f"{k}: {v}" for k, v in summary.items()))


# ---------------------------------------------------------------- Parquet interchange (export, import embeddings)
@cli.command("export")
@click.argument("out_dir", metavar="DIR", type=click.Path(file_okay=False, path_type=Path))
@click.option("--model", default=None, help="Only the spaces this model name selects (default: every space).")
@click.option("--what", default="clips,embeddings,text,results", show_default=True, metavar="PARTS",
              help="Comma list of parts: clips (clips, files), embeddings (audio vectors), text (prompts, "
                   "vocabularies, text vectors), results (the experiments' tables).")
@click.option("--rows-per-file", type=click.IntRange(min=1), default=100_000, show_default=True,
              help="Rows per Parquet file.")
@click.option("--format", "fmt", type=FORMATS_LIST, default="table", show_default=True, help="Summary format.")
@click.pass_obj
def export(obj: Ctx, out_dir: Path, model: str | None, what: str, rows_per_file: int, fmt: str) -> None:
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
@click.option("--effect", type=click.Choice(["reverb", "eq", "all"]), default="reverb", show_default=True,
              help="Effect of those trajectories ('all' = every effect).")
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


if __name__ == "__main__":  # pragma: no cover
    cli(prog_name="timbredb")
