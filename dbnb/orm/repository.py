"""``Repository[M]``: one model's rows, one line per operation, on psycopg.

It runs what :class:`~dbnb.orm.statements.Statements` builds; its awaitable twin
:class:`~dbnb.AsyncRepository` (in :mod:`dbnb.orm.async_repository`) runs the same statements on
asyncpg. Bound to a :class:`~dbnb.Database`, every call runs in its own session and commits
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
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from dbnb.driver_errors import translate
from dbnb.engine.database import Database
from dbnb.engine.replicas import Use
from dbnb.errors import UniqueViolation
from dbnb.orm.filters import OrderBy
from dbnb.orm.frame_methods import FrameMethods
from dbnb.orm.models import ModelList
from dbnb.orm.pagination import KeysetPage, Page
from dbnb.orm.repository_base import RepositoryBase, detached
from dbnb.orm.statements import Write

if TYPE_CHECKING:
    from sqlalchemy import Result
    from sqlalchemy.sql.base import Executable

__all__ = ["Repository"]

M = TypeVar("M")


class Repository(FrameMethods[M], RepositoryBase[M]):
    """Read and write one model's rows on psycopg.

    Bound to a :class:`~dbnb.Database`, each call opens a session, runs, and commits (or rolls
    back and raises a dbnb error). Bound to a Session, calls flush but never commit. Reads hide
    soft-deleted rows unless the repository came from :meth:`with_deleted` or
    :meth:`only_deleted`. Keyword names that are also method options (``order_by``, ``limit``,
    ``offset``, ``page``, ``size``, ``after``) filter through their ``__eq`` form.

    Example::

        users = Repository(User, db)
        ana = users.create(email="ana@example.com", name="Ana", age=31)
        users.list(is_active=True, age__gte=30, order_by="-created_at", limit=20)
        users.update(ana.id, name="Ana M.")
        users.delete(ana.id)                     # soft: sets deleted_at
    """

    _binds = (Database, Session)
    bind: Database | Session

    @overload
    def __init__(self, model: type[M], bind: Database | Session, /) -> None: ...
    @overload
    def __init__(self, bind: Database | Session, /) -> None: ...
    def __init__(self, *args: Any) -> None:
        super().__init__(*args)

    @contextlib.contextmanager
    def _session(self, *, read: bool = False, use: Use = None) -> Iterator[Session]:
        # Bound to a Database, a read (``read``) may go to a replica; ``use`` overrides.
        if isinstance(self.bind, Session):
            try:
                yield self.bind
            except SQLAlchemyError as exc:
                raise translate(exc) from exc
        else:
            with self.bind.session(read_only=read, use=use) as session:
                yield session

    def _apply(self, s: Session, write: Write) -> M | None:
        """Run a one-row write; return its row (None: there was no such row)."""
        if write.returning:
            row: M | None = s.scalars(write.statement).one_or_none()
            return row
        found = s.scalars(write.before).one_or_none() if write.before is not None else None
        if write.before is not None and found is None:
            return None
        result: Any = s.execute(write.statement)
        if write.counted and not result.rowcount:
            return None
        return s.scalars(write.after).one_or_none() if write.after is not None else found

    def get(self, ident: Any) -> M | None:
        """SELECT one row by primary key; None when missing (or soft-deleted).

        Args:
            ident: the primary key value (a tuple for a composite key).
        """
        with self._session(read=True) as s:
            return s.scalars(self._q.get(ident)).one_or_none()

    def get_or_raise(self, ident: Any) -> M:
        """SELECT one row by primary key, or raise.

        Raises:
            NotFound: no such row, or it is soft-deleted; the message names model and key.
        """
        return self._found(self.get(ident), ident)

    def get_by(self, *where: Any, **lookups: Any) -> M | None:
        """SELECT the first matching row (primary-key order), or None."""
        with self._session(read=True) as s:
            return s.scalars(self._q.select(where, lookups, limit=1)).first()

    def get_by_or_raise(self, *where: Any, **lookups: Any) -> M:
        """Like :meth:`get_by`, but raise :class:`~dbnb.NotFound` naming model and lookup."""
        return self._found(self.get_by(*where, **lookups), None, where, **lookups)

    def get_many(self, idents: Iterable[Any]) -> ModelList[M]:
        """SELECT the rows with these primary keys (missing ones are skipped), in key order."""
        with self._session(read=True) as s:
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
        with self._session(read=True) as s:
            return ModelList(s.scalars(stmt).all())

    def paginate(
        self, *where: Any, page: int = 1, size: int = 20, order_by: OrderBy = None, **lookups: Any
    ) -> Page[M]:
        """SELECT one page of rows (LIMIT/OFFSET) with the total count, in one query.

        The total comes with the rows (``count(*) OVER ()``); only a page past the end, which
        has no row to carry it, costs a second query (``count(*)``).

        Args:
            *where: SQLAlchemy expressions, ANDed with the keyword lookups.
            page: the page number, from 1.
            size: rows per page, from 1 to ``max_page_size`` (1000 unless a subclass says).
            order_by: ``"-created_at"``, a list of names or expressions; the primary key
                always ends the ordering so pages never overlap.
            **lookups: keyword filters such as ``age__gte=30``.

        Returns:
            A :class:`~dbnb.Page` with ``items``, ``total``, ``page``, ``size``, ``pages``.

        Raises:
            PaginationError: ``page`` or ``size`` out of range (before any query is sent).
            FilterError: an unknown column or operator (before any query is sent).

        Example::

            page = users.paginate(page=2, size=20, order_by="-created_at")
        """
        plan = self._q.paginate(
            where, lookups, page=page, size=size, order_by=order_by, max_size=self.max_page_size
        )
        with self._session(read=True) as s:
            rows = s.execute(plan.rows).all()
            total = (s.scalar(plan.count) or 0) if plan.needs_count(rows) else None
            return plan.result(rows, total)

    def keyset(
        self,
        *where: Any,
        order_by: str | Sequence[str] | None = None,
        after: Any = None,
        size: int = 20,
        **lookups: Any,
    ) -> KeysetPage[M]:
        """SELECT the ``size`` rows that follow ``after`` (keyset pagination, no OFFSET).

        Args:
            *where: SQLAlchemy expressions, ANDed with the keyword lookups.
            order_by: column names, each ascending or descending (``"-created_at"``); the
                primary key is appended as a tie-breaker. Keys must not be NULL.
            after: the previous window's ``cursor`` (an opaque signed string, see
                ``cursor_key``), its last row (``window.last``), a mapping or a tuple of the
                key values; None for the first window.
            size: rows per window, from 1 to ``max_page_size``.
            **lookups: keyword filters such as ``is_active=True``.

        Returns:
            A :class:`~dbnb.KeysetPage` (``items``, ``has_more``, ``cursor``, ``last``).

        Raises:
            PaginationError: a cursor that was changed, signed with another key, or made for
                another ordering.

        Example::

            window = users.keyset(order_by=["-created_at", "name"], size=20)
            while window.has_more:
                window = users.keyset(order_by=["-created_at", "name"], after=window.cursor)
        """
        plan = self._q.keyset(
            where, lookups, order_by=order_by, after=after, size=size,
            max_size=self.max_page_size, cursor_key=self.cursor_key,
        )
        with self._session(read=True) as s:
            return plan.result(s.scalars(plan.rows).all())

    def count(self, *where: Any, **lookups: Any) -> int:
        """SELECT count(*) of the matching rows."""
        with self._session(read=True) as s:
            return s.scalar(self._q.count(where, lookups)) or 0

    def exists(self, *where: Any, **lookups: Any) -> bool:
        """Tell whether any row matches (SELECT … LIMIT 1)."""
        with self._session(read=True) as s:
            return s.execute(self._q.exists(where, lookups)).first() is not None

    def create(self, **values: Any) -> M:
        """INSERT one row and return it, server defaults (id, created_at…) already loaded.

        Keys are column or relationship names; an unknown one raises
        :class:`~dbnb.FilterError` before any query is sent. Constraint failures raise
        :class:`~dbnb.UniqueViolation`, :class:`~dbnb.ForeignKeyViolation`, … naming the
        constraint.
        """
        obj = self._q.new(values, what="in create")
        with self._session() as s:
            s.add(obj)
            s.flush()
        return obj

    def create_many(self, rows: Iterable[Mapping[str, Any]]) -> ModelList[M]:
        """INSERT many rows with RETURNING in batched statements (not one per row).

        Args:
            rows: one ``{column: value}`` mapping per row.

        Returns:
            The inserted rows, in input order, with their generated values.
        """
        checked = [self._q.values(row, what="in create_many") for row in rows]
        if not checked:
            return ModelList()
        stmt = self._q.insert_many()
        with self._session() as s:
            if stmt is not None:
                return ModelList(s.scalars(stmt, checked).all())
            made = [self._q.new(row, what="in create_many") for row in checked]
            s.add_all(made)
            s.flush()
            return ModelList(made)

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

    @overload
    def update(self, ident: Any, *, missing_ok: Literal[False] = ..., **values: Any) -> M: ...
    @overload
    def update(self, ident: Any, *, missing_ok: bool, **values: Any) -> M | None: ...
    def update(self, ident: Any, *, missing_ok: bool = False, **values: Any) -> M | None:
        """UPDATE one row by key (``updated_at`` moves) and return it.

        Raises:
            NotFound: no such row (or it is soft-deleted); with ``missing_ok=True`` the call
                returns None instead.
        """
        write = self._q.update(ident, values)
        with self._session() as s:
            return self._found_or(self._apply(s, write), ident, missing_ok, None)

    def update_many(self, values: Mapping[str, Any], *where: Any, **lookups: Any) -> int:
        """UPDATE the matching live rows and move their ``updated_at``; return the count.

        A filter is required (pass ``sqlalchemy.true()`` to mean every row).

        Example::

            users.update_many({"is_active": False}, age__lt=18)
        """
        stmt = self._q.update_many(values, where, lookups)
        with self._session() as s:
            return int(s.execute(stmt).rowcount)  # type: ignore[attr-defined]

    def upsert(
        self, values: Mapping[str, Any], *, on: Sequence[str], update: Sequence[str] | None = None
    ) -> M:
        """INSERT … ON CONFLICT (``on``) DO UPDATE, and return the row.

        Args:
            values: the row as ``{column: value}``.
            on: the columns of a unique key (for soft-deletable models, the partial index
                ``WHERE deleted_at IS NULL`` is matched).
            update: the columns to overwrite on conflict; default every column in
                ``values`` outside ``on``; ``[]`` leaves the existing row as it is.

        Example::

            users.upsert({"email": "ana@example.com", "name": "Ana"}, on=["email"])
        """
        write = self._q.upsert(values, on=on, update=update)
        with self._session() as s:
            return self._found(self._apply(s, write), None, (), **{k: values[k] for k in on})

    def upsert_many(
        self,
        rows: Iterable[Mapping[str, Any]],
        *,
        on: Sequence[str],
        update: Sequence[str] | None = None,
    ) -> ModelList[M]:
        """INSERT many rows … ON CONFLICT (``on``) DO UPDATE, in batched statements; return them.

        Args:
            rows: one ``{column: value}`` mapping per row, each with the same columns.
            on: the columns of a unique key.
            update: the columns to overwrite on conflict; default every column outside
                ``on``.

        Returns:
            The inserted or updated rows, in input order.

        Raises:
            FilterError: rows with different columns, or two rows with the same key (before
                anything is sent).

        Example::

            products.upsert_many(rows, on=["sku"])
        """
        stmt, checked = self._q.upsert_many(rows, on=on, update=update)
        if not checked:
            return ModelList()
        with self._session() as s:
            return ModelList(s.scalars(stmt, checked).all())

    @overload
    def delete(self, ident: Any, *, missing_ok: Literal[False] = ...) -> M: ...
    @overload
    def delete(self, ident: Any, *, missing_ok: bool) -> M | Literal[False]: ...
    def delete(self, ident: Any, *, missing_ok: bool = False) -> M | Literal[False]:
        """Soft-delete one row (hard DELETE for models without SoftDelete); return it.

        Raises:
            NotFound: no such row (or it is already soft-deleted); with ``missing_ok=True``
                the call returns False instead, so ``if users.delete(id, missing_ok=True):``
                tells whether something was deleted.
        """
        write = self._q.delete(ident)
        with self._session() as s:
            return self._found_or(self._apply(s, write), ident, missing_ok, False)

    def delete_many(self, *where: Any, **lookups: Any) -> int:
        """Soft-delete (or DELETE) the matching rows; a filter is required. Return the count."""
        stmt = self._q.delete_many(where, lookups)
        with self._session() as s:
            return int(s.execute(stmt).rowcount)  # type: ignore[attr-defined]

    @overload
    def hard_delete(self, ident: Any, *, missing_ok: Literal[False] = ...) -> M: ...
    @overload
    def hard_delete(self, ident: Any, *, missing_ok: bool) -> M | Literal[False]: ...
    def hard_delete(self, ident: Any, *, missing_ok: bool = False) -> M | Literal[False]:
        """DELETE one row for good, soft-deleted or not; return it.

        Raises:
            NotFound: no such row; with ``missing_ok=True`` the call returns False instead.
        """
        write = self._q.hard_delete(ident)
        with self._session() as s:
            return self._found_or(self._apply(s, write), ident, missing_ok, False)

    @overload
    def restore(self, ident: Any, *, missing_ok: Literal[False] = ...) -> M: ...
    @overload
    def restore(self, ident: Any, *, missing_ok: bool) -> M | Literal[False]: ...
    def restore(self, ident: Any, *, missing_ok: bool = False) -> M | Literal[False]:
        """Undo a soft delete (``deleted_at = NULL``) and return the row.

        Raises:
            NotFound: the row is missing or not deleted; with ``missing_ok=True`` the call
                returns False instead.
        """
        write = self._q.restore(ident)
        with self._session() as s:
            return self._found_or(self._apply(s, write), ident, missing_ok, False)

    def execute(
        self, statement: Executable, params: Mapping[str, Any] | None = None
    ) -> Result[Any]:
        """Run any SQLAlchemy statement with this repository's soft-delete visibility.

        Returns:
            A buffered ``Result`` (readable after the session closed): ``.scalars()``,
            ``.all()``, ``.rowcount`` for DML.
        """
        with self._session() as s:
            return detached(s.execute(statement, params, execution_options=self._q.options()))
