"""COPY out of sync sessions into DataFrames: the fast read path on psycopg.

See :mod:`dbnb.frames.query` for the steps (stop before sending, describe, plan, COPY). psycopg
inlines the parameters client-side (``ClientCursor.mogrify``). Two round trips whatever the
result: the describe (with the transaction's BEGIN when due), then one message that sets the
read settings, runs the COPY and puts the settings back. The rows are pulled from libpq in
blocks; a result of one block is parsed on the calling thread, a longer one on a worker thread
while the rest arrives. The async twin is :mod:`dbnb.frames.aread`.
"""

from __future__ import annotations

import select
from collections import deque
from collections.abc import Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from sqlalchemy.sql import Executable

from dbnb.dialects import capabilities
from dbnb.display.progress import Progress
from dbnb.errors import FrameError
from dbnb.frames.blocks import PIECE, BlockBuffer
from dbnb.frames.chunks import STREAM_BLOCK, TableChunker
from dbnb.frames.columns import Backend, DtypeBackend, JsonAs, UuidAs, options_of
from dbnb.frames.describe import describe
from dbnb.frames.query import (
    AHEAD,
    PIPELINED,
    Target,
    copy_message,
    driver_error,
    explain_sql,
    fetched_frame,
    plan_for,
    planned_rows,
    sent,
    target_of,
)

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from dbnb.frames.plan import Frame, ReadPlan

__all__ = ["iter_frames", "parse_ahead", "read_frame", "rows_out", "run_statement"]


def _copy_started(pgconn: Any, encoding: str) -> None:
    """Wait for the message's COPY to start: earlier statements' results are skipped."""
    import psycopg.errors
    from psycopg import pq

    done = (pq.ExecStatus.TUPLES_OK, pq.ExecStatus.COMMAND_OK)
    while True:
        result = pgconn.get_result()
        if result is not None and result.status in done:
            continue
        if result is not None and result.status == pq.ExecStatus.COPY_OUT:
            return
        while pgconn.get_result() is not None:
            pass
        if result is None:
            raise psycopg.OperationalError("the server ended the request before the COPY")
        raise psycopg.errors.error_from_result(result, encoding=encoding)


def rows_out(raw: Any, message: str, block_bytes: int) -> Iterator[bytearray | pa.Buffer]:
    """Send ``message`` (ending in a COPY ... TO STDOUT and more statements); yield byte blocks.

    psycopg's ``Copy.read()`` costs a Python generator round per row (seconds per million
    rows), so the rows are pulled straight from libpq (``PQgetCopyData``) into blocks of
    about ``block_bytes`` of whole rows (:class:`~dbnb.frames.blocks.BlockBuffer`; small
    blocks, and a result smaller than a piece, come as ``bytearray`` s). Leaving early
    cancels the COPY.
    """
    import psycopg.errors
    from psycopg import pq

    pgconn = raw.pgconn
    encoding = raw.info.encoding
    pgconn.send_query(message.encode(encoding))
    while pgconn.flush():
        select.select([], [pgconn.socket], [])
    _copy_started(pgconn, encoding)
    get = pgconn.get_copy_data
    socket = pgconn.socket
    # Small blocks (streaming) stay bytearrays: below malloc's threshold they cost nothing.
    direct = block_bytes <= 2 * PIECE
    piece_bytes = block_bytes if direct else PIECE
    blocks = BlockBuffer(block_bytes)
    buf = bytearray()
    finished = False
    try:
        while True:
            nbytes, data = get(1)
            if nbytes > 0:
                buf += data
                if len(buf) >= piece_bytes:
                    full = buf if direct else blocks.add(buf)
                    buf = bytearray()
                    if full is not None:
                        yield full
            elif nbytes == 0:
                # Wait without holding the GIL, so a parser thread works meanwhile.
                select.select([socket], [], [])
                pgconn.consume_input()
            elif nbytes == -1:
                break
            else:
                raise psycopg.OperationalError(pgconn.get_error_message())
        finished = True
        if not blocks.started:
            if buf:
                yield buf  # a small result (or block): one piece, no Arrow block
        else:
            last = (blocks.add(buf) if buf else None) or blocks.take()
            if last is not None:
                yield last
    finally:
        if not finished:
            raw.cancel_safe()
            while get(0)[0] > 0:  # blocking: the server is already told to stop
                pass
        failed = None
        while (result := pgconn.get_result()) is not None:
            ok = (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK)
            if failed is None and result.status not in ok:
                failed = result
        if finished and failed is not None:
            raise psycopg.errors.error_from_result(failed, encoding=encoding)


