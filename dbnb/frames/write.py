"""COPY DataFrames into tables: append or upsert, sync (psycopg) and async (asyncpg).

:mod:`dbnb.frames.convert` checks and converts the frame before any I/O. The rows are then
copied in, in parts rendered on a worker thread, inside a SAVEPOINT of the session's
transaction: a failure writes nothing and leaves the caller's transaction usable; the caller
commits. They go in PostgreSQL's binary format when every column has one and the load is big
enough (:mod:`dbnb.frames.binary_copy`: the server's types are asked first), else as CSV.
Upserts (``on_conflict=``) and absent columns with client-side SQL defaults go through a
temporary table, then ``INSERT ... SELECT`` (``ON CONFLICT`` on ``on``, by default the primary
key).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import Table, column, select, table, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.sql import Executable

from dbnb.dialects import capabilities
from dbnb.display.progress import Progress
from dbnb.driver_errors import translate
from dbnb.errors import FrameError
from dbnb.frames import convert
from dbnb.frames.binary_copy import HEADER, MIN_ROWS, TRAILER, BinaryLoad, binary_load
from dbnb.frames.load_input import checked_load
from dbnb.frames.query import driver_error

if TYPE_CHECKING:
    import pyarrow as pa
    from sqlalchemy.ext.asyncio import AsyncSession
    from sqlalchemy.orm import Session

__all__ = ["OnConflict", "awrite_frame", "write_frame"]

OnConflict = Literal["ignore", "update"] | None
_log = logging.getLogger("dbnb.frames")
_AHEAD = 2  # parts rendered ahead of the one being sent
_SHOW_ZONE = "SELECT current_setting('TimeZone')"
_SET_ZONE = "SELECT set_config('TimeZone', %s, true)"
_ASET_ZONE = "SELECT set_config('TimeZone', $1, true)"
_ROWCOUNT = {"preserve_rowcount": True}  # SQLAlchemy keeps INSERT counts only when asked
# The target's column types as the server has them (a domain as its base type), for the choice
# between binary and CSV; no rows when the table does not exist (the COPY then says so).
_TYPES = (
    "SELECT a.attname, coalesce(nullif(t.typbasetype, 0), t.oid)::int FROM pg_attribute a "
    "JOIN pg_type t ON t.oid = a.atttypid WHERE a.attrelid = to_regclass({}) "
    "AND a.attnum > 0 AND NOT a.attisdropped"
)
_quote = postgresql.dialect().identifier_preparer.quote  # type: ignore[no-untyped-call]


class _Load:
    """One load's plan, Arrow data and statements, built before anything is sent."""

    def __init__(
        self,
        target: Any,
        frame: Any,
        on_conflict: OnConflict,
        on: list[str] | None,
        naive_as: str | None,
    ) -> None:
        self.table, self.plan, self.data = checked_load(target, frame, on_conflict, on, naive_as)
        self.rows: int = self.data.num_rows
        staged = on_conflict is not None or self.plan.sql_defaults
        self.staging = f"dbnb_load_{uuid.uuid4().hex[:12]}" if staged else None
        self.upsert = self._upsert(on_conflict, on) if self.staging else None
        schema = self.table.schema
        self.schema = None if self.staging else schema
        self.name = self.staging or self.table.name
        self.qualified = (f"{_quote(schema)}." if schema else "") + _quote(self.table.name)
        #: Set by :meth:`choose_format` when every column can go in binary.
        self.binary: BinaryLoad | None = None
        self.columns = list(self.plan.columns)
        self.copy = self._copy_sql("csv")

    @property
    def wants_types(self) -> bool:
        """True when the load is big enough for binary: ask the server the column types."""
        return self.rows >= MIN_ROWS

    def choose_format(self, types: list[tuple[str, int]] | None) -> None:
        """Go binary when the server's ``types`` (name, type OID) allow every column."""
        self.binary = binary_load(self.data, dict(types or ()), self.plan.columns)
        if self.binary is not None:
            self.columns = [self.plan.columns[i] for i in self.binary.order]
            self.copy = self._copy_sql("binary")
            _log.debug("loading %d rows into %s as binary COPY", self.rows, self.table.name)

    def _copy_sql(self, format_: str) -> str:
        name = (f"{_quote(self.schema)}." if self.schema else "") + _quote(self.name)
        cols = ", ".join(_quote(c) for c in self.columns)
        return f"COPY {name} ({cols}) FROM STDIN (FORMAT {format_})"

    def parts(self) -> tuple[list[pa.Table], Callable[[pa.Table], bytes]]:
        """The slices to render and how to render one (binary or CSV)."""
        if self.binary is not None:
            return convert.parts(self.binary.data), self.binary.render
        return convert.parts(self.data), convert.render_csv

    def staging_sql(self) -> str:
        """CREATE the temporary table: the target's types for the loaded columns, no rows."""
        schema = f"{_quote(self.table.schema)}." if self.table.schema else ""
        cols = ", ".join(_quote(c) for c in self.plan.columns)
        assert self.staging is not None
        return (
            f"CREATE TEMPORARY TABLE {_quote(self.staging)} ON COMMIT DROP AS "
            f"SELECT {cols} FROM {schema}{_quote(self.table.name)} WITH NO DATA"
        )

    def drop_sql(self) -> str:
        """DROP the temporary table (ON COMMIT DROP covers errors, this covers long sessions)."""
        assert self.staging is not None
        return f"DROP TABLE {_quote(self.staging)}"

    def _upsert(self, on_conflict: OnConflict, on: list[str] | None) -> Executable:
        target = self.table
        by_name = {c.name: c for c in target.columns}
        assert self.staging is not None
        staged = table(self.staging, *(column(c) for c in self.plan.columns))
        # Absent columns whose only default is a client-side SQL expression or sequence get it
        # rendered here (Python callables were filled per row before the COPY).
        rendered = [
            (col, _sql_default(col.default))
            for col in target.columns
            if col.name not in self.plan.columns
            and col.server_default is None
            and col.default is not None
            and (col.default.is_clause_element or col.default.is_sequence)
        ]
        stmt = insert(target).from_select(
            [by_name[c] for c in self.plan.columns] + [col for col, _ in rendered],
            select(*staged.c, *(value for _, value in rendered)),
            include_defaults=False,
        )
        if on_conflict is None:
            return stmt
        keys = list(on) if on is not None else [c.name for c in target.primary_key.columns]
        bad = [k for k in keys if k not in by_name]
        if bad:
            raise FrameError(
                f"on={bad}: not columns of {target.name}; choose from {', '.join(by_name)}"
            )
        # A partial unique index (``WHERE deleted_at IS NULL`` on soft-deletable tables) is
        # only chosen as the arbiter when ON CONFLICT repeats its predicate.
        where = _partial_where(target, keys)
        if on_conflict == "ignore":
            return stmt.on_conflict_do_nothing(index_elements=keys or None, index_where=where)
        if not keys:
            raise FrameError(f"{target.name} has no primary key: pass on=[...] (unique columns)")
        missing = [k for k in keys if k not in self.plan.columns]
        if missing:
            raise FrameError(f"on={keys}: the frame lacks {missing}, needed to find conflicts")
        updates: dict[Any, Any] = {
            by_name[c]: stmt.excluded[by_name[c].key] for c in self.plan.columns if c not in keys
        }
        for col in target.columns:
            onupdate: Any = col.onupdate
            if col not in updates and getattr(onupdate, "is_clause_element", False):
                updates[col] = onupdate.arg  # e.g. updated_at = now() on the rows it updates
        if not updates:
            return stmt.on_conflict_do_nothing(index_elements=keys, index_where=where)
        return stmt.on_conflict_do_update(index_elements=keys, index_where=where, set_=updates)


