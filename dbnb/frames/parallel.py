"""Partitioned reads on psycopg: one read, several connections, one exported snapshot.

The reading session plans the partitions (:mod:`dbnb.frames.partitions`: one query for the
table's pages or the key's statistics), learns what each would send (its ORM hooks and
soft-delete criteria apply to every one), exports its snapshot and describes the result once.
Then each partition goes to a connection of the same engine on its own thread, as one message
(begin on the snapshot, COPY, commit); the thread pulls and parses its blocks (libpq and
pyarrow release the GIL while they work) and the blocks are concatenated in partition order.

When partitions could not give the same rows as one query, the read falls back to one stream
on the session: the session's transaction wrote rows (other connections cannot see them), or
the server predates TID range scans (PostgreSQL 14), or there is nothing to cut at.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, Table, text
from sqlalchemy.sql import Executable

from dbnb.errors import FrameError
from dbnb.frames.describe import describe
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
from dbnb.frames.query import PIPELINED, Target, driver_error, plan_for, sent
from dbnb.frames.read import read_frame, rows_out

if TYPE_CHECKING:
    import pyarrow as pa
    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Session

    from dbnb.frames.plan import Frame

__all__ = ["cut", "plan_partitioned", "plan_reads", "read_partition", "read_partitioned"]


def cut(session: Session, stmt: Select[Any], table: Table, n: int,
         key: OrderKey | None) -> list[Select[Any]]:
    """``stmt`` cut into ``n`` ranges: of ``table``'s pages, or of ``key`` at its statistics."""
    if key is None:
        pages, version = session.execute(text(pages_query(table))).one()
        if int(version) < MIN_TID_RANGE_VERSION:
            return [stmt]
        return ctid_ranges(stmt, table, int(pages), n)
    bounds = session.execute(bounds_query(key, table)).scalar()
    return key_ranges(stmt, key, list(bounds or []), n)


def plan_partitioned(
    session: Session,
    stmt: Select[Any],
    table: Table,
    partitions: int,
    *,
    key: OrderKey | None = None,
    **options: Any,
) -> PartitionedRead | None:
    """Cut ``stmt`` (a SELECT of ``table``) into partitions and export the session's snapshot.

    Returns what any connection to the server needs to read each partition while the
    session's transaction stays open (:func:`read_partition`), or None when the read must be
    one stream on the session (see the module's docstring).
    """
    parts = cut(session, stmt, table, partitions, key)
    if len(parts) == 1:
        return None
    targets = [Target(p) for p in parts]
    what = [sent(session, t) for t in targets]  # before the snapshot: an autoflush writes
    snapshot, wrote = session.execute(text(EXPORT_SNAPSHOT)).one()
    if wrote:
        return None
    return _described(session, targets, what, str(snapshot), options)


def plan_reads(session: Session, parts: Sequence[Executable], **options: Any) -> PartitionedRead:
    """Plan ``parts`` (one SELECT per partition) as reads that run later, each on its own.

    No snapshot is shared: each partition sees what is committed when it runs (Dask tasks
    run when the graph is computed, perhaps many times). What the session would send is
    kept, its ORM hooks and soft-delete criteria applied; the first part is described once.

    Raises:
        FrameError: the session's transaction wrote rows, which other connections cannot
            see: commit first.
    """
    targets = [Target(p) for p in parts]
    what = [sent(session, t) for t in targets]
    if session.execute(text(WROTE)).scalar():
        raise FrameError(WROTE_MESSAGE)
    return _described(session, targets, what, "", options)


def _described(
    session: Session,
    targets: Sequence[Target],
    what: Sequence[tuple[str, Any]],
    snapshot: str,
    options: dict[str, Any],
) -> PartitionedRead:
    """The partitions' COPY queries (values inlined), typed by describing the first once."""
    import psycopg

    raw = session.connection().connection.driver_connection
    assert isinstance(raw, psycopg.Connection)
    sqls = [psycopg.ClientCursor(raw).mogrify(statement, params) for statement, params in what]
    try:
        columns = describe(raw, sqls[0])
    except psycopg.Error as exc:
        raise driver_error(exc, sqls[0]) from exc
    if columns is None:
        raise FrameError("the statement returns no rows, so it has no partitions to read")
    plan = plan_for(targets[0], columns, options)
    return PartitionedRead(
        snapshot,
        tuple(plan.copy_query(sql) for sql in sqls),
        tuple(plan.columns),
        tuple(sorted(options.items())),
    )


def read_partitioned(
    session: Session,
    stmt: Select[Any],
    table: Table,
    partitions: int,
    *,
    key: OrderKey | None = None,
    **options: Any,
) -> Frame:
    """Read ``stmt`` (a SELECT of ``table``) in ``partitions`` streams on one snapshot.

    The rows are those of ``stmt`` at one moment, as one read would give them (in ``key``'s
    order when given: its leading ORDER BY column). Uses ``partitions`` more connections of
    the session's engine for the time of the read; the session's own transaction stays open
    meanwhile, and commits nothing.
    """
    read = plan_partitioned(session, stmt, table, partitions, key=key, **options)
    if read is None:
        return read_frame(session, stmt, **options)
    engine = session.connection().engine
    count = len(read.queries)
    with ThreadPoolExecutor(count, thread_name_prefix="dbnb-partition") as pool:
        futures = [pool.submit(_on_new_connection, engine, read, i) for i in range(count)]
        tables = [table for future in futures for table in future.result()]
        for future in futures:
            future.result().clear()  # the futures hold these lists: the blocks are the frame's
    return read.plan.combine(tables)


def _on_new_connection(engine: Engine, read: PartitionedRead, index: int) -> list[pa.Table]:
    with engine.connect() as conn:
        return read_partition(conn.connection.driver_connection, read, index)


def read_partition(raw: Any, read: PartitionedRead, index: int) -> list[pa.Table]:
    """Read partition ``index`` of ``read`` on a psycopg connection: its parsed blocks, in order.

    The connection must be idle (no transaction open): the partition begins its own, on the
    shared snapshot, and commits it. What a task elsewhere runs to read one partition.
    """
    import psycopg

    plan = read.plan
    message = read.message(index)
    try:
        return [plan.parse(block) for block in rows_out(raw, message, PIPELINED)]
    except psycopg.Error as exc:
        raise driver_error(exc, message) from exc
