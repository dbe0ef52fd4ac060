"""Read routing: which server of a replica set a read goes to, chosen per read.

A Database made with ``replicas=[...]`` keeps one :class:`ReplicaSet`. Reads that may go to a
replica (``db.session(read_only=True)``: what repositories bound to the Database, ``db.frame``,
``db.execute`` of reads and ``%%db`` ask for) take the next usable replica in turn (round
robin); everything else, and every read when no replica is usable, goes to the primary.

Whether a replica is usable is its :class:`~dbnb.engine.replica_nodes.Node`'s business: it
answers, is a standby and is at most ``max_lag`` seconds behind. A due node is looked at again
when a read comes by, and a read session connects before it is handed out, so a replica that
went away is noticed there and the read moves on to the next one, or the primary.

Overrides: ``use="primary"`` on a call, ``with db.use("primary"):`` for a block, and
``db.session(read_your_writes=True)``: once anything committed on the primary inside that
block, the block's reads go to the primary too (a replica may not have replayed it yet).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
import time
import warnings
from collections.abc import Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from dbnb.engine.replica_nodes import Node, first_line
from dbnb.errors import ConfigError, ConnectionFailed, ReplicasBehind, ReplicaWarning

if TYPE_CHECKING:
    from dbnb.engine.nodes import NodeStatus
    from dbnb.engine.replica_settings import ReplicaSettings
    from dbnb.settings import Settings

__all__ = ["NODE", "USES", "ReplicaSet", "Use", "check_use"]

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


class _Writes:
    """A read-your-writes block: did anything commit on the primary inside it yet?"""

    wrote = False


class ReplicaSet:
    """The replicas of one Database and the routing of its reads."""

    def __init__(self, settings: Settings, config: ReplicaSettings) -> None:
        self.config = config
        self.nodes = [Node(i, url, settings, config) for i, url in enumerate(config.urls)]
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
        if len(self.nodes) == 1:
            return self.nodes
        start = next(self._turn) % len(self.nodes)
        return self.nodes[start:] + self.nodes[:start]

    def choose(self, use: Use = None) -> Node | None:
        """The replica the next read goes to (looking at due ones first); None: the primary."""
        if self._to_primary(use):
            return None
        now = time.monotonic()
        for node in self._rotation():
            if node.due(now):
                node.look()
            if node.ok is True:
                return node
        self._nobody()
        return None

    async def achoose(self, use: Use = None) -> Node | None:
        """:meth:`choose`, looking at replicas over asyncpg."""
        if self._to_primary(use):
            return None
        now = time.monotonic()
        for node in self._rotation():
            if node.due(now):
                await node.alook()
            if node.ok is True:
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
                node.failed(exc)
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
                node.failed(exc)
                continue
            self._routed(node)
            return session
        self.primary_reads += 1
        return None

    def _routed(self, node: Node) -> None:
        node.routed()
        if self._none_usable:  # read unlocked: the common case (a replica was usable) is cheap
            with self._lock:
                self._none_usable = False

    def _nobody(self) -> None:
        with self._lock:
            first, self._none_usable = not self._none_usable, True
        if first:
            warnings.warn(
                "dbnb: no replica is usable; reads go to the primary until one is",
                ReplicaWarning,
                stacklevel=3,
            )

    def after_error(self, session: Session | AsyncSession, exc: BaseException) -> None:
        """After a read failed: a replica that lost its connection leaves the rotation."""
        node = session.info.get(NODE)
        if isinstance(node, Node) and isinstance(exc, ConnectionFailed):
            node.failed(exc)

    # -- looking at every replica ---------------------------------------------------------------

    def check_all(self) -> None:
        """Look at every replica now (``db.health()``): the skipped ones get their retry."""
        for node in self.nodes:
            node.look()

    async def acheck_all(self) -> None:
        """:meth:`check_all` over asyncpg."""
        for node in self.nodes:
            await node.alook()

    def statuses(
        self, *, behind: dict[str, int] | None = None, pools: bool = False
    ) -> tuple[NodeStatus, ...]:
        """Each replica as last seen (no I/O); ``behind``: the primary's bytes per name."""
        names = [n.probe.name if n.probe else None for n in self.nodes]
        return tuple(
            # pg_stat_replication tells standbys apart by name only: a shared name says nothing.
            node.status(
                behind=(behind or {}).get(name) if name and names.count(name) == 1 else None,
                pools=pools,
            )
            for node, name in zip(self.nodes, names, strict=True)
        )

    # -- waiting for replay ---------------------------------------------------------------------

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
        pending = {node: "" for node in self.nodes if node.ok is not False}
        while pending:
            for node in list(pending):
                try:
                    if node.replayed(lsn):
                        del pending[node]
                except Exception as exc:
                    pending[node] = f": {first_line(exc)}"
            if pending and time.monotonic() > deadline:
                raise self._behind(pending, lsn, max_wait)
            if pending:
                time.sleep(0.01)

    async def await_replay(self, lsn: str, max_wait: float) -> None:
        """:meth:`wait` over asyncpg, sleeping without blocking the event loop."""
        deadline = time.monotonic() + max_wait
        pending = {node: "" for node in self.nodes if node.ok is not False}
        while pending:
            for node in list(pending):
                try:
                    if await node.areplayed(lsn):
                        del pending[node]
                except Exception as exc:
                    pending[node] = f": {first_line(exc)}"
            if pending and time.monotonic() > deadline:
                raise self._behind(pending, lsn, max_wait)
            if pending:
                await asyncio.sleep(0.01)

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
