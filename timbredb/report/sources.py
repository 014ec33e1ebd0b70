"""The report's last section: where each published number comes from."""

from __future__ import annotations

import polars as pl

from timbredb.report.context import ReportContext
from timbredb.report.html import Section


def section(ctx: ReportContext) -> Section:
    sec = Section("published", "Published numbers and their sources")
    about = ctx.published.get("about", "")
    if about:
        sec.note(about)
    rows = [
        {"source": key, "what": s.get("what"), "url": s.get("url"), "path": s.get("path"), "commit": s.get("commit")}
        for key, s in ctx.published.get("sources", {}).items()
    ]
    sec.add(ctx.writer.table(pl.DataFrame(rows, infer_schema_length=None), "published_sources",
                             "Where each published number comes from."))
    return sec
