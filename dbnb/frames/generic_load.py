"""DataFrames into SQLite and MySQL/MariaDB tables without COPY: batched multi-row INSERTs.

The generic sibling of :mod:`dbnb.frames.write`, with the same checks before anything is sent
(:func:`~dbnb.frames.convert.plan_load` and :func:`~dbnb.frames.convert.frame_to_arrow`: unknown
columns, missing NOT NULL ones, NaN/NaT/None to NULL, integer ranges, naive datetimes, JSON),
the same SAVEPOINT (a failure writes nothing) and the same ``on_conflict`` rules. The rows go
through the session's own DBAPI cursor with ``executemany`` of one prepared INSERT, in batches
of :data:`BATCH` rows: sqlite3 steps through them in C, PyMySQL folds them into multi-row
``INSERT … VALUES (…), (…)`` statements. Upserts are ``ON CONFLICT … DO UPDATE`` /
``DO NOTHING`` on SQLite (the partial unique index's ``WHERE`` repeated) and ``ON DUPLICATE
KEY UPDATE`` / ``INSERT IGNORE`` on MySQL/MariaDB. Timestamps are written as UTC text and UUIDs
as SQLAlchemy keeps them there (32 hex digits), so the ORM reads back what was loaded.

``LOAD DATA LOCAL INFILE`` would be MySQL's bulk path, but it needs ``local_infile`` on both
server and client (off by default, for good security reasons); the batched INSERT is measured
against ``DataFrame.to_sql`` in ``benchmarks/frames.py``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from dbnb.dialects import capabilities
from dbnb.display.progress import Progress
from dbnb.driver_errors import translate
from dbnb.errors import FrameError
from dbnb.frames.load_input import checked_load

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy import Table
    from sqlalchemy.ext.asyncio import AsyncSession
    from sqlalchemy.orm import Session

__all__ = ["BATCH", "awrite_frame", "write_frame"]

BATCH = 20_000  # rows per executemany


def _text(kind: str, array: pa.Array) -> pa.Array:
    """How a column travels to the driver: timestamps and dates as ISO text, UUIDs as 32 hex."""
    if pa.types.is_timestamp(array.type):
        return array.cast(pa.timestamp("us")).cast(pa.string())
    if pa.types.is_date32(array.type) or pa.types.is_date64(array.type):
        return array.cast(pa.string())
    if kind == "uuid":
        return pc.replace_substring(pc.utf8_lower(array.cast(pa.string())), "-", "")
    if kind == "json" and not (pa.types.is_string(array.type) or pa.types.is_null(array.type)):
        return array.cast(pa.string())
    if pa.types.is_decimal(array.type):
        return array.cast(pa.string())
    return array


class _GenericLoad:
    """One load's checked data and its INSERT, built before anything is sent."""

    def __init__(
        self, session: Session, target: Any, frame: Any, on_conflict: Any,
        on: list[str] | None, naive_as: str | None,
    ) -> None:
        self.table, plan, data = checked_load(target, frame, on_conflict, on, naive_as)
        self.columns = list(plan.columns)
        self.arrays = [_text(k, data.column(i).combine_chunks())
                       for i, k in enumerate(plan.kinds)]
        self.rows: int = data.num_rows
        self.dialect = session.get_bind().dialect
        self.caps = capabilities(self.dialect)
        self.on_conflict = on_conflict
        self.sql = self._insert(on_conflict, on, plan.sql_defaults)

    def _quote(self, name: str) -> str:
        return str(self.dialect.identifier_preparer.quote(name))

    def _insert(self, on_conflict: Any, on: list[str] | None, sql_defaults: bool) -> str:
        if sql_defaults:
            raise FrameError(
                f"{self.table.name}: a column the frame lacks has a client-side SQL default; "
                "give the column in the frame (the generic loader renders no SQL defaults)"
            )
        table = self.table
        name = (f"{self._quote(table.schema)}." if table.schema else "") + self._quote(table.name)
        cols = ", ".join(self._quote(c) for c in self.columns)
        marks = ", ".join([_PLACEHOLDER[self.dialect.paramstyle]] * len(self.columns))
        head = f"INSERT INTO {name} ({cols}) VALUES ({marks})"
        if on_conflict is None:
            return head
        by_name = {c.name: c for c in table.columns}
        keys = list(on) if on is not None else [c.name for c in table.primary_key.columns]
        bad = [k for k in keys if k not in by_name]
        if bad:
            raise FrameError(
                f"on={bad}: not columns of {table.name}; choose from {', '.join(by_name)}"
            )
        if on_conflict == "update" and not keys:
            raise FrameError(f"{table.name} has no primary key: pass on=[...] (unique columns)")
        missing = [k for k in keys if k not in self.columns]
        if on_conflict == "update" and missing:
            raise FrameError(f"on={keys}: the frame lacks {missing}, needed to find conflicts")
        changed = [c for c in self.columns if c not in keys]
        # e.g. updated_at = now() on the rows it updates, in this backend's spelling
        now = [
            f"{self._quote(c.name)} = {c.onupdate.arg.compile(dialect=self.dialect)}"  # type: ignore[union-attr]
            for c in table.columns
            if c.name not in self.columns and getattr(c.onupdate, "is_clause_element", False)
        ]
        if self.caps.upsert == "on_duplicate_key":
            if on_conflict == "ignore" or not changed:
                return head.replace("INSERT", "INSERT IGNORE", 1)
            sets = [f"{self._quote(c)} = VALUES({self._quote(c)})" for c in changed]
            return f"{head} ON DUPLICATE KEY UPDATE {', '.join(sets + now)}"
        where = _partial_where(table, keys)
        target = f" ({', '.join(self._quote(k) for k in keys)})" if keys else ""
        target += f" WHERE {where}" if where and keys else ""
        if on_conflict == "ignore" or not changed:
            return f"{head} ON CONFLICT{target} DO NOTHING"
        sets = [f"{self._quote(c)} = excluded.{self._quote(c)}" for c in changed]
        return f"{head} ON CONFLICT{target} DO UPDATE SET {', '.join(sets + now)}"

    def batches(self) -> list[list[tuple[Any, ...]]]:
        """The rows as tuples, in batches of BATCH."""
        out = []
        for start in range(0, self.rows, BATCH):
            columns = [a.slice(start, BATCH).to_pylist() for a in self.arrays]
            out.append(list(zip(*columns, strict=True)))
        return out


