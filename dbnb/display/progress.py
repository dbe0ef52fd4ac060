"""A progress bar for long loads and chunked reads: tqdm.auto, only when someone is watching.

The bar appears when progress is asked for (``progress=True``), or by default when the session
is interactive (a Jupyter kernel, or a terminal on stderr) and the work passes
:data:`THRESHOLD` rows. ``progress=False`` turns it off. Batch jobs and tests see nothing.
"""

from __future__ import annotations

import sys
import warnings
from typing import Any

__all__ = ["THRESHOLD", "Progress", "interactive"]

THRESHOLD = 100_000


def interactive() -> bool:
    """Say whether a person is likely watching: a Jupyter kernel, or stderr on a terminal."""
    ipython = sys.modules.get("IPython")
    if ipython is not None:
        shell = ipython.get_ipython()
        if shell is not None and type(shell).__name__ == "ZMQInteractiveShell":
            return True
    stream = sys.stderr
    return bool(stream is not None and stream.isatty())


class Progress:
    """Count rows and show a bar once it is wanted; a no-op otherwise (context manager)."""

    def __init__(
        self, enabled: bool | None, *, total: int | None = None, unit: str = "rows", desc: str = ""
    ) -> None:
        self.enabled = enabled
        self.total = total
        self.unit = unit
        self.desc = desc
        self.count = 0
        self._bar: Any = None
        self._watching = enabled is None and interactive()

    def _wanted(self) -> bool:
        if self.enabled is not None:
            return self.enabled
        size = self.total if self.total is not None else self.count
        return self._watching and size >= THRESHOLD

    def update(self, rows: int) -> None:
        """Add ``rows`` done; open the bar the first time it is wanted."""
        self.count += rows
        if self._bar is not None:
            self._bar.update(rows)
        elif self._wanted():
            with warnings.catch_warnings():
                # tqdm.auto warns when a notebook lacks ipywidgets, then falls back to text.
                warnings.simplefilter("ignore")
                from tqdm.auto import tqdm

                self._bar = tqdm(
                    total=self.total, unit=self.unit, desc=self.desc, initial=self.count,
                    unit_scale=True, leave=False,
                )

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
