"""Tables on the server without loading them: make one from a frame, profile, count, bin.

``create_table_from_frame``, ``profile``, ``value_counts`` and ``histogram`` of
:class:`~dbnb.Database` (:class:`TableTools`) and of its ``db.asyncio`` face
(:class:`AsyncTableTools`), kept here as mixins so each shell's module stays about sessions and
queries. They need PostgreSQL (its types, COPY, catalog and aggregates) and raise
:class:`~dbnb.UnsupportedOnDialect` elsewhere, naming what to do instead.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from dbnb.driver_errors import translate
from dbnb.engine import profile as _profile

if TYPE_CHECKING:
    import pandas as pd
    import polars as pl
    import pyarrow as pa
    from sqlalchemy.engine import Connection, Engine
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
    from sqlalchemy.orm import Session

    from dbnb.dialects import Capabilities
    from dbnb.engine.lifecycle import Engines
    from dbnb.frames.persist import IfExists, PersistResult

__all__ = ["AsyncTableTools", "TableTools"]


class _Database(Protocol):
    """What the table methods use of a Database."""

    @property
    def capabilities(self) -> Capabilities: ...
    @property
    def engine(self) -> Engine: ...
    def session(self) -> AbstractContextManager[Session]: ...
    def refresh_pools(self) -> None: ...


class _AsyncDatabase(Protocol):
    """What the table methods use of an AsyncDatabase."""

    _engines: Engines

    @property
    def engine(self) -> AsyncEngine: ...
    def session(self) -> AbstractAsyncContextManager[AsyncSession]: ...


# What each tool needs of the backend, and what to do where it is missing (both shells).
_CREATE_TABLE = (
    "create_table_from_frame (PostgreSQL types, COPY)",
    "declare a model, db.create_all(Model), then Repository(Model, db).from_frame(df)",
)
_PROFILE = (
    "profile (PostgreSQL's catalog and aggregates)",
    "read the table with db.frame(...) and use DataFrame.describe()",
)
_VALUE_COUNTS = (
    "value_counts (PostgreSQL's catalog)",
    "read the column with db.frame(...) and use Series.value_counts()",
)
_HISTOGRAM = (
    "histogram (width_bucket)",
    "read the column with db.frame(...) and use Series.plot.hist()",
)
# SQL for one column of a relation (value counts, histogram bins), from the relation's
# quoted name and the column as the catalog describes it.
_ColumnSql = Callable[[str, "_profile.ProfiledColumn"], str]


def _catalog(conn: Connection, table: str) -> tuple[str, list[_profile.ProfiledColumn]]:
    rows = conn.execute(text(_profile.COLUMNS_SQL), {"table": table}).all()
    return _profile.columns_from_rows(rows, table)


async def _acatalog(
    conn: AsyncConnection, table: str
) -> tuple[str, list[_profile.ProfiledColumn]]:
    rows = (await conn.execute(text(_profile.COLUMNS_SQL), {"table": table})).all()
    return _profile.columns_from_rows(rows, table)


def _column_rows(
    engine: Engine, table: str, column: str, sql_of: _ColumnSql, params: dict[str, Any]
) -> tuple[_profile.ProfiledColumn, list[Any]]:
    """The column as the catalog has it, and the rows of ``sql_of``'s query on it (read-only)."""
    try:
        with engine.connect() as conn:
            relation, found = _catalog(conn, table)
            chosen = _profile.chosen_columns(found, [column], table)[0]
            rows = list(conn.execute(text(sql_of(relation, chosen)), params).all())
            conn.rollback()
    except SQLAlchemyError as exc:
        raise translate(exc) from exc
    return chosen, rows


async def _acolumn_rows(
    engine: AsyncEngine, table: str, column: str, sql_of: _ColumnSql, params: dict[str, Any]
) -> tuple[_profile.ProfiledColumn, list[Any]]:
    """Await :func:`_column_rows` on asyncpg."""
    try:
        async with engine.connect() as conn:
            relation, found = await _acatalog(conn, table)
            chosen = _profile.chosen_columns(found, [column], table)[0]
            rows = list((await conn.execute(text(sql_of(relation, chosen)), params)).all())
            await conn.rollback()
    except SQLAlchemyError as exc:
        raise translate(exc) from exc
    return chosen, rows


