"""The global soft-delete filter: rows with ``deleted_at`` set vanish from every ORM SELECT.

One ``do_orm_execute`` listener on :class:`~sqlalchemy.orm.Session` (the class, so every
session, sync or async, is covered: an AsyncSession runs a sync Session underneath) adds a
``with_loader_criteria`` for all :class:`~dbnb.SoftDelete` models to each ORM SELECT:
direct queries, counts, pagination, frames, joined eager loads, and the separate SELECTs of
lazy and ``selectin`` relationship loads.

Execution options steer it per statement::

    s.scalars(select(User), execution_options={"include_deleted": True})   # everything
    s.scalars(select(User).execution_options(only_deleted=True))            # the deleted ones

Core statements on a raw connection (``db.execute("SELECT …")``) are not ORM executions and
are not filtered: SQL you write yourself runs as written.
"""

from __future__ import annotations

from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session, with_loader_criteria

from dbnb.orm.models import SoftDelete

__all__ = ["INCLUDE_DELETED", "ONLY_DELETED"]

INCLUDE_DELETED = "include_deleted"
ONLY_DELETED = "only_deleted"


def _carries_criteria(state: ORMExecuteState) -> bool:
    """Tell whether a relationship load already carries the criteria propagated from its parent."""
    if not state.is_relationship_load:
        return False
    options = getattr(state.statement, "_with_options", ())
    return any(getattr(option, "root_entity", None) is SoftDelete for option in options)


@event.listens_for(Session, "do_orm_execute")
def _filter_soft_deleted(state: ORMExecuteState) -> None:
    if not state.is_select or state.is_column_load:
        return
    options = state.execution_options
    if options.get(INCLUDE_DELETED, False) or _carries_criteria(state):
        return
    if options.get(ONLY_DELETED, False) and not state.is_relationship_load:
        # Not propagated: the rows loaded later for these deleted rows' relationships come
        # through here again and get the default. (Joined eager loads inside this statement
        # are therefore not filtered.)
        criteria = with_loader_criteria(
            SoftDelete,
            lambda cls: cls.deleted_at.is_not(None),
            include_aliases=True,
            propagate_to_loaders=False,
        )
    else:
        # Propagated, so joined eager loads in this statement and later lazy loads of the
        # loaded objects are filtered as well.
        criteria = with_loader_criteria(
            SoftDelete, lambda cls: cls.deleted_at.is_(None), include_aliases=True
        )
    state.statement = state.statement.options(criteria)
