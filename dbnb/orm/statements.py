"""IO-free statement builders shared by ``Repository`` and ``AsyncRepository``.

:class:`Statements` turns a repository call into SQLAlchemy statements (and validates it, so a
bad filter or page size fails before any query is sent): the reads of
:class:`~dbnb.orm.queries.Queries` and the writes here (INSERT, UPDATE, upserts, deletes). The
two repository shells only run what it builds, on a Session or an AsyncSession.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Delete, Select, Update, delete, insert, select
from sqlalchemy.sql.base import Executable

from dbnb.errors import FilterError
from dbnb.orm.filters import check_values
from dbnb.orm.queries import Queries, Visibility
from dbnb.orm.softdelete import INCLUDE_DELETED
from dbnb.orm.types import utc_now
from dbnb.orm.writes import REFRESH, Write, on_conflict_insert, one_row_write, upsert_write

__all__ = ["Statements", "Visibility", "Write"]

M = TypeVar("M")


class Statements(Queries[M]):
    """Build the statements behind every repository method for one model and visibility.

    Visibility applies to soft-deletable models: ``"alive"`` (the default) hides soft-deleted
    rows, ``"all"`` shows every row, ``"deleted"`` only the soft-deleted ones.
    """

    # -- writes ---------------------------------------------------------------------------------

    def values(self, values: Mapping[str, Any], *, what: str) -> dict[str, Any]:
        """Validate column names of ``values`` for a create/update."""
        return check_values(self.model, values, what=what)

    def new(self, values: Mapping[str, Any], *, what: str) -> M:
        """Build an instance for INSERT, every column loaded once it is flushed.

        Nullable columns without any default get an explicit None: otherwise the ORM would
        leave them unloaded after the INSERT, and reading one later would need a query (which
        fails once the session is closed, and always fails on asyncio).
        """
        checked = check_values(self.model, values, what=what, relationships=True)
        for key, column in self.columns.items():
            col = column.property.columns[0]
            if col.nullable and col.default is None and col.server_default is None:
                checked.setdefault(key, None)
        return self.model(**checked)

    def insert_many(self) -> Executable | None:
        """INSERT … RETURNING the model, executed with a list of rows (batched by SQLAlchemy).

        None where INSERT returns no rows (MySQL): the shells add instances and flush instead.
        """
        if not self.caps.insert_returning:
            return None
        return insert(self.model).returning(self.model)

    def _by_key(self, ident: Any, visibility: Visibility = "all") -> Select[Any]:
        """SELECT one row by key with ``visibility``, replacing stale copies in the session."""
        options = {INCLUDE_DELETED: True} if visibility == "all" else {}
        return (
            select(self.model)
            .where(self._pk_clause(ident), *self._dml_visibility(visibility))
            .execution_options(**options, **REFRESH)
        )

    def _write(
        self, stmt: Update | Delete, ident: Any, *, returns: bool, gone: bool = False
    ) -> Write:
        """The Write of ``stmt`` on one row: RETURNING where the backend can, else a SELECT."""
        return one_row_write(self.model, stmt, self._by_key(ident), returns=returns, gone=gone)

    def update(self, ident: Any, values: Mapping[str, Any]) -> Write:
        """UPDATE one row by key, RETURNING it; ``updated_at`` moves through its onupdate."""
        stmt = self._update([self._pk_clause(ident)], self.values(values, what="in update"))
        return self._write(stmt, ident, returns=self.caps.update_returning)

    def update_many(
        self, values: Mapping[str, Any], where: Iterable[Any], lookups: Mapping[str, Any]
    ) -> Update:
        """UPDATE the matching rows (a filter is required)."""
        checked = self.values(values, what="in update_many")
        return self._update(self._where(where, lookups, required="update_many"), checked)

    def _update(
        self,
        where: list[ColumnElement[bool]],
        values: dict[str, Any],
        visibility: Visibility | None = None,
    ) -> Update:
        if not values:
            raise FilterError("nothing to update: pass at least one column=value")
        # Set explicitly, so every repository UPDATE moves it even where a model's own
        # updated_at column has no onupdate.
        if "updated_at" in self.columns and "updated_at" not in values:
            values["updated_at"] = utc_now()
        return (
            Update(self.model)
            .where(*where, *self._dml_visibility(visibility))
            .values(values)
            .execution_options(synchronize_session="fetch")
        )

    def upsert(
        self, values: Mapping[str, Any], *, on: Sequence[str], update: Sequence[str] | None
    ) -> Write:
        """INSERT … ON CONFLICT (on) DO UPDATE … RETURNING the model.

        MySQL/MariaDB: ``INSERT … ON DUPLICATE KEY UPDATE``, then the row is read by ``on``
        (there the conflict is on any unique key, so ``on`` must name the one that matters).
        """
        checked = self.values(values, what="in upsert")
        targets = list(self.values(dict.fromkeys(on), what="in on"))
        if not targets:
            raise FilterError("upsert needs on=[column, …] naming a unique key")
        names = update if update is not None else [k for k in checked if k not in targets]
        self.values(dict.fromkeys(names), what="in update")
        missing = [t for t in targets if t not in checked]
        if self.caps.upsert == "on_duplicate_key" and missing:
            raise FilterError(f"upsert on={targets} needs values for {missing}")
        alive = self._dml_visibility("alive")
        return upsert_write(
            self.caps, self.model, checked, targets, names, alive[0] if alive else None,
            stamp="updated_at" in self.columns,
        )

    def upsert_many(
        self,
        rows: Iterable[Mapping[str, Any]],
        *,
        on: Sequence[str],
        update: Sequence[str] | None,
    ) -> tuple[Executable, list[dict[str, Any]]]:
        """INSERT … ON CONFLICT (on) DO UPDATE … RETURNING, and the checked rows to run it with.

        Every row must name the same columns (a missing one would overwrite with NULL), and
        no two rows the same ``on`` key (PostgreSQL refuses to update a row twice).
        """
        checked = [self.values(row, what="in upsert_many") for row in rows]
        targets = list(self.values(dict.fromkeys(on), what="in on"))
        if not targets:
            raise FilterError("upsert_many needs on=[column, …] naming a unique key")
        if not checked:
            return insert(self.model), []
        columns = list(checked[0])
        for number, row in enumerate(checked, start=1):
            if set(row) != set(columns):
                odd = sorted(set(columns) ^ set(row))
                raise FilterError(
                    f"upsert_many: row {number} differs from row 1 in {', '.join(odd)}; give "
                    "every row the same columns (a missing one would be set to NULL)"
                )
            missing = [t for t in targets if t not in row]
            if missing:
                raise FilterError(f"upsert_many: row {number} lacks the key {missing}")
        seen: dict[tuple[Any, ...], int] = {}
        for number, row in enumerate(checked, start=1):
            key = tuple(row[t] for t in targets)
            if key in seen:
                raise FilterError(
                    f"upsert_many: rows {seen[key]} and {number} have the same key {key!r}; "
                    "keep one"
                )
            seen[key] = number
        names = update if update is not None else [k for k in columns if k not in targets]
        self.values(dict.fromkeys(names), what="in update")
        if self.caps.upsert != "on_conflict":  # MySQL: no RETURNING to give the rows back
            self.caps.require(
                "upsert_many (INSERT … ON CONFLICT … RETURNING in input order)",
                "upsert rows one by one with upsert(), or load them with "
                "from_frame(frame, on_conflict='update', on=[...])",
            )
        stmt: Any = on_conflict_insert(self.caps.name)(self.model)
        new: dict[str, Any] = {n: stmt.excluded[n] for n in names}
        if new and "updated_at" in self.columns:
            new["updated_at"] = utc_now()
        new = new or {targets[0]: stmt.excluded[targets[0]]}  # RETURNING needs an update
        alive = self._dml_visibility("alive")
        upsert = stmt.on_conflict_do_update(
            index_elements=targets, index_where=alive[0] if alive else None, set_=new
        )
        returning = upsert.returning(self.model, sort_by_parameter_order=True)
        return returning.execution_options(**REFRESH), checked

    def soft_delete(self, where: list[ColumnElement[bool]]) -> Update:
        """UPDATE … SET deleted_at = now() on alive matching rows."""
        return self._update(where, {"deleted_at": utc_now()}, "alive")

    def restore(self, ident: Any) -> Write:
        """UPDATE … SET deleted_at = NULL on one soft-deleted row, RETURNING it."""
        if not self.soft:
            raise TypeError(f"{self.model.__name__} has no soft delete (no SoftDelete mixin)")
        stmt = self._update([self._pk_clause(ident)], {"deleted_at": None}, "deleted")
        return self._write(stmt, ident, returns=self.caps.update_returning)

    def delete(self, ident: Any) -> Write:
        """Soft-delete one row (UPDATE) for SoftDelete models, else DELETE it; RETURNING it."""
        if self.soft:
            stmt = self.soft_delete([self._pk_clause(ident)])
            return self._write(stmt, ident, returns=self.caps.update_returning)
        gone = delete(self.model).where(self._pk_clause(ident))
        return self._write(gone, ident, returns=self.caps.delete_returning, gone=True)

    def delete_many(self, where: Iterable[Any], lookups: Mapping[str, Any]) -> Update | Delete:
        """Soft-delete (or DELETE, without SoftDelete) the matching rows; a filter is required."""
        clauses = self._where(where, lookups, required="delete_many")
        if self.soft:
            return self.soft_delete(clauses)
        return delete(self.model).where(*clauses).execution_options(synchronize_session="fetch")

    def hard_delete(self, ident: Any) -> Write:
        """DELETE one row by key whatever its soft-delete state, RETURNING it."""
        stmt = delete(self.model).where(self._pk_clause(ident))
        return self._write(stmt, ident, returns=self.caps.delete_returning, gone=True)