class TableTools:
    """The table methods of :class:`~dbnb.Database` (a mixin: the Database is ``self``)."""

    def create_table_from_frame(
        self: _Database,
        name: str,
        frame: pd.DataFrame | pl.DataFrame | pa.Table,
        /,
        *,
        schema: str | None = None,
        primary_key: str | Sequence[str] | None = None,
        if_exists: IfExists = "fail",
        types: Mapping[str, Any] | None = None,
        progress: bool | None = None,
    ) -> PersistResult:
        """CREATE TABLE ``name`` with types from the frame's dtypes, COPY the rows in; commit.

        One transaction: the table and its rows appear together, or not at all. Types follow
        the table in :mod:`dbnb.frames.ddl` (nullable integers stay integers, decimals keep
        precision and scale, tz-aware datetimes are ``timestamptz``, lists become arrays,
        dicts ``jsonb``); a named index is written as columns.

        Args:
            name: the table name, used as given (quoted).
            frame: the pandas or polars DataFrame, or ``pyarrow.Table``, to store (polars and
                Arrow types are read from the schema, never through pandas).
            schema: the schema to create it in (default: the search path's first).
            primary_key: a column name, or several, to make the primary key.
            if_exists: ``"fail"`` (default), ``"replace"`` (drop and create again) or
                ``"append"`` (add the rows to the existing table, whose types rule).
            types: column name -> SQLAlchemy type, overriding what a dtype says.
            progress: show a progress bar (default: when someone is watching a long load).

        Returns:
            A :class:`~dbnb.frames.persist.PersistResult`: the columns and types, the rows.

        Raises:
            FrameError: a bad name or an unsupported dtype (naming the column), a missing
                primary-key value, or the table exists and ``if_exists="fail"``.

        Example::

            db.create_table_from_frame("sales_2026", df, primary_key="id")
        """
        self.capabilities.require(*_CREATE_TABLE)
        from dbnb.frames.persist import create_table_from_frame

        with self.session() as s:
            done = create_table_from_frame(
                s, name, frame, schema=schema, primary_key=primary_key, if_exists=if_exists,
                types=types, progress=progress,
            )
        if done.action == "replaced":
            self.refresh_pools()  # no cached plan may outlive the old table's columns
        return done

    def profile(
        self: _Database,
        table: str, *, columns: str | Sequence[str] | None = None, top: int = 5,
    ) -> _profile.TableProfile:
        """Profile a table's columns in SQL: count, nulls, distinct, min, max, mean, std, top.

        On the server: one aggregate scan, then one ``GROUP BY`` per column; only the
        statistics come back, so a table larger than memory profiles fine. Read-only.

        Args:
            table: the table or view, optionally ``schema.table``.
            columns: the columns to profile (a list, or names separated by commas); all
                when omitted.
            top: how many of the commonest values to show per column.

        Example::

            db.profile("events")                     # %db profile events
            db.profile("events", columns=["kind", "amount"]).frame
        """
        self.capabilities.require(*_PROFILE)
        try:
            with self.engine.connect() as conn:
                relation, found = _catalog(conn, table)
                chosen = _profile.chosen_columns(found, columns, table)
                stats = conn.execute(text(_profile.stats_sql(relation, chosen))).one()
                groups = conn.execute(
                    text(_profile.groups_sql(relation, chosen)), {"top": top}
                ).all() if chosen else []
                conn.rollback()
        except SQLAlchemyError as exc:
            raise translate(exc) from exc
        return _profile.profile_from_rows(relation, chosen, stats, groups)

    def value_counts(self: _Database, table: str, column: str, *, top: int = 20) -> pd.DataFrame:
        """Count a column's values in SQL; return the commonest as a frame ready for ``.plot``.

        Example::

            db.value_counts("events", "kind").plot.bar()
        """
        self.capabilities.require(*_VALUE_COUNTS)
        chosen, rows = _column_rows(
            self.engine, table, column, _profile.value_counts_sql, {"top": top}
        )
        return _profile.value_counts_frame(chosen, rows)

    def histogram(self: _Database, table: str, column: str, *, bins: int = 20) -> pd.DataFrame:
        """Count a numeric or time column in ``bins`` equal-width bins, in SQL (``.plot.bar()``).

        Example::

            db.histogram("orders", "total", bins=10).plot.bar()
        """
        self.capabilities.require(*_HISTOGRAM)
        chosen, rows = _column_rows(
            self.engine, table, column, _profile.histogram_sql, {"bins": bins}
        )
        return _profile.histogram_frame(chosen, rows, bins)


class AsyncTableTools:
    """The table methods of ``db.asyncio`` (a mixin: the AsyncDatabase is ``self``)."""

    async def create_table_from_frame(
        self: _AsyncDatabase,
        name: str,
        frame: pd.DataFrame | pl.DataFrame | pa.Table,
        /,
        *,
        schema: str | None = None,
        primary_key: str | Sequence[str] | None = None,
        if_exists: IfExists = "fail",
        types: Mapping[str, Any] | None = None,
        progress: bool | None = None,
    ) -> PersistResult:
        """Await :meth:`Database.create_table_from_frame` (asyncpg COPY, one transaction)."""
        self._engines.caps.require(*_CREATE_TABLE)
        from dbnb.frames.persist import acreate_table_from_frame

        async with self.session() as s:
            done = await acreate_table_from_frame(
                s, name, frame, schema=schema, primary_key=primary_key, if_exists=if_exists,
                types=types, progress=progress,
            )
        if done.action == "replaced":
            self._engines.refresh()
        return done

    async def profile(
        self: _AsyncDatabase,
        table: str, *, columns: str | Sequence[str] | None = None, top: int = 5,
    ) -> _profile.TableProfile:
        """Await :meth:`Database.profile` (the same scans, on asyncpg)."""
        self._engines.caps.require(*_PROFILE)
        try:
            async with self.engine.connect() as conn:
                relation, found = await _acatalog(conn, table)
                chosen = _profile.chosen_columns(found, columns, table)
                stats = (await conn.execute(text(_profile.stats_sql(relation, chosen)))).one()
                groups = (await conn.execute(
                    text(_profile.groups_sql(relation, chosen)), {"top": top}
                )).all() if chosen else []
                await conn.rollback()
        except SQLAlchemyError as exc:
            raise translate(exc) from exc
        return _profile.profile_from_rows(relation, chosen, stats, groups)

    async def value_counts(
        self: _AsyncDatabase, table: str, column: str, *, top: int = 20
    ) -> pd.DataFrame:
        """Await :meth:`Database.value_counts`."""
        self._engines.caps.require(*_VALUE_COUNTS)
        chosen, rows = await _acolumn_rows(
            self.engine, table, column, _profile.value_counts_sql, {"top": top}
        )
        return _profile.value_counts_frame(chosen, rows)

    async def histogram(
        self: _AsyncDatabase, table: str, column: str, *, bins: int = 20
    ) -> pd.DataFrame:
        """Await :meth:`Database.histogram`."""
        self._engines.caps.require(*_HISTOGRAM)
        chosen, rows = await _acolumn_rows(
            self.engine, table, column, _profile.histogram_sql, {"bins": bins}
        )
        return _profile.histogram_frame(chosen, rows, bins)
