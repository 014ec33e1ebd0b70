"""The report's section for fine-tuned spaces (`timbredb finetune`, `query finetune`)."""

from __future__ import annotations

import duckdb
import polars as pl

from timbredb.analysis.finetune import run_finetune_eval
from timbredb.errors import TimbreDBError, first_line
from timbredb.report.context import ReportContext
from timbredb.report.html import Section


def section(ctx: ReportContext) -> Section:
    sec = Section("finetune", "Beyond the study — fine-tuned spaces vs their base")
    sec.note(
        "Spaces made by `timbredb finetune` (an adapter on the stored vectors, or LoRA on LAION-CLAP's audio "
        "encoder), compared with their base on the same units: exp2 trajectories of held-out sources, held-out "
        "words and the training data (positive-slope and positive-final-Δ rates, mean Pearson r of Δ vs strength), "
        "exp1 descriptors and instruments, exp3 anchors. diff = tuned − base; p: two-sided paired sign-flip test "
        "(exact for n ≤ 20). Only the held-out rows say whether the space learnt something that transfers."
    )
    if not ctx.store.finetunes():
        sec.status = "no data"
        sec.note("No data: no fine-tuned spaces in the store (`timbredb finetune --model M`).", "nodata")
        return sec
    try:
        df = run_finetune_eval(ctx.store, n_bootstrap=ctx.n_bootstrap, seed=ctx.seed)["finetune"]
    except (TimbreDBError, duckdb.Error) as exc:
        sec.status = "no data"
        sec.note("No data: " + first_line(exc), "nodata")
        return sec
    records = pl.DataFrame(ctx.store.finetunes()).select("label", "base_label", "method", "seed", "train_data_sha256",
                                                        "weights_sha256", "seconds")
    sec.add(ctx.writer.table(records, "finetune_spaces", "Every fine-tuned space: base, method, seed, digests."))
    sec.add(ctx.writer.table(df, "finetune_eval", "Base vs tuned, per evaluation, effect and metric."))
    return sec
