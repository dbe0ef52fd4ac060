"""Partitioned reads on asyncpg: the awaitable twin of :mod:`dbnb.frames.parallel`.

Same plan, same snapshot, same fallbacks; the partitions' COPYs run concurrently on
connections of the session's async engine (``asyncio.gather``), their blocks parsed on worker
threads while the event loop keeps receiving.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, Table, text
from sqlalchemy.sql import Executable

from dbnb.errors import FrameError
from dbnb.frames.ablocks import BlockParser
from dbnb.frames.aread import aread_frame, inlined
from dbnb.frames.describe import adescribe
from dbnb.frames.partitions import (
    EXPORT_SNAPSHOT,
    MIN_TID_RANGE_VERSION,
    WROTE,
    WROTE_MESSAGE,
    OrderKey,
    PartitionedRead,
    bounds_query,
    ctid_ranges,
    key_ranges,
    pages_query,
)
from dbnb.frames.query import SET_SETTINGS, Target, asent, driver_error, plan_for

if TYPE_CHECKING:
    import pyarrow as pa
    from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

    from dbnb.frames.plan import Frame

__all__ = ["acut", "aplan_partitioned", "aplan_reads", "aread_partition", "aread_partitioned"]


async def acut(session: AsyncSession, stmt: Select[Any], table: Table, n: int,
                key: OrderKey | None) -> list[Select[Any]]:
    """Await :func:`dbnb.frames.parallel.cut` (asyncpg)."""
    if key is None:
        pages, version = (await session.execute(text(pages_query(table)))).one()
        if int(version) < MIN_TID_RANGE_VERSION:
            return [stmt]
        return ctid_ranges(stmt, table, int(pages), n)
    bounds = (await session.execute(bounds_query(key, table))).scalar()
    return key_ranges(stmt, key, list(bounds or []), n)


async def aplan_partitioned(
    session: AsyncSession,
    stmt: Select[Any],
    table: Table,
    partitions: int,
    *,
    key: OrderKey | None = None,
    **options: Any,
) -> PartitionedRead | None:
    """Cut ``stmt`` into partitions and export the session's snapshot (asyncpg).

    The async twin of :func:`dbnb.frames.parallel.plan_partitioned`.
    """
    parts = await acut(session, stmt, table, partitions, key)
    if len(parts) == 1:
        return None
    targets = [Target(p) for p in parts]
    what = [await asent(session, t) for t in targets]  # before the snapshot: an autoflush writes
    snapshot, wrote = (await session.execute(text(EXPORT_SNAPSHOT))).one()
    if wrote:
        return None
    return await _adescribed(session, targets, what, str(snapshot), options)


async def aplan_reads(
    session: AsyncSession, parts: Sequence[Executable], **options: Any
) -> PartitionedRead:
    """Await :func:`dbnb.frames.parallel.plan_reads` (asyncpg describes and inlines)."""

    targets = [Target(p) for p in parts]
    what = [await asent(session, t) for t in targets]
    if (await session.execute(text(WROTE))).scalar():
        raise FrameError(WROTE_MESSAGE)
    return await _adescribed(session, targets, what, "", options)


async def _adescribed(
    session: AsyncSession,
    targets: Sequence[Target],
    what: Sequence[tuple[str, Any]],
    snapshot: str,
    options: dict[str, Any],
) -> PartitionedRead:
    """The partitions' COPY queries (values inlined by the server's own types)."""
    import asyncpg

    raw = (await (await session.connection()).get_raw_connection()).driver_connection
    sqls: list[str] = []
    columns = None
    for statement, parameters in what:
        try:
            described, types = await adescribe(raw, statement)
            sqls.append(await inlined(raw, statement, types, parameters))
        except asyncpg.PostgresError as exc:
            raise driver_error(exc, statement) from exc
        columns = columns or described
    if columns is None:
        raise FrameError("the statement returns no rows, so it has no partitions to read")
    plan = plan_for(targets[0], columns, options)
    return PartitionedRead(
        snapshot,
        tuple(plan.copy_query(sql) for sql in sqls),
        tuple(plan.columns),
        tuple(sorted(options.items())),
    )


async def aread_partitioned(
    session: AsyncSession,
    stmt: Select[Any],
    table: Table,
    partitions: int,
    *,
    key: OrderKey | None = None,
    **options: Any,
) -> Frame:
    """Await ``stmt`` (a SELECT of ``table``) in ``partitions`` streams on one snapshot.

    The async twin of :func:`dbnb.frames.parallel.read_partitioned`.
    """
    read = await aplan_partitioned(session, stmt, table, partitions, key=key, **options)
    if read is None:
        return await aread_frame(session, stmt, **options)
    engine = (await session.connection()).engine
    found = await asyncio.gather(
        *(_on_new_connection(engine, read, i) for i in range(len(read.queries)))
    )
    tables = [table for part in found for table in part]
    for part in found:
        part.clear()  # the tasks hold these lists: the blocks must be the frame's alone
    return read.plan.combine(tables)


async def _on_new_connection(engine: AsyncEngine, read: PartitionedRead, index: int
                             ) -> list[pa.Table]:
    async with engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        return await aread_partition(raw, read, index)


async def aread_partition(raw: Any, read: PartitionedRead, index: int) -> list[pa.Table]:
    """Read partition ``index`` of ``read`` on an asyncpg connection: its parsed blocks.

    The connection must be idle: the partition begins its own transaction on the shared
    snapshot and ends it (commit, or rollback after an error).
    """
    import asyncpg

    parser = BlockParser(read.plan)
    query = read.queries[index]
    try:
        await raw.execute(f"{read.begin()}; {SET_SETTINGS}")
        await raw.copy_from_query(query, output=parser.sink, format="csv")
        await raw.execute("COMMIT")
    except asyncpg.PostgresError as exc:
        await raw.execute("ROLLBACK")
        raise driver_error(exc, query) from exc
    return await parser.tables()
