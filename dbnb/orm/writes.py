"""Writes of one row and how their row comes back: RETURNING, or a SELECT where there is none.

IO-free. PostgreSQL and SQLite return the row from every INSERT, UPDATE and DELETE; MariaDB
from INSERT and DELETE; MySQL from none. :func:`one_row_write` and :func:`upsert_write` build a
:class:`Write` that says which, and the repository shells run it (``_apply``).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Delete, Select, Update, and_, inspect, select
from sqlalchemy.sql.base import Executable

from dbnb.dialects import Capabilities
from dbnb.orm.types import utc_now

__all__ = ["REFRESH", "Write", "on_conflict_insert", "one_row_write", "upsert_write"]

# Returned rows replace stale copies in the session's identity map.
REFRESH: dict[str, Any] = {"populate_existing": True}
_ON_CONFLICT_DIALECTS = ("postgresql", "sqlite")


def on_conflict_insert(dialect: str) -> Any:
    """INSERT … ON CONFLICT as ``dialect``'s SQLAlchemy dialect spells it.

    The dialect module is imported here, on first use: ``import dbnb`` need not load them.

    Raises:
        KeyError: the dialect has no INSERT … ON CONFLICT.
    """
    if dialect not in _ON_CONFLICT_DIALECTS:
        raise KeyError(dialect)
    return importlib.import_module(f"sqlalchemy.dialects.{dialect}").insert


@dataclass(frozen=True)
class Write:
    """A write of one row and how its row comes back.

    ``returning``: ``statement`` returns the row itself. Otherwise (MySQL, MariaDB's UPDATE)
    the row is read with ``before`` (a DELETE: it will be gone) or ``after`` the statement, in
    the same transaction; ``counted`` says whether a rowcount of 0 means "no such row".
    """

    statement: Executable
    returning: bool
    before: Select[Any] | None = None
    after: Select[Any] | None = None
    counted: bool = True


def one_row_write(
    model: type[Any], stmt: Update | Delete, by_key: Select[Any], *, returns: bool,
    gone: bool = False,
) -> Write:
    """RETURNING the model where the backend can; else ``by_key`` before a DELETE, after others."""
    if returns:
        return Write(stmt.returning(model).execution_options(**REFRESH), True)
    if gone:
        return Write(stmt, False, before=by_key)
    return Write(stmt, False, after=by_key)


def upsert_write(
    caps: Capabilities,
    model: type[Any],
    checked: dict[str, Any],
    targets: list[str],
    names: Sequence[str],
    alive: Any,
    *,
    stamp: bool,
) -> Write:
    """INSERT … ON CONFLICT (targets) DO UPDATE … RETURNING, or ON DUPLICATE KEY UPDATE + SELECT.

    ``alive`` is the partial unique index's predicate (soft-deletable models), ``stamp`` moves
    ``updated_at`` on the rows it updates.
    """
    if caps.upsert == "on_duplicate_key":
        from sqlalchemy.dialects import mysql

        stmt: Any = mysql.insert(model).values(checked)
        new: dict[str, Any] = {n: stmt.inserted[n] for n in names}
        if new and stamp:
            new["updated_at"] = utc_now()
        # A no-op SET when nothing is to change, as on the other backends.
        new = new or {targets[0]: getattr(model, targets[0])}
        columns = {a.key: getattr(model, a.key) for a in inspect(model).column_attrs}
        found = (
            select(model)
            .where(and_(*(columns[t] == checked[t] for t in targets)),
                   *([alive] if alive is not None else []))
            .execution_options(**REFRESH)
        )
        return Write(stmt.on_duplicate_key_update(**new), False, after=found, counted=False)
    stmt = on_conflict_insert(caps.name)(model).values(checked)
    new = {n: stmt.excluded[n] for n in names}
    if new and stamp:
        new["updated_at"] = utc_now()
    # DO UPDATE even with nothing to change (a no-op SET), so RETURNING yields the row.
    new = new or {targets[0]: stmt.excluded[targets[0]]}
    # A partial unique index (WHERE deleted_at IS NULL) is only inferred with its predicate.
    stmt = stmt.on_conflict_do_update(index_elements=targets, index_where=alive, set_=new)
    return Write(stmt.returning(model).execution_options(**REFRESH), True)
