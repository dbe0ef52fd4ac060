"""COPY out of sessions into DataFrames: the fast read path, sync (psycopg) and async (asyncpg).

The statement first runs through the session wrapped in ``LIMIT 0``: that applies every ORM
hook (soft-delete criteria included), binds the parameters the driver's way, and has the server
describe the result's column types. The same SQL then runs as
``COPY (...) TO STDOUT (FORMAT csv)`` and :class:`dbnb.frames.ReadPlan` parses the bytes with
pyarrow, every column's type fixed up front. psycopg binds the parameters client-side
(``ClientCursor.mogrify``); asyncpg's ``copy_from_query`` does the same.

For the COPY the transaction sees ``TimeZone=UTC``, ``DateStyle=ISO`` and
``extra_float_digits=1`` (what the parser expects); the previous values are put back after.
"""

from __future__ import annotations

import asyncio
import re
import select
from collections.abc import AsyncIterator, Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from sqlalchemy import event, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.sql import Executable

from dbnb.errors import FrameError, translate
from dbnb.frames import ARRAY_OIDS, CsvChunker, DtypeBackend, ReadPlan, ResultColumn, UuidAs
from dbnb.progress import Progress

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy.engine import Connection
    from sqlalchemy.ext.asyncio import AsyncSession
    from sqlalchemy.orm import Session

__all__ = ["aiter_frames", "aread_frame", "iter_frames", "read_frame"]

# Output the CSV parser relies on: UTC offsets, ISO dates, shortest exact floats.
_READ_SETTINGS = {"TimeZone": "UTC", "DateStyle": "ISO, MDY", "extra_float_digits": "1"}
_SHOW_SETTINGS = "SELECT " + ", ".join(f"current_setting('{n}')" for n in _READ_SETTINGS)
_BLOCK = 1 << 21  # bytes of CSV parsed at a time by iter_frames: small keeps memory flat
_PIPELINED = 1 << 24  # read_frame: blocks parsed on a worker thread while the COPY goes on
# A query COPY can wrap, after any leading comments.
_QUERY = re.compile(
    r"^(\s|--[^\n]*\n|/\*.*?\*/)*(\(|select\b|with\b|values\b|table\b)",
    re.IGNORECASE | re.DOTALL,
)


def _set_settings_sql(placeholder: str) -> str:
    calls = [
        f"set_config('{name}', {placeholder.format(i + 1)}, true)"
        for i, name in enumerate(_READ_SETTINGS)
    ]
    return "SELECT " + ", ".join(calls)


_SET_SYNC = _set_settings_sql("%s")
_SET_ASYNC = _set_settings_sql("${}")


class _Described:
    """What the driver received (SQL, parameters) and the result's description."""

    statement: str = ""
    parameters: Any = None
    description: Any = None


def _listen(conn: Connection, described: _Described) -> tuple[Any, Any]:
    """Swap ``conn``'s next statement for its ``LIMIT 0`` form, keeping what was sent."""

    def swap(_c: Any, _cur: Any, statement: str, parameters: Any, *_: Any) -> Any:
        described.statement, described.parameters = statement, parameters
        return f"SELECT * FROM ({statement}) AS dbnb_q LIMIT 0", parameters

    def keep(_c: Any, cursor: Any, *_: Any) -> None:
        described.description = cursor.description

    event.listen(conn, "before_cursor_execute", swap, retval=True)
    event.listen(conn, "after_cursor_execute", keep)
    return swap, keep


def _unlisten(conn: Connection, swap: Any, keep: Any) -> None:
    event.remove(conn, "before_cursor_execute", swap)
    event.remove(conn, "after_cursor_execute", keep)


def as_statement(sql: Executable | str, params: dict[str, Any] | None = None) -> Executable:
    """Return ``sql`` as an executable query; SQL text gets ``params`` bound to ``:name``."""
    if isinstance(sql, str):
        if not _QUERY.match(sql):
            raise FrameError(
                "a frame is read from a query (SELECT, WITH, VALUES or TABLE); run other "
                "statements with db.execute()"
            )
        return text(sql).bindparams(**(params or {}))
    if params:
        raise FrameError("params= is for SQL text; bind values in the SQLAlchemy statement")
    return sql


def _plan(stmt: Executable, described: _Described, options: dict[str, Any]) -> ReadPlan:
    """Plan from the driver's description; numeric typmods from SQLAlchemy when it lacks them."""
    description = described.description or []
    declared: list[Any] = []
    selected = getattr(stmt, "selected_columns", None)
    if selected is not None and len(selected) == len(description):
        declared = [c.type for c in selected]
    columns = []
    for i, d in enumerate(description):
        precision = getattr(d, "precision", None)
        scale = getattr(d, "scale", None)
        if precision is None and declared:
            precision = getattr(declared[i], "precision", None)
            scale = getattr(declared[i], "scale", None)
        columns.append(ResultColumn(str(d[0]), int(d[1]), precision, scale))
    return ReadPlan(columns, **options)


