"""DataFrame -> Arrow -> CSV for ``COPY ... FROM STDIN``: check the frame against its table.

IO-free: :func:`plan_load` checks the frame's columns against the table (before anything is
sent), :func:`frame_to_arrow` converts each column to what its PostgreSQL type accepts, and
:func:`render_csv` renders slices (:func:`parts`) as the CSV :mod:`dbnb.frames.write` copies in.
The checked columns are what both formats send: loads whose columns all have a binary form go
in binary instead (:mod:`dbnb.frames.binary_copy`), and the CSV's rules are the reference.

Rules (the same for the sync and the async shell):

- a column the table does not have is an error naming it and the table's columns;
- a missing ``NOT NULL`` column with no default (server or client) is an error;
- ``NaN``, ``NaT``, ``None`` and ``pd.NA`` become ``NULL``; numpy scalars are plain values;
- integers are range-checked against ``smallint``/``integer``/``bigint``; floats must be whole;
- naive datetimes going into ``timestamptz`` are an error unless ``naive_as="UTC"`` (or another
  zone) says where they are; aware datetimes going into ``timestamp`` are stored as UTC;
- absent columns get their server default; else a client-side scalar or callable default
  (``default=uuid.uuid4``) is computed here, since COPY does not run SQLAlchemy's defaults;
- text columns take strings (or enum members) only, ARRAY columns lists (a string is not split
  into characters), JSON columns JSON data (a ``set`` or an arbitrary object is refused, not
  stored as its repr); dates and decimals inside JSON become ISO text and numbers' text.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from sqlalchemy import types as sqltypes

from dbnb.errors import FrameError
from dbnb.frames import cells

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy import Column, Table

__all__ = [
    "LoadPlan",
    "check_naive_as",
    "checked_array",
    "frame_to_arrow",
    "integers",
    "parts",
    "plan_load",
    "render_csv",
]

_INT_BOUNDS = {
    "smallint": (-(2**15), 2**15 - 1),
    "integer": (-(2**31), 2**31 - 1),
    "bigint": (-(2**63), 2**63 - 1),
}


def _kind(column: Column[Any]) -> str:
    """Name the conversion a column needs, from its SQLAlchemy type."""
    t: Any = column.type
    if isinstance(t, sqltypes.TypeDecorator):
        t = t.impl_instance
    if isinstance(t, sqltypes.SmallInteger):
        return "smallint"
    if isinstance(t, sqltypes.BigInteger):
        return "bigint"
    if isinstance(t, sqltypes.Integer):
        return "integer"
    if isinstance(t, sqltypes.Float):
        return "float"
    if isinstance(t, sqltypes.Numeric):
        return "numeric"
    if isinstance(t, sqltypes.Boolean):
        return "boolean"
    if isinstance(t, sqltypes.DateTime):
        return "timestamptz" if t.timezone else "timestamp"
    if isinstance(t, sqltypes.Date):
        return "date"
    if isinstance(t, sqltypes.Uuid):
        return "uuid"
    if isinstance(t, sqltypes.JSON):
        return "json"
    if isinstance(t, sqltypes.ARRAY):
        return "array"
    if isinstance(t, sqltypes.String):
        return "text"
    return "other"


def check_naive_as(naive_as: Any) -> None:
    """Refuse a ``naive_as`` that is not a time zone name (``"UTC"``, ``"Europe/Paris"``)."""
    if naive_as is None:
        return
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if isinstance(naive_as, str) and naive_as.strip():
        try:
            ZoneInfo(naive_as)
            return
        except (ZoneInfoNotFoundError, ValueError):
            pass
    raise FrameError(
        f"naive_as={naive_as!r} is not a time zone name; use 'UTC' or an IANA zone such as "
        "'Europe/Paris' (or None to refuse naive datetimes)"
    )


@dataclass(frozen=True)
class LoadPlan:
    """What a load writes: the table, its columns in COPY order, and client-side fills."""

    table: Table
    columns: tuple[str, ...]  # database column names, in the order the CSV carries them
    sources: tuple[str | None, ...]  # the frame column for each, None when filled here
    fills: tuple[Callable[[int], list[Any]] | None, ...]
    kinds: tuple[str, ...]
    sql_defaults: bool  # an absent column has a client-side SQL default (INSERT must render it)

    @property
    def utc(self) -> bool:
        """True when timestamptz values are written (as naive UTC: load with TimeZone=UTC)."""
        return "timestamptz" in self.kinds


def _fill(default: Any) -> Callable[[int], list[Any]] | None:
    """Turn a client-side scalar or callable default into a column filler, else None."""
    if default is None:
        return None
    if getattr(default, "is_scalar", False):
        value = default.arg
        return lambda n: [value] * n
    if getattr(default, "is_callable", False):
        make = default.arg  # SQLAlchemy wraps plain callables to take an (unused) context
        return lambda n: [make(None) for _ in range(n)]
    return None


def plan_load(
    table: Table, frame_columns: list[Any], attributes: dict[str, str] | None = None
) -> LoadPlan:
    """Match a frame's columns to ``table``; raise before any I/O if they cannot be loaded.

    Frame columns name table columns, or mapped attributes (``attributes``: key -> column).

    Raises:
        FrameError: unknown or duplicate columns, a generated column given, or a NOT NULL
            column missing with no default.
    """
    by_name = {c.name: c for c in table.columns}
    by_key = {c.key: c for c in table.columns}
    by_key.update({key: by_name[name] for key, name in (attributes or {}).items()})
    unknown = [str(n) for n in frame_columns if n not in by_name and n not in by_key]
    if unknown:
        raise FrameError(
            f"{table.name}: the frame has columns the table does not: {', '.join(unknown)}; "
            f"the table's columns are: {', '.join(by_name)}"
        )
    chosen = [by_name.get(n, by_key.get(n)) for n in frame_columns]
    names = [c.name for c in chosen if c is not None]
    if len(set(names)) != len(names):
        raise FrameError(f"{table.name}: the frame names a column twice: {names}")
    generated = [c.name for c in chosen if c is not None and c.computed is not None]
    if generated:
        raise FrameError(f"{table.name}: generated columns cannot be written: {generated}")
    columns: list[str] = []
    sources: list[str | None] = []
    fills: list[Callable[[int], list[Any]] | None] = []
    kinds: list[str] = []
    for source, column in zip(frame_columns, chosen, strict=True):
        assert column is not None
        columns.append(column.name)
        sources.append(source)
        fills.append(None)
        kinds.append(_kind(column))
    missing = []
    sql_defaults = False
    for column in table.columns:
        if column.name in names or column.computed is not None:
            continue
        # A server default wins: the server fills the column without sending a value per row.
        fill = _fill(column.default) if column.server_default is None else None
        if fill is not None:
            columns.append(column.name)
            sources.append(None)
            fills.append(fill)
            kinds.append(_kind(column))
            continue
        sql_defaults = sql_defaults or (
            column.default is not None and column.server_default is None
        )
        has_default = (
            column.server_default is not None
            or column.default is not None
            or column.identity is not None
            or column is table.autoincrement_column
        )
        if not column.nullable and not has_default:
            missing.append(column.name)
    if missing:
        raise FrameError(
            f"{table.name}: NOT NULL columns without a default are missing from the frame: "
            f"{', '.join(missing)}; add them (nothing was written)"
        )
    return LoadPlan(
        table, tuple(columns), tuple(sources), tuple(fills), tuple(kinds), sql_defaults
    )


def _arrow(name: str, values: Any, type_: pa.DataType | None = None) -> pa.Array:
    try:
        return pa.array(values, type=type_, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError) as exc:
        raise FrameError(f"column {name!r}: cannot convert its values: {exc}") from exc


def _all(mask: Any) -> bool:
    """True when no non-null element of ``mask`` is false (an all-null mask passes)."""
    return pc.all(mask, min_count=0).as_py() is not False


def integers(name: str, kind: str, arr: pa.Array) -> pa.Array:
    """Check integers (or whole floats, decimals) against the column's range; as ``int64``."""
    if pa.types.is_boolean(arr.type) or not (
        pa.types.is_integer(arr.type)
        or pa.types.is_floating(arr.type)
        or pa.types.is_decimal(arr.type)
        or pa.types.is_null(arr.type)
    ):
        raise FrameError(f"column {name!r} ({kind}): expected integers, got {arr.type}")
    if pa.types.is_null(arr.type) or arr.null_count == len(arr):
        return arr.cast(pa.int64())
    if pa.types.is_floating(arr.type) or pa.types.is_decimal(arr.type):
        finite = pc.is_finite(arr) if pa.types.is_floating(arr.type) else None
        if finite is not None and not _all(finite):
            raise FrameError(f"column {name!r} ({kind}): infinite or NaN-like values")
        if not _all(pc.equal(arr, pc.floor(arr))):
            raise FrameError(f"column {name!r} ({kind}): values with a fraction")
    low, high = _INT_BOUNDS[kind]
    bounds = pc.min_max(arr).as_py()
    smallest, largest = bounds["min"], bounds["max"]
    if smallest < low or largest > high:
        bad = largest if largest > high else smallest
        raise FrameError(
            f"column {name!r}: value {bad} is out of range for {kind} ({low}..{high})"
        )
    return arr.cast(pa.int64(), safe=False)


