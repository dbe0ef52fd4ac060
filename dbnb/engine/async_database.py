"""AsyncDatabase: the awaitable face of a :class:`~dbnb.Database` (``db.asyncio``).

Same method names as ``Database``, same pools; every method that talks to the server is a
coroutine running on the asyncpg engine. ``pool_status()`` reads counters only, so it is not.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from dbnb.engine import health as _health
from dbnb.errors import translate

if TYPE_CHECKING:
    import pandas as pd

    from dbnb.engine.database import Database
    from dbnb.engine.transactions import SandboxScope, TransactionScope
    from dbnb.frames.dtypes import DtypeBackend, UuidAs

__all__ = ["AsyncDatabase", "running_loop"]


def running_loop() -> asyncio.AbstractEventLoop | None:
    """Return the event loop running in this thread, or None."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


async def _quiet_async_rollback(session: AsyncSession) -> None:
    # A rollback on a dead connection must not hide the error that killed it.
    with contextlib.suppress(Exception):
        await session.rollback()


class AsyncDatabase:
    """The awaitable face of a :class:`Database` (``db.asyncio``): same names, asyncpg engine."""

    def __init__(self, db: Database) -> None:
        self._db = db

    @property
    def sync(self) -> Database:
        """The Database this view belongs to."""
        return self._db

    @property
    def url(self) -> URL:
        """The database URL (password hidden in its repr)."""
        return self._db.url

    @property
    def database(self) -> str:
        """The database name."""
        return self._db.database

    @property
    def closed(self) -> bool:
        """True once the Database was closed."""
        return self._db.closed

    @property
    def engine(self) -> AsyncEngine:
        """The asyncpg engine (bound to the running event loop)."""
        return self._db.async_engine

    def __repr__(self) -> str:
        return repr(self._db).replace("<Database", "<AsyncDatabase", 1)

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """Open an AsyncSession; commit when the block ends, roll back (and re-raise) on error."""
        self._db._check_open()
        async with self._db._new_async_session() as session:
            try:
                yield session
                await session.commit()
            except BaseException as exc:
                await _quiet_async_rollback(session)
                raise translate(exc) from exc

    def transaction(self, session: AsyncSession | None = None) -> TransactionScope:
        """Begin a transaction for ``async with``; given a session, a SAVEPOINT."""
        return self._db.transaction(session)

    def sandbox(self) -> SandboxScope:
        """Open a rolled-back-on-exit scope for ``async with``."""
        return self._db.sandbox()

    async def get_session(self) -> AsyncIterator[AsyncSession]:
        """Yield an AsyncSession; usable as an async web-framework dependency."""
        async with self.session() as session:
            yield session

    async def execute(self, sql: str, /, **params: Any) -> list[Any]:
        """Run one SQL statement with ``:name`` bound parameters; commit; return its rows."""
        async with self.session() as s:
            result = await s.execute(text(sql), params)
            return list(result) if getattr(result, "returns_rows", True) else []

    async def frame(
        self,
        sql: str,
        /,
        *,
        dtype_backend: DtypeBackend = None,
        decimal: bool = False,
        uuid_as: UuidAs = "string",
        **params: Any,
    ) -> pd.DataFrame:
        """Await a query with ``:name`` bound parameters; return its rows as a DataFrame."""
        from dbnb.frames.aread import aread_frame

        async with self.session() as s:
            return await aread_frame(
                s, sql, params, dtype_backend=dtype_backend, decimal=decimal, uuid_as=uuid_as
            )

    async def health(self) -> _health.HealthReport:
        """Run ``SELECT 1`` on the asyncpg engine and report latency and version; never raises."""
        try:
            engine = self.engine
            start = time.perf_counter()
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
                latency = (time.perf_counter() - start) * 1000
                version = (await conn.execute(text("SHOW server_version"))).scalar_one()
            return _health.HealthReport(True, "asyncpg", latency, str(version))
        except Exception as exc:
            return _health.failed_report("asyncpg", exc)

    def pool_status(self) -> _health.PoolReport:
        """Snapshot both engines' pools (no I/O, so not a coroutine)."""
        return self._db.pool_status()

    async def info(self) -> _health.ServerInfo:
        """Ask the server (over asyncpg) for version, size, connections and idle transactions."""
        async with self.engine.connect() as conn:
            try:
                head = (await conn.execute(text(_health.SERVER_INFO_SQL))).one()
                connections = list(await conn.execute(text(_health.CONNECTIONS_SQL)))
                idle = list(await conn.execute(text(_health.IDLE_IN_TRANSACTION_SQL)))
            except SQLAlchemyError as exc:
                raise translate(exc) from exc
        return _health.server_info_from_rows(head, connections, idle)

    async def refresh_pools(self) -> None:
        """Replace both pools' connections, awaiting the async ones' graceful close."""
        db = self._db
        if db._engine is not None:
            db._engine.dispose()
        if db._async_engine is not None:
            await db._async_engine.dispose()

    async def close(self) -> None:
        """Dispose both engines, awaiting the asyncpg connections' close."""
        db = self._db
        engine = db._async_engine
        if engine is not None and db._async_loop is running_loop():
            db._async_engine, db._async_loop = None, None
            await engine.dispose()
        db.close()
