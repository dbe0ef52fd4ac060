"""Arrow columns -> pandas columns, one at a time, each Arrow column released once converted.

IO-free. What :meth:`~dbnb.frames.plan.ReadPlan.finish` runs for pandas instead of pyarrow's
``Table.to_pandas``: the dtypes are the same (the table in :mod:`dbnb.frames.dtypes`), but

- memory: columns are converted one by one and each Arrow column is dropped as soon as its pandas
  array exists, so a read peaks near the frame's size plus one column (pyarrow's
  ``self_destruct`` still converts nullable integers and booleans through extra whole-column
  copies); numbers are written chunk by chunk into the final array;
- fixed cost: a 10-row result converts in tens of microseconds (pyarrow's conversion spends
  a few hundred on pandas metadata), which is most of a small query's client time;
- the pyarrow backend wraps the Arrow columns as they are (no copy at all).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from dbnb.frames.columns import DtypeBackend
from dbnb.frames.decode import no_cyclic_gc

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["to_frame"]

_NUMPY = {
    pa.int16(): np.int16, pa.int32(): np.int32, pa.int64(): np.int64,
    pa.float32(): np.float32, pa.float64(): np.float64,
}


def _filled(column: pa.ChunkedArray, dtype: Any) -> np.ndarray[Any, Any]:
    """The column's values in one numpy array; what stands at null positions is unspecified."""
    out = np.empty(len(column), dtype=dtype)
    start = 0
    for chunk in column.chunks:
        n = len(chunk)
        if n:
            data = chunk.buffers()[1]
            size = np.dtype(dtype).itemsize
            out[start : start + n] = np.frombuffer(data, dtype=dtype, count=n,
                                                   offset=chunk.offset * size)
        start += n
    return out


def _nulls(column: pa.ChunkedArray) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """True where the column is null."""
    mask = np.zeros(len(column), dtype=bool)
    if column.null_count:
        start = 0
        for chunk in column.chunks:
            n = len(chunk)
            if chunk.null_count:
                mask[start : start + n] = chunk.is_null().to_numpy(zero_copy_only=False)
            start += n
    return mask


def _integers(column: pa.ChunkedArray, dtype: Any) -> Any:
    import pandas as pd

    return pd.arrays.IntegerArray(_filled(column, dtype), _nulls(column))


def _floats(column: pa.ChunkedArray, dtype: Any) -> np.ndarray[Any, Any]:
    values = _filled(column, dtype)
    if column.null_count:
        values[_nulls(column)] = np.nan
    return values


def _booleans(column: pa.ChunkedArray) -> Any:
    import pandas as pd

    values = np.empty(len(column), dtype=bool)
    start = 0
    for chunk in column.chunks:
        n = len(chunk)
        values[start : start + n] = chunk.fill_null(False).to_numpy(zero_copy_only=False)
        start += n
    return pd.arrays.BooleanArray(values, _nulls(column))


def _timestamps(column: pa.ChunkedArray) -> Any:
    import pandas as pd

    unit = column.type.unit
    values = _filled(column, np.int64)
    if column.null_count:
        values[_nulls(column)] = np.iinfo(np.int64).min  # NaT
    stamps = values.view(f"M8[{unit}]")
    if column.type.tz is None:
        return stamps
    return pd.DatetimeIndex(stamps, copy=False).tz_localize(column.type.tz).array


def _dates(column: pa.ChunkedArray) -> np.ndarray[Any, Any]:
    seconds = _filled(column, np.int32).astype(np.int64) * 86_400
    if column.null_count:
        seconds[_nulls(column)] = np.iinfo(np.int64).min  # NaT
    return seconds.view("M8[s]")


def _strings(column: pa.ChunkedArray) -> Any:
    import pandas as pd

    return pd.arrays.ArrowStringArray(column)  # `string` (NA-valued), on the Arrow memory


