"""``%db persist df --table NAME``: a notebook DataFrame into a new (or existing) table.

The command's function, for the shared command table: it only spells
:meth:`~dbnb.Database.create_table_from_frame`'s ``if_exists`` as two flags.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dbnb.errors import FrameError

if TYPE_CHECKING:
    from dbnb.engine.database import Database
    from dbnb.frames.persist import IfExists, PersistResult

__all__ = ["persist"]


def persist(
    db: Database,
    frame: Any,
    *,
    table: str,
    primary_key: str | None = None,
    schema: str | None = None,
    append: bool = False,
    replace: bool = False,
) -> PersistResult:
    """Store a DataFrame as a table: types from its dtypes, rows through COPY, one transaction.

    Args:
        db: the database.
        frame: the notebook variable holding the DataFrame.
        table: the table to create.
        primary_key: the column (or comma-separated columns) to make the primary key.
        schema: the schema to create it in.
        append: add the rows to the table if it exists.
        replace: drop the table first if it exists.
    """
    if append and replace:
        raise FrameError("persist: choose --append or --replace, not both")
    if_exists: IfExists = "append" if append else "replace" if replace else "fail"
    keys = [k.strip() for k in primary_key.split(",")] if primary_key else None
    return db.create_table_from_frame(
        table, frame, schema=schema, primary_key=keys, if_exists=if_exists
    )
