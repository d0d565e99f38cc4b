"""What the HTML report (``snakemake --report``) shows beside the figures: each paper table
as a page a reader can read (not only download), the labels that list tables and figures in
the paper's order (1, 2, …, 10, not 1, 10, 11, 2), and the page frame with the data banner
(the run described in prose: :mod:`patchcxr.paper.about`)."""

from __future__ import annotations

import base64
import html
import re

import pandas as pd

#: a registry name's number: table4_biomarker_tests → 4, fig6_confusion_local → 6
_NUMBER = re.compile(r"^(?:table|fig)(\d+)")
_LITERAL = re.compile(r"``(.+?)``")
_STYLE = (
    "body{font-family:sans-serif;margin:1.2em;color:#222}"
    "table{border-collapse:collapse;font-size:0.85em}"
    "th,td{border:1px solid #bbb;padding:0.25em 0.5em;text-align:right}"
    "th{background:#eee}tr:nth-child(even) td{background:#f7f7f7}"
    ".banner{background:#b00020;color:#fff;padding:0.6em 0.8em;font-weight:bold;margin-bottom:1em}"
    "code{background:#f2f2f2;padding:0 0.2em}"
)


def report_labels(name: str, about: str) -> dict[str, str]:
    """The report's labels of a paper table or figure: its number zero-padded (the report
    sorts labels as text) and what it holds."""
    match = _NUMBER.match(name)
    number = f"{int(match.group(1)):02d}" if match else name
    suffix = name.split("_", 1)[1] if "_" in name else ""
    return {"number": number, "name": suffix.replace("_", " "), "holds": about}


def caption_html(caption: str) -> str:
    """A caption's reStructuredText (its ``literals`` only) as HTML."""
    return _LITERAL.sub(r"<code>\1</code>", html.escape(" ".join(caption.split()), quote=False))


def page(title: str, banner: str, body: str) -> str:
    head = f'<p class="banner">{html.escape(banner)}</p>' if banner else ""
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_STYLE}</style></head><body>{head}<h2>{html.escape(title)}</h2>{body}</body></html>\n"
    )


def table_html(title: str, caption: str, *, banner: str, table: pd.DataFrame, tsv_name: str, tsv_text: str) -> str:
    """A paper table as one HTML page: banner, title, caption, the table, and its TSV as a
    download link inside the page (the report embeds the page, not the TSV)."""
    data = base64.b64encode(tsv_text.encode()).decode()
    link = (
        f'<p><a download="{html.escape(tsv_name)}" href="data:text/tab-separated-values;base64,{data}">'
        f"Download {html.escape(tsv_name)}</a> ({len(table)} rows)</p>"
    )
    body = f"<p>{caption_html(caption)}</p>{link}" + table.rename_axis(columns=None).to_html(
        index=False, na_rep="–", border=0
    )
    return page(title, banner, body)
