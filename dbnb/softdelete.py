"""The global soft-delete filter: rows with ``deleted_at`` set vanish from every ORM SELECT.

One ``do_orm_execute`` listener on :class:`~sqlalchemy.orm.Session` (the class, so every
session, sync or async, is covered: an AsyncSession runs a sync Session underneath) adds a
``with_loader_criteria`` for all :class:`~dbnb.models.SoftDelete` models to each ORM SELECT:
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

from dbnb.models import SoftDelete

__all__ = ["INCLUDE_DELETED", "ONLY_DELETED"]

INCLUDE_DELETED = "include_deleted"
ONLY_DELETED = "only_deleted"


@event.listens_for(Session, "do_orm_execute")
def _filter_soft_deleted(state: ORMExecuteState) -> None:
    if not state.is_select or state.is_column_load:
        return
    options = state.execution_options
    if options.get(INCLUDE_DELETED, False):
        return
    # only_deleted concerns the statement's own rows; related rows loaded for them later still
    # hide deleted ones, which is why neither criterion propagates to relationship loaders:
    # each relationship load passes through here again and gets the default.
    if options.get(ONLY_DELETED, False) and not state.is_relationship_load:
        criteria = with_loader_criteria(
            SoftDelete,
            lambda cls: cls.deleted_at.is_not(None),
            include_aliases=True,
            propagate_to_loaders=False,
        )
    else:
        criteria = with_loader_criteria(
            SoftDelete,
            lambda cls: cls.deleted_at.is_(None),
            include_aliases=True,
            propagate_to_loaders=False,
        )
    state.statement = state.statement.options(criteria)
