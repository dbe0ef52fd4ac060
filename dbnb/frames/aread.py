"""COPY out of async sessions into DataFrames: the fast read path on asyncpg.

The awaitable twin of :mod:`dbnb.frames.read`, with the same statement handling and dtypes:
asyncpg's ``copy_from_query`` binds the parameters; blocks are parsed on a worker thread while
the event loop keeps receiving.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from sqlalchemy import text
from sqlalchemy.sql import Executable

from dbnb.display.progress import Progress
from dbnb.errors import FrameError, translate
from dbnb.frames.chunks import CsvChunker
from dbnb.frames.dtypes import DtypeBackend, ReadPlan, UuidAs
from dbnb.frames.query import (
    PIPELINED,
    READ_SETTINGS,
    SET_ASYNC,
    SHOW_SETTINGS,
    Described,
    as_statement,
    copy_query,
    copy_sql,
    driver_error,
    listen,
    options_of,
    plan_of,
    unlisten,
)

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy.ext.asyncio import AsyncSession

__all__ = ["aiter_frames", "aread_frame"]


class _AsyncCopy:
    """A described statement ready to COPY out over the session's asyncpg connection."""

    def __init__(self, raw: Any, plan: ReadPlan, described: Described) -> None:
        self.raw = raw
        self.plan = plan
        self.query = copy_query(described.statement, plan)
        self.copy = copy_sql(self.query)
        self.args = tuple(described.parameters or ())

    async def run(self, sink: Any) -> None:
        """COPY the rows into ``sink`` (an async callable taking bytes of whole rows)."""
        import asyncpg

        raw = self.raw
        try:
            before = await raw.fetchrow(SHOW_SETTINGS)
            await raw.execute(SET_ASYNC, *READ_SETTINGS.values())
            await raw.copy_from_query(self.query, *self.args, output=sink, format="csv")
            await raw.execute(SET_ASYNC, *before)
        except asyncpg.PostgresError as exc:
            raise driver_error(exc, self.copy) from exc


async def _aprepare(session: AsyncSession, stmt: Executable, options: dict[str, Any]) -> _AsyncCopy:
    conn = await session.connection()
    sync_conn = conn.sync_connection
    assert sync_conn is not None
    described = Described()
    swap, keep = listen(sync_conn, described)
    try:
        (await session.execute(stmt)).close()
    except Exception as exc:
        raise translate(exc)  # noqa: B904 (translate() chains it)
    finally:
        unlisten(sync_conn, swap, keep)
    raw = (await conn.get_raw_connection()).driver_connection
    return _AsyncCopy(raw, plan_of(stmt, described, options), described)


async def aread_frame(
    session: AsyncSession,
    stmt: Executable | str,
    params: dict[str, Any] | None = None,
    *,
    dtype_backend: DtypeBackend = None,
    decimal: bool = False,
    uuid_as: UuidAs = "string",
) -> pd.DataFrame:
    """Await ``stmt`` in ``session``; return its rows as a DataFrame (asyncpg COPY).

    The async twin of :func:`read_frame`: same statement handling, same dtypes.
    """
    copy = await _aprepare(
        session, as_statement(stmt, params), options_of(dtype_backend, decimal, uuid_as)
    )
    loop = asyncio.get_running_loop()
    block = bytearray()
    parsed: list[asyncio.Future[Any]] = []

    async def sink(data: bytes) -> None:
        nonlocal block
        block += data
        if len(block) >= PIPELINED:
            # Parse on a worker thread while asyncpg keeps receiving.
            parsed.append(loop.run_in_executor(None, copy.plan.parse, block))
            block = bytearray()

    await copy.run(sink)
    if block:
        parsed.append(loop.run_in_executor(None, copy.plan.parse, block))
    return copy.plan.combine(list(await asyncio.gather(*parsed)))


async def aiter_frames(
    session: AsyncSession,
    stmt: Executable | str,
    params: dict[str, Any] | None = None,
    *,
    chunksize: int = 100_000,
    dtype_backend: DtypeBackend = None,
    decimal: bool = False,
    uuid_as: UuidAs = "string",
    progress: bool | None = None,
) -> AsyncIterator[pd.DataFrame]:
    """Yield the rows of ``stmt`` as DataFrames of ``chunksize`` rows (``async for``).

    The async twin of :func:`iter_frames`: a bounded queue between the COPY and the loop keeps
    memory flat; leaving early cancels the COPY and rolls back to the savepoint.
    """
    statement = as_statement(stmt, params)
    if chunksize < 1:
        raise FrameError(f"chunksize must be a positive number of rows, not {chunksize!r}")
    nested = await session.begin_nested()
    queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=64)
    task: asyncio.Task[None] | None = None
    dropping = False
    done = False

    async def sink(data: bytes) -> None:
        if not dropping:
            await queue.put(data)

    try:
        copy = await _aprepare(session, statement, options_of(dtype_backend, decimal, uuid_as))

        async def produce() -> None:
            try:
                await copy.run(sink)
            finally:
                if not dropping:
                    await queue.put(None)

        task = asyncio.create_task(produce())
        chunker = CsvChunker(copy.plan, chunksize)
        with Progress(progress, desc="reading") as bar:
            while (piece := await queue.get()) is not None:
                for frame in chunker.feed(piece):
                    bar.update(len(frame))
                    yield frame
            await task
            for frame in chunker.finish():
                bar.update(len(frame))
                yield frame
        done = True
    finally:
        if task is not None and not task.done():
            # Left early: drop what still arrives and have the server cancel the COPY. Task
            # cancellation would leave asyncpg's protocol mid-COPY; a cancel from another
            # pooled connection ends it the way the server reports any cancelled statement.
            dropping = True
            while not queue.empty():
                queue.get_nowait()
            await _cancel_backend(session, copy.raw)
            await asyncio.gather(task, return_exceptions=True)
        if done:
            await nested.commit()
        elif nested.is_active:
            await nested.rollback()


async def _cancel_backend(session: AsyncSession, raw: Any) -> None:
    engine = (await session.connection()).engine
    async with engine.connect() as other:
        await other.execute(text("SELECT pg_cancel_backend(:pid)"), {"pid": raw.get_server_pid()})
