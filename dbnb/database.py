"""Database: one URL in, a psycopg 3 engine and an asyncpg engine out, with session scopes.

``Database`` owns both engines, created lazily from the same URL. ``AsyncDatabase`` (reached as
``db.asyncio``) is the awaitable face of the same object: same method names, same pools.
:func:`connect` is idempotent, so a notebook cell re-run twenty times leaves one pool.
"""

from __future__ import annotations

import asyncio
import atexit
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

from dbnb import health as _health
from dbnb.admin import create_database
from dbnb.embedded import EmbeddedServer, embedded_server
from dbnb.errors import ConfigError, DatabaseClosed, LoopMismatch, mask_secrets, translate
from dbnb.settings import Settings, safe_url

if TYPE_CHECKING:
    import pandas as pd

    from dbnb.frames import DtypeBackend, UuidAs
    from dbnb.transactions import SandboxScope, TransactionScope

__all__ = ["AsyncDatabase", "Database", "close_all", "connect", "safe_url"]

_DEFAULT_EMBEDDED_DATABASE = "dbnb"
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
        loop = _running_loop()
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
        sandbox = self._sandbox.get()
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
                raise _translated(exc) from exc

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
        from dbnb.transactions import TransactionScope

        self._check_open()
        return TransactionScope(self, session)

    def sandbox(self) -> SandboxScope:
        """Open a scope whose every change is rolled back on exit (``with`` or ``async with``).

        Even what repositories bound to this Database "commit" inside it is undone: their
        sessions join the sandbox's connection through savepoints.
        """
        from dbnb.transactions import SandboxScope

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
        from dbnb.frame_read import read_frame

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
            return _failed_health("psycopg", exc)

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
        if loop is not None and loop is _running_loop() and loop.is_running():
            # Called from sync code inside the engine's own running loop (a notebook cell): let
            # the loop close the connections gracefully once the cell yields.
            self._async_engine, self._async_loop = None, None
            task = loop.create_task(engine.dispose())
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)
            return
        self._abandon_async_engine()

    def close(self) -> None:
        """Dispose both engines; later use raises ``DatabaseClosed``. Safe to call twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None
            self._dispose_async_from_sync()
            _registry_forget(self)

    def __enter__(self) -> Database:
        self._check_open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


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
                raise _translated(exc) from exc

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
        from dbnb.frame_aread import aread_frame

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
            return _failed_health("asyncpg", exc)

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
        if engine is not None and db._async_loop is _running_loop():
            db._async_engine, db._async_loop = None, None
            await engine.dispose()
        db.close()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _translated(exc: BaseException) -> BaseException:
    return translate(exc) if isinstance(exc, Exception) else exc


def _quiet_rollback(session: Session) -> None:
    # A rollback on a dead connection must not hide the error that killed it.
    with contextlib.suppress(Exception):
        session.rollback()


async def _quiet_async_rollback(session: AsyncSession) -> None:
    with contextlib.suppress(Exception):
        await session.rollback()


def _failed_health(driver: str, exc: BaseException) -> _health.HealthReport:
    translated = translate(exc)
    return _health.HealthReport(
        ok=False,
        driver=driver,
        error=type(translated).__name__,
        message=mask_secrets(str(translated).splitlines()[0] if str(translated) else ""),
    )


# -- the registry behind idempotent connect() ------------------------------------------------------

_registry: dict[tuple[Any, ...], Database] = {}
_registry_lock = threading.Lock()


def _registry_key(settings: Settings) -> tuple[Any, ...]:
    assert settings.url is not None
    return (settings.url.render_as_string(hide_password=False), repr(settings))


def _registry_forget(db: Database) -> None:
    with _registry_lock:
        for key, value in list(_registry.items()):
            if value is db:
                del _registry[key]


def connect(
    url: str | URL | None = None,
    *,
    database: str | None = None,
    reset: bool = False,
    **options: Any,
) -> Database:
    """Connect to PostgreSQL; with no URL anywhere, to the embedded server.

    The URL comes from the argument, else ``DBNB_URL``, else ``DATABASE_URL``; with none set, an
    embedded PostgreSQL is started (or reused) in ``DBNB_HOME``. Calling ``connect`` again with
    the same URL and options returns the same open Database, so re-running a cell leaks nothing.

    Args:
        url: ``postgresql://``, ``postgres://``, ``+psycopg`` or ``+asyncpg`` URL.
        database: use this database on the same server instead of the URL's; it is created
            if missing (which needs the CREATEDB privilege on servers other than the embedded).
        reset: drop and recreate ``database`` first, for a fresh, deterministic start.
        **options: pool_size, max_overflow, pool_timeout, pool_recycle, echo,
            statement_timeout, connect_timeout, application_name.

    Example::

        db = dbnb.connect(database="tutorial_01", reset=True)
    """
    settings = Settings.resolve(url, **options)
    server: EmbeddedServer | None = None
    if settings.url is None:
        server = embedded_server()
        settings = settings.with_url(server.url(database or _DEFAULT_EMBEDDED_DATABASE))
    elif database is not None:
        assert settings.url is not None
        settings = settings.with_url(settings.url.set(database=database))
    elif reset:
        raise ConfigError("reset=True needs database=...: name the database to recreate")
    assert settings.url is not None
    key = _registry_key(settings)
    with _registry_lock:
        db = _registry.get(key)
        if db is not None and db.closed:
            db = None
        if db is not None and reset:
            db.refresh_pools()
        if database is not None or server is not None:
            create_database(settings.url, str(settings.url.database), reset=reset)
        if db is None:
            db = Database(settings, embedded=server)
            _registry[key] = db
    _register_shutdown()
    return db


def close_all() -> None:
    """Close every Database opened through :func:`connect` in this process."""
    with _registry_lock:
        dbs = list(_registry.values())
    for db in dbs:
        db.close()


def _shutdown() -> None:
    from dbnb.bridge import close_runners

    close_runners()
    close_all()


def _register_shutdown() -> None:
    # atexit runs handlers last-registered-first. Re-registering on every connect() keeps ours
    # ahead of the embedded server's own stop handler, so connections close before the server.
    atexit.unregister(_shutdown)
    atexit.register(_shutdown)
