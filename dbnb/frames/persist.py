"""Create a table from a frame and load it, in one transaction: sync (psycopg) and async (asyncpg).

The table's columns come from :mod:`dbnb.frames.ddl`; the rows go in through the COPY writer of
:mod:`dbnb.frames.write`. Everything runs in the caller's session: the caller commits, and a
failure anywhere (a value that does not fit, a duplicate key) leaves no table behind.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import MetaData, Table, inspect, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.schema import CreateTable

from dbnb.display.tables import Table as ShownTable
from dbnb.display.values import plural
from dbnb.driver_errors import translate
from dbnb.errors import FrameError
from dbnb.frames import ddl
from dbnb.frames.write import awrite_frame, write_frame

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection
    from sqlalchemy.ext.asyncio import AsyncSession
    from sqlalchemy.orm import Session

__all__ = ["IfExists", "PersistResult", "acreate_table_from_frame", "create_table_from_frame"]

IfExists = Literal["fail", "replace", "append"]
_IF_EXISTS = ("fail", "replace", "append")
_quote = postgresql.dialect().identifier_preparer.quote  # type: ignore[no-untyped-call]


@dataclass(frozen=True)
class PersistResult:
    """What :meth:`Database.create_table_from_frame` did: the table, its columns, the rows."""

    table: str
    action: Literal["created", "replaced", "appended"]
    rows: int
    columns: tuple[tuple[str, str, bool], ...]  # name, PostgreSQL type, nullable
    primary_key: tuple[str, ...] = ()

    def _shown(self) -> ShownTable:
        key = f", primary key ({', '.join(self.primary_key)})" if self.primary_key else ""
        caption = f"{self.action} table {self.table}: {plural(self.rows, 'row')} loaded{key}"
        return ShownTable(("column", "type", "nullable"), self.columns, caption=caption,
                          names=True)

    def __repr__(self) -> str:
        return self._shown().text()

    def _repr_html_(self) -> str:
        return self._shown().html()


class _Plan:
    """One call's checked arguments and the Table the frame calls for (no I/O)."""

    def __init__(
        self,
        name: str,
        frame: Any,
        *,
        schema: str | None,
        primary_key: str | Sequence[str] | None,
        if_exists: str,
        types: Mapping[str, Any] | None,
    ) -> None:
        if if_exists not in _IF_EXISTS:
            raise FrameError(f"if_exists={if_exists!r}: use 'fail', 'replace' or 'append'")
        self.if_exists = if_exists
        self.frame = ddl.frame_columns(frame)
        self.table = ddl.table_for_frame(
            name, self.frame, schema=schema, primary_key=primary_key, types_=types
        )
        self.key = tuple(c.name for c in self.table.primary_key.columns)
        self.shown = f"{schema}.{name}" if schema else name
        self.qualified = (f"{_quote(schema)}." if schema else "") + _quote(name)

    def decide(self, conn: Connection) -> tuple[str, Table]:
        """Ask the catalog whether the table exists; return the action and the target table."""
        exists = inspect(conn).has_table(self.table.name, schema=self.table.schema)
        if not exists:
            return "created", self.table
        if self.if_exists == "fail":
            raise FrameError(
                f"table {self.shown} already exists; pass if_exists='replace' to drop and "
                "create it again, or 'append' to add the rows (nothing was written)"
            )
        if self.if_exists == "replace":
            return "replaced", self.table
        existing = Table(
            self.table.name, MetaData(), schema=self.table.schema, autoload_with=conn
        )
        found = tuple(c.name for c in existing.primary_key.columns)
        if self.key and found != self.key:
            raise FrameError(
                f"table {self.shown} has the primary key ({', '.join(found) or 'none'}), not "
                f"({', '.join(self.key)}); leave primary_key out to append"
            )
        return "appended", existing

    def ddl(self, action: str) -> list[Any]:
        """The statements that make the table ready for the COPY."""
        drop = [text(f"DROP TABLE {self.qualified}")] if action == "replaced" else []
        return [*drop, CreateTable(self.table)] if action != "appended" else []

    def result(self, action: str, target: Table, rows: int) -> PersistResult:
        columns = tuple((c.name, ddl.type_sql(c.type), bool(c.nullable)) for c in target.columns)
        key = tuple(c.name for c in target.primary_key.columns)
        return PersistResult(self.shown, action, rows, columns, key)  # type: ignore[arg-type]


def create_table_from_frame(
    session: Session,
    name: str,
    frame: Any,
    *,
    schema: str | None = None,
    primary_key: str | Sequence[str] | None = None,
    if_exists: IfExists = "fail",
    types: Mapping[str, Any] | None = None,
    progress: bool | None = None,
) -> PersistResult:
    """Create table ``name`` with the types the frame's dtypes call for, then COPY the rows in.

    Runs in ``session``'s transaction (DDL is transactional in PostgreSQL): the caller commits,
    and on any error nothing is left, not even the table. See :mod:`dbnb.frames.ddl` for the
    type rules and :func:`~dbnb.frames.write.write_frame` for how values are converted.
    """
    plan = _Plan(name, frame, schema=schema, primary_key=primary_key, if_exists=if_exists,
                 types=types)
    try:
        action, target = plan.decide(session.connection())
        for statement in plan.ddl(action):
            session.execute(statement)
    except SQLAlchemyError as exc:
        raise translate(exc) from exc
    rows = write_frame(session, target, plan.frame, progress=progress)
    return plan.result(action, target, rows)


async def acreate_table_from_frame(
    session: AsyncSession,
    name: str,
    frame: Any,
    *,
    schema: str | None = None,
    primary_key: str | Sequence[str] | None = None,
    if_exists: IfExists = "fail",
    types: Mapping[str, Any] | None = None,
    progress: bool | None = None,
) -> PersistResult:
    """Await :func:`create_table_from_frame` on asyncpg (same rules, same transaction)."""
    plan = _Plan(name, frame, schema=schema, primary_key=primary_key, if_exists=if_exists,
                 types=types)
    try:
        conn = await session.connection()
        action, target = await conn.run_sync(plan.decide)
        for statement in plan.ddl(action):
            await session.execute(statement)
    except SQLAlchemyError as exc:
        raise translate(exc) from exc
    rows = await awrite_frame(session, target, plan.frame, progress=progress)
    return plan.result(action, target, rows)
