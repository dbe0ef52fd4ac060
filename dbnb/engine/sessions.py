"""Session scopes: ORM sessions on the engines, committed or rolled back, joining any sandbox.

:class:`Sessions` opens every ``Session`` / ``AsyncSession`` a Database hands out. While a
sandbox is open (``with db.sandbox()``, or ``%db sandbox`` across notebook cells), new sessions
join its connection through savepoints, so whatever they commit is undone with it.
:meth:`Sessions.scope` is the commit-or-roll-back block behind ``db.session()``. With read
replicas, a session asked for reading (``read=True``) runs on the one the
:class:`~dbnb.engine.replicas.ReplicaSet` chooses; every other session runs on the primary.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import AsyncIterator, Iterator

from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Session, sessionmaker

from dbnb.driver_errors import translate
from dbnb.engine.lifecycle import Engines
from dbnb.engine.replicas import ReplicaSet, Use

__all__ = ["Sessions"]


class Sessions:
    """Open sessions on one Database's engines; track the sandbox they must join."""

    def __init__(self, engines: Engines, replicas: ReplicaSet | None = None) -> None:
        self.engines = engines
        self.replicas = replicas
        # Primary sessions tell an open read-your-writes block that something committed.
        self._primary_class: type[Session] = Session
        if replicas is not None:
            self._primary_class = type("PrimarySession", (Session,), {})
            event.listen(self._primary_class, "after_commit", replicas.committed)
        self._factory: sessionmaker[Session] | None = None
        self._sandbox: contextvars.ContextVar[Connection | None] = contextvars.ContextVar(
            f"dbnb_sandbox_{id(self)}", default=None
        )
        self._async_sandbox: contextvars.ContextVar[AsyncConnection | None] = (
            contextvars.ContextVar(f"dbnb_async_sandbox_{id(self)}", default=None)
        )
        # A sandbox that outlives one notebook cell (a context variable set in a cell does not
        # survive into the next one).
        self._pinned: Connection | None = None

    def factory(self) -> sessionmaker[Session]:
        """The ``sessionmaker`` of plain sync sessions (``expire_on_commit=False``)."""
        self.engines.check_open()
        with self.engines.lock:
            if self._factory is None:
                self._factory = sessionmaker(
                    self.engines.sync, expire_on_commit=False, class_=self._primary_class
                )
            return self._factory

    def new(self, *, read: bool = False, use: Use = None) -> Session:
        """A new sync Session: joined to the open sandbox, on a replica (``read``), or primary."""
        sandbox = self._sandbox.get() or self._pinned
        if sandbox is not None:
            return Session(
                bind=sandbox, expire_on_commit=False, join_transaction_mode="create_savepoint"
            )
        if read and self.replicas is not None:
            routed = self.replicas.session(use)
            if routed is not None:
                return routed
        return self.factory()()

    def new_async(self) -> AsyncSession:
        """A new AsyncSession: on the async engine, or joined to the open async sandbox."""
        sandbox = self._async_sandbox.get()
        if sandbox is not None:
            return AsyncSession(
                bind=sandbox, expire_on_commit=False, join_transaction_mode="create_savepoint"
            )
        return AsyncSession(
            self.engines.asynchronous, expire_on_commit=False,
            sync_session_class=self._primary_class,
        )

    async def _new_async(self, *, read: bool, use: Use) -> AsyncSession:
        if read and self.replicas is not None and self._async_sandbox.get() is None:
            routed = await self.replicas.asession(use)
            if routed is not None:
                return routed
        return self.new_async()

    @contextlib.contextmanager
    def scope(
        self, *, read: bool = False, use: Use = None, read_your_writes: bool = False
    ) -> Iterator[Session]:
        """A Session committed when the block ends, rolled back (and re-raised) on error.

        ``read``: a session for reading, on a replica when one is usable. ``read_your_writes``:
        once anything in the block committed on the primary, its reads go there too.
        """
        self.engines.check_open()
        with self._reading_your_writes(read_your_writes), self.new(read=read, use=use) as session:
            try:
                yield session
                session.commit()
            except BaseException as exc:
                _quiet_rollback(session)
                error = translate(exc)
                if self.replicas is not None:
                    self.replicas.after_error(session, error)
                raise error  # noqa: B904 (translate() chains it)

    @contextlib.asynccontextmanager
    async def async_scope(
        self, *, read: bool = False, use: Use = None, read_your_writes: bool = False
    ) -> AsyncIterator[AsyncSession]:
        """An AsyncSession committed when the block ends, rolled back on error."""
        self.engines.check_open()
        with self._reading_your_writes(read_your_writes):
            async with await self._new_async(read=read, use=use) as session:
                try:
                    yield session
                    await session.commit()
                except BaseException as exc:
                    await _quiet_async_rollback(session)
                    error = translate(exc)
                    if self.replicas is not None:
                        self.replicas.after_error(session, error)
                    raise error  # noqa: B904 (translate() chains it)

    def _reading_your_writes(self, wanted: bool) -> contextlib.AbstractContextManager[None]:
        if wanted and self.replicas is not None:
            return self.replicas.reading_your_writes()
        return contextlib.nullcontext()

    # -- the sandbox sessions join ----------------------------------------------------------------

    def enter_sandbox(self, conn: Connection) -> contextvars.Token[Connection | None]:
        """Make new sync sessions in this context join ``conn`` until :meth:`leave_sandbox`."""
        return self._sandbox.set(conn)

    def leave_sandbox(self, token: contextvars.Token[Connection | None]) -> None:
        """Stop joining the sandbox entered with ``token``."""
        self._sandbox.reset(token)

    def enter_async_sandbox(
        self, conn: AsyncConnection
    ) -> contextvars.Token[AsyncConnection | None]:
        """Make new async sessions in this context join ``conn``."""
        return self._async_sandbox.set(conn)

    def leave_async_sandbox(self, token: contextvars.Token[AsyncConnection | None]) -> None:
        """Stop joining the async sandbox entered with ``token``."""
        self._async_sandbox.reset(token)

    def pin_sandbox(self) -> bool:
        """Open a sandbox every new sync session joins, across cells; False if one is open."""
        with self.engines.lock:
            if self._pinned is not None:
                return False
            conn = self.engines.sync.connect()
            conn.begin()
            if self.engines.caps.server_settings:
                # This sandbox spans notebook cells on purpose: the server must not end it for
                # sitting idle in its transaction (idle_in_transaction_timeout), for this
                # transaction only.
                conn.exec_driver_sql(
                    "SELECT set_config('idle_in_transaction_session_timeout', '0', true)"
                )
            self._pinned = conn
            return True

    def unpin_sandbox(self) -> bool:
        """Roll back and close the pinned sandbox; False if there was none."""
        with self.engines.lock:
            conn, self._pinned = self._pinned, None
        if conn is None:
            return False
        try:
            conn.rollback()
        finally:
            conn.close()
        return True

    def close(self) -> None:
        """Roll back a pinned sandbox, then close the engines. Safe to call twice."""
        with self.engines.lock:
            if self.engines.closed:
                return
            with contextlib.suppress(Exception):  # the server may already be gone
                self.unpin_sandbox()
            self.engines.close()
            if self.replicas is not None:
                self.replicas.close()


def _quiet_rollback(session: Session) -> None:
    # A rollback on a dead connection must not hide the error that killed it.
    with contextlib.suppress(Exception):
        session.rollback()


async def _quiet_async_rollback(session: AsyncSession) -> None:
    with contextlib.suppress(Exception):
        await session.rollback()