def _copy_query(sql: str, plan: ReadPlan) -> str:
    """Wrap ``sql`` so arrays arrive as JSON (CSV cannot type them); else leave it alone."""
    columns = plan.columns
    if any(c.oid in ARRAY_OIDS for c in columns):
        names = [f"c{i}" for i in range(len(columns))]
        outputs = [
            f"to_json(q.{n})" if c.oid in ARRAY_OIDS else f"q.{n}"
            for n, c in zip(names, columns, strict=True)
        ]
        sql = f"SELECT {', '.join(outputs)} FROM ({sql}) AS q({', '.join(names)})"
    return sql


def _copy_sql(query: str) -> str:
    return f"COPY ({query}) TO STDOUT (FORMAT csv)"


def driver_error(exc: Exception, statement: str) -> BaseException:
    """Turn a raw psycopg/asyncpg error into the dbnb error SQLAlchemy's wrapper would become."""
    return translate(sa_exc.DBAPIError(statement, None, exc, hide_parameters=True))


def _options(dtype_backend: DtypeBackend, decimal: bool, uuid_as: UuidAs) -> dict[str, Any]:
    return {"dtype_backend": dtype_backend, "decimal": decimal, "uuid_as": uuid_as}


# -- sync ------------------------------------------------------------------------------------------


def _rows_out(raw: Any, copy: str, block_bytes: int) -> Iterator[bytearray]:
    """Run ``copy`` (a COPY ... TO STDOUT) on psycopg's libpq connection; yield byte blocks.

    psycopg's ``Copy.read()`` costs a Python generator round per row (seconds per million
    rows), so the rows are pulled straight from libpq (``PQgetCopyData``) into blocks of
    about ``block_bytes``. Leaving early cancels the COPY on the server.
    """
    import psycopg.errors
    from psycopg import pq

    pgconn = raw.pgconn
    encoding = raw.info.encoding
    pgconn.send_query(copy.encode(encoding))
    while pgconn.flush():
        pass
    result = pgconn.get_result()
    if result is None or result.status != pq.ExecStatus.COPY_OUT:
        while pgconn.get_result() is not None:
            pass
        assert result is not None
        raise psycopg.errors.error_from_result(result, encoding=encoding)
    get = pgconn.get_copy_data
    socket = pgconn.socket
    buf = bytearray()
    finished = False
    try:
        while True:
            nbytes, data = get(1)
            if nbytes > 0:
                buf += data
                if len(buf) >= block_bytes:
                    yield buf
                    buf = bytearray()
            elif nbytes == 0:
                # Wait without holding the GIL, so a parser thread works meanwhile.
                select.select([socket], [], [])
                pgconn.consume_input()
            elif nbytes == -1:
                break
            else:
                raise psycopg.OperationalError(pgconn.get_error_message())
        finished = True
        if buf:
            yield buf
    finally:
        if not finished:
            raw.cancel_safe()
            while get(0)[0] > 0:  # blocking: the server is already told to stop
                pass
        last = None
        while (result := pgconn.get_result()) is not None:
            last = result
        if finished and last is not None and last.status != pq.ExecStatus.COMMAND_OK:
            raise psycopg.errors.error_from_result(last, encoding=encoding)


def _copy_out(
    session: Session, stmt: Executable, options: dict[str, Any], block_bytes: int
) -> Generator[Any, None, None]:
    """Yield the plan, then the COPY's bytes in blocks of whole rows."""
    import psycopg
    from psycopg.pq import TransactionStatus

    conn = session.connection()
    described = _Described()
    swap, keep = _listen(conn, described)
    try:
        session.execute(stmt).close()
    except Exception as exc:
        raise translate(exc) from exc
    finally:
        _unlisten(conn, swap, keep)
    plan = _plan(stmt, described, options)
    yield plan
    raw = conn.connection.driver_connection
    assert isinstance(raw, psycopg.Connection)
    sql = psycopg.ClientCursor(raw).mogrify(described.statement, described.parameters)
    copy = _copy_sql(_copy_query(sql, plan))
    try:
        with raw.cursor() as cur:
            before = cur.execute(_SHOW_SETTINGS).fetchone()
            cur.execute(_SET_SYNC, list(_READ_SETTINGS.values()))
            try:
                yield from _rows_out(raw, copy, block_bytes)
            finally:
                # After a failed or cancelled COPY the transaction is aborted: nothing to undo.
                if before is not None and raw.info.transaction_status != TransactionStatus.INERROR:
                    cur.execute(_SET_SYNC, list(before))
    except psycopg.Error as exc:
        raise driver_error(exc, copy) from exc


