"""One read replica: its engines, what was last seen of it, and whether reads may go there.

A :class:`Node` looks at its server with one round trip (:data:`~dbnb.engine.nodes.PROBE_SQL`)
on either driver and keeps the answer. It serves reads while it answers, is a standby
(``pg_is_in_recovery()``) and is at most ``max_lag`` seconds behind; otherwise it is skipped,
with a :class:`~dbnb.ReplicaWarning` once per change of state, and looked at again
``recheck`` seconds later. Which node a read goes to is :mod:`dbnb.engine.replicas`' choice.
"""

from __future__ import annotations

import threading
import time
import warnings
from typing import TYPE_CHECKING

from sqlalchemy import text

from dbnb.driver_errors import translate
from dbnb.engine.lifecycle import Engines
from dbnb.engine.nodes import PROBE_SQL, REPLAYED_SQL, NodeStatus, Probe, probe_from_row
from dbnb.errors import ReplicaWarning
from dbnb.redaction import mask_secrets

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

    from dbnb.engine.replica_settings import ReplicaSettings
    from dbnb.settings import Settings

__all__ = ["Node", "first_line", "where_of"]


def where_of(url: URL) -> str:
    """Name a server for humans: ``host:port``, or the socket directory and port."""
    host = url.host or str(url.query.get("host") or "localhost")
    port = url.port or url.query.get("port") or 5432
    return f"{host}:{port}"


def first_line(exc: BaseException) -> str:
    """The dbnb error's class and first line, secrets masked."""
    error = translate(exc) if isinstance(exc, Exception) else exc
    said = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {mask_secrets(said)}"


class Node:
    """One replica: its engines (both drivers, their own pools) and what was last seen of it."""

    def __init__(self, index: int, url: URL, settings: Settings, config: ReplicaSettings) -> None:
        self.name = f"replica {index + 1}"
        self.engines = Engines(settings.with_url(url))
        self.where = where_of(url)
        self.config = config
        self.ok: bool | None = None  # None: not looked at yet
        self.state = "not checked yet"
        self.probe: Probe | None = None
        self.checked = float("-inf")
        self.reads = 0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<Node {self.name} {self.where} {self.state}>"

    def due(self, now: float) -> bool:
        """Tell whether the node should be looked at again before a read goes there."""
        return self.ok is None or now - self.checked >= self.config.recheck

    def routed(self) -> None:
        """Count a read session handed out on this node."""
        with self._lock:
            self.reads += 1

    # -- looking at the server ------------------------------------------------------------------

    def look(self) -> None:
        """Ask the replica how it is (one round trip on psycopg) and record the answer."""
        start = time.perf_counter()
        try:
            with self.engines.sync.connect() as conn:
                row = conn.execute(text(PROBE_SQL)).one()
                latency = (time.perf_counter() - start) * 1000
                conn.rollback()
        except Exception as exc:
            self.failed(exc)
            return
        self.seen(probe_from_row(row, latency))

    async def alook(self) -> None:
        """:meth:`look` over asyncpg."""
        start = time.perf_counter()
        try:
            async with self.engines.asynchronous.connect() as conn:
                row = (await conn.execute(text(PROBE_SQL))).one()
                latency = (time.perf_counter() - start) * 1000
                await conn.rollback()
        except Exception as exc:
            self.failed(exc)
            return
        self.seen(probe_from_row(row, latency))

    def replayed(self, lsn: str) -> bool:
        """Tell whether the replica has replayed the primary's WAL up to ``lsn``."""
        with self.engines.sync.connect() as conn:
            done = conn.execute(text(REPLAYED_SQL), {"lsn": lsn}).scalar()
            conn.rollback()
        return bool(done)

    async def areplayed(self, lsn: str) -> bool:
        """:meth:`replayed` over asyncpg."""
        async with self.engines.asynchronous.connect() as conn:
            done = (await conn.execute(text(REPLAYED_SQL), {"lsn": lsn})).scalar()
            await conn.rollback()
        return bool(done)

    # -- what was seen --------------------------------------------------------------------------

    def seen(self, probe: Probe) -> None:
        """Record what the replica said; skip it (and warn, once) if it cannot serve reads."""
        max_lag = self.config.max_lag
        if not probe.standby:
            state = "skipped: not a standby"
            reason = "is not a standby (pg_is_in_recovery() is false: promoted, or a primary)"
        elif probe.lag is not None and probe.lag > max_lag:
            state = "skipped: too far behind"
            reason = f"is {probe.lag:.1f} s behind the primary (max_replica_lag {max_lag:g} s)"
        else:
            state = "in rotation" + (" (replay paused)" if probe.paused else "")
            reason = None
        with self._lock:
            was = self.state
            self.probe, self.checked = probe, time.monotonic()
            self.ok, self.state = reason is None, state
        if reason is not None and was != state:
            self._warn(reason)

    def failed(self, exc: BaseException) -> None:
        """Take the replica out of rotation after ``exc`` (warn once); try it again later."""
        error = translate(exc) if isinstance(exc, Exception) else exc
        with self._lock:
            was = self.state
            self.ok, self.checked = False, time.monotonic()
            self.state = f"skipped: unreachable ({type(error).__name__})"
        if was != self.state:
            self._warn(f"failed ({first_line(exc)})")

    def _warn(self, reason: str) -> None:
        warnings.warn(
            f"dbnb: {self.name} ({self.where}) {reason}; reads skip it and try it again in "
            f"{self.config.recheck:g} s",
            ReplicaWarning,
            stacklevel=3,
        )

    def status(self, *, behind: int | None = None, pools: bool = False) -> NodeStatus:
        """The replica as last seen (no I/O); ``behind``: bytes, from the primary's view."""
        return NodeStatus(
            self.name, "replica", self.where, self.ok is True, self.state,
            latency_ms=self.probe.latency_ms if self.probe else None,
            lag_seconds=self.probe.lag if self.probe else None,
            behind_bytes=behind,
            reads=self.reads,
            pools=self._pools() if pools else "",
        )

    def _pools(self) -> str:
        started = [p for p in self.engines.pool_report().pools if p.started]
        if not started:
            return "not started"
        return ", ".join(f"{p.engine} {p.checked_out}/{p.capacity}" for p in started)