def _partial_where(target: Table, keys: list[str]) -> Any:
    """The predicate of the partial unique index on exactly ``keys``, if that is the key."""
    for index in target.indexes:
        if index.unique and {c.name for c in index.columns} == set(keys):
            where = index.dialect_options["postgresql"].get("where")
            if where is not None:
                return where
    return None


def _sql_default(default: Any) -> Any:
    """The SQL a client-side default renders as: the expression, or the sequence's nextval."""
    return default.next_value() if default.is_sequence else default.arg


def write_frame(
    session: Session,
    target: Any,
    frame: Any,
    *,
    on_conflict: OnConflict = None,
    on: list[str] | None = None,
    naive_as: str | None = None,
    progress: bool | None = None,
) -> int:
    """Load ``frame`` into ``target`` (a Table or mapped class) through COPY; return rows written.

    ``frame`` is a pandas or polars DataFrame or a ``pyarrow.Table``: polars and Arrow are
    checked and converted as Arrow (:mod:`dbnb.frames.arrowin`), never through pandas.

    Checks run before anything is sent (see :mod:`dbnb.frames.convert`). The COPY runs in a
    SAVEPOINT of the session's transaction: on error nothing is written and the session stays
    usable; the caller commits. ``on_conflict="update"`` / ``"ignore"`` upserts on ``on``
    (default: the primary key); the count is then the rows inserted or updated. SQLite and
    MySQL/MariaDB, which have no COPY, load through :mod:`dbnb.frames.generic_load`.
    """
    if not capabilities(session.get_bind()).copy:
        from dbnb.frames import generic_load

        return generic_load.write_frame(session, target, frame, on_conflict=on_conflict, on=on,
                                        naive_as=naive_as, progress=progress)
    import psycopg

    load = _Load(target, frame, on_conflict, on, naive_as)
    with session.begin_nested():
        raw = session.connection().connection.driver_connection
        assert isinstance(raw, psycopg.Connection)
        try:
            with raw.cursor() as cur:
                if load.wants_types:
                    types = cur.execute(_TYPES.format("%s"), [load.qualified]).fetchall()
                    load.choose_format(types)
                zone = None
                if load.plan.utc and load.binary is None:
                    zone = cur.execute(_SHOW_ZONE).fetchone()
                    cur.execute(_SET_ZONE, ["UTC"])
                if load.staging:
                    cur.execute(load.staging_sql())
                with cur.copy(load.copy) as sink, _bar(progress, load) as bar, ThreadPoolExecutor(
                    max_workers=1, thread_name_prefix="dbnb-render"
                ) as pool:
                    for rows, rendering in _renderings(load, pool):
                        sink.write(rendering.result())
                        bar.update(rows)
                if zone is not None:
                    cur.execute(_SET_ZONE, list(zone))
        except psycopg.Error as exc:
            raise driver_error(exc, load.copy) from exc
        if load.upsert is None:
            return load.rows
        try:
            result = session.execute(load.upsert, execution_options=_ROWCOUNT)
            written: int = result.rowcount  # type: ignore[attr-defined]
            session.execute(text(load.drop_sql()))
        except Exception as exc:
            raise translate(exc)  # noqa: B904 (translate() chains it)
        return int(written)


