"""Arrow and polars frames into tables: checked and converted column by column, as Arrow.

IO-free. What :mod:`dbnb.frames.convert` does for a pandas DataFrame, done on Arrow arrays for a
``pyarrow.Table`` (or ``RecordBatch``) and a polars DataFrame (``df.to_arrow()``: polars hands
its buffers over without a copy): no pandas in between. The rules are the same (the list in
:mod:`dbnb.frames.convert`): integers range-checked, naive datetimes into ``timestamptz`` only
with ``naive_as``, text columns take text only, ARRAY columns lists, JSON columns JSON data
(Arrow's ``json`` type is taken as the JSON text it is), decimals and floats as numbers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from dbnb.errors import FrameError
from dbnb.frames import cells
from dbnb.frames.convert import check_naive_as, checked_array, integers

if TYPE_CHECKING:
    import pandas as pd

    from dbnb.frames.convert import LoadPlan

__all__ = ["frame_input", "table_to_arrow"]

_INTEGER_KINDS = ("smallint", "integer", "bigint")


def frame_input(frame: Any, *, what: str = "from_frame") -> pd.DataFrame | pa.Table:
    """The frame as dbnb loads it: a pandas DataFrame as it is, polars and Arrow as a Table.

    Raises:
        FrameError: anything else, naming what was given and what is accepted.
    """
    module = type(frame).__module__.split(".", 1)[0]
    if module == "polars":
        if hasattr(frame, "to_arrow"):
            table: pa.Table = frame.to_arrow()
            return table
        raise FrameError(
            f"{what} takes a polars DataFrame, got a {type(frame).__name__} (collect a "
            "LazyFrame first: lf.collect()); nothing was written"
        )
    if isinstance(frame, pa.Table):
        return frame
    if isinstance(frame, pa.RecordBatch):
        return pa.Table.from_batches([frame])
    if module == "pandas":
        import pandas as pd

        if isinstance(frame, pd.DataFrame):
            return frame
    hint = (
        " (turn a Series into one with series.to_frame())"
        if type(frame).__name__ == "Series"
        else " (pandas.DataFrame(rows) builds one from a list of dicts)"
    )
    raise FrameError(
        f"{what} takes a pandas or polars DataFrame or a pyarrow Table, got "
        f"{type(frame).__name__}{hint}; nothing was written"
    )


def _timestamps(name: str, kind: str, arr: pa.Array, naive_as: str | None) -> pa.Array:
    t = arr.type
    if pa.types.is_date(t):
        arr, t = arr.cast(pa.timestamp("us")), pa.timestamp("us")
    if pa.types.is_null(t):
        return arr.cast(pa.timestamp("us"))
    if not pa.types.is_timestamp(t):
        raise FrameError(f"column {name!r} ({kind}): expected datetimes, got {t}")
    if t.tz is None and kind == "timestamptz":
        if naive_as is None:
            raise FrameError(
                f"column {name!r}: naive datetimes cannot go into timestamptz without a zone; "
                "pass naive_as='UTC' (or the zone they were recorded in), or give the column "
                "a time zone first"
            )
        try:
            arr = pc.assume_timezone(arr, naive_as, ambiguous="raise", nonexistent="raise")
        except (pa.ArrowInvalid, ValueError) as exc:
            raise FrameError(f"column {name!r} ({kind}): {exc}") from exc
    # A zoned timestamp holds UTC instants: dropping the zone leaves naive UTC, which the load
    # reads under TimeZone=UTC (timestamptz), or stores as UTC wall time (timestamp), as the
    # pandas path does. Nanoseconds are cut to PostgreSQL's microseconds.
    return arr.cast(pa.timestamp(arr.type.unit)).cast(pa.timestamp("us"), safe=False)


def _texts(name: str, kind: str, arr: pa.Array) -> pa.Array:
    t = arr.type
    if getattr(t, "extension_name", None) == "arrow.uuid" or (
        pa.types.is_fixed_size_binary(t) and t.byte_width == 16
    ):
        return pa.array([None if v is None else str(v) for v in _uuids(arr)], pa.string())
    if pa.types.is_dictionary(t):
        arr = arr.cast(t.value_type)
    if kind in ("uuid", "text") and not cells.stringlike(arr.type):
        raise FrameError(
            f"column {name!r} ({kind}): takes strings, got {arr.type} values; convert the "
            "column first (pl.col(c).cast(pl.String), pc.cast(col, pa.string())) if its text "
            "is what you want"
        )
    return arr


def _storage(arr: pa.ChunkedArray | pa.Array) -> pa.Array:
    """An extension column's storage values (uuid bytes, JSON text), in one array."""
    whole = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
    return whole.storage if isinstance(whole, pa.ExtensionArray) else whole


def _uuids(arr: pa.ChunkedArray | pa.Array) -> list[Any]:
    import uuid

    return [None if b is None else uuid.UUID(bytes=b) for b in _storage(arr).to_pylist()]


def _json(name: str, arr: pa.Array) -> pa.Array:
    if getattr(arr.type, "extension_name", None) == "arrow.json":
        return _storage(arr).cast(pa.string())  # already JSON text
    return pa.array([cells.json_text(name, v) for v in arr.to_pylist()], pa.string())


def _column(name: str, kind: str, arr: pa.Array, naive_as: str | None) -> pa.Array:
    if kind in _INTEGER_KINDS:
        if pa.types.is_dictionary(arr.type):
            arr = arr.cast(arr.type.value_type)
        return integers(name, kind, arr)
    if kind in ("timestamptz", "timestamp"):
        return _timestamps(name, kind, arr, naive_as)
    if kind == "json":
        return _json(name, arr)
    if kind == "array":
        return pa.array([cells.array_literal(name, v) for v in arr.to_pylist()], pa.string())
    if kind in ("uuid", "text", "other"):
        arr = _texts(name, kind, arr)
    if kind == "date" and pa.types.is_timestamp(arr.type) and arr.type.tz is not None:
        arr = arr.cast(pa.timestamp(arr.type.unit))
    if pa.types.is_time(arr.type) and arr.type.unit == "ns":
        arr = arr.cast(pa.time64("us"), safe=False)  # polars' times; PostgreSQL keeps us
    return checked_array(name, kind, arr)


def table_to_arrow(plan: LoadPlan, table: pa.Table, *, naive_as: str | None) -> pa.Table:
    """Convert an Arrow ``table`` into the checked Arrow table ``COPY`` loads into the table.

    Raises:
        FrameError: a value does not fit its column (the message names the column), or
            ``naive_as`` is not a time zone name.
    """
    check_naive_as(naive_as)
    n = table.num_rows
    arrays = []
    for column, source, fill, kind in zip(
        plan.columns, plan.sources, plan.fills, plan.kinds, strict=True
    ):
        if source is None:
            assert fill is not None
            values = fill(n)
            arr = _arrow_of(column, values)
        else:
            arr = table.column(source)  # chunks kept: combining them copies every value
        arrays.append(_column(column, kind, arr, naive_as))
    return pa.table(arrays, names=[f"c{i}" for i in range(len(arrays))])


def _arrow_of(name: str, values: list[Any]) -> pa.Array:
    """A client-side default's values (``uuid.uuid4()``, an enum member...) as an array."""
    import uuid

    plain = [str(v) if isinstance(v, uuid.UUID) else cells.enum_name(v) for v in values]
    try:
        return pa.array(plain)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as exc:
        raise FrameError(f"column {name!r}: cannot convert its default's values: {exc}") from exc
