"""HTML primitives of the report: sections, the writer of figures and tables, cells, the page."""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from timbredb.formatting import to_csv

# Column-name hints for formatting: rates are fractions shown as percentages.
_RATE_COLUMNS = {"pos_slope_rate", "pos_final_delta_rate", "all_source_consistency"}
#: hex digests (commits, sha256), alone or comma-separated
_HASH = re.compile(r"[0-9a-f]{12,}(, [0-9a-f]{12,})*")


@dataclass
class Section:
    """One section of the page: an anchor, a title, whether it has data, and its HTML parts."""

    anchor: str
    title: str
    status: str = "ok"  # ok | no data
    parts: list[str] = field(default_factory=list)

    def add(self, fragment: str) -> None:
        self.parts.append(fragment)

    def note(self, text: str, kind: str = "note") -> None:
        self.parts.append(f'<p class="{kind}">{html.escape(text)}</p>')

    def failed(self, exc: BaseException, hint: str) -> Section:
        """Mark the section as having no data, saying why and what to run."""
        self.status = "no data"
        self.note(f"No data: {exc}", "nodata")
        self.note(hint)
        return self


class Writer:
    """Saves figures and tables beside report.html and returns the HTML that shows them."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.fig_dir = out_dir / "figures"
        self.table_dir = out_dir / "tables"
        self.fig_dir.mkdir(parents=True, exist_ok=True)
        self.table_dir.mkdir(parents=True, exist_ok=True)
        self.figures: list[Path] = []
        self.tables: list[Path] = []
        self._n_fig = 0
        self._n_tab = 0

    def figure(self, fig: Any, name: str, caption: str) -> str:
        from timbredb.report.figures import save

        path = self.fig_dir / f"{name}.png"
        save(fig, path)
        self.figures.append(path)
        self._n_fig += 1
        rel = path.relative_to(self.out_dir).as_posix()
        return (
            f'<figure id="fig-{html.escape(name)}"><img src="{html.escape(rel)}" alt="{html.escape(caption)}">'
            f"<figcaption><b>Figure {self._n_fig}.</b> {html.escape(caption)}</figcaption></figure>"
        )

    def table(self, df: pl.DataFrame, name: str, caption: str, max_rows: int = 400) -> str:
        path = self.table_dir / f"{name}.csv"
        path.write_text(to_csv(df), encoding="utf-8")  # nested columns as JSON text
        self.tables.append(path)
        self._n_tab += 1
        rel = path.relative_to(self.out_dir).as_posix()
        head = f'<b>Table {self._n_tab}.</b> {html.escape(caption)} <a href="{html.escape(rel)}">CSV</a>'
        if df.height > max_rows:
            head += f" (first {max_rows} of {df.height} rows shown; the CSV has all)"
        body = html_table(df.head(max_rows))
        return f'<div class="table" id="tab-{html.escape(name)}"><p class="caption">{head}</p>{body}</div>'


def _cell(value: Any, column: str) -> str:
    if value is None:
        return '<td class="na">–</td>'
    if isinstance(value, bool):
        return f"<td>{'yes' if value else 'no'}</td>"
    if isinstance(value, float):
        if not np.isfinite(value):
            return '<td class="na num">NaN</td>'
        if column in _RATE_COLUMNS or column.endswith("_rate") and abs(value) <= 1.0:
            return f'<td class="num">{100 * value:.1f}&#8239;%</td>'
        text = f"{value:.3g}" if (value != 0 and abs(value) < 1e-3) or abs(value) >= 1e4 else f"{value:.3f}"
        return f'<td class="num">{text}</td>'
    if isinstance(value, int):
        return f'<td class="num">{value}</td>'
    text = ", ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
    if _HASH.fullmatch(text):
        # commits and sha256 values: monospace, and broken anywhere so a table keeps to the page
        return f'<td class="hash">{html.escape(text)}</td>'
    return f'<td class="long">{html.escape(text)}</td>' if len(text) > 40 else f"<td>{html.escape(text)}</td>"


def html_table(df: pl.DataFrame) -> str:
    # <wbr> lets long snake_case headers wrap, so wide tables fit a page.
    head = "".join(f"<th>{html.escape(c).replace('_', '_<wbr>')}</th>" for c in df.columns)
    body = "".join(
        "<tr>" + "".join(_cell(v, c) for v, c in zip(row, df.columns)) + "</tr>" for row in df.iter_rows()
    )
    if not df.height:
        body = f'<tr><td colspan="{max(len(df.columns), 1)}" class="na">no rows</td></tr>'
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def kv_table(pairs: Iterable[tuple[str, str]]) -> str:
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in pairs)
    return f'<table class="kv"><tbody>{rows}</tbody></table>'


_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0 auto;max-width:1100px;padding:1.5em;
color:#1a1a1a;line-height:1.45}
h1{margin-bottom:.2em}h2{border-bottom:2px solid #0072B2;padding-bottom:.2em;margin-top:2em}
nav ul{columns:2;list-style:none;padding-left:0}nav li{margin:.15em 0}
.status{font-size:.8em;padding:.1em .5em;border-radius:.6em;margin-left:.5em;vertical-align:middle}
.status.ok{background:#d8eefa;color:#004b75}.status.nodata{background:#eee;color:#555}
p.nodata{background:#f4f4f4;border-left:4px solid #999;padding:.5em .8em}
p.note{color:#333}
figure{margin:1.2em 0;text-align:center}figure img{max-width:100%;height:auto;border:1px solid #ddd}
figcaption{font-size:.9em;text-align:left;margin-top:.3em}
div.table{overflow-x:auto;margin:1em 0}p.caption{font-size:.9em;margin:.2em 0}
table{border-collapse:collapse;font-size:.82em;max-width:100%}th,td{border:1px solid #ccc;padding:.2em .45em}
td{overflow-wrap:break-word}td.long{overflow-wrap:anywhere;min-width:10em;font-size:.92em}
td.hash{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.85em;word-break:break-all;min-width:8em}
thead th{background:#f0f4f8;position:sticky;top:0}td.num{text-align:right;font-variant-numeric:tabular-nums}
td.na{color:#999;text-align:center}table.kv th{text-align:left;background:#f7f7f7}
pre{background:#f7f7f7;padding:.6em;overflow-x:auto;font-size:.8em}
@media print{body{max-width:none;padding:0}h2{page-break-before:always}figure,div.table{page-break-inside:avoid}
thead th{position:static}div.table{overflow-x:visible}table{font-size:.7em}}
"""


def page(sections: Sequence[Section], title: str) -> str:
    """The whole report page: title, table of contents with each section's status, the sections."""
    nav = "".join(
        f'<li><a href="#{s.anchor}">{html.escape(s.title)}</a>'
        f'<span class="status {s.status.replace(" ", "")}">{html.escape(s.status)}</span></li>'
        for s in sections
    )
    body = "".join(
        f'<section id="{s.anchor}" data-status="{html.escape(s.status)}"><h2>{html.escape(s.title)}'
        f'<span class="status {s.status.replace(" ", "")}">{html.escape(s.status)}</span></h2>'
        f'{"".join(s.parts)}</section>'
        for s in sections
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>"
        "<p>Deng, Pardo &amp; Pappas, “Do Joint Language-Audio Embeddings Encode Perceptual Timbre Semantics?” "
        "(arXiv 2510.14249), regenerated from a timbredb store, with the published numbers beside the local ones.</p>"
        f"<nav><ul>{nav}</ul></nav>{body}</body></html>"
    )
