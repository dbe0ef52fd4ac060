"""COPY out of sync sessions into DataFrames: the fast read path on psycopg.

See :mod:`dbnb.frames.query` for how a statement is described and planned. psycopg binds the
parameters client-side (``ClientCursor.mogrify``); the rows are pulled from libpq in blocks and
parsed on a worker thread while the rest arrives. The async twin is :mod:`dbnb.frames.aread`.
"""

from __future__ import annotations

import select
from collections.abc import Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from sqlalchemy.sql import Executable

from dbnb.display.progress import Progress
from dbnb.errors import FrameError, translate
from dbnb.frames.chunks import CsvChunker
from dbnb.frames.dtypes import DtypeBackend, ReadPlan, UuidAs
from dbnb.frames.query import (
    BLOCK,
    PIPELINED,
    READ_SETTINGS,
    SET_SYNC,
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
    from sqlalchemy.orm import Session

__all__ = ["iter_frames", "read_frame"]


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
    described = Described()
    swap, keep = listen(conn, described)
    try:
        session.execute(stmt).close()
    except Exception as exc:
        raise translate(exc)  # noqa: B904 (translate() chains it)
    finally:
        unlisten(conn, swap, keep)
    plan = plan_of(stmt, described, options)
    yield plan
    raw = conn.connection.driver_connection
    assert isinstance(raw, psycopg.Connection)
    sql = psycopg.ClientCursor(raw).mogrify(described.statement, described.parameters)
    copy = copy_sql(copy_query(sql, plan))
    try:
        with raw.cursor() as cur:
            before = cur.execute(SHOW_SETTINGS).fetchone()
            cur.execute(SET_SYNC, list(READ_SETTINGS.values()))
            try:
                yield from _rows_out(raw, copy, block_bytes)
            finally:
                # After a failed or cancelled COPY the transaction is aborted: nothing to undo.
                if before is not None and raw.info.transaction_status != TransactionStatus.INERROR:
                    cur.execute(SET_SYNC, list(before))
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
    in :mod:`dbnb.frames.dtypes`; an empty result keeps them.
    """
    options = options_of(dtype_backend, decimal, uuid_as)
    stream = _copy_out(session, as_statement(stmt, params), options, PIPELINED)
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
    chunkeroptions_of = options_of(dtype_backend, decimal, uuid_as)
    if chunksize < 1:
        raise FrameError(f"chunksize must be a positive number of rows, not {chunksize!r}")
    nested = session.begin_nested()
    stream = _copy_out(session, statement, chunkeroptions_of, BLOCK)
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
