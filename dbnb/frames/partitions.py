"""Partitioned reads, planned: one statement cut into ranges that read as one consistent result.

IO-free (the runners are :mod:`dbnb.frames.parallel` and :mod:`dbnb.frames.aparallel`). A read
of one table is cut into ``n`` statements, each the original with one more condition:

- rows in the server's order: ``ctid`` ranges of equal numbers of pages (PostgreSQL 14+ reads
  each with a TID range scan, so every page is read once in all);
- rows ordered by a column: ranges of that column, cut at its statistics' histogram bounds, so
  the partitions, each ordered, concatenate in order (NULLs where the ordering puts them).

Each partition runs on its own connection, in a ``REPEATABLE READ`` transaction that imports
the snapshot the reading session exported (``pg_export_snapshot()`` / ``SET TRANSACTION
SNAPSHOT``): together they are exactly the rows of one query at one moment, whatever commits
meanwhile. :class:`PartitionedRead` carries what a partition needs (picklable: a task on
another process or machine can read one, given a connection to the same server). Dask
partitions (:func:`dbnb.frames.parallel.plan_reads`) share no snapshot: their tasks run
later, perhaps many times and on replicas, long after any exporting transaction could stay
open, so each reads what is committed when it starts.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Column, ColumnElement, Select, Table, and_, literal_column, or_, text
from sqlalchemy.sql.elements import UnaryExpression
from sqlalchemy.sql.operators import asc_op, desc_op

from dbnb.errors import FrameError
from dbnb.frames.columns import ResultColumn
from dbnb.frames.query import copy_message

if TYPE_CHECKING:
    from dbnb.frames.plan import ReadPlan

__all__ = [
    "EXPORT_SNAPSHOT",
    "MIN_TID_RANGE_VERSION",
    "WROTE",
    "WROTE_MESSAGE",
    "OrderKey",
    "PartitionedRead",
    "bounds_query",
    "check_partitions",
    "ctid_ranges",
    "even_cuts",
    "key_ranges",
    "order_key",
    "pages_query",
    "value_ranges",
]

#: What the reading session runs once its statements are ready: the snapshot to share, and
#: whether its transaction wrote anything (other connections could not see that: one stream).
EXPORT_SNAPSHOT = "SELECT pg_export_snapshot(), txid_current_if_assigned() IS NOT NULL"
#: Whether the session's transaction has written anything, and what to say when partitions
#: read later on other connections would miss it.
WROTE = "SELECT txid_current_if_assigned() IS NOT NULL"
WROTE_MESSAGE = (
    "this session's transaction has written rows that the partitions, read on other "
    "connections, could not see: commit first (or read them with to_frame())"
)
MIN_TID_RANGE_VERSION = 140000  # TID range scans; before them each ctid range scans it all


@functools.cache
def _postgresql() -> Any:
    from sqlalchemy.dialects import postgresql  # on first use: import dbnb need not load it

    return postgresql.dialect()  # type: ignore[no-untyped-call]


def _quote_table(table: Table) -> str:
    quoted: str = _postgresql().identifier_preparer.format_table(table)
    return quoted


@dataclass(frozen=True)
class OrderKey:
    """The column a read is ordered by first, and which way (NULLs where PostgreSQL puts them)."""

    column: Column[Any]
    descending: bool


def check_partitions(partitions: int | None, *, limit: int | None, offset: int | None) -> int:
    """The number of streams to read with (1: the ordinary read).

    Raises:
        FrameError: not a positive number, or asked for with ``limit`` / ``offset``.
    """
    if partitions is None:
        return 1
    if not isinstance(partitions, int) or isinstance(partitions, bool) or partitions < 1:
        raise FrameError(f"partitions must be a positive number of streams, not {partitions!r}")
    if partitions > 1 and (limit is not None or offset is not None):
        raise FrameError(
            "partitions= reads the whole result in ranges, so it cannot go with limit= or "
            "offset=; drop one of them"
        )
    return partitions


def order_key(clauses: list[ColumnElement[Any]], table: Table) -> OrderKey | None:
    """The leading ORDER BY column of ``table`` and its direction; None when unordered.

    Raises:
        FrameError: the ordering does not start with a plain column of the table (or names
            where NULLs go), so ranges could not keep it.
    """
    if not clauses:
        return None
    first: Any = clauses[0]
    descending = False
    if isinstance(first, UnaryExpression) and first.modifier in (asc_op, desc_op):
        descending = first.modifier is desc_op
        first = first.element
    if isinstance(first, Column) and first.table is table:
        return OrderKey(first, descending)
    raise FrameError(
        "partitions= keeps an ordering that starts with a column of the table (ascending or "
        "descending); order by such a column, or sort the frame after reading it"
    )


def pages_query(table: Table) -> str:
    """How many pages ``table`` has now (the ctid ranges cut them)."""
    name = _quote_table(table).replace("'", "''")
    return (
        f"SELECT pg_relation_size('{name}'::regclass) / current_setting('block_size')::int, "
        "current_setting('server_version_num')::int"
    )


def bounds_query(key: OrderKey, table: Table) -> Any:
    """The histogram bounds of the key column (typed as it is), from the table's statistics."""
    typed = key.column.type.compile(dialect=_postgresql())
    return text(
        f"SELECT histogram_bounds::text::{typed}[] AS bounds FROM pg_stats "
        "WHERE schemaname = coalesce(:schema, current_schema()) AND tablename = :table "
        "AND attname = :column"
    ).bindparams(schema=table.schema, table=table.name, column=key.column.name)