def _renderings(load: _Load, pool: ThreadPoolExecutor) -> Iterator[tuple[int, Future[bytes]]]:
    """(rows, bytes being rendered) in COPY order: each part goes to ``pool`` ahead of its turn.

    Both shells send from it, the binary format's header and trailer included, so the next
    parts render on the thread while this one is sent.
    """
    if load.binary is not None:
        yield 0, _ready(HEADER)
    parts, render = load.parts()
    pending: deque[tuple[int, Future[bytes]]] = deque()
    for part in parts:
        pending.append((part.num_rows, pool.submit(render, part)))
        if len(pending) > _AHEAD:
            yield pending.popleft()
    yield from pending
    if load.binary is not None:
        yield 0, _ready(TRAILER)


def _ready(data: bytes) -> Future[bytes]:
    done: Future[bytes] = Future()
    done.set_result(data)
    return done


def _bar(progress: bool | None, load: _Load) -> Progress:
    return Progress(progress, total=load.rows, desc=f"loading {load.table.name}")


async def awrite_frame(
    session: AsyncSession,
    target: Any,
    frame: Any,
    *,
    on_conflict: OnConflict = None,
    on: list[str] | None = None,
    naive_as: str | None = None,
    progress: bool | None = None,
) -> int:
    """Await the load of ``frame`` into ``target`` through asyncpg's COPY; return rows written.

    The async twin of :func:`write_frame`: same checks, same SAVEPOINT, same upsert rules.
    """
    if not capabilities(session.get_bind()).copy:
        from dbnb.frames import generic_load

        return await generic_load.awrite_frame(
            session, target, frame, on_conflict=on_conflict, on=on, naive_as=naive_as,
            progress=progress,
        )
    import asyncpg

    load = _Load(target, frame, on_conflict, on, naive_as)
    async with session.begin_nested():
        conn = await session.connection()
        raw = (await conn.get_raw_connection()).driver_connection
        assert raw is not None

        async def chunks(bar: Progress, pool: ThreadPoolExecutor) -> AsyncIterator[bytes]:
            for rows, rendering in _renderings(load, pool):
                yield await asyncio.wrap_future(rendering)
                bar.update(rows)

        try:
            if load.wants_types:
                types = await raw.fetch(_TYPES.format("$1"), load.qualified)
                load.choose_format([(row[0], row[1]) for row in types])
            zone = None
            if load.plan.utc and load.binary is None:
                zone = await raw.fetchval(_SHOW_ZONE)
                await raw.execute(_ASET_ZONE, "UTC")
            if load.staging:
                await raw.execute(load.staging_sql())
            with _bar(progress, load) as bar, ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="dbnb-render"
            ) as pool:
                await raw.copy_to_table(
                    load.name, source=chunks(bar, pool), columns=load.columns,
                    schema_name=load.schema, format="csv" if load.binary is None else "binary",
                )
            if zone is not None:
                await raw.execute(_ASET_ZONE, zone)
        except asyncpg.PostgresError as exc:
            raise driver_error(exc, load.copy) from exc
        if load.upsert is None:
            return load.rows
        try:
            result = await session.execute(load.upsert, execution_options=_ROWCOUNT)
            written: int = result.rowcount  # type: ignore[attr-defined]
            await session.execute(text(load.drop_sql()))
        except Exception as exc:
            raise translate(exc)  # noqa: B904 (translate() chains it)
        return int(written)
