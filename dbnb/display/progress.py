"""A progress bar for long loads and chunked reads, shown only when someone is watching.

In a notebook (JupyterLab, VS Code, ``jupyter nbconvert``) the bar is plain HTML that one
output updates in place (``display_id``): it needs no JavaScript and no widget library, so it
works in every front end, and a saved notebook or a static docs page keeps its final state
(done, how many rows, how long) instead of an empty widget box. In a terminal it is a tqdm bar
on stderr. It shows the total and a percentage when the total is known (a load: the frame's
rows; a read: the planner's estimate, marked as one), and always the elapsed time and rate.

It appears when progress is asked for (``progress=True``), or by default when a person is
watching (a Jupyter kernel, or stderr on a terminal) and the work passes :data:`THRESHOLD`
rows. ``progress=False`` turns one call's bar off; :func:`set_progress` (or the environment
variable ``DBNB_PROGRESS=0``) turns every bar off. Batch jobs and tests see nothing.
"""

from __future__ import annotations

import html
import os
import sys
import time
import warnings
from typing import Any

from dbnb.display.jupyter import in_notebook
from dbnb.display.values import human_duration

__all__ = ["THRESHOLD", "Progress", "interactive", "progress_enabled", "set_progress"]

THRESHOLD = 100_000
_REFRESH = 0.2  # seconds between two updates of the notebook output
_OFF = {"0", "false", "no", "off"}
_switch: bool | None = None


def set_progress(enabled: bool | None) -> None:
    """Turn every progress bar off (``False``), or back to the default (``None`` or ``True``).

    A call's own ``progress=True`` still shows its bar; the default (``progress=None``) follows
    this switch, then ``DBNB_PROGRESS``, then whether a person is watching.

    Example::

        dbnb.set_progress(False)   # a notebook that runs as a scheduled job
    """
    global _switch
    _switch = enabled


def progress_enabled() -> bool:
    """Say whether default progress bars may show (:func:`set_progress`, ``DBNB_PROGRESS``)."""
    if _switch is not None:
        return _switch
    return os.environ.get("DBNB_PROGRESS", "").strip().lower() not in _OFF


def interactive() -> bool:
    """Say whether a person is likely watching: a Jupyter kernel, or stderr on a terminal."""
    if in_notebook():
        return True
    stream = sys.stderr
    return bool(stream is not None and stream.isatty())


def _rate(rows: float, seconds: float, unit: str) -> str:
    per_second = rows / seconds if seconds > 0 else 0.0
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if per_second >= scale:
            return f"{per_second / scale:.1f} {suffix} {unit}/s"
    return f"{per_second:.0f} {unit}/s"


class _HtmlBar:
    """An HTML bar in one notebook output, updated in place through its display id."""

    def __init__(self, progress: Progress) -> None:
        from IPython.display import display

        self.progress = progress
        self.shown_at = 0.0
        self.handle = display(self._bundle(), raw=True, display_id=True)  # type: ignore[no-untyped-call]

    def update(self) -> None:
        now = time.monotonic()
        if now - self.shown_at >= _REFRESH:
            self.shown_at = now
            self.handle.update(self._bundle(), raw=True)

    def close(self) -> None:
        self.handle.update(self._bundle(), raw=True)

    def _bundle(self) -> dict[str, str]:
        p = self.progress
        line = p.status_line()
        fraction = p.fraction()
        if fraction is None:
            bar = ""
        else:
            colour = "#cf222e" if p.failed else "#2da44e"
            most = p.count if p.done else p.total
            bar = (
                f"<div role='progressbar' aria-valuemin='0' aria-valuemax='{most}' "
                f"aria-valuenow='{p.count}' style='flex:0 0 14em;height:.75em;border-radius:3px;"
                "background:rgba(127,127,127,.25);overflow:hidden'>"
                f"<div style='width:{100 * fraction:.1f}%;height:100%;background:{colour}'></div>"
                "</div>"
            )
        page = (
            "<div class='dbnb-progress' style='display:flex;align-items:center;gap:.75em;"
            "font-size:.85em;text-align:left;font-variant-numeric:tabular-nums'>"
            f"{bar}<span>{html.escape(line)}</span></div>"
        )
        return {"text/plain": f"progress: {line}", "text/html": page}


