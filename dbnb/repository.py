"""``Repository[M]`` (psycopg) and ``AsyncRepository[M]`` (asyncpg): a model's rows in one line.

Both shells run what :class:`~dbnb.statements.Statements` builds; they only differ in
``await``. Bound to a :class:`~dbnb.Database`, every call runs in its own session and commits
(a notebook one-liner just works). Bound to a Session / AsyncSession, a repository flushes
but never commits: the caller owns the transaction::

    users = Repository(User, db)
    users.create(email="ana@example.com", name="Ana")        # committed

    with db.transaction() as s:                              # one transaction for the lot
        Repository(Order, s).create(user_id=..., total=0)
        Repository(Product, s).update(pid, stock=3)

    class UserRepo(Repository[User]): ...                    # the model is inferred
    UserRepo(db).count(is_active=True)
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, Self, TypeVar, get_args, get_origin, overload

from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from dbnb.database import AsyncDatabase, Database
from dbnb.errors import NotFound, UniqueViolation, translate
from dbnb.filters import OrderBy
from dbnb.models import ModelList
from dbnb.statements import DEFAULT_MAX_PAGE_SIZE, KeysetPage, Page, Statements

if TYPE_CHECKING:
    from sqlalchemy import Result
    from sqlalchemy.sql.base import Executable

__all__ = ["AsyncRepository", "Repository"]

M = TypeVar("M")


def _detached(result: Result[Any]) -> Result[Any]:
    # A frozen copy stays readable after the session that produced it has closed.
    return result.freeze()() if getattr(result, "returns_rows", True) else result


class _Shell(Generic[M]):
    """What both shells share: binding, model inference, visibility, messages."""

    model: type[M]
    max_page_size: int = DEFAULT_MAX_PAGE_SIZE
    _binds: tuple[type, ...] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for base in getattr(cls, "__orig_bases__", ()):
            args = get_args(base)
            origin = get_origin(base)
            shell = isinstance(origin, type) and issubclass(origin, _Shell)
            if shell and args and isinstance(args[0], type):
                cls.model = args[0]

    def __init__(self, *args: Any) -> None:
        if len(args) == 1 and hasattr(type(self), "model"):
            model, bind = type(self).model, args[0]
        elif len(args) == 2:
            model, bind = args
        else:
            raise TypeError(
                f"{type(self).__name__}(Model, bind) takes a model and a bind; a subclass of "
                f"{type(self).__name__}[Model] takes only the bind"
            )
        if not isinstance(bind, self._binds):
            names = ", ".join(t.__name__ for t in self._binds)
            raise TypeError(f"{type(self).__name__} binds to {names}, got {type(bind).__name__}")
        self.model: type[M] = model
        self.bind = bind
        self._q: Statements[M] = Statements(model)

    def __repr__(self) -> str:
        where = "session" if isinstance(self.bind, Session | AsyncSession) else "database"
        shown = "" if self._q.visibility == "alive" else f", {self._q.visibility}"
        return f"<{type(self).__name__}[{self.model.__name__}] on {where}{shown}>"

    def _with_visibility(self, visibility: Any) -> Self:
        clone = copy.copy(self)
        clone._q = Statements(self.model, visibility)
        return clone

    def with_deleted(self) -> Self:
        """Return a view of this repository whose reads include soft-deleted rows."""
        return self._with_visibility("all")

    def only_deleted(self) -> Self:
        """Return a view of this repository whose reads see only soft-deleted rows."""
        return self._with_visibility("deleted")

    def _found(
        self, row: M | None, ident: Any = None, where: Sequence[Any] = (), **lookups: Any
    ) -> M:
        if row is None:
            hidden = " or soft-deleted" if self._q.soft and self._q.visibility == "alive" else ""
            what = self._q.describe(ident, where, **lookups)
            raise NotFound(f"{what} not found (missing{hidden})")
        return row


class Repository(_Shell[M]):
    """Read and write one model's rows on psycopg; see the module docstring for binding rules."""

    _binds = (Database, Session)
    bind: Database | Session

    @overload
    def __init__(self, model: type[M], bind: Database | Session, /) -> None: ...
    @overload
    def __init__(self, bind: Database | Session, /) -> None: ...
    def __init__(self, *args: Any) -> None:
        super().__init__(*args)

    @contextlib.contextmanager
    def _session(self) -> Iterator[Session]:
        if isinstance(self.bind, Session):
            try:
                yield self.bind
            except SQLAlchemyError as exc:
                raise translate(exc) from exc
        else:
            with self.bind.session() as session:
                yield session

    def get(self, ident: Any) -> M | None:
        """SELECT one row by primary key; None when missing (or soft-deleted)."""
        with self._session() as s:
            return s.scalars(self._q.get(ident)).one_or_none()

    def get_or_raise(self, ident: Any) -> M:
        """Like :meth:`get`, but raise :class:`~dbnb.NotFound` naming model and key."""
        return self._found(self.get(ident), ident)

    def get_by(self, *where: Any, **lookups: Any) -> M | None:
        """SELECT the first matching row (primary-key order), or None."""
        with self._session() as s:
            return s.scalars(self._q.select(where, lookups, limit=1)).first()

    def get_by_or_raise(self, *where: Any, **lookups: Any) -> M:
        """Like :meth:`get_by`, but raise :class:`~dbnb.NotFound` naming model and lookup."""
        return self._found(self.get_by(*where, **lookups), None, where, **lookups)

    def get_many(self, idents: Iterable[Any]) -> ModelList[M]:
        """SELECT the rows with these primary keys (missing ones are skipped), in key order."""
        with self._session() as s:
            return ModelList(s.scalars(self._q.get_many(idents)).all())

    def list(
        self,
        *where: Any,
        order_by: OrderBy = None,
        limit: int | None = None,
        offset: int | None = None,
        **lookups: Any,
    ) -> ModelList[M]:
        """SELECT the matching rows: ``list(User.age > 30, is_active=True, order_by="-age")``."""
        stmt = self._q.select(where, lookups, order_by=order_by, limit=limit, offset=offset)
        with self._session() as s:
            return ModelList(s.scalars(stmt).all())

    def paginate(
        self, *where: Any, page: int = 1, size: int = 20, order_by: OrderBy = None, **lookups: Any
    ) -> Page[M]:
        """Return page ``page`` (from 1) of ``size`` rows and the total (two queries)."""
        plan = self._q.paginate(
            where, lookups, page=page, size=size, order_by=order_by, max_size=self.max_page_size
        )
        with self._session() as s:
            total = s.scalar(plan.count) or 0
            return plan.result(s.scalars(plan.rows).all(), total)

    def keyset(
        self,
        *where: Any,
        order_by: str | Sequence[str] | None = None,
        after: Any = None,
        size: int = 20,
        **lookups: Any,
    ) -> KeysetPage[M]:
        """Return the ``size`` rows after the cursor ``after`` in ``order_by`` order (no OFFSET)."""
        plan = self._q.keyset(
            where, lookups, order_by=order_by, after=after, size=size, max_size=self.max_page_size
        )
        with self._session() as s:
            return plan.result(s.scalars(plan.rows).all())

    def count(self, *where: Any, **lookups: Any) -> int:
        """SELECT count(*) of the matching rows."""
        with self._session() as s:
            return s.scalar(self._q.count(where, lookups)) or 0

    def exists(self, *where: Any, **lookups: Any) -> bool:
        """Tell whether any row matches (SELECT … LIMIT 1)."""
        with self._session() as s:
            return s.execute(self._q.exists(where, lookups)).first() is not None

    def create(self, **values: Any) -> M:
        """INSERT one row and return it with its server defaults (id, created_at…)."""
        obj = self._q.new(values, what="in create")
        with self._session() as s:
            s.add(obj)
            s.flush()
        return obj

    def create_many(self, rows: Iterable[Mapping[str, Any]]) -> ModelList[M]:
        """INSERT many rows with RETURNING, batched (one round trip per batch), not a loop."""
        checked = [self._q.values(row, what="in create_many") for row in rows]
        if not checked:
            return ModelList()
        with self._session() as s:
            return ModelList(s.scalars(self._q.insert_many(), checked).all())

    def get_or_create(
        self, defaults: Mapping[str, Any] | None = None, **lookups: Any
    ) -> tuple[M, bool]:
        """Return ``(row, False)`` for the row matching ``column=value`` lookups, or create it.

        The INSERT runs in a SAVEPOINT; losing a race on a unique key returns the winner's row.
        """
        values = {**self._q.values(lookups, what="in get_or_create"), **(defaults or {})}
        with self._session() as s:
            found = s.scalars(self._q.select((), lookups, limit=1)).first()
            if found is not None:
                return found, False
            try:
                with s.begin_nested():
                    obj = self._q.new(values, what="in get_or_create")
                    s.add(obj)
                return obj, True
            except IntegrityError as exc:
                if not isinstance(translate(exc), UniqueViolation):
                    raise
            return self._found(s.scalars(self._q.select((), lookups, limit=1)).first()), False

    def update(self, ident: Any, **values: Any) -> M:
        """UPDATE one row by key (``updated_at`` moves) and return it; NotFound if missing."""
        stmt = self._q.update(ident, values)
        with self._session() as s:
            return self._found(s.scalars(stmt).one_or_none(), ident)

    def update_many(self, values: Mapping[str, Any], *where: Any, **lookups: Any) -> int:
        """UPDATE the matching rows (a filter is required); return how many changed."""
        stmt = self._q.update_many(values, where, lookups)
        with self._session() as s:
            return int(s.execute(stmt).rowcount)  # type: ignore[attr-defined]

    def upsert(
        self, values: Mapping[str, Any], *, on: Sequence[str], update: Sequence[str] | None = None
    ) -> M:
        """INSERT, or on conflict over ``on`` UPDATE ``update`` (default: the other columns)."""
        stmt = self._q.upsert(values, on=on, update=update)
        with self._session() as s:
            row: M = s.scalars(stmt).one()
            return row

    def delete(self, ident: Any) -> M:
        """Soft-delete one row (hard DELETE for models without SoftDelete); return it."""
        stmt = self._q.delete(ident)
        with self._session() as s:
            return self._found(s.scalars(stmt).one_or_none(), ident)

    def delete_many(self, *where: Any, **lookups: Any) -> int:
        """Soft-delete (or DELETE) the matching rows; a filter is required. Return the count."""
        stmt = self._q.delete_many(where, lookups)
        with self._session() as s:
            return int(s.execute(stmt).rowcount)  # type: ignore[attr-defined]

    def hard_delete(self, ident: Any) -> M:
        """DELETE one row for good, soft-deleted or not; return it."""
        stmt = self._q.hard_delete(ident)
        with self._session() as s:
            return self._found(s.scalars(stmt).one_or_none(), ident)

    def restore(self, ident: Any) -> M:
        """Undo a soft delete (``deleted_at = NULL``); NotFound unless the row is deleted."""
        stmt = self._q.restore(ident)
        with self._session() as s:
            return self._found(s.scalars(stmt).one_or_none(), ident)

    def execute(
        self, statement: Executable, params: Mapping[str, Any] | None = None
    ) -> Result[Any]:
        """Run any SQLAlchemy statement with this repository's soft-delete visibility."""
        with self._session() as s:
            return _detached(s.execute(statement, params, execution_options=self._q.options()))


