"""COPY out of sync sessions into DataFrames: the fast read path on psycopg.

See :mod:`dbnb.frames.query` for the steps (stop before sending, describe, plan, COPY). psycopg
inlines the parameters client-side (``ClientCursor.mogrify``); the rows are pulled from libpq in
blocks and parsed on a worker thread while the rest arrives. The async twin is
:mod:`dbnb.frames.aread`.
"""

from __future__ import annotations

import select
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from sqlalchemy import event, text
from sqlalchemy.sql import Executable

from dbnb.dialects import capabilities
from dbnb.display.progress import Progress
from dbnb.errors import FrameError, translate
from dbnb.frames.chunks import CsvChunker
from dbnb.frames.describe import describe
from dbnb.frames.dtypes import DtypeBackend, ReadPlan, UuidAs
from dbnb.frames.query import (
    BLOCK,
    PIPELINED,
    READ_SETTINGS,
    SET_SYNC,
    SHOW_SETTINGS,
    STOP,
    Target,
    copy_query,
    copy_sql,
    driver_error,
    explain_sql,
    fetched_frame,
    options_of,
    plan_for,
    planned_rows,
    stop_before_sending,
    stopped,
    target_of,
)

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy.orm import Session

__all__ = ["iter_frames", "read_frame", "run_statement"]


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


def _sent(session: Session, target: Target) -> tuple[str, Any]:
    """What psycopg would send for ``target`` (SQL and parameters), without sending it."""
    conn = session.connection()
    listener = stop_before_sending(conn)
    try:
        session.execute(target.executable, execution_options={STOP: True})
    except Exception as exc:
        found = stopped(exc)
        if found is None:
            written = target.statement
            span = {"source": written.source, "span": written.span} if written else {}
            raise translate(exc, **span)  # type: ignore[arg-type]  # noqa: B904 (chained)
        return found
    finally:
        event.remove(conn, "before_cursor_execute", listener)
    raise FrameError("the statement ran no SQL, so it has no rows to read")


class _Opened:
    """A described statement: its plan (None: it returns no rows) and the SQL to COPY."""

    def __init__(self, session: Session, target: Target, options: dict[str, Any]) -> None:
        import psycopg

        statement, parameters = _sent(session, target)
        raw = session.connection().connection.driver_connection
        assert isinstance(raw, psycopg.Connection)
        self.raw, self.target = raw, target
        self.sql = psycopg.ClientCursor(raw).mogrify(statement, parameters)
        # Through the session: it begins the transaction the describe and the COPY run in.
        self.before = list(session.execute(text(SHOW_SETTINGS)).one())
        try:
            columns = describe(raw, self.sql)
        except psycopg.Error as exc:
            raise driver_error(exc, self.sql, target) from exc
        self.plan = plan_for(target, columns, options) if columns else None

    def planned_rows(self) -> int | None:
        """Ask the planner how many rows the statement returns (an estimate, nothing runs)."""
        import psycopg

        try:
            explained = self.raw.execute(explain_sql(self.sql)).fetchone()
        except psycopg.Error as exc:
            raise driver_error(exc, explain_sql(self.sql), self.target) from exc
        return planned_rows(explained[0] if explained else None)

    def blocks(self, plan: ReadPlan, block_bytes: int) -> Iterator[bytearray]:
        """COPY the rows out in blocks of whole rows, with the read settings in place."""
        import psycopg
        from psycopg.pq import TransactionStatus

        raw, copy = self.raw, copy_sql(copy_query(self.sql, self.target, plan))
        try:
            with raw.cursor() as cur:
                cur.execute(SET_SYNC, list(READ_SETTINGS.values()))
                try:
                    yield from _rows_out(raw, copy, block_bytes)
                finally:
                    # After a failed or cancelled COPY the transaction is aborted: nothing to undo.
                    if raw.info.transaction_status != TransactionStatus.INERROR:
                        cur.execute(SET_SYNC, self.before)
        except psycopg.Error as exc:
            raise driver_error(exc, copy, self.target) from exc


def _read(opened: _Opened, plan: ReadPlan) -> pd.DataFrame:
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="dbnb-parse") as parser:
        parsed = [parser.submit(plan.parse, block) for block in opened.blocks(plan, PIPELINED)]
    return plan.combine([p.result() for p in parsed])