class _Opened:
    """A described statement: its plan (None: it returns no rows) and the SQL to COPY."""

    def __init__(self, session: Session, target: Target, options: dict[str, Any]) -> None:
        import psycopg

        statement, parameters = sent(session, target)
        raw = session.connection().connection.driver_connection
        assert isinstance(raw, psycopg.Connection)
        self.raw, self.target = raw, target
        self.sql = psycopg.ClientCursor(raw).mogrify(statement, parameters)
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

    def blocks(self, plan: ReadPlan, block_bytes: int) -> Iterator[bytearray | pa.Buffer]:
        """COPY the rows out in blocks of whole rows, with the read settings in place."""
        import psycopg

        query = plan.copy_query(self.sql, wraps_cleanly=self.target.wraps_cleanly)
        message = copy_message(query)
        try:
            yield from rows_out(self.raw, message, block_bytes)
        except psycopg.Error as exc:
            raise driver_error(exc, message, self.target) from exc


def parse_ahead(
    blocks: Iterator[bytearray | pa.Buffer], plan: ReadPlan, *, streamed: bool = False
) -> Generator[pa.Table, None, None]:
    """Parse ``blocks`` in order, on a thread of the read's own while the next ones arrive.

    At most :data:`AHEAD` blocks wait for the parser (past it, the pull waits, and the server
    with it). The thread starts with the second block, so a result of one block (every small
    one) is parsed on the calling thread with no thread to start; it ends with the read
    (Arrow's allocator keeps the freed pages of a live thread).
    """
    parse = plan.parse_streamed if streamed else plan.parse
    first = next(blocks, None)
    if first is None:
        return
    second = next(blocks, None)
    if second is None:
        yield parse(first)
        return
    parser = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dbnb-parse")
    try:
        pending = deque([parser.submit(parse, first), parser.submit(parse, second)])
        del first, second
        for block in blocks:
            pending.append(parser.submit(parse, block))
            del block
            while pending and (pending[0].done() or len(pending) > AHEAD + 1):
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        parser.shutdown(cancel_futures=True)


def _read(opened: _Opened, plan: ReadPlan) -> Frame:
    return plan.combine(list(parse_ahead(opened.blocks(plan, PIPELINED), plan)))


def _no_rows(target: Target) -> FrameError:
    what = f"this {target.statement.keyword or 'statement'}" if target.statement else "it"
    return FrameError(
        f"a frame is read from a statement that returns rows, and {what} returns none; nothing "
        "ran: run it with db.execute() (or add RETURNING)"
    )


def run_statement(
    session: Session, target: Target, **options: Any
) -> tuple[Frame | None, int]:
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
        frame = fetched_frame(session.execute(target.executable), opened.plan.output)
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
    json_as: JsonAs = "object",
    backend: Backend = "pandas",
) -> Frame:
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
                                  decimal=decimal, uuid_as=uuid_as, json_as=json_as,
                                  backend=backend)
    target = stmt if isinstance(stmt, Target) else target_of(stmt, params, what="read_frame()")
    options = options_of(dtype_backend, decimal, uuid_as, json_as, backend)
    opened = _Opened(session, target, options)
    if opened.plan is None:
        raise _no_rows(target)
    if not target.copyable:
        return fetched_frame(session.execute(target.executable), backend)
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
    json_as: JsonAs = "object",
    backend: Backend = "pandas",
    progress: bool | None = None,
) -> Iterator[Frame]:
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
            decimal=decimal, uuid_as=uuid_as, json_as=json_as, backend=backend,
            progress=progress,
        )
        return
    target = stmt if isinstance(stmt, Target) else target_of(stmt, params, what="iter_frames()")
    if chunksize < 1:
        raise FrameError(f"chunksize must be a positive number of rows, not {chunksize!r}")
    nested = session.begin_nested()
    done = False
    try:
        options = options_of(dtype_backend, decimal, uuid_as, json_as, backend)
        opened = _Opened(session, target, options)
        if opened.plan is None or not target.copyable:
            raise _no_rows(target) if opened.plan is None else FrameError(
                "iter_frames() streams what COPY can read (SELECT, VALUES, WITH, ... RETURNING); "
                "read this statement with read_frame()"
            )
        chunker = TableChunker(opened.plan, chunksize)
        bar = Progress(progress, desc="reading")
        if bar.wants_total:
            bar.set_total(opened.planned_rows(), estimate=True)
        stream = opened.blocks(opened.plan, STREAM_BLOCK)
        tables = parse_ahead(stream, opened.plan, streamed=True)
        try:
            with bar:
                for table in tables:
                    for frame in chunker.feed(table):
                        bar.update(len(frame))
                        yield frame
                    del table
                for frame in chunker.finish():
                    bar.update(len(frame))
                    yield frame
        finally:
            tables.close()
            stream.close()  # type: ignore[attr-defined]
        done = True
    finally:
        if done:
            nested.commit()
        elif nested.is_active:
            nested.rollback()
