"""The reading half of the repositories' statement builders: SELECTs, counts, pages.

:class:`Queries` knows a model's key, columns and soft-delete visibility, and builds the
SELECTs behind ``get``, ``list``, ``count``, ``paginate``, ``keyset`` and the frame reads
(validated first, so a bad filter or page size fails before any query is sent).
:class:`~dbnb.orm.statements.Statements` adds the writes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Generic, Literal, TypeVar

from sqlalchemy import (
    ColumnElement,
    Select,
    Table,
    and_,
    func,
    inspect,
    or_,
    select,
    tuple_,
)
from sqlalchemy.orm import InstrumentedAttribute

from dbnb.dialects import POSTGRESQL, Capabilities
from dbnb.errors import FilterError, PaginationError
from dbnb.frames.partitions import OrderKey, order_key
from dbnb.orm import cursors
from dbnb.orm.filters import (
    OrderBy,
    columns_of,
    order_by_clauses,
    where_clauses,
)
from dbnb.orm.models import SoftDelete
from dbnb.orm.pagination import DEFAULT_MAX_PAGE_SIZE, KeysetPlan, PagePlan, check_size
from dbnb.orm.softdelete import INCLUDE_DELETED, ONLY_DELETED

__all__ = ["Queries", "Visibility"]

M = TypeVar("M")
Visibility = Literal["alive", "all", "deleted"]


def _after(
    columns: Sequence[Any], desc: Sequence[bool], values: Sequence[Any]
) -> ColumnElement[bool]:
    """Rows after ``values`` in this ordering: a row comparison when every key sorts one way
    (which an index on the keys serves), else ``a > x OR (a = x AND b < y) OR ...``."""
    if len(set(desc)) == 1:
        row, cursor = tuple_(*columns), tuple_(*values)
        single: ColumnElement[bool] = row < cursor if desc[0] else row > cursor
        return single
    branches = []
    for i, (column, down, value) in enumerate(zip(columns, desc, values, strict=True)):
        equal = [columns[j] == values[j] for j in range(i)]
        branches.append(and_(*equal, column < value if down else column > value))
    return or_(*branches)


class Queries(Generic[M]):
    """Build the reads behind the repository methods for one model and visibility.

    Visibility applies to soft-deletable models: ``"alive"`` (the default) hides soft-deleted
    rows, ``"all"`` shows every row, ``"deleted"`` only the soft-deleted ones.
    """

    def __init__(
        self, model: type[M], visibility: Visibility = "alive", caps: Capabilities = POSTGRESQL
    ) -> None:
        self.model = model
        self.caps = caps
        self.columns = columns_of(model)
        self.soft = issubclass(model, SoftDelete)
        if visibility != "alive" and not self.soft:
            raise TypeError(f"{model.__name__} has no soft delete (no SoftDelete mixin)")
        self.visibility: Visibility = visibility
        self.pk: tuple[InstrumentedAttribute[Any], ...] = tuple(
            getattr(model, inspect(model).get_property_by_column(c).key)
            for c in inspect(model).primary_key
        )

    # -- helpers --------------------------------------------------------------------------------

    def describe(self, ident: Any = None, where: Sequence[Any] = (), **lookups: Any) -> str:
        """Name the model and key for messages: ``User with id=…``."""
        if ident is not None:
            values = ident if isinstance(ident, tuple) else (ident,)
            lookups = {col.key: v for col, v in zip(self.pk, values, strict=False)}
        text = self.model.__name__
        if where:
            text += " matching " + " AND ".join(str(e) for e in where)
        if lookups:
            text += " with " + ", ".join(f"{k}={v!r}" for k, v in lookups.items())
        return text

    def _pk_clause(self, ident: Any) -> ColumnElement[bool]:
        if len(self.pk) == 1:
            single: ColumnElement[bool] = self.pk[0] == ident
            return single
        if not isinstance(ident, tuple) or len(ident) != len(self.pk):
            raise FilterError(
                f"{self.model.__name__} has a composite key; pass a tuple of {len(self.pk)}"
            )
        clause: ColumnElement[bool] = tuple_(*self.pk) == tuple_(*ident)
        return clause

    def options(self) -> dict[str, Any]:
        """Execution options that carry the visibility to the soft-delete filter."""
        if self.visibility == "all":
            return {INCLUDE_DELETED: True}
        if self.visibility == "deleted":
            return {ONLY_DELETED: True}
        return {}

    def _dml_visibility(self, visibility: Visibility | None = None) -> list[ColumnElement[bool]]:
        visibility = visibility or self.visibility
        deleted_at = getattr(self.model, "deleted_at", None)
        if not self.soft or deleted_at is None or visibility == "all":
            return []
        return [deleted_at.is_(None) if visibility == "alive" else deleted_at.is_not(None)]

    def _where(
        self, where: Iterable[Any], lookups: Mapping[str, Any], *, required: str | None = None
    ) -> list[ColumnElement[bool]]:
        clauses = where_clauses(self.model, where, lookups)
        if required and not clauses:
            raise FilterError(
                f"{required} needs a filter; to touch every row say so: "
                f"{required}(sqlalchemy.true())"
            )
        return clauses

    def _order(self, order_by: OrderBy) -> list[ColumnElement[Any]]:
        # The primary key ends every ordering, so equal sort keys still page deterministically.
        return [*order_by_clauses(self.model, order_by), *(c.asc() for c in self.pk)]

    # -- reads ----------------------------------------------------------------------------------

    def select(
        self,
        where: Iterable[Any] = (),
        lookups: Mapping[str, Any] | None = None,
        *,
        order_by: OrderBy = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> Select[Any]:
        """SELECT the model's rows matching the filters, ordered (primary key last)."""
        for name, value in (("limit", limit), ("offset", offset)):
            bad = not isinstance(value, int) or isinstance(value, bool) or value < 0
            if value is not None and bad:
                raise PaginationError(
                    f"{name} must be a non-negative integer (or None), got {value!r}"
                )
        stmt = (
            select(self.model)
            .where(*self._where(where, lookups or {}))
            .order_by(*self._order(order_by))
            .execution_options(**self.options())
        )
        return stmt.limit(limit).offset(offset)

    def frame(
        self,
        where: Iterable[Any],
        lookups: Mapping[str, Any],
        *,
        columns: Sequence[str] | None,
        order_by: OrderBy,
        limit: int | None,
        offset: int | None,
    ) -> Select[Any]:
        """SELECT for a DataFrame: the filters, ordering and visibility of :meth:`select`.

        ``columns`` narrows the SELECT to those column names. Without ``order_by``, ``limit``
        or ``offset`` the rows come in the server's order: sorting a million rows by key costs
        time a frame rarely needs.
        """
        stmt = self.select(where, lookups, order_by=order_by, limit=limit, offset=offset)
        if order_by is None and limit is None and offset is None:
            stmt = stmt.order_by(None)
        if columns is None:
            return stmt
        unknown = [c for c in columns if c not in self.columns]
        if unknown or not columns:
            raise FilterError(
                f"{self.model.__name__} has no column {', '.join(map(repr, unknown))} "
                f"(in columns=); valid columns: {', '.join(self.columns)}"
            )
        return stmt.with_only_columns(*(self.columns[c] for c in columns))

    def partitioning(self, order_by: OrderBy) -> tuple[Table, OrderKey | None]:
        """What a partitioned frame read cuts: the model's table, and the ordering to keep.

        Raises:
            FrameError: the ordering does not start with a column of the table.
        """
        table = inspect(self.model).local_table
        assert isinstance(table, Table)
        return table, order_key(order_by_clauses(self.model, order_by), table)

    def get(self, ident: Any) -> Select[Any]:
        """SELECT one row by primary key."""
        return select(self.model).where(self._pk_clause(ident)).execution_options(**self.options())

    def get_many(self, idents: Iterable[Any]) -> Select[Any]:
        """SELECT the rows whose primary key is in ``idents``, in key order."""
        if isinstance(idents, str | bytes) or not isinstance(idents, Iterable):
            raise FilterError(
                f"get_many takes a list (or any iterable) of {self.model.__name__} primary "
                f"keys, got {type(idents).__name__}"
            )
        idents = list(idents)
        keys = self.pk[0] if len(self.pk) == 1 else tuple_(*self.pk)
        return self.select([keys.in_(idents)])

    def count(self, where: Iterable[Any], lookups: Mapping[str, Any]) -> Select[Any]:
        """SELECT count(*) of the matching rows."""
        return (
            select(func.count())
            .select_from(self.model)
            .where(*self._where(where, lookups))
            .execution_options(**self.options())
        )

    def exists(self, where: Iterable[Any], lookups: Mapping[str, Any]) -> Select[Any]:
        """SELECT the first matching primary key (LIMIT 1)."""
        return (
            select(*self.pk)
            .where(*self._where(where, lookups))
            .limit(1)
            .execution_options(**self.options())
        )

    def paginate(
        self,
        where: Iterable[Any],
        lookups: Mapping[str, Any],
        *,
        page: int,
        size: int,
        order_by: OrderBy,
        max_size: int = DEFAULT_MAX_PAGE_SIZE,
    ) -> PagePlan[M]:
        """Plan page ``page`` (1-based) of ``size`` rows: one LIMIT/OFFSET select with the total."""
        if not isinstance(page, int) or isinstance(page, bool) or page < 1:
            raise PaginationError(f"page must be an integer >= 1, got {page!r}")
        check_size(size, max_size)
        rows = self.select(where, lookups, order_by=order_by, limit=size, offset=(page - 1) * size)
        return PagePlan(
            count=self.count(where, lookups),
            # The window counts every matching row before LIMIT/OFFSET: the total comes along.
            rows=rows.add_columns(func.count().over().label("dbnb_total")),
            page=page,
            size=size,
        )

    def keyset(
        self,
        where: Iterable[Any],
        lookups: Mapping[str, Any],
        *,
        order_by: str | Sequence[str] | None,
        after: Any,
        size: int,
        max_size: int = DEFAULT_MAX_PAGE_SIZE,
        cursor_key: bytes | str | None = None,
    ) -> KeysetPlan[M]:
        """Plan the ``size`` rows that follow ``after`` in ``order_by`` order (keyset paging).

        ``after`` is a cursor string (``page.cursor``), a row of the previous window (a model
        instance), a mapping of key values, a tuple in key order, or None for the first
        window. The primary key is appended as a tie-breaker. Keys may sort in different
        directions (``["-created_at", "name"]``); they must not be NULL.
        """
        check_size(size, max_size)
        names = [order_by] if isinstance(order_by, str) else list(order_by or [])
        if any(not isinstance(n, str) for n in names):
            raise PaginationError("keyset order_by takes column names such as '-created_at'")
        order_by_clauses(self.model, names)  # unknown names fail here, naming the valid ones
        keys = [n[1:] if n[:1] in "+-" else n for n in names]
        desc = [n.startswith("-") for n in names]
        tie = all(desc) if desc else False  # the key follows one direction, else ascends
        for c in self.pk:
            if c.key not in keys:
                keys.append(c.key)
                desc.append(tie)
        columns = [self.columns[k] for k in keys]
        shown = tuple(f"-{k}" if d else k for k, d in zip(keys, desc, strict=True))
        scope = f"{self.model.__name__}:{','.join(shown)}"
        clauses_where = self._where(where, lookups)
        if after is not None:
            if isinstance(after, str):
                after = cursors.decode(after, scope, cursor_key)
            values = [self._cursor_value(after, k, i) for i, k in enumerate(keys)]
            clauses_where.append(_after(columns, desc, values))
        stmt = (
            select(self.model)
            .where(*clauses_where)
            .order_by(*(c.desc() if d else c.asc() for c, d in zip(columns, desc, strict=True)))
            .limit(size + 1)
            .execution_options(**self.options())
        )
        return KeysetPlan(stmt, size, shown, keys=tuple(keys), scope=scope, key=cursor_key)

    def _cursor_value(self, after: Any, key: str, index: int) -> Any:
        if isinstance(after, Mapping):
            value = after.get(key)
        elif isinstance(after, tuple):
            value = after[index] if index < len(after) else None
        else:
            value = getattr(after, key, None)
        if value is None:
            raise PaginationError(
                f"the keyset cursor has no value for {key!r}; pass the last row of the previous "
                "window (after=page.last), a mapping or a tuple of all key values"
            )
        return value