def _objects(column: pa.ChunkedArray) -> np.ndarray[Any, Any]:
    """Python objects, as pyarrow makes them (time, DateOffset, bytes, Decimal, date...)."""
    if column.num_chunks == 1:
        return np.asarray(column.chunk(0).to_numpy(zero_copy_only=False), dtype=object)
    out = np.empty(len(column), dtype=object)
    start = 0
    for chunk in column.chunks:
        out[start : start + len(chunk)] = chunk.to_numpy(zero_copy_only=False)
        start += len(chunk)
    return out


def _default(column: pa.ChunkedArray) -> Any:
    """The default backend's array for a column (see the table in :mod:`dbnb.frames.dtypes`)."""
    t = column.type
    if pa.types.is_integer(t):
        return _integers(column, _NUMPY[t])
    if pa.types.is_floating(t):
        return _floats(column, _NUMPY[t])
    if pa.types.is_boolean(t):
        return _booleans(column)
    if pa.types.is_timestamp(t):
        return _timestamps(column)
    if pa.types.is_date32(t):
        return _dates(column)
    if pa.types.is_large_string(t):
        return _strings(column)
    if pa.types.is_list(t):
        return _arrow(column)  # no pandas dtype, and Python lists are slow to build
    if pa.types.is_interval(t):
        return _date_offsets(column)
    return _objects(column)


def _date_offsets(column: pa.ChunkedArray) -> np.ndarray[Any, Any]:
    """``pd.DateOffset`` objects, one per distinct interval (a DateOffset takes microseconds).

    pandas can hold Arrow's ``month_day_nano_interval`` but not display it, so both backends
    get the objects pyarrow itself makes (months, days and nanoseconds apart, all exact).
    """
    import pandas as pd

    fields = np.dtype([("months", "<i4"), ("days", "<i4"), ("nanoseconds", "<i8")])
    values = np.empty(len(column), dtype=fields)
    start = 0
    for chunk in column.chunks:
        n = len(chunk)
        if n:
            values[start : start + n] = np.frombuffer(
                chunk.buffers()[1], dtype=fields, count=n, offset=chunk.offset * 16
            )
        start += n
    distinct, where = np.unique(values, return_inverse=True)
    made = np.empty(len(distinct), dtype=object)
    with no_cyclic_gc():
        made[:] = [pd.DateOffset(months=m, days=d, nanoseconds=ns)
                   for m, d, ns in distinct.tolist()]
    out: np.ndarray[Any, Any] = made[where]
    if column.null_count:
        out[_nulls(column)] = None
    return out


def _arrow(column: pa.ChunkedArray) -> Any:
    import pandas as pd

    if pa.types.is_interval(column.type):
        return _date_offsets(column)  # see _date_offsets: pandas cannot display the Arrow type
    return pd.arrays.ArrowExtensionArray(column)


def to_frame(
    columns: list[pa.ChunkedArray | None],
    names: pd.Index[Any],
    rows: int,
    backend: DtypeBackend,
    finished: dict[int, Any],
) -> pd.DataFrame:
    """Build the DataFrame from Arrow ``columns``, consuming the list (entries become None).

    ``finished`` holds the columns already converted by a rule's own finish (by position);
    their entries in ``columns`` are ignored.
    """
    import pandas as pd

    convert: Callable[[pa.ChunkedArray], Any] = _arrow if backend == "pyarrow" else _default
    arrays: list[Any] = []
    for i in range(len(columns)):
        column = columns[i]
        columns[i] = None  # the list held the last reference: the Arrow memory goes with it
        arrays.append(finished[i] if i in finished else convert(column))
        del column
        pa.default_memory_pool().release_unused()
    # What pandas' own readers use: DataFrame(dict) re-checks every array and builds an Index
    # of the keys, a third of a small result's conversion time.
    frame: pd.DataFrame = pd.DataFrame._from_arrays(  # type: ignore[attr-defined]
        arrays, columns=names, index=pd.RangeIndex(rows), verify_integrity=False
    )
    return frame
