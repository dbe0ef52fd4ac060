"""A read's decoded Arrow columns as a ``pyarrow.Table`` or a polars DataFrame, as they are.

IO-free. The decoded columns (:meth:`~dbnb.frames.plan.ReadPlan.decode`) already have the exact
Arrow types of the ``arrow`` / ``polars`` rules (:mod:`dbnb.frames.dtypes`): the Arrow table
takes them without a copy, and polars imports them with ``pl.from_arrow``, which shares
numeric, boolean and temporal buffers and rebuilds only what polars lays out otherwise (text
becomes polars' string views). Two types are adjusted for polars, which cannot import them:
an interval becomes a ``struct{months, days, nanoseconds}`` (polars has no calendar interval,
and a ``Duration`` would turn a month into a number of days), and Arrow's ``json`` type is
left as its text (``pl.col(c).str.json_decode()`` parses it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa

from dbnb.errors import FrameError

if TYPE_CHECKING:
    import polars as pl

__all__ = ["arrow_table", "polars_frame"]

_INTERVAL_FIELDS = pa.struct(
    [("months", pa.int32()), ("days", pa.int32()), ("nanoseconds", pa.int64())]
)


def arrow_table(columns: list[pa.ChunkedArray | None], names: list[str]) -> pa.Table:
    """The result as a ``pyarrow.Table`` named by the result's columns (consumes the list)."""
    arrays = [c for c in columns if c is not None]
    columns.clear()
    return pa.table(arrays, names=names)


def _interval_struct(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """``month_day_nano_interval`` -> ``struct{months, days, nanoseconds}`` (same values)."""
    import numpy as np

    layout = np.dtype([("months", "<i4"), ("days", "<i4"), ("nanoseconds", "<i8")])
    chunks = []
    for chunk in column.chunks:
        n = len(chunk)
        if n == 0:
            chunks.append(pa.array([], type=_INTERVAL_FIELDS))
            continue
        values = np.frombuffer(chunk.buffers()[1], dtype=layout, count=n, offset=chunk.offset * 16)
        fields = [pa.array(np.ascontiguousarray(values[name])) for name in layout.names or ()]
        mask = chunk.is_null() if chunk.null_count else None
        chunks.append(pa.StructArray.from_arrays(fields, fields=list(_INTERVAL_FIELDS), mask=mask))
    return pa.chunked_array(chunks, type=_INTERVAL_FIELDS)


def _for_polars(column: pa.ChunkedArray) -> pa.ChunkedArray:
    t = column.type
    if pa.types.is_interval(t):
        return _interval_struct(column)
    if isinstance(t, pa.ExtensionType) and t.extension_name == "arrow.json":
        return column.cast(t.storage_type)
    return column


def polars_frame(table: pa.Table) -> pl.DataFrame:
    """The result as a polars DataFrame, imported from Arrow (see the module's notes).

    Raises:
        FrameError: the result names a column twice (polars needs distinct names).
    """
    import polars as pl

    names = table.column_names
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise FrameError(
            f"the result names {', '.join(map(repr, twice))} more than once, and a polars "
            "DataFrame needs distinct column names; give them aliases in the SQL (AS ...)"
        )
    columns = [_for_polars(c) for c in table.columns]
    frame = pl.from_arrow(pa.table(columns, names=names), rechunk=False)
    assert isinstance(frame, pl.DataFrame)
    return frame
