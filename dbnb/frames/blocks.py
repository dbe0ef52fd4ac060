"""Blocks of COPY bytes gathered in Arrow's memory, not Python's.

The readers receive a result row by row (psycopg) or in network-sized pieces (asyncpg) and
hand the parser blocks of many megabytes. Built as Python ``bytearray`` s, every such block was
a large allocation of the C library's ``malloc``, whose adaptive threshold then kept the next
ones, and the frame's temporary arrays, in memory it does not give back: a quarter more peak
memory on a large read. :class:`BlockBuffer` keeps the small, per-row appends in a short
``bytearray`` and copies each filled piece into a block allocated by Arrow (whose pool the
readers ask to hand freed memory back), which the CSV reader parses without a copy.
"""

from __future__ import annotations

import pyarrow as pa

__all__ = ["PIECE", "BlockBuffer"]

PIECE = 1 << 16  # bytes appended row by row before they go into the block


class BlockBuffer:
    """Whole-row pieces in, Arrow blocks of about ``size`` bytes out (each whole rows too)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._block: pa.ResizableBuffer | None = None
        self._view: memoryview | None = None
        self._used = 0

    @property
    def started(self) -> bool:
        """True once a piece went into a block that was not taken yet."""
        return self._view is not None

    def add(self, piece: bytes | bytearray | memoryview) -> pa.Buffer | None:
        """Append ``piece``; return the block it completes, if it completes one."""
        n = len(piece)
        if self._view is None:
            self._block = pa.allocate_buffer(max(self.size, n) + PIECE, resizable=True)
            self._view = memoryview(self._block).cast("B")
            self._used = 0
        if self._used + n > len(self._view):
            assert self._block is not None
            self._block.resize(self._used + n + PIECE)
            self._view.release()
            self._view = memoryview(self._block).cast("B")
        self._view[self._used : self._used + n] = piece
        self._used += n
        return self.take() if self._used >= self.size else None

    def take(self) -> pa.Buffer | None:
        """The block gathered so far (None when empty); the next piece starts a new one."""
        if self._view is None or self._used == 0:
            return None
        assert self._block is not None
        self._view.release()
        block = self._block.slice(0, self._used)
        self._block, self._view, self._used = None, None, 0
        return block