class AsyncRepository(_Shell[M]):
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
    async def _session(self) -> AsyncIterator[AsyncSession]:
        if isinstance(self.bind, AsyncSession):
            try:
                yield self.bind
            except SQLAlchemyError as exc:
                raise translate(exc) from exc
        else:
            db = self.bind.asyncio if isinstance(self.bind, Database) else self.bind
            async with db.session() as session:
                yield session

    async def get(self, ident: Any) -> M | None:
        """Await :meth:`Repository.get`."""
        async with self._session() as s:
            return (await s.scalars(self._q.get(ident))).one_or_none()

    async def get_or_raise(self, ident: Any) -> M:
        """Await :meth:`Repository.get_or_raise`."""
        return self._found(await self.get(ident), ident)

    async def get_by(self, *where: Any, **lookups: Any) -> M | None:
        """Await :meth:`Repository.get_by`."""
        async with self._session() as s:
            return (await s.scalars(self._q.select(where, lookups, limit=1))).first()

    async def get_by_or_raise(self, *where: Any, **lookups: Any) -> M:
        """Await :meth:`Repository.get_by_or_raise`."""
        return self._found(await self.get_by(*where, **lookups), None, where, **lookups)

    async def get_many(self, idents: Iterable[Any]) -> ModelList[M]:
        """Await :meth:`Repository.get_many`."""
        async with self._session() as s:
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
        async with self._session() as s:
            return ModelList((await s.scalars(stmt)).all())

    async def paginate(
        self, *where: Any, page: int = 1, size: int = 20, order_by: OrderBy = None, **lookups: Any
    ) -> Page[M]:
        """Await :meth:`Repository.paginate`."""
        plan = self._q.paginate(
            where, lookups, page=page, size=size, order_by=order_by, max_size=self.max_page_size
        )
        async with self._session() as s:
            total = await s.scalar(plan.count) or 0
            return plan.result((await s.scalars(plan.rows)).all(), total)

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
            where, lookups, order_by=order_by, after=after, size=size, max_size=self.max_page_size
        )
        async with self._session() as s:
            return plan.result((await s.scalars(plan.rows)).all())

    async def count(self, *where: Any, **lookups: Any) -> int:
        """Await :meth:`Repository.count`."""
        async with self._session() as s:
            return await s.scalar(self._q.count(where, lookups)) or 0

    async def exists(self, *where: Any, **lookups: Any) -> bool:
        """Await :meth:`Repository.exists`."""
        async with self._session() as s:
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
        async with self._session() as s:
            return ModelList((await s.scalars(self._q.insert_many(), checked)).all())

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

    async def update(self, ident: Any, **values: Any) -> M:
        """Await :meth:`Repository.update`."""
        stmt = self._q.update(ident, values)
        async with self._session() as s:
            return self._found((await s.scalars(stmt)).one_or_none(), ident)

    async def update_many(self, values: Mapping[str, Any], *where: Any, **lookups: Any) -> int:
        """Await :meth:`Repository.update_many`."""
        stmt = self._q.update_many(values, where, lookups)
        async with self._session() as s:
            return int((await s.execute(stmt)).rowcount)  # type: ignore[attr-defined]

    async def upsert(
        self, values: Mapping[str, Any], *, on: Sequence[str], update: Sequence[str] | None = None
    ) -> M:
        """Await :meth:`Repository.upsert`."""
        stmt = self._q.upsert(values, on=on, update=update)
        async with self._session() as s:
            row: M = (await s.scalars(stmt)).one()
            return row

    async def delete(self, ident: Any) -> M:
        """Await :meth:`Repository.delete`."""
        stmt = self._q.delete(ident)
        async with self._session() as s:
            return self._found((await s.scalars(stmt)).one_or_none(), ident)

    async def delete_many(self, *where: Any, **lookups: Any) -> int:
        """Await :meth:`Repository.delete_many`."""
        stmt = self._q.delete_many(where, lookups)
        async with self._session() as s:
            return int((await s.execute(stmt)).rowcount)  # type: ignore[attr-defined]

    async def hard_delete(self, ident: Any) -> M:
        """Await :meth:`Repository.hard_delete`."""
        stmt = self._q.hard_delete(ident)
        async with self._session() as s:
            return self._found((await s.scalars(stmt)).one_or_none(), ident)

    async def restore(self, ident: Any) -> M:
        """Await :meth:`Repository.restore`."""
        stmt = self._q.restore(ident)
        async with self._session() as s:
            return self._found((await s.scalars(stmt)).one_or_none(), ident)

    async def execute(
        self, statement: Executable, params: Mapping[str, Any] | None = None
    ) -> Result[Any]:
        """Await :meth:`Repository.execute`."""
        async with self._session() as s:
            result = await s.execute(statement, params, execution_options=self._q.options())
            return _detached(result)
