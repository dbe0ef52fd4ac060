"""A table for a frame: PostgreSQL column types derived from the frame's dtypes, by way of Arrow.

IO-free. Every column's dtype becomes an Arrow type first (:func:`arrow_type_of`), and the
Arrow type becomes the PostgreSQL type (:func:`column_type`); a polars DataFrame or a
``pyarrow.Table`` goes straight to the second half, its schema giving the Arrow types (polars'
``String`` is ``large_string``, ``Categorical`` a dictionary of strings, ``List`` a
``large_list``, ``Decimal(p, s)`` ``decimal128(p, s)``). Nothing is guessed from a sample: a
dtype says the type, and only pandas ``object`` columns are read whole to learn it.

=============================================  ========================================
pandas dtype (Arrow type)                      PostgreSQL column
=============================================  ========================================
``int8``/``int16``, ``Int8``/``Int16``         ``smallint``
``int32``, ``Int32``, ``uint8``/``uint16``     ``integer`` (unsigned types widen)
``int64``, ``Int64``, ``uint32``               ``bigint``; ``uint64``: ``numeric(20, 0)``
``float32``/``Float32``; ``float64``           ``real``; ``double precision``
``bool``, ``boolean``                          ``boolean``
``decimal128(p, s)[pyarrow]``                  ``numeric(p, s)``
``object`` of ``Decimal``                      ``numeric(38, s)`` (``s``: the largest scale)
``str``, ``string``, ``category`` of strings   ``text``
``datetime64[…]``                              ``timestamp``
``datetime64[…, tz]``                          ``timestamptz`` (values stored as instants)
``date32[pyarrow]``, ``object`` of ``date``    ``date``
``time64[pyarrow]``, ``object`` of ``time``    ``time``
``object`` of ``UUID``                         ``uuid``
lists of scalars                               arrays (``bigint[]``, ``text[]``…)
dicts, nested lists, structs, maps             ``jsonb``
=============================================  ========================================

Nullable integer dtypes stay integers (never ``double precision``). Durations, bytes, periods,
intervals and mixed ``object`` columns are refused with a :class:`~dbnb.FrameError` naming the
column; ``types={"col": sqlalchemy.types.X()}`` overrides any column's type.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from sqlalchemy import Column, MetaData, Table, types
from sqlalchemy.dialects import postgresql

from dbnb.errors import FrameError

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "MAX_NAME_BYTES",
    "arrow_type_of",
    "check_name",
    "column_type",
    "frame_columns",
    "table_for_frame",
    "type_sql",
]

#: PostgreSQL cuts identifiers longer than this (NAMEDATALEN - 1) without an error.
MAX_NAME_BYTES = 63
_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]
_INFERRED_DECIMAL_PRECISION = 38


def check_name(name: Any, what: str) -> str:
    """Return ``name`` if PostgreSQL can keep it as given, else raise naming it.

    Names are quoted as given, so ``"Order Date"`` works (and needs its quotes in SQL). A name
    that is not a string, is empty, holds a NUL or is longer than 63 bytes (which PostgreSQL
    would silently cut) is refused.
    """
    if not isinstance(name, str):
        how = " (df.columns = [...] or df.rename(columns={...}))" if what == "column" else ""
        raise FrameError(f"{what} {name!r} is not a string; name it{how}")
    if not name.strip() or "\x00" in name:
        raise FrameError(f"{what} {name!r} cannot be a PostgreSQL name; rename it")
    if len(name.encode()) > MAX_NAME_BYTES:
        raise FrameError(
            f"{what} {name[:20]!r}… is {len(name.encode())} bytes long; PostgreSQL keeps "
            f"{MAX_NAME_BYTES}: rename it"
        )
    return name


def frame_columns(frame: Any) -> pd.DataFrame | pa.Table:
    """The frame to write: a named index becomes columns (as ``reset_index()``), names checked.

    A polars DataFrame or a ``pyarrow.Table`` comes back as a ``pyarrow.Table`` (no index).

    Raises:
        FrameError: not a frame, a column name PostgreSQL cannot keep, or a name used twice.
    """
    from dbnb.frames.arrowin import frame_input

    frame = frame_input(frame, what="create_table_from_frame")
    if isinstance(frame, pa.Table):
        names: list[Any] = frame.column_names
    else:
        if any(name is not None for name in frame.index.names):
            frame = frame.reset_index()
        names = list(frame.columns)
    seen: set[str] = set()
    for name in names:
        check_name(name, "column")
        if name in seen:
            raise FrameError(f"column {name!r} appears twice in the frame; rename one")
        seen.add(name)
    return frame


def _first_value(series: pd.Series[Any]) -> Any:
    valid = series.first_valid_index()
    return None if valid is None else series.loc[valid]


def arrow_type_of(name: str, series: pd.Series[Any]) -> tuple[pa.DataType, bool]:
    """The Arrow type of a pandas column, and whether it was learnt from the values.

    A typed column converts an empty slice (no data is read); an ``object`` column is
    converted whole, since only its values say what it holds.

    Raises:
        FrameError: the column holds values of several kinds, or only missing values.
    """
    if series.dtype != object:
        try:
            return pa.array(series.iloc[:0], from_pandas=True).type, False
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as exc:
            raise FrameError(
                f"column {name!r} has dtype {series.dtype}, which has no PostgreSQL column "
                f"type here; convert it first, or pass types={{{name!r}: ...}}"
            ) from exc
    first = _first_value(series)
    if first is None:
        raise FrameError(
            f"column {name!r} holds only missing values, so its type cannot be told; pass "
            f"types={{{name!r}: sqlalchemy.Text()}} (or the type you mean), or drop it"
        )
    if isinstance(first, uuid.UUID):
        # Arrow's uuid type (pyarrow >= 18), else its storage: 16 fixed bytes.
        return (pa.uuid() if hasattr(pa, "uuid") else pa.binary(16)), True
    if isinstance(first, dict):
        return pa.struct([]), True  # jsonb, whatever the shapes of the others
    try:
        return pa.array(series, from_pandas=True).type, True
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError) as exc:
        if isinstance(first, list | tuple):
            return pa.struct([]), True  # lists of varying shapes: jsonb too
        kinds = sorted({type(v).__name__ for v in series.dropna().head(1000)})
        raise FrameError(
            f"column {name!r} mixes values of several kinds ({', '.join(kinds)}); convert it "
            f"to one (e.g. df[{name!r}].astype(str)), or pass types={{{name!r}: ...}}"
        ) from exc


def _scalar_type(t: pa.DataType) -> types.TypeEngine[Any] | None:
    """The PostgreSQL type of a scalar Arrow type, or None when there is none."""
    if pa.types.is_dictionary(t):
        return _scalar_type(t.value_type)
    if pa.types.is_boolean(t):
        return types.Boolean()
    if pa.types.is_integer(t):
        bits = t.bit_width + (1 if pa.types.is_unsigned_integer(t) else 0)
        if bits <= 16:
            return types.SmallInteger()
        if bits <= 32:
            return types.Integer()
        if bits <= 64:
            return types.BigInteger()
        return types.Numeric(20, 0)
    if pa.types.is_float16(t) or pa.types.is_float32(t):
        return types.REAL()
    if pa.types.is_float64(t):
        return types.Double()
    if pa.types.is_decimal(t):
        return types.Numeric(t.precision, t.scale)
    if pa.types.is_string(t) or pa.types.is_large_string(t) or _is(t, "is_string_view"):
        return types.Text()
    if pa.types.is_timestamp(t):
        return types.DateTime(timezone=t.tz is not None)
    if pa.types.is_date(t):
        return types.Date()
    if pa.types.is_time(t):
        return types.Time()
    if getattr(t, "extension_name", None) == "arrow.uuid" or (
        pa.types.is_fixed_size_binary(t) and t.byte_width == 16
    ):
        return types.Uuid()
    return None


def _is(t: pa.DataType, check: str) -> bool:
    test = getattr(pa.types, check, None)  # newer pyarrow only
    return bool(test and test(t))


def _is_list(t: pa.DataType) -> bool:
    return (
        pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)
        or _is(t, "is_list_view")
    )


def column_type(name: str, t: pa.DataType, *, inferred: bool = False) -> types.TypeEngine[Any]:
    """The PostgreSQL type for a column of Arrow type ``t`` (see the table above).

    Args:
        name: the column, for the error message.
        t: its Arrow type.
        inferred: the type was learnt from Python values (an ``object`` column): a decimal's
            precision is then a sample's, so it widens to 38 digits (its scale is kept).

    Raises:
        FrameError: no PostgreSQL column type fits (durations, bytes, periods...).
    """
    if _is_list(t):
        element = t.value_type
        scalar = None if pa.types.is_null(element) else _scalar_type(element)
        # Nested lists (arrays must be rectangular) and lists of structs are JSON documents.
        return postgresql.JSONB() if scalar is None else postgresql.ARRAY(scalar)
    if pa.types.is_struct(t) or pa.types.is_map(t):
        return postgresql.JSONB()
    scalar = _scalar_type(t)
    if scalar is None:
        raise FrameError(
            f"column {name!r} has the Arrow type {t}, which dbnb does not turn into a "
            f"PostgreSQL column ({_advice(t)}); pass types={{{name!r}: ...}}"
        )
    if inferred and isinstance(scalar, types.Numeric) and pa.types.is_decimal(t):
        precision = max(int(t.precision), _INFERRED_DECIMAL_PRECISION)
        return types.Numeric(precision, int(t.scale))
    return scalar


def _advice(t: pa.DataType) -> str:
    if pa.types.is_duration(t):
        return "durations: convert them, e.g. df[col].dt.total_seconds()"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return "bytes are not loaded by COPY here: store them hex-encoded as text"
    if pa.types.is_null(t):
        return "only missing values"
    return "convert the column first"


def type_sql(column_type_: types.TypeEngine[Any]) -> str:
    """The type as PostgreSQL spells it (``numeric(12, 2)``, ``timestamp with time zone``)."""
    return str(column_type_.compile(dialect=_DIALECT)).lower()


def _override(name: str, given: Any) -> types.TypeEngine[Any]:
    if isinstance(given, type) and issubclass(given, types.TypeEngine):
        return given()
    if isinstance(given, types.TypeEngine):
        return given
    raise FrameError(
        f"types[{name!r}] must be a SQLAlchemy type such as sqlalchemy.Text() or "
        f"sqlalchemy.dialects.postgresql.UUID(), got {given!r}"
    )


def table_for_frame(
    name: str,
    frame: pd.DataFrame | pa.Table,
    *,
    schema: str | None = None,
    primary_key: str | Sequence[str] | None = None,
    types_: Mapping[str, Any] | None = None,
) -> Table:
    """Build (not create) the ``Table`` a frame's columns and dtypes call for.

    Args:
        name: the table name, used as given (quoted).
        frame: the frame, as :func:`frame_columns` returned it (pandas, or Arrow for polars
            and Arrow input: its schema gives the types, no value is read).
        schema: the schema, or None for the search path's first.
        primary_key: a column name or names; they become NOT NULL and the primary key.
        types_: column name -> SQLAlchemy type, overriding what the dtype says.

    Raises:
        FrameError: a bad name, an unsupported dtype, or a primary key that is not a column of
            the frame or has missing values; each message names the column.
    """
    check_name(name, "table name")
    if schema is not None:
        check_name(schema, "schema")
    keys = [primary_key] if isinstance(primary_key, str) else list(primary_key or [])
    names = frame.column_names if isinstance(frame, pa.Table) else list(frame.columns)
    unknown = [k for k in [*keys, *(types_ or {})] if k not in names]
    if unknown:
        raise FrameError(
            f"{', '.join(map(repr, unknown))} is not a column of the frame; its columns are: "
            f"{', '.join(map(str, names))}"
        )
    for key in keys:
        missing = (
            frame.column(key).null_count if isinstance(frame, pa.Table)
            else frame[key].isna().any()
        )
        if missing:
            raise FrameError(
                f"primary key column {key!r} has missing values; a primary key needs a value "
                "in every row"
            )
    columns = []
    for column in names:
        if types_ and column in types_:
            sql_type = _override(column, types_[column])
        elif isinstance(frame, pa.Table):
            sql_type = column_type(column, frame.schema.field(column).type)
        else:
            arrow, inferred = arrow_type_of(column, frame[column])
            sql_type = column_type(column, arrow, inferred=inferred)
        columns.append(
            Column(column, sql_type, primary_key=column in keys, nullable=column not in keys)
        )
    return Table(name, MetaData(), *columns, schema=schema)