_PLACEHOLDER = {"qmark": "?", "format": "%s", "pyformat": "%s", "numeric": "?"}


def _partial_where(table: Table, keys: list[str]) -> str | None:
    """The WHERE of the partial unique index on exactly ``keys``, as SQL text (SQLite)."""
    for index in table.indexes:
        if index.unique and {c.name for c in index.columns} == set(keys):
            where = index.dialect_options["sqlite"].get("where")
            if where is not None:
                return str(where)
    return None


def _run(session: Session, load: _GenericLoad, progress: bool | None) -> int:
    written = 0
    with session.begin_nested():
        cursor = session.connection().connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            with Progress(progress, total=load.rows, desc=f"loading {load.table.name}") as bar:
                for batch in load.batches():
                    cursor.executemany(load.sql, batch)
                    count = int(getattr(cursor, "rowcount", -1))
                    written += count if count >= 0 else len(batch)
                    bar.update(len(batch))
        except Exception as exc:
            from sqlalchemy import exc as sa_exc

            wrapped = sa_exc.DBAPIError(load.sql, None, exc, hide_parameters=True)
            wrapped.__cause__ = exc
            raise translate(wrapped)  # noqa: B904 (translate() chains it to the driver error)
        finally:
            cursor.close()
    if load.caps.upsert == "on_duplicate_key" and load.on_conflict == "update":
        # MySQL counts an updated row twice; every row was either inserted or updated.
        return load.rows
    return written if load.on_conflict is not None else load.rows


def write_frame(
    session: Session,
    target: Any,
    frame: pd.DataFrame,
    *,
    on_conflict: Any = None,
    on: list[str] | None = None,
    naive_as: str | None = None,
    progress: bool | None = None,
) -> int:
    """Load ``frame`` into ``target`` (SQLite, MySQL) in batched INSERTs; return rows written.

    The generic twin of :func:`dbnb.frames.write.write_frame`: same checks, same SAVEPOINT,
    same ``on_conflict`` rules; the caller commits.
    """
    load = _GenericLoad(session, target, frame, on_conflict, on, naive_as)
    return _run(session, load, progress)


async def awrite_frame(
    session: AsyncSession,
    target: Any,
    frame: pd.DataFrame,
    **options: Any,
) -> int:
    """Await :func:`write_frame` on an AsyncSession (aiosqlite, aiomysql)."""
    written: int = await session.run_sync(lambda s: write_frame(s, target, frame, **options))
    return written
