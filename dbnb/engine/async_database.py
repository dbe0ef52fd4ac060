"""AsyncDatabase: the awaitable face of a :class:`~dbnb.Database` (``db.asyncio``).

Same method names as ``Database``, same pools; every method that talks to the server is a
coroutine running on the asyncpg engine. ``pool_status()`` reads counters only, so it is not.
It works on the engines and session scopes it shares with its Database and never imports
``Database``: the class is generic in the sync face it belongs to (``sync``). The table
methods and snapshots come from the mixins of :mod:`dbnb.engine.table_tools` and
:mod:`dbnb.engine.snapshots`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Generic

from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from typing_extensions import TypeVar

from dbnb.driver_errors import translate
from dbnb.engine.replicas import Use, check_use
from dbnb.engine.routing import arun_routed
from dbnb.engine.schema import create_missing, metadata_of
from dbnb.engine.scripts import ScriptRows, targets_of
from dbnb.engine.sessions import Sessions
from dbnb.engine.snapshots import AsyncSnapshots
from dbnb.engine.table_tools import AsyncTableTools
from dbnb.engine.transactions import SandboxScope, TransactionScope

if TYPE_CHECKING:
    import pandas as pd
    import polars as pl
    import pyarrow as pa

    from dbnb.frames.columns import DtypeBackend, JsonAs, UuidAs

__all__ = ["AsyncDatabase"]

#: The sync Database this face belongs to (``Database`` in practice).
D = TypeVar("D", default=Any)


class AsyncDatabase(AsyncTableTools, AsyncSnapshots, Generic[D]):
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
    async def session(
        self, *, read_only: bool = False, use: Use = None, read_your_writes: bool = False
    ) -> AsyncIterator[AsyncSession]:
        """Open an AsyncSession; commit when the block ends, roll back (and re-raise) on error.

        ``read_only``, ``use`` and ``read_your_writes`` route it among read replicas as in
        :meth:`Database.session`.
        """
        check_use(use)
        async with self._sessions.async_scope(
            read=read_only or use == "replica", use=use, read_your_writes=read_your_writes
        ) as session:
            yield session

    def use(self, where: Use) -> contextlib.AbstractContextManager[None]:
        """Send the routed reads to ``where`` while the block runs (see :meth:`Database.use`)."""
        check_use(where)
        replicas = self._sessions.replicas
        return contextlib.nullcontext() if replicas is None else replicas.use(where)

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

    async def execute(self, sql: str, /, *, use: Use = None, **params: Any) -> ScriptRows:
        """Run SQL (one statement or a script) on asyncpg in one transaction; commit.

        The awaitable twin of :meth:`Database.execute`: the last statement's rows, with
        ``steps``; a script that only reads goes to a replica when there is one.
        """
        targets = targets_of(sql, params, what="db.asyncio.execute()")
        report, rows = await arun_routed(self.session, targets, use=check_use(use))
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
        use: Use = None,
        **params: Any,
    ) -> pd.DataFrame:
        """Await a query with ``:name`` bound parameters; return its rows as a DataFrame."""
        targets = targets_of(sql, params, what="db.asyncio.frame()")
        report, _ = await arun_routed(
            self.session, targets, use=check_use(use), last="read",
            dtype_backend=dtype_backend, decimal=decimal, uuid_as=uuid_as, json_as=json_as,
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
        use: Use = None,
        **params: Any,
    ) -> pa.Table:
        """Await a query with ``:name`` bound parameters; return its rows as a ``pyarrow.Table``."""
        table: pa.Table = await self._read(
            sql, params, "db.asyncio.arrow()", use, backend="arrow", decimal=decimal,
            uuid_as=uuid_as, json_as=json_as,
        )
        return table

    async def polars(
        self, sql: str, /, *, decimal: bool = False, use: Use = None, **params: Any
    ) -> pl.DataFrame:
        """Await a query with ``:name`` bound parameters; return its rows as a polars DataFrame."""
        frame: pl.DataFrame = await self._read(
            sql, params, "db.asyncio.polars()", use, backend="polars", decimal=decimal
        )
        return frame

    async def _read(
        self, sql: str, params: dict[str, Any], what: str, use: Use, **options: Any
    ) -> Any:
        from dbnb.frames.columns import options_of

        options = options_of(**options)  # before anything is sent
        targets = targets_of(sql, params, what=what)
        report, _ = await arun_routed(
            self.session, targets, use=check_use(use), last="read", **options
        )
        return report.frame

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
        if self._sessions.replicas is not None:
            await self._sessions.replicas.arefresh()

    async def close(self) -> None:
        """Dispose both engines, awaiting the asyncpg connections' close."""
        await self._engines.aclose_async()
        if self._sessions.replicas is not None:
            await self._sessions.replicas.aclose_async()
        self._sessions.close()