class _TqdmBar:
    """A tqdm bar on stderr, for terminals (and ``progress=True`` outside a notebook)."""

    def __init__(self, progress: Progress) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from tqdm.std import tqdm

        self.progress = progress
        self.bar = tqdm(
            total=progress.total, unit=progress.unit, desc=progress.label(), initial=progress.count,
            unit_scale=True, leave=False, file=sys.stderr,
        )
        self.seen = progress.count

    def update(self) -> None:
        p = self.progress
        if p.total is not None and p.count > (self.bar.total or 0):
            self.bar.total = p.count
        self.bar.update(p.count - self.seen)
        self.seen = p.count

    def close(self) -> None:
        self.bar.close()


class Progress:
    """Count rows and show a bar once it is wanted; a no-op otherwise (context manager).

    Args:
        enabled: ``True`` always shows the bar, ``False`` never, ``None`` when a person is
            watching and the work passes :data:`THRESHOLD` rows.
        total: how many rows are expected, when known.
        unit: what is counted.
        desc: what is being done (``loading page_views``).
        estimate: the total is a guess (the planner's); it is marked ``~`` and may be passed.
    """

    def __init__(
        self,
        enabled: bool | None,
        *,
        total: int | None = None,
        unit: str = "rows",
        desc: str = "",
        estimate: bool = False,
    ) -> None:
        self.enabled = enabled
        self.total = total
        self.unit = unit
        self.desc = desc
        self.estimate = estimate
        self.count = 0
        self.done = False
        self.failed = False
        self.started = time.monotonic()
        self._bar: _HtmlBar | _TqdmBar | None = None
        self._watching = enabled is None and progress_enabled() and interactive()

    @property
    def wants_total(self) -> bool:
        """True when a bar may show and has no total yet (worth asking the planner for one)."""
        return self.total is None and (self.enabled is True or self._watching)

    def set_total(self, total: int | None, *, estimate: bool = False) -> None:
        """Give the expected total once known (``estimate``: the planner's guess)."""
        self.total = total
        self.estimate = estimate

    def _wanted(self) -> bool:
        if self.enabled is not None:
            return self.enabled
        size = self.total if self.total is not None else self.count
        return self._watching and size >= THRESHOLD

    def fraction(self) -> float | None:
        """Done so far, from 0 to 1, or ``None`` without a total."""
        if self.done and not self.failed:
            return 1.0
        if not self.total:
            return None
        return min(self.count / self.total, 0.99 if self.estimate else 1.0)

    def label(self) -> str:
        """What is being done, for the front of the bar."""
        return self.desc or "working"

    def status_line(self) -> str:
        """``loading t: 840,000 of 2,000,000 rows (42 %), 0.6 s, 1.4 M rows/s``."""
        elapsed = time.monotonic() - self.started
        if self.done and not self.failed:
            counted = f"{self.count:,} {self.unit}"
        elif self.total:
            of = f"~{self.total:,} (estimate)" if self.estimate else f"{self.total:,}"
            counted = f"{self.count:,} of {of} {self.unit} ({100 * (self.fraction() or 0):.0f} %)"
        else:
            counted = f"{self.count:,} {self.unit}"
        state = "stopped" if self.failed else "done" if self.done else ""
        timing = f"{human_duration(elapsed)}, {_rate(self.count, elapsed, self.unit)}"
        return f"{self.label()}: {counted}, {timing}" + (f" ({state})" if state else "")

    def update(self, rows: int) -> None:
        """Add ``rows`` done; open the bar the first time it is wanted."""
        self.count += rows
        if self._bar is not None:
            self._bar.update()
        elif self._wanted():
            self._bar = _HtmlBar(self) if in_notebook() else _TqdmBar(self)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, exc_type: Any, *exc_info: object) -> None:
        self.done = True
        self.failed = exc_type is not None
        if self._bar is not None:
            self._bar.close()
            self._bar = None