def _datetimes(name: str, kind: str, series: pd.Series[Any], naive_as: str | None) -> pa.Array:
    import pandas as pd

    s = series
    if not (isinstance(s.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(s)):
        if isinstance(s.dtype, pd.ArrowDtype) and pa.types.is_timestamp(s.dtype.pyarrow_dtype):
            s = s.astype(pd.ArrowDtype(s.dtype.pyarrow_dtype))
        else:
            try:
                s = pd.to_datetime(s)
            except (ValueError, TypeError) as exc:
                raise FrameError(f"column {name!r} ({kind}): not datetimes: {exc}") from exc
    tz = getattr(s.dt, "tz", None)
    try:
        if kind == "timestamptz" and tz is None:
            if naive_as is None:
                raise FrameError(
                    f"column {name!r}: naive datetimes cannot go into timestamptz without a "
                    "zone; pass naive_as='UTC' (or the zone they were recorded in), or "
                    "localize the column first"
                )
            s = s.dt.tz_localize(naive_as).dt.tz_convert("UTC")
        elif kind == "timestamptz":
            s = s.dt.tz_convert("UTC")
        elif tz is not None:
            s = s.dt.tz_convert("UTC").dt.tz_localize(None)
    except (ValueError, TypeError, KeyError) as exc:
        raise FrameError(f"column {name!r} ({kind}): {exc}") from exc
    # PostgreSQL keeps microseconds; nanoseconds are dropped as the server would round them.
    # timestamptz values leave as naive UTC: Arrow writes zoned timestamps twenty times more
    # slowly, and the load runs with TimeZone=UTC so the server reads them as UTC.
    arr = _arrow(name, s)
    if kind == "timestamptz":
        arr = arr.cast(pa.timestamp("us", tz="UTC"), safe=False)
    return arr.cast(pa.timestamp("us"), safe=False)


def _column_array(name: str, kind: str, series: pd.Series[Any], naive_as: str | None) -> pa.Array:
    import pandas as pd

    if kind in _INT_BOUNDS:
        return integers(name, kind, _arrow(name, series))
    if kind in ("timestamptz", "timestamp"):
        return _datetimes(name, kind, series, naive_as)
    if kind == "json":
        return _arrow(name, [cells.json_text(name, v) for v in series], pa.string())
    if kind == "array":
        return _arrow(name, [cells.array_literal(name, v) for v in series], pa.string())
    if kind in ("uuid", "text") and series.dtype == object:
        cells.check_text(name, kind, series)
    if kind in ("uuid", "text", "other") and series.dtype == object:
        series = series.map(cells.enum_name, na_action="ignore").astype(pd.StringDtype("pyarrow"))
    return checked_array(name, kind, _arrow(name, series))


def _is_view(t: pa.DataType) -> bool:
    test = getattr(pa.types, "is_string_view", None)  # pyarrow >= 16
    return bool(test and test(t))


def checked_array(name: str, kind: str, arr: pa.Array) -> pa.Array:
    """Check an Arrow column against its column's kind, as COPY's CSV will carry it.

    What pandas and Arrow/polars input share once a column is Arrow: text must be text,
    floats numbers, booleans booleans, dates whole days; text becomes plain ``string``.

    Raises:
        FrameError: the values do not fit the column (the message names it).
    """
    if kind == "text" and not cells.stringlike(arr.type):
        raise FrameError(
            f"column {name!r} (text): takes strings, got {arr.type} values; convert the column "
            "first (df[col].astype(str)) if its text is what you want"
        )
    numeric = pa.types.is_floating(arr.type) or pa.types.is_integer(arr.type)
    if kind == "float" and not (numeric or pa.types.is_null(arr.type)):
        raise FrameError(f"column {name!r} (float): expected numbers, got {arr.type}")
    if kind == "boolean" and not (pa.types.is_boolean(arr.type) or pa.types.is_null(arr.type)):
        raise FrameError(f"column {name!r} (boolean): expected booleans, got {arr.type}")
    if kind == "date" and pa.types.is_timestamp(arr.type):
        days = arr.cast(pa.date32())
        if not _all(pc.equal(days.cast(arr.type), arr)):
            raise FrameError(f"column {name!r} (date): datetimes with a time of day")
        return days
    if (
        pa.types.is_large_string(arr.type) or _is_view(arr.type)
        or isinstance(arr.type, pa.ExtensionType)
    ):
        # Arrow's CSV writer renders plain ``string`` much faster than ``large_string`` (a
        # million values: a third of the render time), and views not at all.
        return arr.cast(pa.string())
    return arr


def frame_to_arrow(plan: LoadPlan, frame: pd.DataFrame, *, naive_as: str | None) -> pa.Table:
    """Convert ``frame`` into the Arrow table whose CSV ``COPY`` loads into ``plan.table``.

    Raises:
        FrameError: a value does not fit its column (the message names the column), or
            ``naive_as`` is not a time zone name.
    """
    import pandas as pd

    check_naive_as(naive_as)
    n = len(frame)
    arrays = []
    for column, source, fill, kind in zip(
        plan.columns, plan.sources, plan.fills, plan.kinds, strict=True
    ):
        if source is None:
            assert fill is not None
            series = pd.Series(fill(n), dtype=object)
        else:
            series = frame[source]
        arrays.append(_column_array(column, kind, series, naive_as))
    return pa.table(arrays, names=[f"c{i}" for i in range(len(arrays))])


def parts(table: pa.Table, rows: int = 65_536) -> list[pa.Table]:
    """Cut ``table`` into slices of ``rows`` rows (zero-copy), the unit of rendering."""
    return [table.slice(start, rows) for start in range(0, table.num_rows, rows)]


def render_csv(part: pa.Table) -> bytes:
    """Render ``part`` as the headerless CSV ``COPY ... (FORMAT csv)`` reads."""
    sink = io.BytesIO()
    pacsv.write_csv(part, sink, pacsv.WriteOptions(include_header=False, quoting_style="needed"))
    return sink.getvalue()
