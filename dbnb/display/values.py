"""Values that render themselves for people: sizes, durations, counts, plurals and statuses.

``Size(8192)`` prints ``8 kB`` and ``Duration(0.0046)`` prints ``4.6 ms``, yet both stay numbers
(they subclass ``int`` / ``float``), so tables align them right and code can still compare them.
"""

from __future__ import annotations

import html
from decimal import Decimal
from typing import Any

__all__ = [
    "Count",
    "Duration",
    "Percent",
    "Size",
    "Status",
    "human_duration",
    "human_size",
    "is_number",
    "plural",
]

_GREEN = "#1a7f37"
_RED = "#cf222e"
_UNITS = ("kB", "MB", "GB", "TB", "PB")


def plural(count: int, noun: str, many: str | None = None) -> str:
    """``1 table``, ``2 tables``, ``1,000 rows``; ``many`` for irregular plurals."""
    word = noun if count == 1 else (many or noun + "s")
    return f"{count:,} {word}"


def human_size(size: int) -> str:
    """Bytes for people, in PostgreSQL's units (1 kB = 1024 bytes): ``8 kB``, ``7.3 MB``."""
    if abs(size) < 1024:
        return plural(size, "byte")
    value = float(size)
    for unit in _UNITS:
        value /= 1024
        if abs(value) < 1024 or unit == _UNITS[-1]:
            shown = f"{value:.1f}".removesuffix(".0") if abs(value) < 10 else f"{value:.0f}"
            return f"{shown} {unit}"
    raise AssertionError("unreachable")  # pragma: no cover


def human_duration(seconds: float) -> str:
    """Seconds for people: ``850 µs``, ``4.6 ms``, ``1.2 s``, ``3 min 05 s``, ``2 h 03 min``."""
    if seconds < 0.001:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        ms = seconds * 1000
        return f"{ms:.1f} ms" if ms < 10 else f"{ms:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class Size(int):
    """A number of bytes that prints as ``8 kB``."""

    def __str__(self) -> str:
        return human_size(int(self))


class Duration(float):
    """A number of seconds that prints as ``4.6 ms``."""

    def __str__(self) -> str:
        return human_duration(float(self))


class Count(int):
    """A count that prints with thousands separators: ``200,000``."""

    def __str__(self) -> str:
        return f"{int(self):,}"


class Percent(float):
    """A percentage that prints as ``66.7 %``."""

    def __str__(self) -> str:
        return f"{float(self):.1f} %"


def is_number(value: Any) -> bool:
    """True for values a table aligns right: numbers (not booleans) and the types above."""
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


class Status:
    """A yes/no that matters (healthy, up to date): coloured green or red in HTML."""

    def __init__(self, ok: bool | None, text: str) -> None:
        self.ok = ok
        self.text = text

    def badge_html(self) -> str:
        """A small coloured mark: a green dot when ok, a red cross when not."""
        if self.ok is None:
            return ""
        colour, mark = (_GREEN, "●") if self.ok else (_RED, "✖")
        return f"<span style='color:{colour}'>{mark}</span>"

    def html(self) -> str:
        """The text in the status colour, after its badge."""
        if self.ok is None:
            return html.escape(self.text)
        colour = _GREEN if self.ok else _RED
        return f"{self.badge_html()} <span style='color:{colour}'>{html.escape(self.text)}</span>"

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Status({self.ok!r}, {self.text!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Status) and (self.ok, self.text) == (other.ok, other.text)

    def __hash__(self) -> int:
        return hash((self.ok, self.text))
