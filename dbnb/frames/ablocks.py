"""Async block pipelines: asyncpg's COPY output in, parsed Arrow blocks out.

asyncpg hands a COPY's bytes to an ``output`` callback on the event loop's thread; these
classes gather them into blocks and parse each on a thread of the read's own while the loop
keeps receiving: :class:`BlockParser` for a whole result (``aread_frame``, partitions),
:class:`BlockStream` for ``aiter_frames``. At most :data:`~dbnb.frames.query.AHEAD` blocks
wait for the parser: past it the callback waits, and asyncpg and the server with it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from dbnb.frames.blocks import PIECE, BlockBuffer
from dbnb.frames.query import AHEAD, PIPELINED

if TYPE_CHECKING:
    import pyarrow as pa

    from dbnb.frames.plan import ReadPlan

__all__ = ["BlockParser", "BlockStream"]


class BlockParser:
    """COPY bytes in, parsed blocks out: parsed on a thread of the read's own while the loop
    keeps receiving (:meth:`sink` is asyncpg's ``output``).

    Bytes gather in Arrow blocks (:class:`~dbnb.frames.blocks.BlockBuffer`); at most
    :data:`AHEAD` blocks wait for the parser (the sink waits, asyncpg and the server with it).
    The thread ends with the read: Arrow's allocator keeps a live thread's freed pages, and
    the tables are kept here rather than as futures' results, which asyncio may still hold
    while the frame is built (either kept the blocks resident: half again the peak memory).
    """

    def __init__(self, plan: ReadPlan) -> None:
        self.plan = plan
        self._piece = bytearray()
        self._blocks = BlockBuffer(PIPELINED)
        self._parsed: list[asyncio.Future[None]] = []
        self._tables: list[pa.Table | None] = []
        self._pool: ThreadPoolExecutor | None = None

    def _parse_into(self, index: int, block: pa.Buffer) -> None:
        self._tables[index] = self.plan.parse(block)

    def _submit(self, block: pa.Buffer) -> None:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dbnb-parse")
        loop = asyncio.get_running_loop()
        self._tables.append(None)
        index = len(self._tables) - 1
        self._parsed.append(loop.run_in_executor(self._pool, self._parse_into, index, block))

    async def sink(self, data: bytes) -> None:
        """Take bytes of whole rows; hand a block to the parser once it is full."""
        self._piece += data
        if len(self._piece) < PIECE:
            return
        full = self._blocks.add(self._piece)
        self._piece = bytearray()
        if full is None:
            return
        self._submit(full)
        del full
        pending = [f for f in self._parsed if not f.done()]
        while len(pending) > AHEAD:
            await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            pending = [f for f in pending if not f.done()]

    async def tables(self) -> list[pa.Table]:
        """Every block parsed, in order (a small result is parsed here, with no thread)."""
        piece, self._piece = self._piece, bytearray()
        if not self._parsed and not self._blocks.started:
            return [self.plan.parse(piece)] if piece else []
        last = (self._blocks.add(piece) if piece else None) or self._blocks.take()
        if last is not None:
            self._submit(last)
        del last, piece
        try:
            await asyncio.gather(*self._parsed)
        finally:
            self._parsed.clear()
            if self._pool is not None:
                self._pool.shutdown()  # idle by now: its thread just ends
        tables = [t for t in self._tables if t is not None]
        self._tables.clear()
        return tables


class BlockStream:
    """COPY bytes in (:meth:`sink`), parsed blocks out in order (:meth:`tables`), streaming.

    Blocks are parsed on a thread of the stream's own as they fill; at most :data:`AHEAD`
    wait for the reader (the sink waits, asyncpg and the server with it), so memory stays flat
    whatever the result's size. :meth:`end` marks the end of the input; :meth:`drop` makes
    the sink discard what still arrives when the reader left early.
    """

    def __init__(self, plan: ReadPlan, block_bytes: int) -> None:
        self.plan = plan
        self._piece = bytearray()
        self._size = block_bytes  # small blocks: bytearrays cost malloc nothing to give back
        self._queue: asyncio.Queue[asyncio.Future[pa.Table] | None] = asyncio.Queue(AHEAD + 1)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dbnb-parse")
        self._dropping = False

    async def _put(self, block: bytearray) -> None:
        loop = asyncio.get_running_loop()
        await self._queue.put(loop.run_in_executor(self._pool, self.plan.parse_streamed, block))

    async def sink(self, data: bytes) -> None:
        """Take bytes of whole rows (asyncpg's ``output``)."""
        if self._dropping:
            return
        self._piece += data
        if len(self._piece) >= self._size:
            block, self._piece = self._piece, bytearray()
            await self._put(block)

    async def end(self) -> None:
        """The input is over: parse what is left, then tell the reader."""
        if self._dropping:
            return
        if self._piece:
            block, self._piece = self._piece, bytearray()
            await self._put(block)
        await self._queue.put(None)

    async def tables(self) -> AsyncIterator[pa.Table]:
        """The parsed blocks, in order, until the end of the input."""
        while (parsed := await self._queue.get()) is not None:
            yield await parsed

    def drop(self) -> None:
        """Discard what still arrives (the reader left early)."""
        self._dropping = True
        while not self._queue.empty():
            self._queue.get_nowait()

    def close(self) -> None:
        """End the parse thread (and anything it had still to parse)."""
        self._pool.shutdown(wait=False, cancel_futures=True)
