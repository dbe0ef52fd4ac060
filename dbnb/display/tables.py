"""Pure text and HTML tables behind every ``__repr__`` / ``_repr_html_`` in dbnb.

No I/O, no IPython import: a report hands its already-fetched fields here. The one way to
render a report is :class:`Table` (rows under a short caption) or :class:`Record` (one
snapshot as ``name  value`` lines), each with ``.text()`` for reprs and the CLI and ``.html()``
for Jupyter:

* text is left-aligned and numbers right-aligned (notebook CSS right-aligns every cell);
* the caption is one short line above the table, long detail goes in a ``note`` below;
* an empty result is one line of text, never a header-only table;
* column labels read as words (``checked_in`` -> ``checked in``);
* :class:`Status` colours a value where it carries meaning (health, drift).

The value types in :mod:`dbnb.display.values` (sizes, durations, counts) render themselves
and align as numbers.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from dbnb.display.values import Status, is_number

__all__ = [
    "Record",
    "Table",
    "cell_text",
    "html_record",
    "html_table",
    "label",
    "note_html",
    "one_line_html",
    "text_record",
    "text_table",
]

# Inline styles rather than a <style> block: notebook front ends strip <style> from outputs
# they do not trust, and an inline style also wins over their own cell alignment rules.
_LEFT = "text-align:left"
_RIGHT = "text-align:right;font-variant-numeric:tabular-nums"
_CAPTION = "font-weight:600;margin:.5em 0 .35em 0;text-align:left"
_NOTE = "margin:.35em 0 0 0;font-size:.9em;opacity:.75;text-align:left"
_TABLE = "border-collapse:collapse;margin:0"


def note_html(text: str) -> str:
    """A note's text as HTML: escaped, with ```code``` spans set in the code font.

    Notes name commands (```%db migrate```); in plain text the backticks mark them, in a
    notebook they would otherwise show as stray backticks.
    """
    parts = html.escape(text).split("`")
    if len(parts) % 2 == 0:  # an unpaired backtick: leave the text as it is
        return "`".join(parts)
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def label(name: str) -> str:
    """Turn a field name into a column label: ``checked_in`` -> ``checked in``."""
    return name.replace("_", " ").strip()


def cell_text(value: Any) -> str:
    """Render one value as text: ``None`` empty, booleans ``yes``/``no``, floats to 2 places."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if type(value) is float:  # subclasses (Duration, Percent) render themselves
        return f"{value:.2f}"
    if isinstance(value, Decimal):
        return f"{value:f}"
    return str(value)


def _cell_html(value: Any) -> str:
    if isinstance(value, Status):
        return value.html()
    return html.escape(cell_text(value))


def _numeric_columns(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[bool]:
    """A column is numeric when every value in it that is not ``None`` is a number."""
    numeric = []
    for i in range(len(columns)):
        values = [row[i] for row in rows if row[i] is not None]
        numeric.append(bool(values) and all(is_number(v) for v in values))
    return numeric


def _caption_html(caption: str, ok: bool | None) -> str:
    badge = Status(ok, "").badge_html() + " " if ok is not None else ""
    return f"<div class='dbnb-caption' style='{_CAPTION}'>{badge}{html.escape(caption)}</div>"


def one_line_html(text: str, *, ok: bool | None = None) -> str:
    """Render a one-line result (an empty table, a status) as a short HTML paragraph."""
    return f"<div class='dbnb-report'>{_caption_html(text, ok)}</div>"


@dataclass(frozen=True)
class Table:
    """Rows under a one-line caption, with an optional note below; one line when empty.

    Args:
        columns: field names; shown through :func:`label`.
        rows: the values, one sequence per row (numbers and :mod:`~dbnb.display.values`
            types align right, everything else left).
        caption: one short line above the table.
        empty: the one line shown instead of the table when there are no rows (default: the
            caption).
        note: a longer remark shown below the table.
        ok: colour the caption with a status badge (green when true, red when false).
        names: show the column names as they are (model attributes, SQL columns) instead of
            as labels.
    """

    columns: Sequence[str]
    rows: Sequence[Sequence[Any]]
    caption: str = ""
    empty: str = ""
    note: str = ""
    ok: bool | None = None
    names: bool = False
    _numeric: list[bool] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "rows", [tuple(r) for r in self.rows])
        object.__setattr__(self, "_numeric", _numeric_columns(self.columns, self.rows))

    def _labels(self) -> list[str]:
        return [c if self.names else label(c) for c in self.columns]

    @property
    def empty_line(self) -> str:
        """What an empty table shows: ``empty``, else the caption, else ``no rows``."""
        return self.empty or self.caption or "no rows"

    def text(self) -> str:
        """Plain text: the caption, the aligned rows, the note."""
        if not self.rows:
            return self.empty_line
        lines = [self.caption] if self.caption else []
        lines.append(_text_grid(self._labels(), self.rows, self._numeric))
        if self.note:
            lines.append(self.note)
        return "\n".join(lines)

    def html(self) -> str:
        """HTML for Jupyter: a caption line, a table with aligned cells, a note line."""
        if not self.rows:
            return one_line_html(self.empty_line, ok=self.ok)
        aligns = [_RIGHT if n else _LEFT for n in self._numeric]
        head = "".join(
            f"<th style='{a}'>{html.escape(c)}</th>"
            for c, a in zip(self._labels(), aligns, strict=True)
        )
        body = "".join(
            "<tr>"
            + "".join(
                f"<td style='{a}'>{_cell_html(v)}</td>" for v, a in zip(row, aligns, strict=True)
            )
            + "</tr>"
            for row in self.rows
        )
        caption = _caption_html(self.caption, self.ok) if self.caption else ""
        note = f"<div class='dbnb-note' style='{_NOTE}'>{note_html(self.note)}</div>"
        return (
            f"<div class='dbnb-report'>{caption}<table class='dbnb-table' style='{_TABLE}'>"
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
            f"{note if self.note else ''}</div>"
        )


