"""Streaming reads: parsed blocks in, DataFrames of a fixed number of rows out.

:class:`TableChunker` is what ``iter_frames`` runs on: IO-free, fed the wire tables the readers
parse (in order) from the ``COPY`` bytes, with the :class:`~dbnb.frames.plan.ReadPlan` of the
result. Rows wait until a full chunk is ready, so memory stays within about one chunk plus the
blocks being parsed, whatever the result's size.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pyarrow as pa

from dbnb.errors import FrameError
from dbnb.frames.plan import ReadPlan

if TYPE_CHECKING:
    from dbnb.frames.plan import Frame

__all__ = ["STREAM_BLOCK", "TableChunker"]

STREAM_BLOCK = 1 << 17  # bytes of CSV per parsed block when streaming


def release_unused() -> None:
    """Ask Arrow's pool to hand freed memory back (it keeps freed pages, per thread).

    Costs under a microsecond; a stream calls it after each chunk so that its memory stays
    flat (see :class:`TableChunker`).
    """
    pa.default_memory_pool().release_unused()


class TableChunker:
    """Cut a stream of parsed wire tables (whole rows, in order) into frames of ``chunksize``.

    A chunk's rows are concatenated, decoded and converted as soon as they are all there; its
    blocks are then held by the chunk alone, so converting it frees them.
    """

    def __init__(self, plan: ReadPlan, chunksize: int) -> None:
        if chunksize < 1:
            raise FrameError(f"chunksize must be a positive number of rows, not {chunksize!r}")
        self.plan = plan
        self.chunksize = chunksize
        self.rows = 0
        self._tables: list[pa.Table] = []
        self._pending = 0

    def feed(self, table: pa.Table) -> Iterator[Frame]:
        """Add a parsed block; yield every frame that is complete."""
        self._tables.append(table)
        self._pending += table.num_rows
        del table
        yield from self._cut(final=False)

    def finish(self) -> Iterator[Frame]:
        """Yield what is left; an empty frame (with the dtypes) when the result had no rows."""
        empty = self.rows == 0 and self._pending == 0
        yield from self._cut(final=True)
        if empty:
            yield self.plan.empty()

    def _cut(self, *, final: bool) -> Iterator[Frame]:
        while self._pending >= self.chunksize or (final and self._pending > 0):
            pending = pa.concat_tables(self._tables)
            size = min(self.chunksize, pending.num_rows)
            chunk, rest = pending.slice(0, size), pending.slice(size)
            del pending
            self._tables, self._pending = ([rest] if rest.num_rows else []), rest.num_rows
            del rest
            self.rows += size
            frame = self.plan.combine([chunk])
            del chunk
            release_unused()
            yield frame
