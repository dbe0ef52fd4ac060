"""Describe a statement without running it: the protocol's Parse + Describe, on each driver.

The server parses the SQL as the unnamed prepared statement and answers with its result's
columns (or "no data"), so a syntax error is reported as one and nothing is executed. Nothing
wraps the user's SQL, so trailing semicolons, comments and data-modifying CTEs describe as
written. Unnamed statements only, inside the caller's transaction: this works behind PgBouncer
in transaction mode.

On psycopg the describe is one round trip: the transaction's ``BEGIN`` (when the session has
not sent one yet: psycopg would send it before its next statement anyway), Parse and Describe
go out together in libpq's pipeline mode.
"""

from __future__ import annotations

import select
from typing import Any

from dbnb.frames.columns import NUMERIC, ResultColumn

__all__ = ["adescribe", "begin_command", "describe"]


def _column(name: str, oid: int, typmod: int) -> ResultColumn:
    if oid == NUMERIC and typmod >= 4:  # numeric's typmod: ((precision << 16) | scale) + 4
        packed = typmod - 4
        return ResultColumn(name, oid, packed >> 16, packed & 0xFFFF)
    return ResultColumn(name, oid)


def begin_command(raw: Any) -> bytes | None:
    """The ``BEGIN`` psycopg would send before its next statement on ``raw``, or None.

    None when the connection is in autocommit mode or already inside a transaction. The
    transaction characteristics are psycopg's (isolation level, read only, deferrable), so a
    transaction begun here is the one SQLAlchemy and psycopg expect.
    """
    from psycopg import pq

    if raw.autocommit or raw.pgconn.transaction_status != pq.TransactionStatus.IDLE:
        return None
    parts = ["BEGIN"]
    if raw.isolation_level is not None:
        parts.append("ISOLATION LEVEL " + raw.isolation_level.name.replace("_", " "))
    if raw.read_only is not None:
        parts.append("READ ONLY" if raw.read_only else "READ WRITE")
    if raw.deferrable is not None:
        parts.append("DEFERRABLE" if raw.deferrable else "NOT DEFERRABLE")
    return " ".join(parts).encode()


def _await_results(pgconn: Any) -> None:
    """Send what is queued and wait (without the GIL) until the answers are in."""
    while pgconn.flush():
        select.select([], [pgconn.socket], [])
    pgconn.consume_input()
    while pgconn.is_busy():
        select.select([pgconn.socket], [], [])
        pgconn.consume_input()


def describe(raw: Any, sql: str) -> list[ResultColumn] | None:
    """Parse and describe ``sql`` on a psycopg connection; ``None`` when it returns no rows.

    Begins the transaction first when psycopg would (see :func:`begin_command`), in the same
    round trip.

    Raises:
        psycopg.Error: the server rejected the statement (a syntax error, an unknown column...).
    """
    import psycopg
    import psycopg.errors
    from psycopg import pq

    pgconn, encoding = raw.pgconn, raw.info.encoding
    begin = begin_command(raw)
    if not psycopg.Pipeline.is_supported():  # libpq < 14: one request at a time
        return _describe_serially(raw, sql, begin)
    pgconn.enter_pipeline_mode()
    try:
        if begin is not None:
            pgconn.send_query_params(begin, None)
        pgconn.send_prepare(b"", sql.encode(encoding))
        pgconn.send_describe_prepared(b"")
        pgconn.pipeline_sync()
        results = []
        while True:
            _await_results(pgconn)
            result = pgconn.get_result()
            if result is None:
                continue  # the end of one request's results
            if result.status == pq.ExecStatus.PIPELINE_SYNC:
                break
            results.append(result)
    finally:
        pgconn.exit_pipeline_mode()
    for result in results:
        if result.status not in (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.PIPELINE_ABORTED):
            raise psycopg.errors.error_from_result(result, encoding=encoding)
    described = results[-1]
    if described.nfields == 0:
        return None
    return _columns(described, encoding)


def _describe_serially(raw: Any, sql: str, begin: bytes | None) -> list[ResultColumn] | None:
    import psycopg.errors
    from psycopg import pq

    pgconn, encoding = raw.pgconn, raw.info.encoding

    def checked(result: Any) -> Any:
        if result.status != pq.ExecStatus.COMMAND_OK:
            raise psycopg.errors.error_from_result(result, encoding=encoding)
        return result

    if begin is not None:
        checked(pgconn.exec_(begin))
    checked(pgconn.prepare(b"", sql.encode(encoding)))
    result = checked(pgconn.describe_prepared(b""))
    return _columns(result, encoding) if result.nfields else None


def _columns(result: Any, encoding: str) -> list[ResultColumn]:
    return [
        _column((result.fname(i) or b"").decode(encoding), result.ftype(i), result.fmod(i))
        for i in range(result.nfields)
    ]


async def adescribe(raw: Any, sql: str) -> tuple[list[ResultColumn] | None, tuple[Any, ...]]:
    """Parse and describe ``sql`` on an asyncpg connection: its columns and parameter types.

    asyncpg's attributes carry no typmod, so numeric columns come without precision here.

    Raises:
        asyncpg.PostgresError: the server rejected the statement.
    """
    prepared = await raw.prepare(sql, name="")  # name="": the unnamed statement
    attributes = prepared.get_attributes()
    columns = [ResultColumn(a.name, a.type.oid) for a in attributes] if attributes else None
    return columns, tuple(prepared.get_parameters())
