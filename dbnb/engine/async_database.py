"""AsyncDatabase: the awaitable face of a :class:`~dbnb.Database` (``db.asyncio``).

Same method names as ``Database``, same pools; every method that talks to the server is a
coroutine running on the asyncpg engine. ``pool_status()`` reads counters only, so it is not.
It works on the engines and session scopes it shares with its Database and never imports
``Database``: the class is generic in the sync face it belongs to (``sync``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic

from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from typing_extensions import TypeVar

from dbnb.driver_errors import translate
from dbnb.engine import health as _health
from dbnb.engine import probes
from dbnb.engine import profile as _profile
from dbnb.engine.schema import create_missing, metadata_of
from dbnb.engine.scripts import ScriptRows, arun_script, targets_of
from dbnb.engine.sessions import Sessions
from dbnb.engine.transactions import SandboxScope, TransactionScope
from dbnb.server.sessions import (
    SESSIONS_SQL,
    SessionList,
    pids_to_end,
    sessions_from_rows,
    terminate_sql,
)

if TYPE_CHECKING:
    import pandas as pd
    import polars as pl
    import pyarrow as pa

    from dbnb.frames.columns import DtypeBackend, JsonAs, UuidAs
    from dbnb.frames.persist import IfExists, PersistResult

__all__ = ["AsyncDatabase"]

#: The sync Database this face belongs to (``Database`` in practice).
D = TypeVar("D", default=Any)


class AsyncDatabase(Generic[D]):
    """The awaitable face of a :class:`Database` (``db.asyncio``): same names, asyncpg engine."""

    def __init__(self, owner: D, sessions: Sessions) -> None:
        self._owner = owner
        self._sessions = sessions
        self._engines = sessions.engines

    @property
    def sync(self) -> D:
        """The Database this view belongs to."""
        return self._owner

    @property
    def url(self) -> URL:
        """The database URL (password hidden in its repr)."""
        return self._engines.url

    @property
    def database(self) -> str:
        """The database name."""
        return str(self.url.database or "")

    @property
    def closed(self) -> bool:
        """True once the Database was closed."""
        return self._engines.closed

    @property
    def engine(self) -> AsyncEngine:
        """The asyncpg engine (bound to the running event loop)."""
        return self._engines.asynchronous

    def __repr__(self) -> str:
        return repr(self._owner).replace("<Database", "<AsyncDatabase", 1)

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """Open an AsyncSession; commit when the block ends, roll back (and re-raise) on error."""
        async with self._sessions.async_scope() as session:
            yield session

    def transaction(self, session: AsyncSession | None = None) -> TransactionScope:
        """Begin a transaction for ``async with``; given a session, a SAVEPOINT."""
        self._engines.check_open()
        return TransactionScope(self._sessions, session)

    def sandbox(self) -> SandboxScope:
        """Open a rolled-back-on-exit scope for ``async with``."""
        self._engines.check_open()
        return SandboxScope(self._sessions)

    async def get_session(self) -> AsyncIterator[AsyncSession]:
        """Yield an AsyncSession; usable as an async web-framework dependency."""
        async with self.session() as session:
            yield session

    async def execute(self, sql: str, /, **params: Any) -> ScriptRows:
        """Run SQL (one statement or a script) on asyncpg in one transaction; commit.

        The awaitable twin of :meth:`Database.execute`: the last statement's rows, with
        ``steps``.
        """
        targets = targets_of(sql, params, what="db.asyncio.execute()")
        async with self.session() as s:
            report, rows = await arun_script(s, targets)
        found = ScriptRows(rows)
        found.steps = report.steps
        return found

    async def frame(
        self,
        sql: str,
        /,
        *,
        dtype_backend: DtypeBackend = None,
        decimal: bool = False,
        uuid_as: UuidAs = "string",
        json_as: JsonAs = "object",
        **params: Any,
    ) -> pd.DataFrame:
        """Await a query with ``:name`` bound parameters; return its rows as a DataFrame."""
        targets = targets_of(sql, params, what="db.asyncio.frame()")
        async with self.session() as s:
            report, _ = await arun_script(
                s, targets, last="read", dtype_backend=dtype_backend, decimal=decimal,
                uuid_as=uuid_as, json_as=json_as,
            )
        assert report.frame is not None
        return report.frame

    async def arrow(
        self,
        sql: str,
        /,
        *,
        decimal: bool = False,
        uuid_as: UuidAs = "string",
        json_as: JsonAs = "object",
        **params: Any,
    ) -> pa.Table:
        """Await a query with ``:name`` bound parameters; return its rows as a ``pyarrow.Table``."""
        table: pa.Table = await self._read(
            sql, params, "db.asyncio.arrow()", backend="arrow", decimal=decimal,
            uuid_as=uuid_as, json_as=json_as,
        )
        return table

    async def polars(self, sql: str, /, *, decimal: bool = False, **params: Any) -> pl.DataFrame:
        """Await a query with ``:name`` bound parameters; return its rows as a polars DataFrame."""
        frame: pl.DataFrame = await self._read(
            sql, params, "db.asyncio.polars()", backend="polars", decimal=decimal
        )
        return frame

    async def _read(self, sql: str, params: dict[str, Any], what: str, **options: Any) -> Any:
        from dbnb.frames.columns import options_of

        options = options_of(**options)  # before anything is sent
        targets = targets_of(sql, params, what=what)
        async with self.session() as s:
            report, _ = await arun_script(s, targets, last="read", **options)
        return report.frame

    async def create_table_from_frame(
        self,
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
        self._engines.caps.require(
            "create_table_from_frame (PostgreSQL types, COPY)",
            "declare a model, db.create_all(Model), then Repository(Model, db).from_frame(df)",
        )
        from dbnb.frames.persist import acreate_table_from_frame

        async with self.session() as s:
            done = await acreate_table_from_frame(
                s, name, frame, schema=schema, primary_key=primary_key, if_exists=if_exists,
                types=types, progress=progress,
            )
        if done.action == "replaced":
            self._engines.refresh()
        return done

    async def _catalog(self, conn: Any, table: str) -> tuple[str, list[_profile.ProfiledColumn]]:
        rows = (await conn.execute(text(_profile.COLUMNS_SQL), {"table": table})).all()
        return _profile.columns_from_rows(rows, table)

    async def profile(
        self, table: str, *, columns: str | Sequence[str] | None = None, top: int = 5
    ) -> _profile.TableProfile:
        """Await :meth:`Database.profile` (the same scans, on asyncpg)."""
        self._engines.caps.require(
            "profile (PostgreSQL's catalog and aggregates)",
            "read the table with db.frame(...) and use DataFrame.describe()",
        )
        try:
            async with self.engine.connect() as conn:
                relation, found = await self._catalog(conn, table)
                chosen = _profile.chosen_columns(found, columns, table)
                stats = (await conn.execute(text(_profile.stats_sql(relation, chosen)))).one()
                groups = (await conn.execute(
                    text(_profile.groups_sql(relation, chosen)), {"top": top}
                )).all() if chosen else []
                await conn.rollback()
        except SQLAlchemyError as exc:
            raise translate(exc) from exc
        return _profile.profile_from_rows(relation, chosen, stats, groups)

    async def value_counts(self, table: str, column: str, *, top: int = 20) -> pd.DataFrame:
        """Await :meth:`Database.value_counts`."""
        self._engines.caps.require(
            "value_counts (PostgreSQL's catalog)",
            "read the column with db.frame(...) and use Series.value_counts()",
        )
        try:
            async with self.engine.connect() as conn:
                relation, found = await self._catalog(conn, table)
                chosen = _profile.chosen_columns(found, [column], table)[0]
                rows = (await conn.execute(
                    text(_profile.value_counts_sql(relation, chosen)), {"top": top}
                )).all()
                await conn.rollback()
        except SQLAlchemyError as exc:
            raise translate(exc) from exc
        return _profile.value_counts_frame(chosen, rows)

    async def histogram(self, table: str, column: str, *, bins: int = 20) -> pd.DataFrame:
        """Await :meth:`Database.histogram`."""
        self._engines.caps.require(
            "histogram (width_bucket)",
            "read the column with db.frame(...) and use Series.plot.hist()",
        )
        try:
            async with self.engine.connect() as conn:
                relation, found = await self._catalog(conn, table)
                chosen = _profile.chosen_columns(found, [column], table)[0]
                rows = (await conn.execute(
                    text(_profile.histogram_sql(relation, chosen)), {"bins": bins}
                )).all()
                await conn.rollback()
        except SQLAlchemyError as exc:
            raise translate(exc) from exc
        return _profile.histogram_frame(chosen, rows, bins)

    async def health(self) -> _health.HealthReport:
        """Run ``SELECT 1`` on the async engine and report latency and version; never raises."""
        caps = self._engines.caps
        try:
            engine = self.engine
            start = time.perf_counter()
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
                latency = (time.perf_counter() - start) * 1000
                version = (await conn.execute(text(probes.version_sql(caps)))).scalar_one()
            return _health.HealthReport(
                True, caps.async_driver, latency, str(version), backend=caps.label
            )
        except Exception as exc:
            return _health.failed_report(caps.async_driver, exc)

    def pool_status(self) -> _health.PoolReport:
        """Snapshot both engines' pools (no I/O, so not a coroutine)."""
        return self._engines.pool_report()

    async def info(self) -> _health.ServerInfo:
        """Ask the server (async engine) for version, size, connections and idle transactions."""
        asks = probes.info_queries(self._engines.caps)

        async def rows(sql: str | None) -> list[Any] | None:
            return None if sql is None else list(await conn.execute(text(sql)))

        async with self.engine.connect() as conn:
            try:
                head = (await conn.execute(text(asks.head))).one()
                connections = await rows(asks.connections)
                idle, long = await rows(asks.idle), await rows(asks.long)
            except SQLAlchemyError as exc:
                raise translate(exc) from exc
        return _health.server_info_from_rows(
            head, connections, idle or [], long or [], backend=self._engines.caps.label
        )

    async def sessions(
        self, *, stale: bool = False, terminate: int | str | None = None, everyone: bool = False
    ) -> SessionList:
        """Await :meth:`Database.sessions` (list dbnb's sessions; end one or the stale ones)."""
        self._engines.caps.require(
            "sessions",
            "list and end connections with the server's own tools (MySQL: SHOW PROCESSLIST, KILL)",
        )
        async with self.engine.connect() as conn:
            try:
                rows = list(await conn.execute(text(SESSIONS_SQL), {"everyone": everyone}))
                found = sessions_from_rows(rows, self.url, stale=stale)
                pids = pids_to_end(found, terminate, stale=stale, everyone=everyone)
                for pid in pids:
                    await conn.execute(text(terminate_sql(conn.dialect)), {"pid": pid})
                await conn.commit()
            except SQLAlchemyError as exc:
                raise translate(exc) from exc
        return SessionList(found, pids)

    async def create_all(self, models: Any) -> list[str]:
        """Await :meth:`Database.create_all` (CREATE the missing tables) on the async engine."""
        tables = metadata_of(models)
        async with self.engine.begin() as conn:
            try:
                created: list[str] = await conn.run_sync(create_missing, tables)
            except SQLAlchemyError as exc:
                raise translate(exc) from exc
        self._engines.refresh()
        return created

    async def refresh_pools(self) -> None:
        """Replace both pools' connections, awaiting the async ones' graceful close."""
        await self._engines.arefresh()

    async def close(self) -> None:
        """Dispose both engines, awaiting the asyncpg connections' close."""
        await self._engines.aclose_async()
        self._sessions.close()
