"""Pure text and HTML table helpers behind every ``__repr__`` / ``_repr_html_`` in dbnb.

No I/O, no IPython import: a report object hands its already-fetched fields here.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = ["html_record", "html_table", "text_record", "text_table"]


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def html_record(title: str, fields: Mapping[str, Any], *, ok: bool | None = None) -> str:
    """Render one snapshot as a two-column HTML table with a caption."""
    badge = ""
    if ok is not None:
        colour = "#1a7f37" if ok else "#cf222e"
        badge = f' <span style="color:{colour}">{"●" if ok else "✖"}</span>'
    rows = "".join(
        f"<tr><th style='text-align:left'>{html.escape(k)}</th>"
        f"<td style='text-align:left'>{html.escape(_cell(v))}</td></tr>"
        for k, v in fields.items()
    )
    return f"<table><caption>{html.escape(title)}{badge}</caption>{rows}</table>"


def text_record(title: str, fields: Mapping[str, Any]) -> str:
    """Render one snapshot as aligned ``name: value`` lines under a title."""
    width = max((len(k) for k in fields), default=0)
    lines = [title] + [f"  {k.ljust(width)}  {_cell(v)}" for k, v in fields.items()]
    return "\n".join(lines)


def html_table(
    columns: Sequence[str], rows: Iterable[Sequence[Any]], *, caption: str | None = None
) -> str:
    """Render rows as an HTML table (values escaped)."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row) + "</tr>"
        for row in rows
    )
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def text_table(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """Render rows as a plain, column-aligned text table."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [len(c) for c in columns]
    for row in cells:
        widths = [max(w, len(v)) for w, v in zip(widths, row, strict=True)]
    out = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    out.append("  ".join("-" * w for w in widths))
    out += [
        "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    return "\n".join(out)
