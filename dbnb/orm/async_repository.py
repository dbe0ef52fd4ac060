"""``AsyncRepository[M]``: the awaitable twin of :class:`~dbnb.Repository`, on asyncpg.

Same methods, same arguments, same statements (from :mod:`dbnb.orm.statements`); each call is
awaited on an :class:`~sqlalchemy.ext.asyncio.AsyncSession`. Bound to a Database (or its
``db.asyncio``) every call commits; bound to an AsyncSession it never commits::

    users = AsyncRepository(User, db)
    await users.create(email="ana@example.com", name="Ana")
    adults = await users.list(age__gte=18, order_by="-created_at")
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from dbnb.driver_errors import translate
from dbnb.engine.async_database import AsyncDatabase
from dbnb.engine.database import Database
from dbnb.engine.replicas import Use
from dbnb.errors import UniqueViolation
from dbnb.orm.async_frame_methods import AsyncFrameMethods
from dbnb.orm.filters import OrderBy
from dbnb.orm.models import ModelList
from dbnb.orm.repository_base import RepositoryBase, detached
from dbnb.orm.statements import Write

if TYPE_CHECKING:
    from sqlalchemy import Result
    from sqlalchemy.sql.base import Executable

    from dbnb.orm.pagination import KeysetPage, Page

__all__ = ["AsyncRepository"]

M = TypeVar("M")


class AsyncRepository(AsyncFrameMethods[M], RepositoryBase[M]):
    """The awaitable twin of :class:`Repository` (asyncpg); same methods, same arguments."""

    _binds = (Database, AsyncDatabase, AsyncSession)
    bind: Database | AsyncDatabase | AsyncSession

    @overload
    def __init__(self, model: type[M], bind: Database | AsyncDatabase | AsyncSession, /) -> None:
        ...
    @overload
    def __init__(self, bind: Database | AsyncDatabase | AsyncSession, /) -> None: ...
    def __init__(self, *args: Any) -> None:
        super().__init__(*args)

    @contextlib.asynccontextmanager
    async def _session(self, *, read: bool = False, use: Use = None) -> AsyncIterator[AsyncSession]:
        # Bound to a Database, a read (``read``) may go to a replica; ``use`` overrides.
        if isinstance(self.bind, AsyncSession):
            try:
                yield self.bind
            except SQLAlchemyError as exc:
                raise translate(exc) from exc
        else:
            db = self.bind.asyncio if isinstance(self.bind, Database) else self.bind
            async with db.session(read_only=read, use=use) as session:
                yield session

    async def _apply(self, s: AsyncSession, write: Write) -> M | None:
        """Run a one-row write; return its row (None: there was no such row)."""
        if write.returning:
            row: M | None = (await s.scalars(write.statement)).one_or_none()
            return row
        found = None
        if write.before is not None:
            found = (await s.scalars(write.before)).one_or_none()
            if found is None:
                return None
        result: Any = await s.execute(write.statement)
        if write.counted and not result.rowcount:
            return None
        if write.after is not None:
            found = (await s.scalars(write.after)).one_or_none()
        return found

    async def get(self, ident: Any) -> M | None:
        """Await :meth:`Repository.get`."""
        async with self._session(read=True) as s:
            return (await s.scalars(self._q.get(ident))).one_or_none()

    async def get_or_raise(self, ident: Any) -> M:
        """Await :meth:`Repository.get_or_raise`."""
        return self._found(await self.get(ident), ident)

    async def get_by(self, *where: Any, **lookups: Any) -> M | None:
        """Await :meth:`Repository.get_by`."""
        async with self._session(read=True) as s:
            return (await s.scalars(self._q.select(where, lookups, limit=1))).first()

    async def get_by_or_raise(self, *where: Any, **lookups: Any) -> M:
        """Await :meth:`Repository.get_by_or_raise`."""
        return self._found(await self.get_by(*where, **lookups), None, where, **lookups)

    async def get_many(self, idents: Iterable[Any]) -> ModelList[M]:
        """Await :meth:`Repository.get_many`."""
        async with self._session(read=True) as s:
            return ModelList((await s.scalars(self._q.get_many(idents))).all())

    async def list(
        self,
        *where: Any,
        order_by: OrderBy = None,
        limit: int | None = None,
        offset: int | None = None,
        **lookups: Any,
    ) -> ModelList[M]:
        """Await :meth:`Repository.list`."""
        stmt = self._q.select(where, lookups, order_by=order_by, limit=limit, offset=offset)
        async with self._session(read=True) as s:
            return ModelList((await s.scalars(stmt)).all())

    async def paginate(
        self, *where: Any, page: int = 1, size: int = 20, order_by: OrderBy = None, **lookups: Any
    ) -> Page[M]:
        """Await :meth:`Repository.paginate`."""
        plan = self._q.paginate(
            where, lookups, page=page, size=size, order_by=order_by, max_size=self.max_page_size
        )
        async with self._session(read=True) as s:
            rows = (await s.execute(plan.rows)).all()
            total = (await s.scalar(plan.count) or 0) if plan.needs_count(rows) else None
            return plan.result(rows, total)

    async def keyset(
        self,
        *where: Any,
        order_by: str | Sequence[str] | None = None,
        after: Any = None,
        size: int = 20,
        **lookups: Any,
    ) -> KeysetPage[M]:
        """Await :meth:`Repository.keyset`."""
        plan = self._q.keyset(
            where, lookups, order_by=order_by, after=after, size=size,
            max_size=self.max_page_size, cursor_key=self.cursor_key,
        )
        async with self._session(read=True) as s:
            return plan.result((await s.scalars(plan.rows)).all())

    async def count(self, *where: Any, **lookups: Any) -> int:
        """Await :meth:`Repository.count`."""
        async with self._session(read=True) as s:
            return await s.scalar(self._q.count(where, lookups)) or 0

    async def exists(self, *where: Any, **lookups: Any) -> bool:
        """Await :meth:`Repository.exists`."""
        async with self._session(read=True) as s:
            return (await s.execute(self._q.exists(where, lookups))).first() is not None

    async def create(self, **values: Any) -> M:
        """Await :meth:`Repository.create`."""
        obj = self._q.new(values, what="in create")
        async with self._session() as s:
            s.add(obj)
            await s.flush()
        return obj

    async def create_many(self, rows: Iterable[Mapping[str, Any]]) -> ModelList[M]:
        """Await :meth:`Repository.create_many`."""
        checked = [self._q.values(row, what="in create_many") for row in rows]
        if not checked:
            return ModelList()
        stmt = self._q.insert_many()
        async with self._session() as s:
            if stmt is not None:
                return ModelList((await s.scalars(stmt, checked)).all())
            made = [self._q.new(row, what="in create_many") for row in checked]
            s.add_all(made)
            await s.flush()
            return ModelList(made)

    async def get_or_create(
        self, defaults: Mapping[str, Any] | None = None, **lookups: Any
    ) -> tuple[M, bool]:
        """Await :meth:`Repository.get_or_create`."""
        values = {**self._q.values(lookups, what="in get_or_create"), **(defaults or {})}
        async with self._session() as s:
            found = (await s.scalars(self._q.select((), lookups, limit=1))).first()
            if found is not None:
                return found, False
            try:
                async with s.begin_nested():
                    obj = self._q.new(values, what="in get_or_create")
                    s.add(obj)
                return obj, True
            except IntegrityError as exc:
                if not isinstance(translate(exc), UniqueViolation):
                    raise
            again = (await s.scalars(self._q.select((), lookups, limit=1))).first()
            return self._found(again), False

    @overload
    async def update(
        self, ident: Any, *, missing_ok: Literal[False] = ..., **values: Any
    ) -> M: ...
    @overload
    async def update(self, ident: Any, *, missing_ok: bool, **values: Any) -> M | None: ...
    async def update(self, ident: Any, *, missing_ok: bool = False, **values: Any) -> M | None:
        """Await :meth:`Repository.update`."""
        write = self._q.update(ident, values)
        async with self._session() as s:
            return self._found_or(await self._apply(s, write), ident, missing_ok, None)

    async def update_many(self, values: Mapping[str, Any], *where: Any, **lookups: Any) -> int:
        """Await :meth:`Repository.update_many`."""
        stmt = self._q.update_many(values, where, lookups)
        async with self._session() as s:
            return int((await s.execute(stmt)).rowcount)  # type: ignore[attr-defined]

    async def upsert(
        self, values: Mapping[str, Any], *, on: Sequence[str], update: Sequence[str] | None = None
    ) -> M:
        """Await :meth:`Repository.upsert`."""
        write = self._q.upsert(values, on=on, update=update)
        async with self._session() as s:
            found = await self._apply(s, write)
            return self._found(found, None, (), **{k: values[k] for k in on})

    async def upsert_many(
        self,
        rows: Iterable[Mapping[str, Any]],
        *,
        on: Sequence[str],
        update: Sequence[str] | None = None,
    ) -> ModelList[M]:
        """Await :meth:`Repository.upsert_many`."""
        stmt, checked = self._q.upsert_many(rows, on=on, update=update)
        if not checked:
            return ModelList()
        async with self._session() as s:
            return ModelList((await s.scalars(stmt, checked)).all())

    @overload
    async def delete(self, ident: Any, *, missing_ok: Literal[False] = ...) -> M: ...
    @overload
    async def delete(self, ident: Any, *, missing_ok: bool) -> M | Literal[False]: ...
    async def delete(self, ident: Any, *, missing_ok: bool = False) -> M | Literal[False]:
        """Await :meth:`Repository.delete`."""
        write = self._q.delete(ident)
        async with self._session() as s:
            return self._found_or(await self._apply(s, write), ident, missing_ok, False)

    async def delete_many(self, *where: Any, **lookups: Any) -> int:
        """Await :meth:`Repository.delete_many`."""
        stmt = self._q.delete_many(where, lookups)
        async with self._session() as s:
            return int((await s.execute(stmt)).rowcount)  # type: ignore[attr-defined]

    @overload
    async def hard_delete(self, ident: Any, *, missing_ok: Literal[False] = ...) -> M: ...
    @overload
    async def hard_delete(self, ident: Any, *, missing_ok: bool) -> M | Literal[False]: ...
    async def hard_delete(self, ident: Any, *, missing_ok: bool = False) -> M | Literal[False]:
        """Await :meth:`Repository.hard_delete`."""
        write = self._q.hard_delete(ident)
        async with self._session() as s:
            return self._found_or(await self._apply(s, write), ident, missing_ok, False)

    @overload
    async def restore(self, ident: Any, *, missing_ok: Literal[False] = ...) -> M: ...
    @overload
    async def restore(self, ident: Any, *, missing_ok: bool) -> M | Literal[False]: ...
    async def restore(self, ident: Any, *, missing_ok: bool = False) -> M | Literal[False]:
        """Await :meth:`Repository.restore`."""
        write = self._q.restore(ident)
        async with self._session() as s:
            return self._found_or(await self._apply(s, write), ident, missing_ok, False)

    async def execute(
        self, statement: Executable, params: Mapping[str, Any] | None = None
    ) -> Result[Any]:
        """Await :meth:`Repository.execute`."""
        async with self._session() as s:
            result = await s.execute(statement, params, execution_options=self._q.options())
            return detached(result)