def read_frame(
    session: Session,
    stmt: Executable | str,
    params: dict[str, Any] | None = None,
    *,
    dtype_backend: DtypeBackend = None,
    decimal: bool = False,
    uuid_as: UuidAs = "string",
) -> pd.DataFrame:
    """Run ``stmt`` in ``session``; return its rows as a DataFrame typed by the column types.

    Runs ``COPY (stmt) TO STDOUT`` inside the session's transaction and commits nothing.
    ``stmt`` is a SQLAlchemy SELECT (ORM criteria, soft-delete filters and bound parameters all
    apply) or SQL text with ``:name`` parameters given in ``params``. dtypes follow the table
    in :mod:`dbnb.frames`; an empty result keeps them.
    """
    options = _options(dtype_backend, decimal, uuid_as)
    stream = _copy_out(session, as_statement(stmt, params), options, _PIPELINED)
    plan: ReadPlan = next(stream)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="dbnb-parse") as parser:
        parsed = [parser.submit(plan.parse, block) for block in stream]
    return plan.combine([p.result() for p in parsed])


def iter_frames(
    session: Session,
    stmt: Executable | str,
    params: dict[str, Any] | None = None,
    *,
    chunksize: int = 100_000,
    dtype_backend: DtypeBackend = None,
    decimal: bool = False,
    uuid_as: UuidAs = "string",
    progress: bool | None = None,
) -> Iterator[pd.DataFrame]:
    """Yield the rows of ``stmt`` as DataFrames of ``chunksize`` rows, in bounded memory.

    The COPY streams inside a SAVEPOINT of the session's transaction; leaving the loop early
    cancels it and rolls back to the savepoint, so the session stays usable. An empty result
    yields one empty frame with the right dtypes. The session cannot run other statements
    while the loop is open.
    """
    statement = as_statement(stmt, params)
    chunker_options = _options(dtype_backend, decimal, uuid_as)
    if chunksize < 1:
        raise FrameError(f"chunksize must be a positive number of rows, not {chunksize!r}")
    nested = session.begin_nested()
    stream = _copy_out(session, statement, chunker_options, _BLOCK)
    done = False
    try:
        chunker = CsvChunker(next(stream), chunksize)
        with Progress(progress, desc="reading") as bar:
            for piece in stream:
                for frame in chunker.feed(piece):
                    bar.update(len(frame))
                    yield frame
            for frame in chunker.finish():
                bar.update(len(frame))
                yield frame
        done = True
    finally:
        stream.close()
        if done:
            nested.commit()
        elif nested.is_active:
            nested.rollback()


# -- async -----------------------------------------------------------------------------------------


class _AsyncCopy:
    """A described statement ready to COPY out over the session's asyncpg connection."""

    def __init__(self, raw: Any, plan: ReadPlan, described: _Described) -> None:
        self.raw = raw
        self.plan = plan
        self.query = _copy_query(described.statement, plan)
        self.copy = _copy_sql(self.query)
        self.args = tuple(described.parameters or ())

    async def run(self, sink: Any) -> None:
        """COPY the rows into ``sink`` (an async callable taking bytes of whole rows)."""
        import asyncpg

        raw = self.raw
        try:
            before = await raw.fetchrow(_SHOW_SETTINGS)
            await raw.execute(_SET_ASYNC, *_READ_SETTINGS.values())
            await raw.copy_from_query(self.query, *self.args, output=sink, format="csv")
            await raw.execute(_SET_ASYNC, *before)
        except asyncpg.PostgresError as exc:
            raise driver_error(exc, self.copy) from exc


async def _aprepare(session: AsyncSession, stmt: Executable, options: dict[str, Any]) -> _AsyncCopy:
    conn = await session.connection()
    sync_conn = conn.sync_connection
    assert sync_conn is not None
    described = _Described()
    swap, keep = _listen(sync_conn, described)
    try:
        (await session.execute(stmt)).close()
    except Exception as exc:
        raise translate(exc) from exc
    finally:
        _unlisten(sync_conn, swap, keep)
    raw = (await conn.get_raw_connection()).driver_connection
    return _AsyncCopy(raw, _plan(stmt, described, options), described)


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
        session, as_statement(stmt, params), _options(dtype_backend, decimal, uuid_as)
    )
    loop = asyncio.get_running_loop()
    block = bytearray()
    parsed: list[asyncio.Future[Any]] = []

    async def sink(data: bytes) -> None:
        nonlocal block
        block += data
        if len(block) >= _PIPELINED:
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
        copy = await _aprepare(session, statement, _options(dtype_backend, decimal, uuid_as))

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
