"""What a load is given, checked before anything is sent: the target table and the frame as Arrow.

Both loaders start here — COPY (:mod:`dbnb.frames.write`) and batched INSERT for backends
without COPY (:mod:`dbnb.frames.generic_load`) — as does ``dbnb.dask.write_frame``, so a bad
option, target or column fails the same way whichever path would have run.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
from sqlalchemy import Column, Table, inspect

from dbnb.errors import FrameError
from dbnb.frames import convert
from dbnb.frames.arrowin import frame_input, table_to_arrow

__all__ = ["checked_load", "table_of"]


def table_of(target: Any) -> tuple[Table, dict[str, str]]:
    """The Table behind ``target`` (a Table or a mapped class), and attribute -> column names."""
    if isinstance(target, Table):
        return target, {}
    mapper = inspect(target, raiseerr=False)
    local = getattr(mapper, "local_table", None)
    if mapper is None or not isinstance(local, Table):
        raise FrameError(f"expected a Table or a mapped class, got {target!r}")
    attributes = {
        key: col.name
        for key, col in mapper.columns.items()
        if isinstance(col, Column) and col.table is local
    }
    return local, attributes


def checked_load(
    target: Any, frame: Any, on_conflict: Any, on: list[str] | None, naive_as: str | None
) -> tuple[Table, convert.LoadPlan, pa.Table]:
    """The target's table, the load's plan and the frame's rows as checked Arrow columns.

    ``frame`` is a pandas or polars DataFrame or a pyarrow Table.

    Raises:
        FrameError: a bad ``on_conflict`` / ``on``, a target that is not a table, or a column
            the table lacks or whose values cannot be its type (the message names it).
    """
    frame = frame_input(frame)
    if on_conflict not in (None, "ignore", "update"):
        raise FrameError(f"on_conflict={on_conflict!r}: use None, 'ignore' or 'update'")
    if on is not None and on_conflict is None:
        raise FrameError("on= names the conflict key: pass on_conflict='update' or 'ignore'")
    table, attributes = table_of(target)
    if isinstance(frame, pa.Table):
        plan = convert.plan_load(table, frame.column_names, attributes)
        return table, plan, table_to_arrow(plan, frame, naive_as=naive_as)
    plan = convert.plan_load(table, list(frame.columns), attributes)
    return table, plan, convert.frame_to_arrow(plan, frame, naive_as=naive_as)
