"""Describe a statement without running it: the protocol's Parse + Describe, on each driver.

The server parses the SQL as the unnamed prepared statement and answers with its result's
columns (or "no data"), so a syntax error is reported as one and nothing is executed. Nothing
wraps the user's SQL, so trailing semicolons, comments and data-modifying CTEs describe as
written. Unnamed statements only, inside the caller's transaction: this works behind PgBouncer
in transaction mode. The readers call :func:`describe` / :func:`adescribe` through one seam, so
a faster strategy (reading small results in one round trip) can replace them.
"""

from __future__ import annotations

from typing import Any

from dbnb.frames.dtypes import ResultColumn

__all__ = ["adescribe", "describe"]

_NUMERIC = 1700


def _column(name: str, oid: int, typmod: int) -> ResultColumn:
    if oid == _NUMERIC and typmod >= 4:  # numeric's typmod: ((precision << 16) | scale) + 4
        packed = typmod - 4
        return ResultColumn(name, oid, packed >> 16, packed & 0xFFFF)
    return ResultColumn(name, oid)


def describe(raw: Any, sql: str) -> list[ResultColumn] | None:
    """Parse and describe ``sql`` on a psycopg connection; ``None`` when it returns no rows.

    Raises:
        psycopg.Error: the server rejected the statement (a syntax error, an unknown column...).
    """
    import psycopg.errors
    from psycopg import pq

    pgconn, encoding = raw.pgconn, raw.info.encoding

    def checked(result: Any) -> Any:
        if result.status != pq.ExecStatus.COMMAND_OK:
            raise psycopg.errors.error_from_result(result, encoding=encoding)
        return result

    checked(pgconn.prepare(b"", sql.encode(encoding)))
    result = checked(pgconn.describe_prepared(b""))
    if result.nfields == 0:
        return None
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