@dataclass(frozen=True)
class Record:
    """One snapshot as ``name  value`` lines under a title (a two-column table in HTML).

    Args:
        title: one short line above the fields.
        fields: name -> value; names shown through :func:`label`.
        ok: colour the title with a status badge.
        note: a longer remark shown below.
        names: show the field names as they are instead of as labels.
    """

    title: str
    fields: Mapping[str, Any]
    ok: bool | None = None
    note: str = ""
    names: bool = False

    def _shown(self) -> list[tuple[str, Any]]:
        return [(k if self.names else label(k), v) for k, v in self.fields.items()]

    def text(self) -> str:
        """Plain text: the title, then one aligned ``name  value`` line per field."""
        shown = self._shown()
        width = max((len(k) for k, _ in shown), default=0)
        lines = [self.title] + [f"  {k.ljust(width)}  {cell_text(v)}" for k, v in shown]
        if self.note:
            lines.append(self.note)
        return "\n".join(lines)

    def html(self) -> str:
        """HTML for Jupyter: a title line and a name/value table, every cell left-aligned."""
        rows = "".join(
            f"<tr><th style='{_LEFT};padding-right:1.5em'>{html.escape(k)}</th>"
            f"<td style='{_LEFT}'>{_cell_html(v)}</td></tr>"
            for k, v in self._shown()
        )
        note = f"<div class='dbnb-note' style='{_NOTE}'>{note_html(self.note)}</div>"
        return (
            f"<div class='dbnb-report'>{_caption_html(self.title, self.ok)}"
            f"<table class='dbnb-table' style='{_TABLE}'><tbody>{rows}</tbody></table>"
            f"{note if self.note else ''}</div>"
        )


def _text_grid(columns: Sequence[str], rows: Sequence[Sequence[Any]], numeric: list[bool]) -> str:
    cells = [[cell_text(v) for v in row] for row in rows]
    widths = [len(c) for c in columns]
    for row in cells:
        widths = [max(w, len(v)) for w, v in zip(widths, row, strict=True)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            v.rjust(w) if n else v.ljust(w)
            for v, w, n in zip(values, widths, numeric, strict=True)
        ).rstrip()

    return "\n".join([line(columns), "  ".join("-" * w for w in widths), *map(line, cells)])


# -- the function forms, for reports that need only one call ---------------------------------------


def html_record(title: str, fields: Mapping[str, Any], *, ok: bool | None = None) -> str:
    """Render one snapshot as a titled two-column HTML table (see :class:`Record`)."""
    return Record(title, fields, ok).html()


def text_record(title: str, fields: Mapping[str, Any]) -> str:
    """Render one snapshot as aligned ``name  value`` lines under a title."""
    return Record(title, fields).text()


def html_table(
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    caption: str | None = None,
    empty: str = "",
    note: str = "",
    ok: bool | None = None,
) -> str:
    """Render rows as an HTML table (see :class:`Table`); one line when there are none."""
    return Table(columns, list(rows), caption or "", empty, note, ok).html()


def text_table(
    columns: Sequence[str], rows: Iterable[Sequence[Any]], *, empty: str = ""
) -> str:
    """Render rows as a plain, column-aligned text table; ``empty`` (or a header) when none."""
    rows = list(rows)
    if not rows and not empty:
        return _text_grid([label(c) for c in columns], [], [False] * len(columns))
    return Table(columns, rows, empty=empty).text()
