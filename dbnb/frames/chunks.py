"""Streaming reads: cut a stream of ``COPY`` bytes into DataFrames of a fixed number of rows.

:class:`CsvChunker` is what ``iter_frames`` runs on: IO-free, fed the bytes the sync and async
readers receive, parsing with the :class:`~dbnb.frames.dtypes.ReadPlan` of the result.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pyarrow as pa

from dbnb.errors import FrameError
from dbnb.frames.plan import ReadPlan

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["STREAM_BLOCK", "CsvChunker"]

STREAM_BLOCK = 1 << 17  # bytes of CSV parsed at a time by iter_frames


def _release_unused() -> None:
    # Costs under a microsecond; see CsvChunker for why a stream needs it.
    pa.default_memory_pool().release_unused()


class CsvChunker:
    """Cut a stream of ``COPY`` bytes (whole rows per piece) into frames of ``chunksize`` rows.

    Bytes are parsed once ``block_bytes`` have gathered, and rows wait until a full chunk is
    ready, so memory stays within about one chunk plus one block whatever the result's size.
    Blocks are small and parsed and converted on the calling thread, and Arrow's allocator is
    asked to hand back unused memory between them: it keeps freed pages per thread, so
    worker threads' pages and the ones 1 MiB blocks spread over stayed resident, which
    nearly doubled a 100,000-row stream's peak (benchmarks/RESULTS.md).
    """

    def __init__(
        self, plan: ReadPlan, chunksize: int, *, block_bytes: int = STREAM_BLOCK
    ) -> None:
        if chunksize < 1:
            raise FrameError(f"chunksize must be a positive number of rows, not {chunksize!r}")
        self.plan = plan
        self.chunksize = chunksize
        self.block_bytes = block_bytes
        self.rows = 0
        self._pieces: list[bytes | bytearray | pa.Buffer] = []
        self._size = 0
        self._tables: list[pa.Table] = []
        self._pending = 0

    def feed(self, data: bytes | bytearray | pa.Buffer) -> Iterator[pd.DataFrame]:
        """Add bytes of whole rows; yield every frame that is complete."""
        self._pieces.append(data)
        self._size += len(data)
        if self._size >= self.block_bytes:
            yield from self._flush(final=False)

    def finish(self) -> Iterator[pd.DataFrame]:
        """Yield what is left; nothing when the result had rows and they were all yielded."""
        empty = self.rows == 0 and self._size == 0 and self._pending == 0
        yield from self._flush(final=True)
        if empty:
            yield self.plan.empty()

    def _flush(self, *, final: bool) -> Iterator[pd.DataFrame]:
        if self._pieces:
            pieces = self._pieces
            data = pieces[0] if len(pieces) == 1 else b"".join(pieces)
            _release_unused()
            table = self.plan.parse(data, threads=False)
            self._pieces, self._size = [], 0
            self._tables.append(table)
            self._pending += table.num_rows
        while self._pending >= self.chunksize or (final and self._pending > 0):
            pending = pa.concat_tables(self._tables)
            size = min(self.chunksize, pending.num_rows)
            chunk, rest = pending.slice(0, size), pending.slice(size)
            del pending  # the chunk alone holds its blocks, so converting it frees them
            self._tables, self._pending = [rest], rest.num_rows
            self.rows += size
            frame = self.plan.to_pandas(self.plan.decode(chunk), threads=False)
            _release_unused()
            yield frame