def ctid_ranges(stmt: Select[Any], table: Table, pages: int, n: int) -> list[Select[Any]]:
    """``stmt`` cut into ``n`` ranges of pages of ``table`` (the first and last open-ended)."""
    ctid: ColumnElement[Any] = literal_column(f"{_quote_table(table)}.ctid")
    cuts = sorted({pages * k // n for k in range(1, n)} - {0})
    edges: list[int | None] = [None, *cuts, None]
    parts = []
    for low, high in itertools.pairwise(edges):
        conditions = []
        if low is not None:
            conditions.append(ctid >= literal_column(f"'({low},0)'::tid"))
        if high is not None:
            conditions.append(ctid < literal_column(f"'({high},0)'::tid"))
        parts.append(stmt.where(and_(*conditions)) if conditions else stmt)
    return parts


def key_ranges(stmt: Select[Any], key: OrderKey, bounds: list[Any], n: int) -> list[Select[Any]]:
    """``stmt`` cut into up to ``n`` ranges of the key column, in the read's order.

    ``bounds`` are the column's histogram bounds (ascending); NULLs go with the last range of
    an ascending order and the first of a descending one, where PostgreSQL sorts them.
    """
    values = [v for v in bounds if v is not None]
    cuts: list[Any] = []
    for k in range(1, n):
        cut = values[len(values) * k // n] if values else None
        if cut is not None and (not cuts or cut > cuts[-1]):
            cuts.append(cut)
    return value_ranges(stmt, key.column, cuts, descending=key.descending)


def value_ranges(
    stmt: Select[Any], column: ColumnElement[Any], cuts: list[Any], *, descending: bool = False
) -> list[Select[Any]]:
    """``stmt`` cut at ``cuts`` (ascending, distinct) of ``column``: ``len(cuts) + 1`` ranges.

    The first range is open below, the last open above and holding the NULLs; ``descending``
    lists the ranges from the top (where a descending order puts NULLs first).
    """
    if not cuts:
        return [stmt]  # no statistics (or one value): nothing to cut at
    ranges: list[ColumnElement[bool]] = [column < cuts[0]]
    ranges += [and_(column >= low, column < high) for low, high in itertools.pairwise(cuts)]
    ranges.append(or_(column >= cuts[-1], column.is_(None)))  # the top range holds the NULLs
    if descending:
        ranges.reverse()
    return [stmt.where(r) for r in ranges]


def even_cuts(low: Any, high: Any, n: int) -> list[Any] | None:
    """``n - 1`` evenly spaced cuts between ``low`` and ``high`` (numbers, dates, timestamps).

    None when the values cannot be spaced evenly (text, UUIDs...): cut at quantiles instead.
    Repeated cuts (a range narrower than ``n`` integers) are kept once.
    """
    if low is None or high is None or isinstance(low, bool):
        return [] if low is None or high is None else None
    try:
        span = high - low
        if isinstance(low, int):
            points = [low + span * k // n for k in range(1, n)]
        else:
            points = [low + span * k / n for k in range(1, n)]
    except TypeError:
        return None
    return sorted({p for p in points if low < p <= high})


@dataclass(frozen=True)
class PartitionedRead:
    """One read cut into partitions: the shared snapshot, the plan, one query per partition.

    Picklable and independent of any session: a worker given a connection to the same server
    reads partition ``i`` with :meth:`message` (while the exporting transaction is open).
    """

    snapshot: str
    queries: tuple[str, ...]  # ready to COPY: parameters inlined, columns as their wires
    columns: tuple[ResultColumn, ...]
    options: tuple[tuple[str, Any], ...]

    @property
    def plan(self) -> ReadPlan:
        """The read plan every partition parses with (built once per process)."""
        from dbnb.frames.plan import cached_plan

        return cached_plan(self.columns, self.options)

    def begin(self) -> str:
        """The start of a partition's transaction: read only, on the shared snapshot if any.

        Without a snapshot (``""``: partitions read later, each on its own, as Dask tasks do)
        each partition sees the rows committed when it starts.
        """
        start = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY"
        if not self.snapshot:
            return start
        snapshot = self.snapshot.replace("'", "''")
        return f"{start}; SET TRANSACTION SNAPSHOT '{snapshot}'"

    def message(self, index: int) -> str:
        """Partition ``index`` as one message: begin on the snapshot, COPY, commit."""
        return f"{self.begin()}; {copy_message(self.queries[index])}; COMMIT"
