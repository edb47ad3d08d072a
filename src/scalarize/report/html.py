"""The HTML twin of every Markdown report: a title, paragraphs, a table (or more), figures."""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

from scalarize.files import write_text


def html_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table border=1 cellpadding=4 style='border-collapse:collapse'><tr>{head}</tr>{body}</table>"


def write_html(
    path: Path,
    title: str,
    paragraphs: Sequence[str],
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    images: Sequence[Path | None] = (),
    tables: Sequence[tuple[str, Sequence[str], Sequence[Sequence[str]]]] = (),
) -> Path:
    """Writes a self-contained page (figures are referenced by file name, beside it);
    ``tables``: more ``(caption, header, rows)`` after the first table."""
    text = "".join(f"<p>{html.escape(p)}</p>" for p in paragraphs if p)
    figures = "".join(f"<p><img src='{html.escape(p.name)}'></p>" for p in images if p is not None)
    more = "".join(f"<p>{html.escape(caption)}</p>{html_table(h, r)}" for caption, h, r in tables)
    write_text(
        path,
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
        f"<body style='font-family:sans-serif'><h1>{html.escape(title)}</h1>{text}{html_table(header, rows)}{more}"
        f"{figures}</body></html>",
    )
    return path
