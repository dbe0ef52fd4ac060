"""Read routing: which server of a replica set a read goes to, chosen per read.

A Database made with ``replicas=[...]`` keeps one :class:`ReplicaSet`. Reads that may go to a
replica (``db.session(read_only=True)``: what repositories bound to the Database, ``db.frame``,
``db.execute`` of reads and ``%%db`` ask for) take the next usable replica in turn (round
robin); everything else, and every read when no replica is usable, goes to the primary.

A replica is usable while it answers, is a standby (``pg_is_in_recovery()``), and is at most
``max_lag`` seconds behind (see :mod:`dbnb.engine.nodes` for how lag is measured). Its state
is looked at again every ``recheck`` seconds, when a read comes by: a replica that failed or
fell behind is skipped (with a :class:`~dbnb.ReplicaWarning`, once per change) and tried again
``recheck`` seconds later. A read session connects before it is handed out, so a replica that
went away is noticed there and the read moves on to the next one, or the primary.

Overrides: ``use="primary"`` on a call, ``with db.use("primary"):`` for a block, and
``db.session(read_your_writes=True)``: once anything committed on the primary inside that
block, the block's reads go to the primary too (a replica may not have replayed it yet).
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
import warnings
from collections.abc import Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from dbnb.engine.lifecycle import Engines
from dbnb.engine.nodes import PROBE_SQL, REPLAYED_SQL, NodeStatus, Probe, probe_from_row
from dbnb.errors import (
    ConfigError,
    ConnectionFailed,
    ReplicasBehind,
    ReplicaWarning,
    mask_secrets,
    translate,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

    from dbnb.engine.replica_settings import ReplicaSettings
    from dbnb.settings import Settings

__all__ = ["NODE", "USES", "Node", "ReplicaSet", "Use", "check_use", "where_of"]

#: Where a read goes: ``"primary"``, ``"replica"`` (one if any is usable), None (the rules).
Use = Literal["primary", "replica"] | None
USES = ("primary", "replica")
#: The key of ``Session.info`` that names the replica a read session runs on.
NODE = "dbnb_replica"


def check_use(use: Any) -> Use:
    """Return ``use`` if it is a valid routing choice.

    Raises:
        ConfigError: anything but ``"primary"``, ``"replica"`` or None.
    """
    if use is not None and use not in USES:
        raise ConfigError(f"use={use!r}: use 'primary', 'replica' or None (the routing rules)")
    return use  # type: ignore[no-any-return]


def where_of(url: URL) -> str:
    """Name a server for humans: ``host:port``, or the socket directory and port."""
    host = url.host or str(url.query.get("host") or "localhost")
    port = url.port or url.query.get("port") or 5432
    return f"{host}:{port}"


class Node:
    """One replica: its engines (both drivers, their own pools) and what was last seen of it."""

    def __init__(self, index: int, url: URL, settings: Settings) -> None:
        self.name = f"replica {index + 1}"
        self.engines = Engines(settings.with_url(url))
        self.where = where_of(url)
        self.ok: bool | None = None  # None: not looked at yet
        self.state = "not checked yet"
        self.probe: Probe | None = None
        self.checked = float("-inf")
        self.reads = 0

    def due(self, now: float, recheck: float) -> bool:
        """Tell whether the node should be looked at again before a read goes there."""
        return self.ok is None or now - self.checked >= recheck

    def __repr__(self) -> str:
        return f"<Node {self.name} {self.where} {self.state}>"


class _Writes:
    """A read-your-writes block: did anything commit on the primary inside it yet?"""

    wrote = False


class ReplicaSet:
    """The replicas of one Database, their state, and the routing of its reads."""

    def __init__(self, settings: Settings, config: ReplicaSettings) -> None:
        self.config = config
        self.nodes = [Node(i, url, settings) for i, url in enumerate(config.urls)]
        self.primary_reads = 0
        self._turn = itertools.count()
        self._lock = threading.Lock()
        self._none_usable = False
        self._use: ContextVar[Use] = ContextVar(f"dbnb_use_{id(self)}", default=None)
        self._writes: ContextVar[_Writes | None] = ContextVar(
            f"dbnb_read_your_writes_{id(self)}", default=None
        )

    # -- overrides ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def use(self, where: Use) -> Iterator[None]:
        """Send this context's routed reads to ``where`` until the block ends."""
        token = self._use.set(check_use(where))
        try:
            yield
        finally:
            self._use.reset(token)

    @contextlib.contextmanager
    def reading_your_writes(self) -> Iterator[None]:
        """A block whose reads go to the primary once anything in it committed there."""
        token = self._writes.set(_Writes())
        try:
            yield
        finally:
            self._writes.reset(token)

    def committed(self, *_: Any) -> None:
        """Note a commit on the primary (a Session ``after_commit`` listener)."""
        writes = self._writes.get()
        if writes is not None:
            writes.wrote = True

    def _to_primary(self, use: Use) -> bool:
        where = use or self._use.get()
        if where is not None:
            return where == "primary"
        writes = self._writes.get()
        return writes is not None and writes.wrote

    # -- choosing a replica ---------------------------------------------------------------------

    def _rotation(self) -> list[Node]:
        start = next(self._turn) % len(self.nodes)
        return self.nodes[start:] + self.nodes[:start]

    def _usable(self, node: Node) -> bool:
        return node.ok is True

    def choose(self, use: Use = None) -> Node | None:
        """The replica the next read goes to (looking at due ones first); None: the primary."""
        if self._to_primary(use):
            return None
        now = time.monotonic()
        for node in self._rotation():
            if node.due(now, self.config.recheck):
                self._probe(node)
            if self._usable(node):
                return node
        self._nobody()
        return None

    async def achoose(self, use: Use = None) -> Node | None:
        """:meth:`choose`, looking at replicas over asyncpg."""
        if self._to_primary(use):
            return None
        now = time.monotonic()
        for node in self._rotation():
            if node.due(now, self.config.recheck):
                await self._aprobe(node)
            if self._usable(node):
                return node
        self._nobody()
        return None

    def session(self, use: Use = None) -> Session | None:
        """A Session on the next usable replica, already connected; None: use the primary."""
        for _ in self.nodes:
            node = self.choose(use)
            if node is None:
                break
            session = Session(bind=node.engines.sync, expire_on_commit=False, info={NODE: node})
            try:
                session.connection()
            except Exception as exc:
                session.close()
                self.failed(node, exc)
                continue
            self._routed(node)
            return session
        self.primary_reads += 1
        return None

    async def asession(self, use: Use = None) -> AsyncSession | None:
        """An AsyncSession on the next usable replica, already connected; None: the primary."""
        for _ in self.nodes:
            node = await self.achoose(use)
            if node is None:
                break
            session = AsyncSession(
                node.engines.asynchronous, expire_on_commit=False, info={NODE: node}
            )
            try:
                await session.connection()
            except Exception as exc:
                await session.close()
                self.failed(node, exc)
                continue
            self._routed(node)
            return session
        self.primary_reads += 1
        return None

    def _routed(self, node: Node) -> None:
        with self._lock:
            node.reads += 1
            self._none_usable = False

    # -- what was seen --------------------------------------------------------------------------

    def _probe(self, node: Node) -> None:
        start = time.perf_counter()
        try:
            with node.engines.sync.connect() as conn:
                row = conn.execute(text(PROBE_SQL)).one()
                latency = (time.perf_counter() - start) * 1000
                conn.rollback()
        except Exception as exc:
            self.failed(node, exc)
            return
        self.seen(node, probe_from_row(row, latency))

    async def _aprobe(self, node: Node) -> None:
        start = time.perf_counter()
        try:
            async with node.engines.asynchronous.connect() as conn:
                row = (await conn.execute(text(PROBE_SQL))).one()
                latency = (time.perf_counter() - start) * 1000
                await conn.rollback()
        except Exception as exc:
            self.failed(node, exc)
            return
        self.seen(node, probe_from_row(row, latency))

    def seen(self, node: Node, probe: Probe) -> None:
        """Record what a replica said; skip it (and warn, once) if it cannot serve reads."""
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
            was = node.state
            node.probe, node.checked = probe, time.monotonic()
            node.ok, node.state = reason is None, state
        if reason is not None and was != state:
            self._warn(node, reason)

    def failed(self, node: Node, exc: BaseException) -> None:
        """Take a replica out of rotation after ``exc`` (warn once); try it again later."""
        error = translate(exc) if isinstance(exc, Exception) else exc
        first = _first_line(exc)
        with self._lock:
            was = node.state
            node.ok, node.checked = False, time.monotonic()
            node.state = f"skipped: unreachable ({type(error).__name__})"
        if was != node.state:
            self._warn(node, f"failed ({first})")

    def after_error(self, session: Session | AsyncSession, exc: BaseException) -> None:
        """After a read failed: a replica that lost its connection leaves the rotation."""
        node = session.info.get(NODE)
        if isinstance(node, Node) and isinstance(exc, ConnectionFailed):
            self.failed(node, exc)

    def _warn(self, node: Node, reason: str) -> None:
        warnings.warn(
            f"dbnb: {node.name} ({node.where}) {reason}; reads skip it and try it again in "
            f"{self.config.recheck:g} s",
            ReplicaWarning,
            stacklevel=2,
        )

    def _nobody(self) -> None:
        with self._lock:
            first, self._none_usable = not self._none_usable, True
        if first:
            warnings.warn(
                "dbnb: no replica is usable; reads go to the primary until one is",
                ReplicaWarning,
                stacklevel=2,
            )

    def check_all(self) -> None:
        """Look at every replica now (``db.health()``): the skipped ones get their retry."""
        for node in self.nodes:
            self._probe(node)

    async def acheck_all(self) -> None:
        """:meth:`check_all` over asyncpg."""
        for node in self.nodes:
            await self._aprobe(node)

    # -- waiting for replay ---------------------------------------------------------------------

    def _waited_for(self) -> list[Node]:
        return [node for node in self.nodes if node.ok is not False]

    def _behind(self, pending: dict[Node, str], lsn: str, waited: float) -> ReplicasBehind:
        names = "; ".join(f"{n.name} ({n.where}){why}" for n, why in pending.items())
        return ReplicasBehind(
            f"not replayed up to the primary's {lsn} after {waited:g} s: {names}; read from the "
            "primary (use='primary'), or wait longer (replay may be paused: SELECT "
            "pg_wal_replay_resume() on the replica)"
        )

    def wait(self, lsn: str, max_wait: float) -> None:
        """Wait until every replica in rotation has replayed the primary's WAL up to ``lsn``.

        A replica that cannot be reached is waited for too (a database just created on the
        primary reaches it only when replayed).

        Raises:
            ReplicasBehind: some had not after ``max_wait`` seconds (the message names them).
        """
        deadline = time.monotonic() + max_wait
        pending = dict.fromkeys(self._waited_for(), "")
        while pending:
            for node in list(pending):
                try:
                    with node.engines.sync.connect() as conn:
                        done = conn.execute(text(REPLAYED_SQL), {"lsn": lsn}).scalar()
                        conn.rollback()
                except Exception as exc:
                    done, pending[node] = False, f": {_first_line(exc)}"
                if done:
                    del pending[node]
            if pending and time.monotonic() > deadline:
                raise self._behind(pending, lsn, max_wait)
            if pending:
                time.sleep(0.01)

    async def await_replay(self, lsn: str, max_wait: float) -> None:
        """:meth:`wait` over asyncpg, sleeping without blocking the event loop."""
        import asyncio

        deadline = time.monotonic() + max_wait
        pending = dict.fromkeys(self._waited_for(), "")
        while pending:
            for node in list(pending):
                try:
                    async with node.engines.asynchronous.connect() as conn:
                        done = (await conn.execute(text(REPLAYED_SQL), {"lsn": lsn})).scalar()
                        await conn.rollback()
                except Exception as exc:
                    done, pending[node] = False, f": {_first_line(exc)}"
                if done:
                    del pending[node]
            if pending and time.monotonic() > deadline:
                raise self._behind(pending, lsn, max_wait)
            if pending:
                await asyncio.sleep(0.01)

    def statuses(
        self, *, behind: dict[str, int] | None = None, pools: bool = False
    ) -> tuple[NodeStatus, ...]:
        """Each replica as last seen (no I/O); ``behind``: the primary's bytes per name."""
        found = []
        names = [n.probe.name if n.probe else None for n in self.nodes]
        for node, name in zip(self.nodes, names, strict=True):
            unique = name is not None and names.count(name) == 1
            found.append(
                NodeStatus(
                    node.name, "replica", node.where, node.ok is True, node.state,
                    latency_ms=node.probe.latency_ms if node.probe else None,
                    lag_seconds=node.probe.lag if node.probe else None,
                    behind_bytes=(behind or {}).get(name) if unique and name else None,
                    reads=node.reads,
                    pools=_pools(node.engines) if pools else "",
                )
            )
        return tuple(found)

    # -- lifecycle ------------------------------------------------------------------------------

    def refresh(self) -> None:
        """After DDL on the primary (which the replicas replay): forget cached plans there too."""
        for node in self.nodes:
            node.engines.refresh()

    async def arefresh(self) -> None:
        """Replace the replicas' pooled connections, awaiting the async ones' close."""
        for node in self.nodes:
            await node.engines.arefresh()

    async def aclose_async(self) -> None:
        """Dispose the replicas' async engines gracefully (those of the running loop)."""
        for node in self.nodes:
            await node.engines.aclose_async()

    def close(self) -> None:
        """Dispose every replica's engines."""
        for node in self.nodes:
            node.engines.close()


def _first_line(exc: BaseException) -> str:
    """The dbnb error's class and first line, secrets masked."""
    error = translate(exc) if isinstance(exc, Exception) else exc
    said = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {mask_secrets(said)}"


def _pools(engines: Engines) -> str:
    started = [p for p in engines.pool_report().pools if p.started]
    if not started:
        return "not started"
    return ", ".join(f"{p.engine} {p.checked_out}/{p.capacity}" for p in started)

