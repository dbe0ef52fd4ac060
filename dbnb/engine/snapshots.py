"""What the servers look like now: health, pools, server info, sessions, replicas' replay.

``health``, ``pool_status``, ``info``, ``sessions`` and ``wait_for_replicas`` of
:class:`~dbnb.Database` (:class:`Snapshots`) and of its ``db.asyncio`` face
(:class:`AsyncSnapshots`), kept here as mixins so each shell's module stays about sessions and
queries. With read replicas, ``health`` and ``pool_status`` have one row per node (see
:mod:`dbnb.engine.replication`).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from dbnb.driver_errors import translate
from dbnb.engine import health as _health
from dbnb.engine import probes
from dbnb.engine import replication as _replication
from dbnb.engine import server_info as _server_info
from dbnb.server.sessions import (
    SESSIONS_SQL,
    SessionList,
    pids_to_end,
    sessions_from_rows,
    terminate_sql,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import URL, Engine
    from sqlalchemy.ext.asyncio import AsyncEngine

    from dbnb.dialects import Capabilities
    from dbnb.engine.lifecycle import Engines
    from dbnb.engine.replicas import ReplicaSet
    from dbnb.engine.sessions import Sessions

__all__ = ["AsyncSnapshots", "Snapshots"]

_NO_SESSIONS = (
    "list and end connections with the server's own tools (MySQL: SHOW PROCESSLIST, KILL)"
)


class _Database(Protocol):
    """What the snapshots use of a Database."""

    _engines: Engines
    _replicas: ReplicaSet | None

    @property
    def capabilities(self) -> Capabilities: ...
    @property
    def engine(self) -> Engine: ...
    @property
    def url(self) -> URL: ...


class _AsyncDatabase(Protocol):
    """What the snapshots use of an AsyncDatabase."""

    _engines: Engines
    _sessions: Sessions

    @property
    def engine(self) -> AsyncEngine: ...
    @property
    def url(self) -> URL: ...


class Snapshots:
    """The snapshot methods of :class:`~dbnb.Database` (a mixin: the Database is ``self``)."""

    def health(self: _Database) -> _health.HealthReport:
        """Run ``SELECT 1`` on the sync engine and report latency and version; never raises.

        With read replicas, every replica is looked at too (one row per node: role, latency,
        lag, whether reads go there): a skipped replica that recovered goes back into rotation.
        """
        caps = self.capabilities
        try:
            engine = self.engine
            start = time.perf_counter()
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
                latency = (time.perf_counter() - start) * 1000
                version = conn.execute(text(probes.version_sql(caps))).scalar_one()
                behind = _replication.streamed(conn) if self._replicas is not None else {}
            report = _health.HealthReport(
                True, caps.sync_driver, latency, str(version), backend=caps.label
            )
        except Exception as exc:
            report, behind = _health.failed_report(caps.sync_driver, exc), {}
        if self._replicas is None:
            return report
        self._replicas.check_all()
        return _replication.with_nodes(report, self._replicas, behind, self.url)

    def wait_for_replicas(self: _Database, max_wait: float = 30.0) -> None:
        """Wait until the replicas in rotation have replayed every commit made so far.

        Asks the primary where its WAL ends (``pg_current_wal_lsn()``) and each replica
        whether it has replayed that far (``pg_last_wal_replay_lsn()``); after a load, reads
        on the replicas then see it. Without replicas it returns at once.

        Raises:
            ReplicasBehind: a replica had not caught up within ``max_wait`` seconds.

        Example::

            events.from_frame(df)                 # the primary
            db.wait_for_replicas()
            events.to_frame()                     # a replica, with the new rows
        """
        if self._replicas is None:
            return
        try:
            with self.engine.connect() as conn:
                lsn = str(conn.execute(text(_replication.CURRENT_LSN_SQL)).scalar_one())
        except SQLAlchemyError as exc:
            raise translate(exc) from exc
        self._replicas.wait(lsn, max_wait)

    def pool_status(self: _Database) -> _health.PoolReport:
        """Snapshot both engines' pools from their counters (no I/O).

        With read replicas, one row per node too: its state, lag, routed reads and pools.
        """
        report = self._engines.pool_report()
        if self._replicas is None:
            return report
        return _replication.pools_with_nodes(report, self._replicas, self.url)

    def info(self: _Database) -> _server_info.ServerInfo:
        """Ask the server for version, size, our connections and idle-in-transaction sessions."""
        asks = probes.info_queries(self.capabilities)

        def rows(sql: str | None) -> list[Any] | None:
            return None if sql is None else list(conn.execute(text(sql)))

        with self.engine.connect() as conn:
            try:
                head = conn.execute(text(asks.head)).one()
                connections, idle, long = rows(asks.connections), rows(asks.idle), rows(asks.long)
            except SQLAlchemyError as exc:
                raise translate(exc) from exc
        return _server_info.server_info_from_rows(
            head, connections, idle or [], long or [], backend=self.capabilities.label
        )

    def sessions(
        self: _Database,
        *, stale: bool = False, terminate: int | str | None = None, everyone: bool = False,
    ) -> SessionList:
        """List dbnb's sessions on the server; optionally end one (or every stale one).

        Each row says the session's pid, application name (``dbnb:<pid of its process>``),
        state, age, query and, when the server runs on this machine, whether the owning
        process is still alive. Stale: the owner is gone, or it sat idle in a transaction for
        over five minutes.

        Args:
            stale: list only stale sessions.
            terminate: end this session (a pid), or every stale one (``"stale"``), with
                ``pg_terminate_backend``.
            everyone: include sessions of other applications (listing and terminating).

        Example::

            db.sessions(stale=True)                 # %db sessions --stale
            db.sessions(terminate=12345)            # %db sessions --terminate 12345
        """
        self.capabilities.require("sessions", _NO_SESSIONS)
        with self.engine.connect() as conn:
            try:
                rows = list(conn.execute(text(SESSIONS_SQL), {"everyone": everyone}))
                found = sessions_from_rows(rows, self.url, stale=stale)
                pids = pids_to_end(found, terminate, stale=stale, everyone=everyone)
                for pid in pids:
                    conn.execute(text(terminate_sql(conn.dialect)), {"pid": pid})
                conn.commit()
            except SQLAlchemyError as exc:
                raise translate(exc) from exc
        return SessionList(found, pids)


class AsyncSnapshots:
    """The snapshot methods of ``db.asyncio`` (a mixin: the AsyncDatabase is ``self``)."""

    async def health(self: _AsyncDatabase) -> _health.HealthReport:
        """Run ``SELECT 1`` on the async engine and report latency and version; never raises.

        With read replicas, every replica is looked at too (over asyncpg): one row per node.
        """
        caps = self._engines.caps
        replicas = self._sessions.replicas
        try:
            engine = self.engine
            start = time.perf_counter()
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
                latency = (time.perf_counter() - start) * 1000
                version = (await conn.execute(text(probes.version_sql(caps)))).scalar_one()
                behind = await _replication.astreamed(conn) if replicas is not None else {}
            report = _health.HealthReport(
                True, caps.async_driver, latency, str(version), backend=caps.label
            )
        except Exception as exc:
            report, behind = _health.failed_report(caps.async_driver, exc), {}
        if replicas is None:
            return report
        await replicas.acheck_all()
        return _replication.with_nodes(report, replicas, behind, self.url)

    async def wait_for_replicas(self: _AsyncDatabase, max_wait: float = 30.0) -> None:
        """Await :meth:`Database.wait_for_replicas` (over asyncpg)."""
        replicas = self._sessions.replicas
        if replicas is None:
            return
        try:
            async with self.engine.connect() as conn:
                found = await conn.execute(text(_replication.CURRENT_LSN_SQL))
                lsn = str(found.scalar_one())
        except SQLAlchemyError as exc:
            raise translate(exc) from exc
        await replicas.await_replay(lsn, max_wait)

    def pool_status(self: _AsyncDatabase) -> _health.PoolReport:
        """Snapshot both engines' pools (no I/O, so not a coroutine); with replicas, each node."""
        report = self._engines.pool_report()
        replicas = self._sessions.replicas
        if replicas is None:
            return report
        return _replication.pools_with_nodes(report, replicas, self.url)

    async def info(self: _AsyncDatabase) -> _server_info.ServerInfo:
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
        return _server_info.server_info_from_rows(
            head, connections, idle or [], long or [], backend=self._engines.caps.label
        )

    async def sessions(
        self: _AsyncDatabase,
        *, stale: bool = False, terminate: int | str | None = None, everyone: bool = False,
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