def _no_rows(target: Target) -> FrameError:
    what = f"this {target.statement.keyword or 'statement'}" if target.statement else "it"
    return FrameError(
        f"a frame is read from a statement that returns rows, and {what} returns none; nothing "
        "ran: run it with db.execute() (or add RETURNING)"
    )


def run_statement(
    session: Session, target: Target, **options: Any
) -> tuple[pd.DataFrame | None, int]:
    """Run ``target``: its rows as a typed DataFrame (and their count), or None and rowcount.

    What the last statement of a script goes through (``db.execute``, ``%%db``): rows come
    back through the COPY reader when COPY can read them (DML with RETURNING too), else fetched.
    """
    if not capabilities(session.get_bind()).copy:
        from dbnb.frames import generic

        return generic.run_statement(session, target, **options)
    opened = _Opened(session, target, options_of(**options))
    if opened.plan is None:
        result = session.execute(target.executable)
        return None, int(getattr(result, "rowcount", -1))
    if not target.copyable:
        frame = fetched_frame(session.execute(target.executable))
        return frame, len(frame)
    frame = _read(opened, opened.plan)
    return frame, len(frame)


def read_frame(
    session: Session,
    stmt: Executable | str | Target,
    params: dict[str, Any] | None = None,
    *,
    dtype_backend: DtypeBackend = None,
    decimal: bool = False,
    uuid_as: UuidAs = "string",
) -> pd.DataFrame:
    """Run ``stmt`` in ``session``; return its rows as a DataFrame typed by the column types.

    Runs ``COPY (stmt) TO STDOUT`` inside the session's transaction and commits nothing.
    ``stmt`` is a SQLAlchemy SELECT (ORM criteria, soft-delete filters and bound parameters all
    apply) or SQL text as people write it (comments, a trailing ``;``, CTEs, ``... RETURNING``)
    with ``:name`` parameters given in ``params``. The server describes it first, so a
    statement that returns no rows raises ``FrameError`` without running. dtypes follow the
    table in :mod:`dbnb.frames.dtypes`; an empty result keeps them. SQLite and MySQL/MariaDB,
    which have no COPY, are read by :mod:`dbnb.frames.generic`.
    """
    if not capabilities(session.get_bind()).copy:
        from dbnb.frames import generic

        return generic.read_frame(session, stmt, params, dtype_backend=dtype_backend,
                                  decimal=decimal, uuid_as=uuid_as)
    target = stmt if isinstance(stmt, Target) else target_of(stmt, params, what="read_frame()")
    opened = _Opened(session, target, options_of(dtype_backend, decimal, uuid_as))
    if opened.plan is None:
        raise _no_rows(target)
    if not target.copyable:
        return fetched_frame(session.execute(target.executable))
    return _read(opened, opened.plan)


def iter_frames(
    session: Session,
    stmt: Executable | str | Target,
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
    if not capabilities(session.get_bind()).copy:
        from dbnb.frames import generic

        yield from generic.iter_frames(
            session, stmt, params, chunksize=chunksize, dtype_backend=dtype_backend,
            decimal=decimal, uuid_as=uuid_as, progress=progress,
        )
        return
    target = stmt if isinstance(stmt, Target) else target_of(stmt, params, what="iter_frames()")
    if chunksize < 1:
        raise FrameError(f"chunksize must be a positive number of rows, not {chunksize!r}")
    nested = session.begin_nested()
    done = False
    try:
        opened = _Opened(session, target, options_of(dtype_backend, decimal, uuid_as))
        if opened.plan is None or not target.copyable:
            raise _no_rows(target) if opened.plan is None else FrameError(
                "iter_frames() streams what COPY can read (SELECT, VALUES, WITH, ... RETURNING); "
                "read this statement with read_frame()"
            )
        chunker = CsvChunker(opened.plan, chunksize)
        bar = Progress(progress, desc="reading")
        if bar.wants_total:
            bar.set_total(opened.planned_rows(), estimate=True)
        stream = opened.blocks(opened.plan, BLOCK)
        try:
            with bar:
                for piece in stream:
                    for frame in chunker.feed(piece):
                        bar.update(len(frame))
                        yield frame
                for frame in chunker.finish():
                    bar.update(len(frame))
                    yield frame
        finally:
            stream.close()  # type: ignore[attr-defined]
        done = True
    finally:
        if done:
            nested.commit()
        elif nested.is_active:
            nested.rollback()
