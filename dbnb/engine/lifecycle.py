"""The two engines of one Database over their life: made on first use, refreshed, closed once.

:class:`Engines` creates each engine the first time it is needed (see
:mod:`dbnb.engine.engines`), binds the async one to the event loop that first used it, replaces
both pools after DDL, and disposes them on close, after which any use raises
:class:`~dbnb.DatabaseClosed`. Every other part of the engine layer reaches the engines
through it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from dbnb.dialects import Capabilities, capabilities
from dbnb.engine import events, health
from dbnb.engine.engines import check_query, create_async, create_sync, in_memory
from dbnb.errors import DatabaseClosed, LoopMismatch
from dbnb.settings import Settings, safe_url

__all__ = ["LOG", "Engines", "running_loop"]

#: Engines created and disposed (masked URL, pool size): ``logging.getLogger("dbnb")`` sees it.
LOG = logging.getLogger("dbnb.engine")


def running_loop() -> asyncio.AbstractEventLoop | None:
    """Return the event loop running in this thread, or None."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class Engines:
    """The psycopg engine and the loop-bound asyncpg engine of one URL, and their lifecycle."""

    def __init__(self, settings: Settings) -> None:
        assert settings.url is not None
        check_query(settings.url)
        self.settings = settings
        self.url: URL = settings.url
        self.caps: Capabilities = capabilities(settings.url)
        self.lock = threading.RLock()
        self._closed = False
        # Bumped by refresh() (after DDL): pooled psycopg connections of an older generation
        # are replaced when next checked out (see dbnb.engine.events).
        self.generation = 0
        self._sync: Engine | None = None
        self._async: AsyncEngine | None = None
        self._async_loop: asyncio.AbstractEventLoop | None = None
        # Raw asyncpg connections of the async pool, so a sync close() can terminate them
        # when no loop is available to await their graceful close.
        self._async_raw: set[Any] = set()
        self._pending: set[asyncio.Task[None]] = set()
        # Called by refresh() too: the replicas replay the primary's DDL (dbnb.engine.replicas).
        self.followers: list[Callable[[], None]] = []

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran."""
        return self._closed

    def check_open(self) -> None:
        """Raise :class:`~dbnb.DatabaseClosed` once the engines are closed."""
        if self._closed:
            raise DatabaseClosed(
                f"Database {self.url.database or ''!r} is closed; call dbnb.connect() to open "
                "it again"
            )

    @property
    def sync(self) -> Engine:
        """The psycopg engine, created on first use."""
        self.check_open()
        with self.lock:
            if self._sync is None:
                engine = create_sync(self.settings)
                events.install(
                    engine, self.settings, asynchronous=False, generation=self._generation,
                    on_ddl=self.refresh,
                )
                self._sync = engine
                self._log_created(engine, self.caps.sync_driver)
            return self._sync

    @property
    def asynchronous(self) -> AsyncEngine:
        """The asyncpg engine, bound to the event loop that first used it.

        Raises:
            LoopMismatch: used from another, still open event loop.
        """
        self.check_open()
        loop = running_loop()
        with self.lock:
            if self._async is not None and self._async_loop is not loop:
                if self._async_loop is not None and not self._async_loop.is_closed():
                    raise LoopMismatch(
                        "this Database's async engine belongs to another event loop; use it "
                        "from the loop that created it, or connect a separate Database for "
                        "this loop (engines cannot cross event loops)"
                    )
                # The first loop is gone; its connections died with it. Start afresh.
                self._abandon_async()
            if self._async is None:
                engine = create_async(self.settings)
                events.install(
                    engine.sync_engine, self.settings, asynchronous=True,
                    generation=self._generation, on_ddl=self.refresh,
                )
                event.listen(engine.sync_engine, "connect", self._track)
                event.listen(engine.sync_engine, "close", self._forget)
                event.listen(engine.sync_engine, "close_detached", self._forget)
                self._async = engine
                self._async_loop = loop
                self._log_created(engine.sync_engine, self.caps.async_driver)
            return self._async

    def _pool_text(self, engine: Engine) -> str:
        s = self.settings
        if in_memory(self.url):
            return "one shared in-memory connection"
        return f"pool {s.pool_size} + {s.max_overflow} overflow ({type(engine.pool).__name__})"

    def _log_created(self, engine: Engine, driver: str) -> None:
        LOG.info(
            "engine created: %s via %s, %s", safe_url(self.url), driver, self._pool_text(engine),
            extra={"url": safe_url(self.url), "driver": driver,
                   "pool_size": self.settings.pool_size},
        )

    def _log_disposed(self, driver: str) -> None:
        LOG.info("engine disposed: %s via %s", safe_url(self.url), driver,
                 extra={"url": safe_url(self.url), "driver": driver})

    def owns_loop(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Tell whether the async engine exists and belongs to ``loop``."""
        return self._async is not None and self._async_loop is loop

    def pool_report(self) -> health.PoolReport:
        """Snapshot both engines' pools from their counters (no I/O)."""
        s = self.settings
        # In memory: one shared connection per engine, whatever the pool settings say.
        size, overflow = (1, 0) if in_memory(self.url) else (s.pool_size, s.max_overflow)
        sync_pool = self._sync.pool if self._sync is not None else None
        async_pool = self._async.sync_engine.pool if self._async is not None else None
        return health.PoolReport(
            (
                health.pool_status_of(
                    sync_pool, engine="sync", driver=self.caps.sync_driver, size=size,
                    max_overflow=overflow,
                ),
                health.pool_status_of(
                    async_pool, engine="async", driver=self.caps.async_driver, size=size,
                    max_overflow=overflow,
                ),
            )
        )

    # -- async connection bookkeeping -----------------------------------------------------------

    def _track(self, dbapi_connection: Any, *_: Any) -> None:
        self._async_raw.add(dbapi_connection)

    def _forget(self, dbapi_connection: Any, *_: Any) -> None:
        self._async_raw.discard(dbapi_connection)

    def _abandon_async(self) -> None:
        """Drop the async engine without awaiting: terminate its sockets, forget its pool."""
        engine, self._async, self._async_loop = self._async, None, None
        if engine is None:
            return
        for raw in list(self._async_raw):
            # Outside a greenlet the adapter's terminate() aborts the socket synchronously.
            with contextlib.suppress(Exception):
                raw.terminate()
        self._async_raw = set()
        engine.sync_engine.dispose(close=False)
        self._log_disposed(self.caps.async_driver)

    def _dispose_async_from_sync(self) -> None:
        engine = self._async
        if engine is None:
            return
        loop = self._async_loop
        if loop is not None and loop is running_loop() and loop.is_running():
            # Called from sync code inside the engine's own running loop (a notebook cell): let
            # the loop close the connections gracefully once the cell yields.
            self._async, self._async_loop = None, None
            self._dispose_later(loop, engine)
            return
        if loop is not None and loop.is_running() and not loop.is_closed():
            # Another thread (a migration running beside async work): the loop's own
            # connections may be in use right now. Dispose on that loop, gracefully: idle
            # connections close, busy ones are discarded when they come back.
            self._async, self._async_loop = None, None
            loop.call_soon_threadsafe(self._dispose_later, loop, engine)
            return
        self._abandon_async()

    def _dispose_later(self, loop: asyncio.AbstractEventLoop, engine: AsyncEngine) -> None:
        task = loop.create_task(engine.dispose())
        self._log_disposed(self.caps.async_driver)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    # -- refresh and close ----------------------------------------------------------------------

    def _generation(self) -> int:
        return self.generation

    def refresh(self) -> None:
        """Make both pools forget cached plans and types (after DDL), without closing anything.

        Connections in use right now finish their work (another thread's, another task's);
        each psycopg connection is replaced the next time it is checked out, and the asyncpg
        adapter drops its prepared statements and reloads its type cache before the next one.
        """
        for follower in self.followers:
            follower()
        with self.lock:
            self.generation += 1
            dialect = self._async.sync_engine.dialect if self._async is not None else None
            # asyncpg's prepared statements (the other drivers cache nothing of the schema)
            invalidate = getattr(dialect, "_invalidate_schema_cache", None)
            if invalidate is not None:
                invalidate()

    async def arefresh(self) -> None:
        """Replace both pools' connections, awaiting the async ones' graceful close.

        An in-memory SQLite database lives only as long as its connections: nothing cached
        needs replacing there, so they are kept.
        """
        if in_memory(self.url):
            return
        if self._sync is not None:
            self._sync.dispose()
        if self._async is not None:
            await self._async.dispose()

    async def aclose_async(self) -> None:
        """Dispose the async engine gracefully when it belongs to the running loop."""
        engine = self._async
        if engine is not None and self._async_loop is running_loop():
            self._async, self._async_loop = None, None
            await engine.dispose()
            self._log_disposed(self.caps.async_driver)

    def close(self) -> None:
        """Dispose both engines; later use raises ``DatabaseClosed``. Safe to call twice."""
        with self.lock:
            if self._closed:
                return
            self._closed = True
            if self._sync is not None:
                self._sync.dispose()
                self._sync = None
                self._log_disposed(self.caps.sync_driver)
            self._dispose_async_from_sync()
