"""Database: one URL in, a psycopg 3 engine and an asyncpg engine out, with session scopes.

``Database`` owns both engines, created lazily from the same URL. Its awaitable face,
:class:`~dbnb.AsyncDatabase`, is ``db.asyncio``: same method names, same pools.
Get one with :func:`dbnb.connect` (in :mod:`dbnb.engine.registry`).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.orm import Session, sessionmaker

from dbnb.engine import health as _health
from dbnb.engine.async_database import AsyncDatabase, running_loop
from dbnb.errors import ConfigError, DatabaseClosed, LoopMismatch, translate
from dbnb.server.embedded import EmbeddedServer
from dbnb.settings import Settings, safe_url

if TYPE_CHECKING:
    import pandas as pd

    from dbnb.engine.transactions import SandboxScope, TransactionScope
    from dbnb.frames.dtypes import DtypeBackend, UuidAs

__all__ = ["Database"]

# libpq query parameters that asyncpg spells differently or takes as server settings.
_ASYNCPG_RENAMES = {"sslmode": "ssl", "connect_timeout": "timeout"}
_ASYNCPG_SERVER_SETTINGS = {"application_name", "options"}


def _sync_url(url: URL) -> URL:
    return url.set(drivername="postgresql+psycopg")


def _async_url(url: URL) -> tuple[URL, dict[str, Any]]:
    """Split libpq-style query options into what asyncpg accepts."""
    query: dict[str, Any] = {}
    server_settings: dict[str, Any] = {}
    for key, value in url.query.items():
        if key in _ASYNCPG_SERVER_SETTINGS:
            server_settings[key] = value
        else:
            query[_ASYNCPG_RENAMES.get(key, key)] = value
    return url.set(drivername="postgresql+asyncpg", query=query), server_settings


class Database:
    """A PostgreSQL database reached through a sync (psycopg) and an async (asyncpg) engine.

    Create it with :func:`dbnb.connect`. Engines are created on first use; ``close()`` disposes
    both, after which any use raises :class:`~dbnb.DatabaseClosed`.

    Example::

        db = dbnb.connect()                       # embedded PostgreSQL
        with db.session() as s:                   # commits on success, rolls back on error
            s.execute(text("SELECT 1"))
    """

    def __init__(self, settings: Settings, *, embedded: EmbeddedServer | None = None) -> None:
        if settings.url is None:
            raise ConfigError("Database needs a URL; use dbnb.connect() for the embedded default")
        self.settings = settings
        self.embedded = embedded
        self._url: URL = settings.url
        self._lock = threading.RLock()
        self._closed = False
        self._engine: Engine | None = None
        self._async_engine: AsyncEngine | None = None
        self._async_loop: asyncio.AbstractEventLoop | None = None
        # Raw asyncpg connections of the async pool, so a sync close() can terminate them
        # when no loop is available to await their graceful close.
        self._async_raw: set[Any] = set()
        self._pending: set[asyncio.Task[None]] = set()
        self._sessions: sessionmaker[Session] | None = None
        self._sandbox: contextvars.ContextVar[Connection | None] = contextvars.ContextVar(
            f"dbnb_sandbox_{id(self)}", default=None
        )
        self._async_sandbox: contextvars.ContextVar[AsyncConnection | None] = (
            contextvars.ContextVar(f"dbnb_async_sandbox_{id(self)}", default=None)
        )
        # A sandbox opened by dbnb.engine.transactions.sandbox() that outlives one cell (a context
        # variable set in a notebook cell does not survive into the next one).
        self._pinned_sandbox: Connection | None = None
        self.asyncio = AsyncDatabase(self)

    # -- identity -------------------------------------------------------------------------------

    @property
    def url(self) -> URL:
        """The database URL (a SQLAlchemy ``URL``, whose repr hides the password)."""
        return self._url

    @property
    def database(self) -> str:
        """The database name."""
        return str(self._url.database or "")

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran."""
        return self._closed

    def __repr__(self) -> str:
        where = self.embedded.describe() if self.embedded else safe_url(self._url)
        state = "closed" if self._closed else "open"
        return f"<Database {self.database!r} ({where}) {state}>"

    def _check_open(self) -> None:
        if self._closed:
            raise DatabaseClosed(
                f"Database {self.database!r} is closed; call dbnb.connect() to open it again"
            )

    # -- engines --------------------------------------------------------------------------------

    def _pool_options(self) -> dict[str, Any]:
        s = self.settings
        return {
            "pool_size": s.pool_size,
            "max_overflow": s.max_overflow,
            "pool_timeout": s.pool_timeout,
            "pool_recycle": s.pool_recycle,
            "pool_pre_ping": True,
            "echo": s.echo,
            "hide_parameters": True,
        }

    @property
    def engine(self) -> Engine:
        """The sync SQLAlchemy engine (psycopg 3), created on first use."""
        self._check_open()
        with self._lock:
            if self._engine is None:
                s = self.settings
                connect_args: dict[str, Any] = {
                    "application_name": s.application_name,
                    "connect_timeout": s.connect_timeout,
                }
                if s.statement_timeout is not None:
                    connect_args["options"] = f"-c statement_timeout={s.statement_timeout}"
                self._engine = create_engine(
                    _sync_url(self._url), connect_args=connect_args, **self._pool_options()
                )
            return self._engine

    @property
    def async_engine(self) -> AsyncEngine:
        """The async SQLAlchemy engine (asyncpg), bound to the event loop that first used it.

        Raises:
            LoopMismatch: used from another, still open event loop.
        """
        self._check_open()
        loop = running_loop()
        with self._lock:
            if self._async_engine is not None and self._async_loop is not loop:
                if self._async_loop is not None and not self._async_loop.is_closed():
                    raise LoopMismatch(
                        "this Database's async engine belongs to another event loop; use it "
                        "from the loop that created it, or connect a separate Database for "
                        "this loop (engines cannot cross event loops)"
                    )
                # The first loop is gone; its connections died with it. Start afresh.
                self._abandon_async_engine()
            if self._async_engine is None:
                s = self.settings
                url, server_settings = _async_url(self._url)
                server_settings["application_name"] = s.application_name
                if s.statement_timeout is not None:
                    server_settings["statement_timeout"] = str(s.statement_timeout)
                engine = create_async_engine(
                    url,
                    connect_args={"server_settings": server_settings, "timeout": s.connect_timeout},
                    **self._pool_options(),
                )
                event.listen(engine.sync_engine, "connect", self._track_async_connection)
                event.listen(engine.sync_engine, "close", self._forget_async_connection)
                event.listen(engine.sync_engine, "close_detached", self._forget_async_connection)
                self._async_engine = engine
                self._async_loop = loop
            return self._async_engine

    def _track_async_connection(self, dbapi_connection: Any, *_: Any) -> None:
        self._async_raw.add(dbapi_connection)

    def _forget_async_connection(self, dbapi_connection: Any, *_: Any) -> None:
        self._async_raw.discard(dbapi_connection)

    def _abandon_async_engine(self) -> None:
        """Drop the async engine without awaiting: terminate its sockets, forget its pool."""
        engine, self._async_engine, self._async_loop = self._async_engine, None, None
        if engine is None:
            return
        for raw in list(self._async_raw):
            # Outside a greenlet the adapter's terminate() aborts the socket synchronously.
            with contextlib.suppress(Exception):
                raw.terminate()
        self._async_raw = set()
        engine.sync_engine.dispose(close=False)

    def session_factory(self) -> sessionmaker[Session]:
        """The ``sessionmaker`` behind :meth:`session` (``expire_on_commit=False``)."""
        self._check_open()
        with self._lock:
            if self._sessions is None:
                self._sessions = sessionmaker(self.engine, expire_on_commit=False)
            return self._sessions

    def _new_session(self) -> Session:
        sandbox = self._sandbox.get() or self._pinned_sandbox
        if sandbox is not None:
            return Session(
                bind=sandbox, expire_on_commit=False, join_transaction_mode="create_savepoint"
            )
        return self.session_factory()()

    def _new_async_session(self) -> AsyncSession:
        sandbox = self._async_sandbox.get()
        if sandbox is not None:
            return AsyncSession(
                bind=sandbox, expire_on_commit=False, join_transaction_mode="create_savepoint"
            )
        return AsyncSession(self.async_engine, expire_on_commit=False)

    # -- session scopes -------------------------------------------------------------------------

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """Open a Session; commit when the block ends, roll back (and re-raise) on error.

        Database errors leave as dbnb errors (``UniqueViolation``, ``ConnectionFailed``...).

        Example::

            with db.session() as s:
                s.add(User(email="ana@example.com", name="Ana"))
        """
        self._check_open()
        with self._new_session() as session:
            try:
                yield session
                session.commit()
            except BaseException as exc:
                _quiet_rollback(session)
                raise translate(exc) from exc

    @contextlib.asynccontextmanager
    async def async_session(self) -> AsyncIterator[AsyncSession]:
        """Open an AsyncSession (asyncpg); commit at the end, roll back on error."""
        async with self.asyncio.session() as session:
            yield session

    def transaction(self, session: Session | AsyncSession | None = None) -> TransactionScope:
        """Begin a transaction (``with`` or ``async with``); given a session, a SAVEPOINT.

        ``with db.transaction() as s`` commits at the end and rolls back on error;
        ``with db.transaction(s)`` nests a SAVEPOINT in ``s``, whose failure rolls back only
        the inner work. ``async with db.transaction()`` does the same on asyncpg.
        """
        from dbnb.engine.transactions import TransactionScope

        self._check_open()
        return TransactionScope(self, session)

    def sandbox(self) -> SandboxScope:
        """Open a scope whose every change is rolled back on exit (``with`` or ``async with``).

        Even what repositories bound to this Database "commit" inside it is undone: their
        sessions join the sandbox's connection through savepoints.
        """
        from dbnb.engine.transactions import SandboxScope

        self._check_open()
        return SandboxScope(self)

    def get_session(self) -> Iterator[Session]:
        """Yield a committed-on-success Session; usable as a web-framework dependency.

        Example (FastAPI)::

            @app.get("/users")
            def list_users(s: Session = Depends(db.get_session)): ...
        """
        with self.session() as session:
            yield session

    async def get_async_session(self) -> AsyncIterator[AsyncSession]:
        """Yield an AsyncSession; usable as an async web-framework dependency."""
        async with self.asyncio.session() as session:
            yield session

    # -- queries on the sync engine -------------------------------------------------------------

    def execute(self, sql: str, /, **params: Any) -> list[Any]:
        """Run one SQL statement with ``:name`` bound parameters; commit; return its rows."""
        with self.session() as s:
            result = s.execute(text(sql), params)
            return list(result) if getattr(result, "returns_rows", True) else []

    def frame(
        self,
        sql: str,
        /,
        *,
        dtype_backend: DtypeBackend = None,
        decimal: bool = False,
        uuid_as: UuidAs = "string",
        **params: Any,
    ) -> pd.DataFrame:
        """Run a query with ``:name`` bound parameters; return its rows as a DataFrame.

        dtypes come from the result's column types (the table in :mod:`dbnb.frames`), read
        through ``COPY`` in a short transaction. ``dtype_backend``, ``decimal`` and ``uuid_as``
        are options, not parameters.

        Example::

            df = db.frame("SELECT kind, count(*) FROM events WHERE created_at >= :since "
                          "GROUP BY kind", since=t0)
        """
        from dbnb.frames.read import read_frame

        with self.session() as s:
            return read_frame(
                s, sql, params, dtype_backend=dtype_backend, decimal=decimal, uuid_as=uuid_as
            )

    # -- snapshots ------------------------------------------------------------------------------

    def health(self) -> _health.HealthReport:
        """Run ``SELECT 1`` on the sync engine and report latency and version; never raises."""
        try:
            engine = self.engine
            start = time.perf_counter()
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
                latency = (time.perf_counter() - start) * 1000
                version = conn.execute(text("SHOW server_version")).scalar_one()
            return _health.HealthReport(True, "psycopg", latency, str(version))
        except Exception as exc:
            return _health.failed_report("psycopg", exc)

    def pool_status(self) -> _health.PoolReport:
        """Snapshot both engines' pools from their counters (no I/O)."""
        s = self.settings
        sync_pool = self._engine.pool if self._engine is not None else None
        async_pool = self._async_engine.sync_engine.pool if self._async_engine is not None else None
        return _health.PoolReport(
            (
                _health.pool_status_of(
                    sync_pool, engine="sync", driver="psycopg", size=s.pool_size,
                    max_overflow=s.max_overflow,
                ),
                _health.pool_status_of(
                    async_pool, engine="async", driver="asyncpg", size=s.pool_size,
                    max_overflow=s.max_overflow,
                ),
            )
        )

    def info(self) -> _health.ServerInfo:
        """Ask the server for version, size, our connections and idle-in-transaction sessions."""
        with self.engine.connect() as conn:
            try:
                head = conn.execute(text(_health.SERVER_INFO_SQL)).one()
                connections = list(conn.execute(text(_health.CONNECTIONS_SQL)))
                idle = list(conn.execute(text(_health.IDLE_IN_TRANSACTION_SQL)))
            except SQLAlchemyError as exc:
                raise translate(exc) from exc
        return _health.server_info_from_rows(head, connections, idle)

    # -- lifecycle ------------------------------------------------------------------------------

    def refresh_pools(self) -> None:
        """Replace both pools' connections (after DDL, so no stale plan or type cache survives)."""
        with self._lock:
            if self._engine is not None:
                self._engine.dispose()
            self._dispose_async_from_sync()

    def _dispose_async_from_sync(self) -> None:
        engine = self._async_engine
        if engine is None:
            return
        loop = self._async_loop
        if loop is not None and loop is running_loop() and loop.is_running():
            # Called from sync code inside the engine's own running loop (a notebook cell): let
            # the loop close the connections gracefully once the cell yields.
            self._async_engine, self._async_loop = None, None
            task = loop.create_task(engine.dispose())
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)
            return
        self._abandon_async_engine()

    def _pin_sandbox(self) -> bool:
        """Open a sandbox connection that every new sync session joins; False if one is open."""
        with self._lock:
            if self._pinned_sandbox is not None:
                return False
            conn = self.engine.connect()
            conn.begin()
            self._pinned_sandbox = conn
            return True

    def _unpin_sandbox(self) -> bool:
        """Roll back and close the pinned sandbox; False if there was none."""
        with self._lock:
            conn, self._pinned_sandbox = self._pinned_sandbox, None
        if conn is None:
            return False
        try:
            conn.rollback()
        finally:
            conn.close()
        return True

    def close(self) -> None:
        """Dispose both engines; later use raises ``DatabaseClosed``. Safe to call twice."""
        with self._lock:
            if self._closed:
                return
            with contextlib.suppress(Exception):  # the server may already be gone
                self._unpin_sandbox()
            self._closed = True
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None
            self._dispose_async_from_sync()

    def __enter__(self) -> Database:
        self._check_open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _quiet_rollback(session: Session) -> None:
    # A rollback on a dead connection must not hide the error that killed it.
    with contextlib.suppress(Exception):
        session.rollback()
