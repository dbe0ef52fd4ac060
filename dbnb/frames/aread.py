"""COPY out of async sessions into DataFrames: the fast read path on asyncpg.

The awaitable twin of :mod:`dbnb.frames.read`, with the same steps and dtypes: the statement
is described as asyncpg's unnamed prepared statement, the server quotes the parameters
(``quote_nullable``) and they are inlined where ``$n`` stands (never inside a literal); blocks
are parsed on a worker thread while the event loop keeps receiving.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from sqlalchemy import text
from sqlalchemy.sql import Executable

from dbnb.dialects import capabilities
from dbnb.display.progress import Progress
from dbnb.errors import FrameError
from dbnb.frames.ablocks import BlockParser, BlockStream
from dbnb.frames.chunks import STREAM_BLOCK, TableChunker
from dbnb.frames.columns import Backend, DtypeBackend, JsonAs, UuidAs, options_of
from dbnb.frames.describe import adescribe
from dbnb.frames.query import (
    RESTORE_SETTINGS,
    SAVE_SETTINGS,
    SET_SETTINGS,
    Target,
    asent,
    copy_sql,
    driver_error,
    explain_sql,
    fetched_frame,
    inline_parameters,
    plan_for,
    planned_rows,
    target_of,
)

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from dbnb.frames.plan import Frame, ReadPlan

__all__ = ["aiter_frames", "aread_frame", "arun_statement", "inlined"]


async def inlined(raw: Any, sql: str, types: tuple[Any, ...], args: Any) -> str:
    """``sql`` with each ``$n`` replaced by its value, quoted by the server as its type."""
    if not args:
        return sql
    casts = []
    for i, kind in enumerate(types, start=1):
        name = "_" + kind.name[:-2] if kind.name.endswith("[]") else kind.name
        casts.append(f'quote_nullable(${i}::"{kind.schema}"."{name}"::text)')
    literals = await raw.fetchrow(f"SELECT {', '.join(casts)}", *args)
    return inline_parameters(sql, list(literals))


class _AsyncOpened:
    """A described statement on asyncpg: its plan (None: no rows) and the SQL to COPY."""

    def __init__(self, raw: Any, target: Target, sql: str) -> None:
        self.raw, self.target, self.sql = raw, target, sql
        self.plan: ReadPlan | None = None

    @classmethod
    async def open(
        cls, session: AsyncSession, target: Target, options: dict[str, Any]
    ) -> _AsyncOpened:
        import asyncpg

        statement, parameters = await asent(session, target)
        raw = (await (await session.connection()).get_raw_connection()).driver_connection
        # Through the session: it begins the transaction the describe and the COPY run in, and
        # keeps the settings the read changes (put back after it).
        await session.execute(text(SAVE_SETTINGS))
        try:
            columns, types = await adescribe(raw, statement)
            sql = await inlined(raw, statement, types, parameters)
        except asyncpg.PostgresError as exc:
            raise driver_error(exc, statement, target) from exc
        opened = cls(raw, target, sql)
        opened.plan = plan_for(target, columns, options) if columns else None
        return opened

    async def planned_rows(self) -> int | None:
        """Ask the planner how many rows the statement returns (an estimate, nothing runs)."""
        import asyncpg

        try:
            return planned_rows(await self.raw.fetchval(explain_sql(self.sql)))
        except asyncpg.PostgresError as exc:
            raise driver_error(exc, explain_sql(self.sql), self.target) from exc

    async def run(self, plan: ReadPlan, sink: Any) -> None:
        """COPY the rows into ``sink`` (an async callable taking bytes of whole rows)."""
        import asyncpg

        raw = self.raw
        query = plan.copy_query(self.sql, wraps_cleanly=self.target.wraps_cleanly)
        try:
            await raw.execute(SET_SETTINGS)
            await raw.copy_from_query(query, output=sink, format="csv")
            await raw.execute(RESTORE_SETTINGS)
        except asyncpg.PostgresError as exc:
            raise driver_error(exc, copy_sql(query), self.target) from exc


async def _aread(opened: _AsyncOpened, plan: ReadPlan) -> Frame:
    parser = BlockParser(plan)
    await opened.run(plan, parser.sink)
    return plan.combine(await parser.tables())


def _no_rows(target: Target) -> FrameError:
    what = f"this {target.statement.keyword or 'statement'}" if target.statement else "it"
    return FrameError(
        f"a frame is read from a statement that returns rows, and {what} returns none; nothing "
        "ran: run it with db.execute() (or add RETURNING)"
    )


async def arun_statement(
    session: AsyncSession, target: Target, **options: Any
) -> tuple[Frame | None, int]:
    """Await ``target``: its rows as a typed DataFrame (and their count), or None and rowcount.

    The async twin of :func:`~dbnb.frames.read.run_statement`.
    """
    if not capabilities(session.get_bind()).copy:
        from dbnb.frames import generic

        return await generic.arun_statement(session, target, **options)
    opened = await _AsyncOpened.open(session, target, options_of(**options))
    if opened.plan is None:
        result = await session.execute(target.executable)
        return None, int(getattr(result, "rowcount", -1))
    if not target.copyable:
        frame = fetched_frame(await session.execute(target.executable), opened.plan.output)
        return frame, len(frame)
    frame = await _aread(opened, opened.plan)
    return frame, len(frame)


async def aread_frame(
    session: AsyncSession,
    stmt: Executable | str | Target,
    params: dict[str, Any] | None = None,
    *,
    dtype_backend: DtypeBackend = None,
    decimal: bool = False,
    uuid_as: UuidAs = "string",
    json_as: JsonAs = "object",
    backend: Backend = "pandas",
) -> Frame:
    """Await ``stmt`` in ``session``; return its rows as a DataFrame (asyncpg COPY).

    The async twin of :func:`read_frame`: same statement handling, same dtypes.
    """
    if not capabilities(session.get_bind()).copy:
        from dbnb.frames import generic

        return await generic.aread_frame(session, stmt, params, dtype_backend=dtype_backend,
                                         decimal=decimal, uuid_as=uuid_as, json_as=json_as,
                                         backend=backend)
    target = stmt if isinstance(stmt, Target) else target_of(stmt, params, what="aread_frame()")
    options = options_of(dtype_backend, decimal, uuid_as, json_as, backend)
    opened = await _AsyncOpened.open(session, target, options)
    if opened.plan is None:
        raise _no_rows(target)
    if not target.copyable:
        return fetched_frame(await session.execute(target.executable), backend)
    return await _aread(opened, opened.plan)


async def aiter_frames(
    session: AsyncSession,
    stmt: Executable | str | Target,
    params: dict[str, Any] | None = None,
    *,
    chunksize: int = 100_000,
    dtype_backend: DtypeBackend = None,
    decimal: bool = False,
    uuid_as: UuidAs = "string",
    json_as: JsonAs = "object",
    backend: Backend = "pandas",
    progress: bool | None = None,
) -> AsyncIterator[Frame]:
    """Yield the rows of ``stmt`` as DataFrames of ``chunksize`` rows (``async for``).

    The async twin of :func:`iter_frames`: a bounded queue between the COPY and the loop keeps
    memory flat; leaving early cancels the COPY and rolls back to the savepoint.
    """
    if not capabilities(session.get_bind()).copy:
        from dbnb.frames import generic

        async for found in generic.aiter_frames(
            session, stmt, params, chunksize=chunksize, dtype_backend=dtype_backend,
            decimal=decimal, uuid_as=uuid_as, json_as=json_as, backend=backend,
            progress=progress,
        ):
            yield found
        return
    target = stmt if isinstance(stmt, Target) else target_of(stmt, params, what="aiter_frames()")
    if chunksize < 1:
        raise FrameError(f"chunksize must be a positive number of rows, not {chunksize!r}")
    nested = await session.begin_nested()
    stream: BlockStream | None = None
    task: asyncio.Task[None] | None = None
    done = False
    try:
        opened = await _AsyncOpened.open(
            session, target, options_of(dtype_backend, decimal, uuid_as, json_as, backend)
        )
        plan = opened.plan
        if plan is None or not target.copyable:
            raise _no_rows(target) if plan is None else FrameError(
                "aiter_frames() streams what COPY can read (SELECT, VALUES, WITH, ... RETURNING);"
                " read this statement with aread_frame()"
            )
        stream = BlockStream(plan, STREAM_BLOCK)

        async def produce() -> None:
            assert plan is not None and stream is not None
            try:
                await opened.run(plan, stream.sink)
            finally:
                await stream.end()

        bar = Progress(progress, desc="reading")
        if bar.wants_total:
            bar.set_total(await opened.planned_rows(), estimate=True)
        task = asyncio.create_task(produce())
        chunker = TableChunker(plan, chunksize)
        with bar:
            async for table in stream.tables():
                for frame in chunker.feed(table):
                    bar.update(len(frame))
                    yield frame
                del table
            await task
            for frame in chunker.finish():
                bar.update(len(frame))
                yield frame
        done = True
    finally:
        if task is not None and stream is not None and not task.done():
            # Left early: drop what still arrives and have the server cancel the COPY. Task
            # cancellation would leave asyncpg's protocol mid-COPY; a cancel from another
            # pooled connection ends it the way the server reports any cancelled statement.
            stream.drop()
            await _cancel_backend(session, opened.raw)
            await asyncio.gather(task, return_exceptions=True)
        if stream is not None:
            stream.close()
        if done:
            await nested.commit()
        elif nested.is_active:
            await nested.rollback()


async def _cancel_backend(session: AsyncSession, raw: Any) -> None:
    engine = (await session.connection()).engine
    async with engine.connect() as other:
        await other.execute(text("SELECT pg_cancel_backend(:pid)"), {"pid": raw.get_server_pid()})
