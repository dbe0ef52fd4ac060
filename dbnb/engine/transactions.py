"""Transaction scopes: ``db.transaction()`` (commit or roll back; nested = SAVEPOINT) and
``db.sandbox()`` (roll back everything on exit). Each works with ``with`` and ``async with``.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from dbnb.driver_errors import translate
from dbnb.engine.sessions import Sessions

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSessionTransaction
    from sqlalchemy.orm import SessionTransaction

__all__ = ["SandboxScope", "TransactionScope", "execute_in_transaction"]


def _translated(exc: BaseException) -> BaseException:
    return translate(exc) if isinstance(exc, Exception) else exc


class TransactionScope:
    """``with db.transaction() as s`` / ``async with db.transaction() as s``.

    Without a session: a new session, committed when the block ends, rolled back on error.
    With a session: a SAVEPOINT inside it; an error rolls back only the inner work and
    propagates (catch it to carry on with the outer transaction).
    """

    def __init__(self, sessions: Sessions, session: Session | AsyncSession | None) -> None:
        self._sessions = sessions
        self._given = session
        self._session: Any = None
        self._nested: SessionTransaction | AsyncSessionTransaction | None = None

    def __enter__(self) -> Session:
        if isinstance(self._given, AsyncSession):
            raise TypeError("an AsyncSession needs `async with db.transaction(session)`")
        if self._given is not None:
            # SQLAlchemy's own context protocol for the savepoint: it also ends a savepoint
            # that a failed ORM flush already deactivated (a repository bound to the session),
            # so only the inner work is lost and the outer transaction goes on.
            nested = self._given.begin_nested()
            nested.__enter__()
            self._nested = nested
            return self._given
        self._session = self._sessions.new()
        self._session.begin()
        return self._session  # type: ignore[no-any-return]

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if self._given is not None:
            nested = self._nested
            assert nested is not None
            assert not isinstance(nested, Awaitable)
            try:
                nested.__exit__(exc_type, exc, tb)
            except Exception as error:
                raise _translated(error)  # noqa: B904 (translate() chains it)
            if exc is not None and (found := _translated(exc)) is not exc:
                raise found
            return
        session: Session = self._session
        try:
            if exc is None:
                try:
                    session.commit()
                except Exception as error:
                    session.rollback()
                    raise _translated(error)  # noqa: B904 (translate() chains it)
            else:
                # The connection may be gone; the original error is the one that matters.
                with contextlib.suppress(Exception):
                    session.rollback()
                if (found := _translated(exc)) is not exc:
                    raise found
        finally:
            session.close()

    async def __aenter__(self) -> AsyncSession:
        if isinstance(self._given, Session):
            raise TypeError("a sync Session needs `with db.transaction(session)`")
        if self._given is not None:
            nested = self._given.begin_nested()
            await nested.__aenter__()
            self._nested = nested
            return self._given
        self._session = self._sessions.new_async()
        await self._session.begin()
        return self._session  # type: ignore[no-any-return]

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if self._given is not None:
            nested: Any = self._nested
            try:
                await nested.__aexit__(exc_type, exc, tb)
            except Exception as error:
                raise _translated(error)  # noqa: B904 (translate() chains it)
            if exc is not None and (found := _translated(exc)) is not exc:
                raise found
            return
        session: AsyncSession = self._session
        try:
            if exc is None:
                try:
                    await session.commit()
                except Exception as error:
                    await session.rollback()
                    raise _translated(error)  # noqa: B904 (translate() chains it)
            else:
                # The connection may be gone; the original error is the one that matters.
                with contextlib.suppress(Exception):
                    await session.rollback()
                if (found := _translated(exc)) is not exc:
                    raise found
        finally:
            await session.close()


class SandboxScope:
    """``with db.sandbox() as s``: every change made inside is rolled back on exit.

    The sandbox holds one connection with an outer transaction. Sessions opened by the
    Database meanwhile (repositories bound to it included) join that connection through
    savepoints (``join_transaction_mode="create_savepoint"``), so their commits are undone too.
    """

    def __init__(self, sessions: Sessions) -> None:
        self._sessions = sessions
        self._conn: Any = None
        self._session: Any = None
        self._token: Any = None

    def __enter__(self) -> Session:
        conn: Connection = self._sessions.engines.sync.connect()
        conn.begin()
        self._conn = conn
        self._token = self._sessions.enter_sandbox(conn)
        self._session = self._sessions.new()
        return self._session  # type: ignore[no-any-return]

    def __exit__(self, *exc_info: object) -> None:
        try:
            self._session.close()
            self._conn.rollback()
        finally:
            self._sessions.leave_sandbox(self._token)
            self._conn.close()

    async def __aenter__(self) -> AsyncSession:
        conn: AsyncConnection = await self._sessions.engines.asynchronous.connect()
        await conn.begin()
        self._conn = conn
        self._token = self._sessions.enter_async_sandbox(conn)
        self._session = self._sessions.new_async()
        return self._session  # type: ignore[no-any-return]

    async def __aexit__(self, *exc_info: object) -> None:
        try:
            await self._session.close()
            await self._conn.rollback()
        finally:
            self._sessions.leave_async_sandbox(self._token)
            await self._conn.close()


async def _call(op: Any, session: Any) -> Any:
    result = op(session) if callable(op) else op
    if inspect.isawaitable(result):
        result = await result
    return result


def execute_in_transaction(
    session: Session | AsyncSession,
    *operations: Callable[[Any], Any] | Awaitable[Any],
) -> Any:
    """Run several operations atomically in one SAVEPOINT of ``session``; return their results.

    Each operation is a callable taking the session (or, for an AsyncSession, an awaitable or a
    callable returning one). If any fails, all of them are rolled back and the error propagates.
    With an AsyncSession the call returns a coroutine to await.
    """
    if isinstance(session, AsyncSession):
        return _execute_async(session, operations)
    results = []
    with session.begin_nested():
        for op in operations:
            if not callable(op):
                raise TypeError("a sync session takes callables: execute_in_transaction(s, fn)")
            results.append(op(session))
    return results


async def _execute_async(session: AsyncSession, operations: tuple[Any, ...]) -> list[Any]:
    results = []
    pending = list(operations)
    try:
        async with session.begin_nested():
            while pending:
                results.append(await _call(pending.pop(0), session))
    finally:
        # Coroutines that never ran because an earlier one failed are closed, not leaked
        # (an un-awaited coroutine warns when it is garbage collected).
        for op in pending:
            if inspect.iscoroutine(op):
                op.close()
    return results
